// Prometheus metrics of the state store (names and meanings in docs/metrics.md). Created once
// per store on a registry; thread-safe.
#ifndef SKEIN_SERVICES_STATE_STORE_STORE_METRICS_H_
#define SKEIN_SERVICES_STATE_STORE_STORE_METRICS_H_

#include <string>
#include <string_view>

#include "prometheus/counter.h"
#include "prometheus/family.h"
#include "prometheus/gauge.h"
#include "prometheus/histogram.h"
#include "prometheus/registry.h"
#include "services/state_store/store_index.h"

namespace skein::state_store {

class StoreMetrics {
 public:
  StoreMetrics(prometheus::Registry& registry, std::string_view backend);

  void SetUsage(const StoreIndex::Usage& usage, uint64_t capacity_bytes);

  prometheus::Counter& hits;
  prometheus::Counter& misses;
  prometheus::Histogram& put_seconds;
  prometheus::Histogram& get_seconds;
  prometheus::Counter& put_bytes;
  prometheus::Counter& get_bytes;
  prometheus::Counter& evictions_capacity;
  prometheus::Counter& evictions_ttl;
  prometheus::Counter& checksum_failures_client;
  prometheus::Counter& checksum_failures_storage;
  prometheus::Counter& version_conflicts;
  prometheus::Counter& snapshots_committed;
  prometheus::Counter& snapshots_aborted;
  prometheus::Counter& snapshots_expired;
  prometheus::Counter& orphans_removed;

 private:
  StoreMetrics(prometheus::Registry& registry, const std::string& backend,
               prometheus::Family<prometheus::Counter>& lookups,
               prometheus::Family<prometheus::Counter>& evictions,
               prometheus::Family<prometheus::Counter>& checksum_failures,
               prometheus::Family<prometheus::Counter>& snapshots);

  prometheus::Gauge& entries_;
  prometheus::Gauge& stored_bytes_;
  prometheus::Gauge& pending_bytes_;
  prometheus::Gauge& capacity_bytes_;
  prometheus::Gauge& open_snapshots_;
};

}  // namespace skein::state_store

#endif  // SKEIN_SERVICES_STATE_STORE_STORE_METRICS_H_
