// The state store's index of what it holds: committed entries in key order with their LRU
// position, pins (leases), open snapshots, and the bytes each uses. It is derived from the
// backend at start-up (idempotently) and kept in step by StateStore after every change; it
// decides what to evict and what has expired, and answers List without touching the backend.
//
// Two implementations: MemoryStoreIndex (below), one store's own, and RedisStoreIndex
// (redis_store_index.h), kept in Redis so that several store processes on one Redis (or
// Redis Cluster) share one view of keys, LRU order, pins, TTLs and capacity.
//
// Pins live only in the index: they are leases that their holders renew, so after a restart
// of a MemoryStoreIndex a pin returns with the holder's next renewal. Thread-safe.
#ifndef SKEIN_SERVICES_STATE_STORE_STORE_INDEX_H_
#define SKEIN_SERVICES_STATE_STORE_STORE_INDEX_H_

#include <cstdint>
#include <list>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "skein/v1/state_store.pb.h"

namespace skein::state_store {

class StoreIndex {
 public:
  struct Usage {
    uint64_t entries = 0;
    // Stored (possibly compressed) bytes of committed entries.
    uint64_t committed_bytes = 0;
    // Stored bytes of parts of open snapshots.
    uint64_t pending_bytes = 0;
    // Bytes promised to writes in progress.
    uint64_t reserved_bytes = 0;
    uint64_t open_snapshots = 0;
  };

  enum class ReserveResult {
    kReserved,      // the bytes are now counted; Release() them when the write ends
    kNeedEviction,  // *victims lists entries whose eviction would make room
    kExhausted,     // not even evicting every unpinned entry would make room
  };

  struct SnapshotRef {
    std::string id;
    std::string key;
    bool committed = false;
  };

  virtual ~StoreIndex() = default;

  // Adds or replaces `info.key()`, most recently used. Ignored if the index already holds a
  // newer version of the key (a slower writer finishing late).
  virtual void Upsert(const v1::EntryInfo& info, uint64_t stored_bytes) = 0;
  // Forgets the key if its version is `version` (0: whatever version) and drops its pins.
  virtual void Remove(const std::string& key, uint64_t version = 0) = 0;
  // Moves the key to the most-recently-used end.
  virtual void MarkUsed(const std::string& key) = 0;

  // Live entries (not expired at `now`, or pinned) with key > `after` and starting with
  // `prefix`, in key order, at most `limit`; `pinned` is filled in.
  virtual std::vector<v1::EntryInfo> List(const std::string& prefix, const std::string& after,
                                          size_t limit, absl::Time now) const = 0;
  // Keys whose expiry has passed at `now` and that no lease holds.
  virtual std::vector<std::string> ExpiredKeys(absl::Time now) const = 0;

  // Pins `key` for `holder` until `until` (replacing that holder's earlier lease).
  virtual void Pin(const std::string& key, const std::string& holder, absl::Time until) = 0;
  virtual void Unpin(const std::string& key, const std::string& holder) = 0;
  // The latest lease end on `key` after `now`, if any.
  virtual std::optional<absl::Time> PinnedUntil(const std::string& key, absl::Time now) const = 0;
  virtual void PruneExpiredPins(absl::Time now) = 0;

  // Counts `bytes` against `capacity` (0 = unlimited) if they fit; see ReserveResult.
  // Victims are unpinned entries in least-recently-used order.
  virtual ReserveResult TryReserve(uint64_t bytes, uint64_t capacity, absl::Time now,
                                   std::vector<std::string>* victims) = 0;
  virtual void Release(uint64_t bytes) = 0;

  // Open snapshots (and, when `committed`, commit markers kept only to be cleaned up later).
  virtual void AddSnapshot(const std::string& id, const std::string& key, absl::Time deadline,
                           bool committed) = 0;
  virtual void SetSnapshotPart(const std::string& id, uint32_t part, uint64_t stored_bytes) = 0;
  virtual void RemoveSnapshot(const std::string& id) = 0;
  // (id, key, committed) of snapshots whose deadline has passed.
  virtual std::vector<SnapshotRef> ExpiredSnapshots(absl::Time now) const = 0;

  virtual Usage usage() const = 0;
};

// One store's index, in its memory.
class MemoryStoreIndex final : public StoreIndex {
 public:
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

 private:
  struct Entry {
    v1::EntryInfo info;
    uint64_t stored_bytes = 0;
    std::list<std::string>::iterator lru;
  };
  struct Snapshot {
    std::string key;
    absl::Time deadline;
    bool committed = false;
    std::map<uint32_t, uint64_t> part_bytes;
  };

  bool IsPinnedLocked(const std::string& key, absl::Time now) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  bool IsLiveLocked(const Entry& entry, absl::Time now) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  mutable absl::Mutex mu_;
  std::map<std::string, Entry> entries_ ABSL_GUARDED_BY(mu_);
  // Least recently used first.
  std::list<std::string> lru_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, std::map<std::string, absl::Time>> pins_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, Snapshot> snapshots_ ABSL_GUARDED_BY(mu_);
  uint64_t committed_bytes_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t pending_bytes_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t reserved_bytes_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace skein::state_store

#endif  // SKEIN_SERVICES_STATE_STORE_STORE_INDEX_H_
