// Continuous batching over pipeline replicas.
//
// Contract:
// - Submit admits a generation into a bounded queue, or fails at once: RESOURCE_EXHAUSTED
//   when the queue is full, UNAVAILABLE when no replica is healthy. Never an unbounded wait.
// - Routing: a generation whose state a replica holds hot (its worker id's last turn ended
//   there with the snapshot it starts from) goes to that replica unless it runs more than
//   `affinity_slack` generations above the least loaded; every other generation goes to the
//   least loaded replica. (Prefix states live in the shared store, so every replica can start
//   from one equally.)
// - Each replica runs `micro_batches` step loops (by default its stage count, so that with S
//   stages S micro-batches are in flight and every stage works). A loop pulls queued
//   generations while its replica has free slots and no healthy replica runs fewer (so
//   replicas are chosen by load), then
//   builds one step from the generations not already in a step: decode tokens first, then
//   prompt chunks of at most `prefill_chunk` tokens within `max_step_tokens`, so a long prompt
//   never stalls the decoding streams. Generations join and leave between steps.
// - A generation's worker state is keyed by its own id on every stage; the step that samples
//   its last token also releases that state, and a generation stopped any other way (stop
//   token or string, cancellation, deadline) is released by the next step of its replica: its
//   slot is free within one step.
// - Events (tokens, log-probs, the end) reach the caller through Generation::Wait in order.
// - A replica is healthy while every stage of its chain answers GetStageInfo (polled every
//   0.5 s, every 0.1 s while one is missing) and its pipeline identity (state_keys.h) equals
//   the first healthy replica's. A step that fails with UNAVAILABLE marks it unhealthy.
// - A replica with a draining stage (SIGTERM) takes no new work; with a store, each of its
//   generations is snapshotted at its next step boundary and restarted from that snapshot on
//   another replica (a drain is not counted against max_restarts).
// - With a state store (SchedulerOptions::store), generations are durable:
//   - a generation starts from its spec's StartPoint: the zero state, a snapshot in the store
//     (loaded onto every stage, LoadState), or the copy a replica still holds hot from the
//     worker id's last turn (StartPoint::key equal to that turn's final snapshot);
//   - whenever its position reaches a multiple of `snapshot_grid` while it is fed prompt
//     tokens, every stage's slice is written as one two-phase snapshot under the
//     content-addressed key of what was fed (skipped when the key exists: a prefix-cache
//     entry), and that snapshot becomes its restart point;
//   - a generation whose step fails for a reason a restart cures (UNAVAILABLE, NOT_FOUND,
//     FAILED_PRECONDITION, ABORTED, DEADLINE_EXCEEDED) goes back to the front of the queue:
//     on the next replica it restarts from its restart point and is fed again everything fed
//     since (the token log) plus the pending sampled token, so its stream continues with no
//     token lost or repeated (greedy streams are exact; sampled ones restart the sampler from
//     the restart point's state). At most `max_restarts` times.
//   - a generation with `keep` (a session turn) is not released at its end: its final state
//     is snapshotted, `on_end` runs with it (the router commits the session there), the
//     state stays hot on the replica for the next turn, and then the final event is sent.
//   Snapshot and load I/O runs on the scheduler's own threads, never in a step loop.
// Thread-safe: one mutex guards the queue, the replicas and the generations' progress (each
// replica's and generation's share sits in an ExternallyGuarded, so clang checks its uses).
#ifndef SKEIN_SERVICES_ROUTER_SCHEDULER_H_
#define SKEIN_SERVICES_ROUTER_SCHEDULER_H_

#include <atomic>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "services/common/externally_guarded.h"
#include "services/router/router_metrics.h"
#include "services/router/state_keys.h"
#include "services/router/worker_client.h"
#include "services/state_store/client.h"
#include "skein/v1/common.pb.h"
#include "skein/v1/worker.pb.h"

namespace skein::router {

// A state a generation can start from: the zero state (empty key), or a snapshot in the
// store holding the state after `position` tokens whose chain hash is `chain`.
struct StartPoint {
  std::string key;
  uint64_t position = 0;
  ChainHash chain{};
  std::string sampler;  // the last stage's sampler state to restore ("" = none)
};

// How a `keep` generation ended, handed to its on_end.
struct TurnEnd {
  StartPoint snapshot;              // the final state, durable in the store
  std::vector<uint32_t> pending;    // sampled but not fed (the last token), 0 or 1 of them
  std::vector<uint32_t> generated;  // the tokens streamed to the client
  v1::FinishReason reason = v1::FINISH_REASON_UNSPECIFIED;
};

// What to generate.
struct GenerationSpec {
  std::vector<uint32_t> prompt;  // tokens to feed: at least one
  v1::SamplingParams sampling;   // `seed` set (the caller draws one when unset)
  uint32_t max_tokens = 0;       // 0: only feed the prompt (needs `keep`)
  absl::flat_hash_set<uint32_t> stop_tokens;
  bool ignore_eos = false;
  bool logprobs = false;
  uint32_t top_logprobs = 0;

