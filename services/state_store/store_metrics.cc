#include "services/state_store/store_metrics.h"

#include <string>

namespace skein::state_store {
namespace {

// 100 µs to about 26 s, ×2 apart: a 2 MB put takes milliseconds, a 33 MB one tens of them.
prometheus::Histogram::BucketBoundaries LatencyBuckets() {
  prometheus::Histogram::BucketBoundaries b;
  for (int i = 0; i < 19; ++i) b.push_back(1e-4 * static_cast<double>(1 << i));
  return b;
}

prometheus::Family<prometheus::Counter>& Counters(prometheus::Registry& r, const std::string& name,
                                                  const std::string& help) {
  return prometheus::BuildCounter().Name(name).Help(help).Register(r);
}

prometheus::Gauge& MakeGauge(prometheus::Registry& r, const std::string& name,
                             const std::string& help, const std::string& backend) {
  return prometheus::BuildGauge().Name(name).Help(help).Register(r).Add({{"backend", backend}});
}

prometheus::Histogram& MakeHistogram(prometheus::Registry& r, const std::string& name,
                                     const std::string& help, const std::string& backend) {
  return prometheus::BuildHistogram().Name(name).Help(help).Register(r).Add({{"backend", backend}},
                                                                            LatencyBuckets());
}

}  // namespace

StoreMetrics::StoreMetrics(prometheus::Registry& r, std::string_view backend_name)
    : StoreMetrics(r, std::string(backend_name),
                   Counters(r, "skein_state_store_lookups_total",
                            "Get requests, by whether the entry was found"),
                   Counters(r, "skein_state_store_evictions_total",
                            "Entries removed by the store itself, by reason"),
                   Counters(r, "skein_state_store_checksum_failures_total",
                            "Data that did not match its checksum, by where it came from"),
                   Counters(r, "skein_state_store_snapshots_total",
                            "Multi-part snapshots that ended, by outcome")) {}

StoreMetrics::StoreMetrics(prometheus::Registry& r, const std::string& b,
                           prometheus::Family<prometheus::Counter>& lookups,
                           prometheus::Family<prometheus::Counter>& evictions,
                           prometheus::Family<prometheus::Counter>& checksum_failures,
                           prometheus::Family<prometheus::Counter>& snapshots)
    : hits(lookups.Add({{"backend", b}, {"result", "hit"}})),
      misses(lookups.Add({{"backend", b}, {"result", "miss"}})),
      put_seconds(MakeHistogram(r, "skein_state_store_put_seconds",
                                "Time to verify, store and commit one put once its data arrived",
                                b)),
      get_seconds(MakeHistogram(r, "skein_state_store_get_seconds",
                                "Time to read and verify one entry part", b)),
      put_bytes(Counters(r, "skein_state_store_put_bytes_total", "Raw bytes accepted by puts")
                    .Add({{"backend", b}})),
      get_bytes(Counters(r, "skein_state_store_get_bytes_total", "Raw bytes returned by gets")
                    .Add({{"backend", b}})),
      evictions_capacity(evictions.Add({{"backend", b}, {"reason", "capacity"}})),
      evictions_ttl(evictions.Add({{"backend", b}, {"reason", "ttl"}})),
      checksum_failures_client(checksum_failures.Add({{"backend", b}, {"source", "client"}})),
      checksum_failures_storage(checksum_failures.Add({{"backend", b}, {"source", "storage"}})),
      version_conflicts(Counters(r, "skein_state_store_version_conflicts_total",
                                 "Writes and deletes refused because expected_version did not "
                                 "match")
                            .Add({{"backend", b}})),
      snapshots_committed(snapshots.Add({{"backend", b}, {"outcome", "committed"}})),
      snapshots_aborted(snapshots.Add({{"backend", b}, {"outcome", "aborted"}})),
      snapshots_expired(snapshots.Add({{"backend", b}, {"outcome", "expired"}})),
      orphans_removed(Counters(r, "skein_state_store_orphans_removed_total",
                               "Blobs of interrupted writes removed at start-up")
                          .Add({{"backend", b}})),
      entries_(MakeGauge(r, "skein_state_store_entries", "Committed entries held", b)),
      stored_bytes_(MakeGauge(r, "skein_state_store_stored_bytes",
                              "Bytes held by committed entries, as stored (after compression)", b)),
      pending_bytes_(MakeGauge(r, "skein_state_store_pending_bytes",
                               "Bytes held by open snapshots and writes in progress", b)),
      capacity_bytes_(
          MakeGauge(r, "skein_state_store_capacity_bytes", "The byte budget (0: unlimited)", b)),
      open_snapshots_(MakeGauge(r, "skein_state_store_open_snapshots",
                                "Multi-part snapshots begun and not yet committed or discarded",
                                b)) {}

void StoreMetrics::SetUsage(const StoreIndex::Usage& usage, uint64_t capacity_bytes) {
  entries_.Set(static_cast<double>(usage.entries));
  stored_bytes_.Set(static_cast<double>(usage.committed_bytes));
  pending_bytes_.Set(static_cast<double>(usage.pending_bytes + usage.reserved_bytes));
  capacity_bytes_.Set(static_cast<double>(capacity_bytes));
  open_snapshots_.Set(static_cast<double>(usage.open_snapshots));
}

}  // namespace skein::state_store
