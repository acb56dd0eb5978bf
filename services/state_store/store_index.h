// The state store's in-process view of what it holds: committed entries in key order with
// their LRU position, pins (leases), open snapshots, and the bytes each uses. It is derived
// from the backend at start-up and kept in step by StateStore after every change; it decides
// what to evict and what has expired, and answers List without touching the backend.
//
// Pins live only here: they are leases that their holders renew, so after a restart a pin
// returns with the holder's next renewal. Thread-safe.
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

  // Adds or replaces `info.key()`, most recently used. Ignored if the index already holds a
  // newer version of the key (a slower writer finishing late).
  void Upsert(const v1::EntryInfo& info, uint64_t stored_bytes);
  // Forgets the key if its version is `version` (0: whatever version) and drops its pins.
  void Remove(const std::string& key, uint64_t version = 0);
  // Moves the key to the most-recently-used end.
  void MarkUsed(const std::string& key);

  // Live entries (not expired at `now`, or pinned) with key > `after` and starting with
  // `prefix`, in key order, at most `limit`; `pinned` is filled in.
  std::vector<v1::EntryInfo> List(const std::string& prefix, const std::string& after, size_t limit,
                                  absl::Time now) const;
  // Keys whose expiry has passed at `now` and that no lease holds.
  std::vector<std::string> ExpiredKeys(absl::Time now) const;

  // Pins `key` for `holder` until `until` (replacing that holder's earlier lease).
  void Pin(const std::string& key, const std::string& holder, absl::Time until);
  void Unpin(const std::string& key, const std::string& holder);
  // The latest lease end on `key` after `now`, if any.
  std::optional<absl::Time> PinnedUntil(const std::string& key, absl::Time now) const;
  void PruneExpiredPins(absl::Time now);

  // Counts `bytes` against `capacity` (0 = unlimited) if they fit; see ReserveResult.
  // Victims are unpinned entries in least-recently-used order.
  ReserveResult TryReserve(uint64_t bytes, uint64_t capacity, absl::Time now,
                           std::vector<std::string>* victims);
  void Release(uint64_t bytes);

  // Open snapshots (and, when `committed`, commit markers kept only to be cleaned up later).
  void AddSnapshot(const std::string& id, const std::string& key, absl::Time deadline,
                   bool committed);
  void SetSnapshotPart(const std::string& id, uint32_t part, uint64_t stored_bytes);
  void RemoveSnapshot(const std::string& id);
  // (id, key, committed) of snapshots whose deadline has passed.
  struct SnapshotRef {
    std::string id;
    std::string key;
    bool committed = false;
  };
  std::vector<SnapshotRef> ExpiredSnapshots(absl::Time now) const;

  Usage usage() const;

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