  // Where to start (with a store only; otherwise the base state: the zero state, or the named
  // initial state below).
  StartPoint start;
  // The named initial state (ModelInfo.initial_states) a generation that starts without a
  // stored state starts from; "" for the zero state.
  std::string initial_state;
  // When `start` is a prefix-cache entry: the tokens it holds, fed from the zero state
  // instead should the entry be gone by the time it is loaded. Empty for sessions.
  std::vector<uint32_t> start_tokens;
  // The state's name on the workers; empty: a fresh name.
  std::string worker_id;
  // A session turn: snapshot and keep the state at the end (see the contract).
  bool keep = false;
  // With a store: also snapshot when the position reaches this (0: no). A stateless request
  // stores the state just before its last prompt token, so a repeat of the prompt feeds one.
  uint64_t snapshot_at = 0;
  // Runs on a scheduler thread after the final snapshot of a `keep` generation; its status
  // becomes the generation's (an error is sent as the final event's error).
  std::function<absl::Status(const TurnEnd&)> on_end;
  // Runs once when the generation ends in any way, under the scheduler's lock: must be quick
  // and must not call the scheduler.
  std::function<void()> on_finished;
};

struct GenerationEvent {
  std::vector<uint32_t> tokens;
  std::vector<v1::TokenLogprobs> logprobs;  // one per token when asked for
  bool finished = false;
  v1::FinishReason reason = v1::FINISH_REASON_UNSPECIFIED;
  absl::Status error;  // finished with an error
  uint64_t position = 0;
};

class Scheduler;

// One generation, shared by the scheduler and the RPC that streams it.
class Generation {
 public:
  // Waits up to `timeout` for events and takes them (empty on time-out).
  std::vector<GenerationEvent> Wait(absl::Duration timeout);
  // Ends the generation early (stop string matched: STOP; client gone or deadline passed:
  // CANCELLED). The scheduler releases its worker state within one step. Idempotent (the
  // first reason is kept).
  void Stop(v1::FinishReason reason = v1::FINISH_REASON_CANCELLED);
  const std::string& id() const { return id_; }

 private:
  friend class Scheduler;
  enum class Phase { kReady, kBusy, kEnding };
  // What the scheduler changes as the generation runs, guarded by the scheduler's mutex.
  struct Progress {
    // The tokens to feed from `restart`: the spec's prompt, then what a restart replays.
    std::vector<uint32_t> prompt;
    // The spec's start_tokens, until the start state has loaded or been given up.
    std::vector<uint32_t> start_tokens;
    absl::Time queued_at;
    absl::Time last_token_time;
    size_t prompt_fed = 0;
    uint64_t position = 0;
    std::optional<uint32_t> pending_token;
    uint32_t generated = 0;
    bool seed_sent = false;
    bool in_step = false;
    bool started = false;   // workers may hold its state
    bool released = false;  // workers hold no state for it
    bool finished = false;  // the final event was sent
    // Durability (with a store).
    Phase phase = Phase::kReady;
    StartPoint restart;                   // the last durable state
    std::vector<uint32_t> since_restart;  // fed since restart
    ChainHash chain{};                    // of everything fed
    std::vector<uint32_t> generated_tokens;
    int restarts = 0;
    bool ending = false;  // a keep generation's end is under way
    v1::FinishReason end_reason = v1::FINISH_REASON_UNSPECIFIED;
  };

  // Made by Submit; `scheduler_mutex` guards `progress`.
  Generation(GenerationSpec spec, std::string id, absl::Time submitted, Progress progress,
             const absl::Mutex* scheduler_mutex);
  void Push(GenerationEvent e);

  // Set before the generation is shared, then only read. The spec's prompt and start_tokens
  // move into Progress, where they change as the generation runs.
  const GenerationSpec spec_;
  const std::string id_;
  const absl::Time submitted_;
  ExternallyGuarded<Progress> progress_;  // guarded by the scheduler's mutex_

