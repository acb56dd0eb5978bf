// StateStore: the behaviour of skein-state-store, written once over any StorageBackend.
//
// What it adds to the backend:
//   - keys (key.h) and entries with versions: every write of a key gives it a version larger
//     than the key's previous one, than any version this store has issued, and than the time
//     in Unix microseconds, so versions keep growing across deletes and restarts and a stale
//     compare-and-set cannot succeed on a re-created key;
//   - compare-and-set (expected_version; 0 = "must not exist") or last-writer-wins;
//   - atomic publication: data goes to a fresh blob first, and one backend Batch swaps the
//     entry record to it (checking that the record is what the writer read), so readers see
//     the old entry or the new one, never a mixture, and a writer that dies leaves only an
//     unreferenced blob (removed at the next start, or expired by Redis);
//   - multi-part snapshots (BeginSnapshot, Put with snapshot_id, CommitSnapshot): parts are
//     staged records and blobs, and the commit folds them into the entry in one Batch;
//   - checksums verified on the way in and on every read (DATA_LOSS, never bad bytes);
//   - optional zstd compression; TTLs; a byte budget with LRU eviction; pins (leases).
//
// Errors follow proto/skein/v1/state_store.proto. Thread-safe: operations on different keys
// run in parallel; operations that change one key are serialized by a per-key lock, and
// stores sharing a Redis namespace are kept consistent by the backend's atomic Batch.
#ifndef SKEIN_SERVICES_STATE_STORE_STORE_H_
#define SKEIN_SERVICES_STATE_STORE_STORE_H_

#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <thread>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "base/clock.h"
#include "prometheus/registry.h"
#include "services/state_store/backend.h"
#include "services/state_store/store_index.h"
#include "services/state_store/store_metrics.h"
#include "skein/state_store/records.pb.h"
#include "skein/v1/state_store.pb.h"

namespace skein::state_store {

struct StoreOptions {
  // Byte budget for stored data (after compression); 0 means unlimited. When a write would
  // exceed it, least-recently-used unpinned entries are evicted.
  uint64_t capacity_bytes = 0;
  // Largest blob (one part) accepted.
  uint64_t max_blob_bytes = 256ull << 20;
  // TTL for writes that ask for none (ttl_seconds = 0); zero means "no expiry".
  absl::Duration default_ttl = absl::ZeroDuration();
  // Longest TTL a write may ask for.
  absl::Duration max_ttl = absl::Hours(24 * 365 * 10);
  absl::Duration default_lease = absl::Seconds(60);
  absl::Duration max_lease = absl::Hours(1);
  absl::Duration default_snapshot_timeout = absl::Seconds(60);
  absl::Duration max_snapshot_timeout = absl::Hours(24);
  // How long a blob may wait between being written and being published before a backend
  // that expires objects (Redis) drops it.
  absl::Duration staging_timeout = absl::Minutes(10);
  // zstd level for stored blobs; 0 stores them uncompressed.
  int zstd_level = 0;
  // Stored bytes that parts of open (uncommitted) snapshots may hold together, counting writes
  // in progress. A part beyond it is refused with RESOURCE_EXHAUSTED rather than evicting
  // committed entries to make room for data that may never be committed. 0: a quarter of
  // capacity_bytes (no bound without a capacity).
  uint64_t max_pending_bytes = 0;
  // Snapshots open at once; BeginSnapshot beyond it is refused with RESOURCE_EXHAUSTED.
  uint64_t max_open_snapshots = 4096;
};

class StateStore {
 public:
  struct Blob {
    v1::GetHeader header;
    std::string data;
  };

  // Opens a store over `backend`: rebuilds the index from the backend's records and, for a
  // backend that does not expire objects itself, removes blobs that no record references
  // (left by writers that died). `clock` must outlive the store (nullptr: real time).
  // `registry` receives the store's metrics (nullptr: a private registry).
  // Errors: those of the backend's scans.
  // `index` is where the store keeps its index (nullptr: its own memory; a RedisStoreIndex
  // shares it with every store on the same Redis).
  static absl::StatusOr<std::unique_ptr<StateStore>> Open(
      std::unique_ptr<StorageBackend> backend, StoreOptions options, base::Clock* clock = nullptr,
      prometheus::Registry* registry = nullptr, std::unique_ptr<StoreIndex> index = nullptr);
  ~StateStore();

  // Checks a put's header before its data arrives: key, checksum algorithm, size limit,
  // metadata, and for a snapshot part that the snapshot is open and the part in range.
  absl::Status CheckPutHeader(const v1::PutHeader& header);

  // Stores `data` as described by `header` (see Put in state_store.proto). The header is
  // checked again; `data` must have header.total_size bytes and match the checksum.
  absl::StatusOr<v1::PutResponse> Put(const v1::PutHeader& header, std::string data);

