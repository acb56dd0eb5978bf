// Runs one stage's share of a batched step (skein.v1.StepRequest) over the session table:
// pins the sessions the step names, checks their positions, runs the model over all of their
// tokens at once (prefill chunks and decode tokens in the same step), then, on the last
// stage, samples and reports log-probabilities and logits. Rows that sample nothing skip
// ln_out and the head.
//
// Errors (no session's state on this stage is changed by a failed call, except INTERNAL):
// INVALID_ARGUMENT (empty step, empty or repeated session id, a sequence without tokens that
// is not a release, token id >= vocab, bad sampling parameters, too many top log-probs,
// activations that do not fit), RESOURCE_EXHAUSTED (more tokens than max_step_tokens, more
// sessions than the table holds, more logits asked for than max_logits_bytes), NOT_FOUND /
// FAILED_PRECONDITION (see SessionTable::Pin), INTERNAL (the sampler failed after the states
// advanced: logits with NaN).
//
// Thread-safe: steps over disjoint sessions may run concurrently (the model serializes the
// computation itself; pinning and sampling overlap with it).
#ifndef SKEIN_SERVICES_WORKER_ENGINE_STEP_EXECUTOR_H_
#define SKEIN_SERVICES_WORKER_ENGINE_STEP_EXECUTOR_H_

#include <atomic>
#include <cstdint>

#include "absl/status/status.h"
#include "services/worker/engine/session_table.h"
#include "services/worker/engine/stage_engine.h"
#include "skein/v1/worker.pb.h"

namespace skein::engine {

struct StepOutcome {
  // Not the last stage: the next stage's input.
  model::StageActivations activations;
  // The last stage: one output per sequence of the request, in order.
  v1::StepResult result;
  // Tokens (rows) this stage computed.
  int64_t rows = 0;
};

class StepExecutor {
 public:
  // Neither is owned; both must outlive the executor. `max_logits_bytes` bounds the logits
  // one step may return (LOGITS_MODE_ALL over a long prompt is V floats per token), so the
  // answer fits a message and no thread keeps a huge buffer.
  StepExecutor(StageEngine* engine, SessionTable* sessions, int64_t max_step_tokens,
               int64_t max_logits_bytes = int64_t{48} << 20);

  // `input` must be null on stage 0 and hold the previous stage's activations elsewhere.
  absl::Status Run(const v1::StepRequest& request, const model::StageActivations* input,
                   StepOutcome* out);

  int64_t max_step_tokens() const { return max_step_tokens_; }

 private:
  StageEngine* engine_;
  SessionTable* sessions_;
  const int64_t max_step_tokens_;
  const int64_t max_logits_bytes_;
  std::atomic<uint64_t> seed_counter_{0};
};

// Token ids carried by a step (what it computes), summed over its sequences.
int64_t StepTokenCount(const v1::StepRequest& request);

}  // namespace skein::engine

#endif  // SKEIN_SERVICES_WORKER_ENGINE_STEP_EXECUTOR_H_
