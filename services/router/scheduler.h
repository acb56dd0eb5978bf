// Continuous batching over pipeline replicas.
//
// Contract:
// - Submit admits a generation into a bounded queue, or fails at once: RESOURCE_EXHAUSTED
//   when the queue is full, UNAVAILABLE when no replica is healthy. Never an unbounded wait.
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
// - A replica whose step fails with UNAVAILABLE is marked unhealthy (its generations fail
//   with UNAVAILABLE) until its stage 0 answers GetStageInfo again (polled every 0.5 s).
// Thread-safe.
#ifndef SKEIN_SERVICES_ROUTER_SCHEDULER_H_
#define SKEIN_SERVICES_ROUTER_SCHEDULER_H_

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "services/router/router_metrics.h"
#include "services/router/worker_client.h"
#include "skein/v1/common.pb.h"
#include "skein/v1/worker.pb.h"

namespace skein::router {

// What to generate.
struct GenerationSpec {
  std::vector<uint32_t> prompt;  // at least one token
  v1::SamplingParams sampling;   // `seed` set (the caller draws one when unset)
  uint32_t max_tokens = 0;       // at least 1
  absl::flat_hash_set<uint32_t> stop_tokens;
  bool ignore_eos = false;
  bool logprobs = false;
  uint32_t top_logprobs = 0;
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
  const GenerationSpec& spec() const { return spec_; }
  const std::string& id() const { return id_; }

 private:
  friend class Scheduler;
  GenerationSpec spec_;
  std::string id_;
  absl::Time submitted_;
  absl::Time last_token_time_;

  // Guarded by the scheduler's mutex.
  size_t prompt_fed_ = 0;
  uint64_t position_ = 0;
  std::optional<uint32_t> pending_token_;
  uint32_t generated_ = 0;
  bool seed_sent_ = false;
  bool in_step_ = false;
  bool started_ = false;   // workers may hold its state
  bool released_ = false;  // workers hold no state for it
  bool finished_ = false;  // the final event was sent

  std::atomic<bool> stop_requested_{false};
  std::atomic<int> stop_reason_{v1::FINISH_REASON_CANCELLED};
  std::mutex events_mutex_;
  std::condition_variable events_ready_;
  std::deque<GenerationEvent> events_;
  void Push(GenerationEvent e);
};

struct SchedulerOptions {
  std::vector<std::string> replicas;  // stage-0 addresses, one per pipeline replica
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

  // The model the healthy replicas serve, once one has answered.
  std::optional<v1::ModelInfo> model() const;
  size_t healthy_replicas() const;

 private:
  struct Replica {
    explicit Replica(std::string address) : client(std::move(address)) {}
    WorkerClient client;
    bool healthy = false;
    int stage_count = 1;
    int loops_started = 0;
    std::vector<std::shared_ptr<Generation>> running;
    std::vector<std::thread> loops;
  };
  struct Planned {
    std::shared_ptr<Generation> gen;
    enum Kind { kPrefill, kDecode, kRelease } kind;
    size_t tokens = 0;
  };

  void HealthLoop();
  void StepLoop(Replica* replica);
  // Builds a step for `replica` from generations not in a step (mutex_ held).
  std::vector<Planned> Plan(Replica& replica, v1::StepRequest* request);
  void Finish(Generation& gen, v1::FinishReason reason, absl::Status error);
  void Apply(Replica& replica, std::vector<Planned>& plan,
             const absl::StatusOr<v1::StepResult>& result);
  void Remove(Replica& replica, const Generation* gen);
  void FailAll(Replica& replica, const absl::Status& why);

  const SchedulerOptions options_;
  RouterMetrics* metrics_;
  mutable std::mutex mutex_;
  std::condition_variable work_;
  std::deque<std::shared_ptr<Generation>> queue_;
  std::vector<std::unique_ptr<Replica>> replicas_;
  std::optional<v1::ModelInfo> model_;
  bool stopping_ = false;
  bool any_healthy_ = false;  // as last reported to on_serving_change
  uint64_t next_id_ = 1;
  uint64_t next_step_id_ = 1;
  std::string id_prefix_;
  std::thread health_;
};

}  // namespace skein::router

#endif  // SKEIN_SERVICES_ROUTER_SCHEDULER_H_
