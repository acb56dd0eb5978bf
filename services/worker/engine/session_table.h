// The sessions a stage holds in memory: each session's state slice for this stage's layers
// and, on the last stage, its sampler (generator position and penalty counts).
//
// A step pins the sessions it names (Pin), computes, then commits or aborts (Unpin). Pinned
// sessions are never evicted and cannot be pinned twice, so steps in flight at once (the
// pipeline's micro-batches) touch disjoint sessions. Past `capacity` resident sessions, the
// least recently used unpinned ones are spilled (saved through SessionSpill, then dropped);
// a later Pin of a spilled session restores it. Without a spill, eviction just drops.
//
// Thread-safe. Spill I/O runs under the table's lock (it is rare: only past capacity), so a
// spill briefly delays other pins but never a running computation.
#ifndef SKEIN_SERVICES_WORKER_ENGINE_SESSION_TABLE_H_
#define SKEIN_SERVICES_WORKER_ENGINE_SESSION_TABLE_H_

#include <cstdint>
#include <functional>
#include <list>
#include <memory>
#include <optional>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_set.h"
#include "absl/container/node_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "services/worker/model/sampler.h"
#include "services/worker/model/state.h"

namespace skein::engine {

struct Session {
  explicit Session(const model::StateShape& shape) : state(shape) {}
  model::RwkvState state;
  std::optional<model::Sampler> sampler;  // last stage, once it has sampled
};

// A saved session, as SessionSpill hands it back.
struct SpilledSession {
  std::string state_blob;  // state_blob.h encoding
  std::string sampler;     // Sampler::SerializeState, or empty
};

// Where evicted sessions go. Implementations must be thread-safe.
class SessionSpill {
 public:
  virtual ~SessionSpill() = default;
  // Saves a session (replacing an earlier save); `position` is the state's token position.
  // Errors: the backing store's.
  virtual absl::Status Save(const std::string& id, std::shared_ptr<const std::string> state_blob,
                            int64_t position, const std::string& sampler) = 0;
  // NOT_FOUND when nothing is saved under `id`; other errors: the backing store's.
  virtual absl::StatusOr<SpilledSession> Load(const std::string& id) = 0;
  // Removes a save, if any. Best effort.
  virtual void Forget(const std::string& id) = 0;
};

struct SessionTableOptions {
  size_t capacity = 256;
  model::StateShape shape;
  uint64_t model_fingerprint = 0;
  int64_t vocab = 0;
  SessionSpill* spill = nullptr;  // optional; not owned
};

struct SessionTableStats {
  size_t resident = 0;
  size_t pinned = 0;
  uint64_t spilled = 0;   // sessions saved and dropped for capacity, ever
  uint64_t restored = 0;  // sessions brought back from the spill, ever
  uint64_t dropped = 0;   // sessions evicted without a spill, ever
};

class SessionTable {
 public:
  explicit SessionTable(SessionTableOptions options);

  // Pins session `id` for one step and returns it. With `reset`, the step works on a fresh
  // state (a copy of `*start` when given, an initial state of this stage's shape; else the
  // zero state) that replaces the old one only if the step commits. Otherwise the session is
  // found in memory or restored from the spill.
  // Errors: NOT_FOUND (unknown and not reset), FAILED_PRECONDITION (pinned by another step in
  // flight, or not at `expected_position`), DATA_LOSS / FAILED_PRECONDITION (a spilled state
  // that does not decode for this model), the spill's errors.
  absl::StatusOr<Session*> Pin(const std::string& id, bool reset, int64_t expected_position,
                               const model::RwkvState* start = nullptr);
  // Ends a pin. `commit` false: a reset session's fresh state is discarded (its old state, if
  // any, stays); a resident session keeps whatever the step left (callers only abort before
  // computing). `release`: the session is forgotten (and its spill save removed).
  void Unpin(const std::string& id, bool commit, bool release);

  // Inserts or replaces a session's state (LoadState); FAILED_PRECONDITION if it is pinned.
  absl::Status Put(const std::string& id, std::unique_ptr<Session> session);
  // Runs `fn` on an unpinned resident (or restorable) session under the table's lock.
  // NOT_FOUND if unknown; FAILED_PRECONDITION if pinned.
  absl::Status With(const std::string& id, const std::function<absl::Status(Session&)>& fn);
  // Copies `source` to `target`. NOT_FOUND (source), ALREADY_EXISTS (target holds another
  // state), FAILED_PRECONDITION (either pinned).
  absl::Status Fork(const std::string& source, const std::string& target);
  // Forgets a session (and its spill save). Returns whether it existed in memory.
  // FAILED_PRECONDITION if pinned.
  absl::StatusOr<bool> Drop(const std::string& id);

  SessionTableStats stats() const;
  size_t capacity() const { return options_.capacity; }

 private:
  struct Entry {
    std::unique_ptr<Session> session;
    std::unique_ptr<Session> fresh;  // a reset step's state until it commits
    bool pinned = false;
    std::list<std::string>::iterator lru;  // position in lru_ (front = most recent)
  };

  // Finds a resident entry or restores it from the spill; null with *status set otherwise.
  Entry* FindOrRestore(const std::string& id, absl::Status* status)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_);
  Entry& Insert(const std::string& id, std::unique_ptr<Session> session)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_);
  void Touch(Entry& e, const std::string& id) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_);
  void EvictOverCapacity() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_);

  const SessionTableOptions options_;
  mutable absl::Mutex mutex_;
  // Stable addresses. A pinned entry's session belongs to the step that pinned it until Unpin.
  absl::node_hash_map<std::string, Entry> entries_ ABSL_GUARDED_BY(mutex_);
  std::list<std::string> lru_ ABSL_GUARDED_BY(mutex_);
  // Sessions this table saved to the spill and has not restored or forgotten since; only
  // these are forgotten in the spill on release or drop (a save from an earlier process
  // expires by its TTL).
  absl::flat_hash_set<std::string> spilled_ids_ ABSL_GUARDED_BY(mutex_);
  SessionTableStats stats_ ABSL_GUARDED_BY(mutex_);
};

}  // namespace skein::engine

#endif  // SKEIN_SERVICES_WORKER_ENGINE_SESSION_TABLE_H_
