// A StoreIndex kept in Redis, so that several skein-state-store processes on one Redis server
// or Redis Cluster share one view: which keys exist at which version, the LRU order, pins,
// TTLs, open snapshots and the bytes counted against the capacity. Every change is one Lua
// script, so concurrent stores never interleave half-changes; all of the index's Redis keys
// share one hash tag (`{PREFIX:index}`), so in a cluster they live on one slot and each
// script runs on one node.
//
// Layout under PREFIX:{PREFIX:index}:
//   ver, size, info   hashes key -> version, stored bytes, serialized EntryInfo
//   keys              sorted set of keys (score 0: ordered by key, for List)
//   lru               sorted set key -> use counter (least recently used first)
//   clock             the use counter
//   expiry            sorted set key -> expiry (Unix ms), entries with a TTL only
//   pins              hash key -> JSON {holder: lease end (Unix ms)}
//   bytes             hash: committed, pending
//   reserved          hash reservation -> "bytes:expiry ms" (a store that dies mid-write
//                     leaks nothing: its reservations lapse after `reservation_timeout`)
//   snapshots         hash snapshot id -> JSON {key, deadline, committed, parts}
//
// Redis errors cannot be returned through the StoreIndex interface: a failed change is logged
// and counted (`errors()`); reads answer as if the index were empty. The store's records in the
// backend stay the source of truth, and the next store start re-derives the index from them.
// Thread-safe.
#ifndef SKEIN_SERVICES_STATE_STORE_REDIS_STORE_INDEX_H_
#define SKEIN_SERVICES_STATE_STORE_REDIS_STORE_INDEX_H_

#include <atomic>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "services/state_store/redis_client.h"
#include "services/state_store/store_index.h"

namespace skein::state_store {

class RedisStoreIndex final : public StoreIndex {
 public:
  // Connects with `options` (a server or any cluster node); the index lives under
  // options.key_prefix. Errors: RedisClient::Connect's.
  static absl::StatusOr<std::unique_ptr<RedisStoreIndex>> Connect(
      const RedisOptions& options, absl::Duration reservation_timeout = absl::Minutes(10));

  void Upsert(const v1::EntryInfo& info, uint64_t stored_bytes) override;
  void Remove(const std::string& key, uint64_t version = 0) override;
  void MarkUsed(const std::string& key) override;
  std::vector<v1::EntryInfo> List(const std::string& prefix, const std::string& after, size_t limit,
                                  absl::Time now) const override;
  std::vector<std::string> ExpiredKeys(absl::Time now) const override;
  void Pin(const std::string& key, const std::string& holder, absl::Time until) override;
  void Unpin(const std::string& key, const std::string& holder) override;
  std::optional<absl::Time> PinnedUntil(const std::string& key, absl::Time now) const override;
  void PruneExpiredPins(absl::Time now) override;
  ReserveResult TryReserve(uint64_t bytes, uint64_t capacity, absl::Time now,
                           std::vector<std::string>* victims) override;
  void Release(uint64_t bytes) override;
  void AddSnapshot(const std::string& id, const std::string& key, absl::Time deadline,
                   bool committed) override;
  void SetSnapshotPart(const std::string& id, uint32_t part, uint64_t stored_bytes) override;
  void RemoveSnapshot(const std::string& id) override;
  std::vector<SnapshotRef> ExpiredSnapshots(absl::Time now) const override;
  Usage usage() const override;

  // Redis calls that failed since the start.
  uint64_t errors() const { return errors_.load(); }

 private:
  RedisStoreIndex(std::unique_ptr<RedisClient> client, absl::Duration reservation_timeout);
  std::string Key(const char* name) const;
  // Runs a script over the index's keys (all of them, in the order of kKeyNames).
  absl::StatusOr<RedisReply> Script(const char* script, const std::vector<std::string>& args) const;
  // Runs a script that changes the index; a failure is logged and counted.
  void Change(const char* what, const char* script, const std::vector<std::string>& args);
  // Logs and counts a failed change.
  void Failed(const char* what, const absl::Status& status) const;
  // Pins per key for `keys` (HMGET), as lease ends.
  std::vector<std::vector<absl::Time>> Leases(const std::vector<std::string>& keys) const;

  std::unique_ptr<RedisClient> client_;
  const absl::Duration reservation_timeout_;
  const std::string tag_;
  std::vector<std::string> key_names_;
  const std::string instance_;  // names this process's reservations
  mutable std::atomic<uint64_t> errors_{0};
  std::atomic<uint64_t> next_reservation_{0};
  absl::Mutex mu_;
  // This process's reservations: bytes -> reservation names.
  std::multimap<uint64_t, std::string> reservations_ ABSL_GUARDED_BY(mu_);
};

}  // namespace skein::state_store

#endif  // SKEIN_SERVICES_STATE_STORE_REDIS_STORE_INDEX_H_