  std::atomic<bool> stop_requested_{false};
  std::atomic<int> stop_reason_{v1::FINISH_REASON_CANCELLED};
  absl::Mutex events_mutex_;
  absl::CondVar events_ready_;
  std::deque<GenerationEvent> events_ ABSL_GUARDED_BY(events_mutex_);
};

struct SchedulerOptions {
  std::vector<std::string> replicas;  // stage-0 addresses, one per pipeline replica
  // Durability (see the contract); null: none. Not owned.
  state_store::StateStoreClient* store = nullptr;
  int64_t snapshot_grid = 256;      // 0: no snapshots within a prompt
  uint64_t prefix_ttl_seconds = 0;  // TTL of prefix-state entries (0: the store's default)
  int max_restarts = 3;
  int state_threads = 4;
  // A session goes to the replica holding it hot unless that replica runs more than this many
  // generations above the least loaded one.
  size_t affinity_slack = 4;
  // How long a restarted generation may wait in the queue while no replica is available (a
  // one-replica deployment restarting its workers) before it fails with UNAVAILABLE.
  absl::Duration no_replica_grace = absl::Seconds(5);
  absl::Duration state_timeout = absl::Seconds(30);
  size_t max_running_per_replica = 128;
  size_t max_queue = 1024;
  int64_t max_step_tokens = 512;
  int64_t prefill_chunk = 256;
  int micro_batches = 0;  // per replica; 0 = the replica's stage count
  absl::Duration step_timeout = absl::Seconds(120);
  // Called (from the health thread) when the first replica becomes healthy and when the
  // last one stops being healthy, with whether any replica is healthy now.
  std::function<void(bool)> on_serving_change;
};

class Scheduler {
 public:
  Scheduler(SchedulerOptions options, RouterMetrics* metrics);
  ~Scheduler();  // stops every loop; generations still running end with UNAVAILABLE

  // See the contract above. `spec.prompt` must be non-empty, ids < vocab (the caller checks).
  absl::StatusOr<std::shared_ptr<Generation>> Submit(GenerationSpec spec);

  // The model the healthy replicas serve, once one has answered, and their identity.
  std::optional<v1::ModelInfo> model() const;
  // The chain hash of the base state a generation with `initial_state` starts from when it has
  // no stored state: the pipeline identity for "" (the zero state), else InitialStateChain of
  // the identity and the state's digest. UNAVAILABLE before any pipeline has answered,
  // NOT_FOUND for a name the model was not loaded with. `digest`, when given, receives the
  // state's digest ("" for the zero state).
  absl::StatusOr<ChainHash> BaseChain(const std::string& initial_state,
                                      std::string* digest = nullptr) const;
  std::optional<ChainHash> identity() const;
  size_t healthy_replicas() const;
  // Forgets a worker id's hot copy (best effort, e.g. for a deleted session).
  void DropHot(const std::string& worker_id);

 private:
  struct Replica {
    // What the scheduler's threads change, guarded by the scheduler's mutex_.
    struct State {
      // Every stage (stages[0] is stage 0's address), found by following next_stage.
      std::vector<std::shared_ptr<WorkerClient>> stages;
      bool healthy = false;
      bool draining = false;  // a stage is shutting down: take no work, move what runs
      int stage_count = 1;
      int loops_started = 0;
      std::vector<std::shared_ptr<Generation>> running;
      std::vector<std::thread> loops;
    };
    Replica(std::string address, const absl::Mutex* scheduler_mutex)
        : client(std::move(address)), state(scheduler_mutex) {}
    WorkerClient client;  // stage 0 (thread-safe)
    // Clients for the chain walk, by address (the health thread's alone: no lock).
    absl::flat_hash_map<std::string, std::shared_ptr<WorkerClient>> chain_clients;
    ExternallyGuarded<State> state;
  };
  struct Planned {
    std::shared_ptr<Generation> gen;
    enum Kind { kPrefill, kDecode, kRelease } kind;
    size_t tokens = 0;
  };

  struct Hot {
    Replica* replica = nullptr;
    std::string key;  // the snapshot its state equals
  };