  // Reads one part of a live entry, verified against its checksum.
  absl::StatusOr<Blob> Get(const std::string& key, uint32_t part);
  absl::StatusOr<v1::EntryInfo> Stat(const std::string& key);
  absl::StatusOr<v1::DeleteResponse> Delete(const v1::DeleteRequest& request);
  absl::StatusOr<v1::ListResponse> List(const v1::ListRequest& request);
  absl::StatusOr<v1::EntryInfo> Touch(const v1::TouchRequest& request);
  absl::StatusOr<v1::PinResponse> Pin(const v1::PinRequest& request);
  absl::Status Unpin(const v1::UnpinRequest& request);
  absl::StatusOr<v1::BeginSnapshotResponse> BeginSnapshot(const v1::BeginSnapshotRequest& request);
  absl::StatusOr<v1::EntryInfo> CommitSnapshot(const v1::CommitSnapshotRequest& request);
  absl::Status AbortSnapshot(const v1::AbortSnapshotRequest& request);

  // Removes expired entries (not pinned), discards open snapshots past their deadline, and
  // forgets old commit markers and lapsed pins. Called by the sweeper thread; tests call it
  // directly with a base::FakeClock.
  void SweepOnce();
  // Runs SweepOnce every `interval` on a thread until the store is destroyed.
  void StartSweeper(absl::Duration interval);

  StoreIndex::Usage usage() const { return index_->usage(); }
  const StoreOptions& options() const { return options_; }
  StorageBackend& backend() { return *backend_; }

 private:
  struct ReadEntryResult {
    std::optional<StoredEntry> entry;
    std::optional<std::string> raw;
  };

  StateStore(std::unique_ptr<StorageBackend> backend, StoreOptions options, base::Clock* clock,
             prometheus::Registry* registry, std::unique_ptr<StoreIndex> index);
  absl::Status Recover();

  absl::Mutex& KeyLock(const std::string& key);
  absl::StatusOr<ReadEntryResult> ReadEntry(const std::string& key);
  // The compare-and-set rule: with an expected version, the entry's live version (0 when
  // absent or expired) must equal it, else ABORTED (counted) ending with `unchanged`.
  absl::Status CheckVersion(const std::string& key, const ReadEntryResult& current, absl::Time now,
                            bool has_expected, uint64_t expected, const char* unchanged);
  bool IsLive(const StoredEntry& entry, absl::Time now) const;
  absl::Time BackendExpiry(const StoredEntry& entry, absl::Time now) const;
  v1::EntryInfo InfoOf(const StoredEntry& entry, absl::Time now) const;
  // A version above `current`'s, above every version issued so far, and at least `now` in
  // Unix microseconds.
  uint64_t NextVersion(const std::optional<StoredEntry>& current, absl::Time now);
  absl::StatusOr<absl::Time> ExpiryFor(uint64_t ttl_seconds, absl::Time now) const;

  absl::Status ReserveCapacity(uint64_t bytes);
  // RESOURCE_EXHAUSTED when a snapshot part of `bytes` would pass max_pending_bytes.
  absl::Status CheckPendingRoom(uint64_t bytes);
  // Deletes `key` if it is still what the index thinks and not pinned; counts the reason.
  void Evict(const std::string& key, bool for_ttl);
  absl::Status AbortSnapshotById(const std::string& id, const std::string& key, bool expired);

  absl::StatusOr<v1::PutResponse> PutEntry(const v1::PutHeader& header, const StoredPart& part,
                                           const std::string& stored);
  absl::StatusOr<v1::PutResponse> PutSnapshotPart(const v1::PutHeader& header,
                                                  const std::string& snapshot_key,
                                                  const std::string& snapshot_name,
                                                  const StoredPart& part,
                                                  const std::string& stored);
  void PublishUsage();

  std::unique_ptr<StorageBackend> backend_;
  StoreOptions options_;
  base::Clock* clock_;
  std::unique_ptr<prometheus::Registry> own_registry_;
  StoreMetrics metrics_;
  std::unique_ptr<StoreIndex> index_;
  std::array<absl::Mutex, 128> key_locks_;
  // The largest version issued or seen at start-up.
  std::atomic<uint64_t> last_version_{0};

  absl::Notification stop_sweeper_;
  std::thread sweeper_;
};

// Snapshot ids name their key: "<32 hex>.<web-safe base64 of the key>". Exposed for tests.
std::string MakeSnapshotId(const std::string& random_hex, const std::string& key);
// Splits an id into (name within the key's group, key); nullopt if malformed.
std::optional<std::pair<std::string, std::string>> ParseSnapshotId(const std::string& id);

}  // namespace skein::state_store

#endif  // SKEIN_SERVICES_STATE_STORE_STORE_H_