  // The parts of a generation and of a replica that mutex_ guards.
  Generation::Progress& Locked(Generation& gen) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_) {
    return gen.progress_.Get(mutex_);
  }
  Replica::State& Locked(Replica& replica) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_) {
    return replica.state.Get(mutex_);
  }

  void HealthLoop() ABSL_LOCKS_EXCLUDED(mutex_);
  // Describes every stage of the chain from `replica`'s stage 0 (called without the lock).
  absl::StatusOr<std::vector<v1::StageInfo>> DescribeChain(Replica& replica)
      ABSL_LOCKS_EXCLUDED(mutex_);
  // State I/O on the scheduler's threads.
  void RunStateOp(std::function<void()> op) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_);
  // The model's name for metric labels ("unknown" before a replica described it).
  std::string ModelLabel() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_);
  // Publishes this scheduler's queue length and running generations: the per-model gauges
  // are set, the router-wide ones move by this scheduler's change (several schedulers share
  // them).
  void PublishLoad() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_);
  absl::StatusOr<ChainHash> BaseChainLocked(const std::string& initial_state,
                                            std::string* digest) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_);
  void StateThread() ABSL_LOCKS_EXCLUDED(mutex_);
  void StartLoad(Replica& replica, std::shared_ptr<Generation> gen)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_);
  void StartSnapshot(Replica& replica, std::shared_ptr<Generation> gen, bool final)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_);
  // Writes (or finds) the snapshot of `worker_id`'s state on `replica` (no lock held).
  absl::StatusOr<StartPoint> Snapshot(Replica& replica, const std::string& worker_id,
                                      uint64_t position, const ChainHash& chain, bool with_sampler)
      ABSL_LOCKS_EXCLUDED(mutex_);
  absl::Status Load(Replica& replica, const std::string& worker_id, const StartPoint& start)
      ABSL_LOCKS_EXCLUDED(mutex_);
  // One attempt of each (the two above retry once when the store was unreachable).
  absl::StatusOr<StartPoint> SnapshotOnce(Replica& replica, const std::string& worker_id,
                                          uint64_t position, const ChainHash& chain,
                                          bool with_sampler) ABSL_LOCKS_EXCLUDED(mutex_);
  absl::Status LoadOnce(Replica& replica, const std::string& worker_id, const StartPoint& start)
      ABSL_LOCKS_EXCLUDED(mutex_);
  // Puts `gen` back in the queue to restart from its restart point; false if it may not
  // restart.
  bool Restart(Replica& replica, const std::shared_ptr<Generation>& gen, const absl::Status& why,
               bool counts = true) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_);
  // Moves the generations of a draining replica: each idle one is snapshotted where it is
  // (at a step boundary) and restarted from that snapshot elsewhere.
  void MigrateAll(Replica& replica) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_);
  // Ends a keep generation: final snapshot, on_end, then the final event.
  void End(Replica& replica, const std::shared_ptr<Generation>& gen, v1::FinishReason reason)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_);
  void StepLoop(Replica* replica) ABSL_LOCKS_EXCLUDED(mutex_);
  // Builds a step for `replica` from generations not in a step.
  std::vector<Planned> Plan(Replica& replica, v1::StepRequest* request)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_);
  void Finish(Generation& gen, v1::FinishReason reason, absl::Status error)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_);
  void Apply(Replica& replica, std::vector<Planned>& plan,
             const absl::StatusOr<v1::StepResult>& result) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_);
  void Remove(Replica& replica, const Generation* gen) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_);
  void FailAll(Replica& replica, const absl::Status& why) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_);

  const SchedulerOptions options_;
  RouterMetrics* metrics_;
  mutable absl::Mutex mutex_;
  absl::CondVar work_;
  std::deque<std::shared_ptr<Generation>> queue_ ABSL_GUARDED_BY(mutex_);
  // Made in the constructor, then only read; each replica's State is guarded by mutex_.
  std::vector<std::unique_ptr<Replica>> replicas_;
  std::optional<v1::ModelInfo> model_ ABSL_GUARDED_BY(mutex_);
  size_t reported_healthy_ ABSL_GUARDED_BY(mutex_) = 0;  // this scheduler's share of the gauge
  // What PublishLoad last published, and under which model label.
  size_t reported_queue_ ABSL_GUARDED_BY(mutex_) = 0;
  size_t reported_running_ ABSL_GUARDED_BY(mutex_) = 0;
  std::string reported_model_ ABSL_GUARDED_BY(mutex_);
  prometheus::Gauge* model_queue_gauge_ ABSL_GUARDED_BY(mutex_) = nullptr;
  prometheus::Gauge* model_running_gauge_ ABSL_GUARDED_BY(mutex_) = nullptr;
  std::optional<ChainHash> identity_ ABSL_GUARDED_BY(mutex_);
  // Worker id -> where its state is hot.
  absl::flat_hash_map<std::string, Hot> hot_ ABSL_GUARDED_BY(mutex_);
  std::deque<std::function<void()>> state_ops_ ABSL_GUARDED_BY(mutex_);
  bool stopping_ ABSL_GUARDED_BY(mutex_) = false;
  // As last reported to on_serving_change.
  bool any_healthy_ ABSL_GUARDED_BY(mutex_) = false;
  uint64_t next_id_ ABSL_GUARDED_BY(mutex_) = 1;
  uint64_t next_step_id_ ABSL_GUARDED_BY(mutex_) = 1;
  std::string id_prefix_;  // set in the constructor
  // Started in the constructor and joined in the destructor, by no other thread.
  std::vector<std::thread> state_threads_;
  std::thread health_;
};

}  // namespace skein::router

#endif  // SKEIN_SERVICES_ROUTER_SCHEDULER_H_
