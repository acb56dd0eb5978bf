// The compute of one pipeline stage, whichever engine runs it: RwkvModel (the CPU kernels,
// every version) or DeviceRwkvModel (device/: an x070 stage on a GPU, or on its scalar host
// reference). The worker's StepExecutor, the CLI and the benchmarks drive a stage only through
// this interface.
#ifndef SKEIN_SERVICES_WORKER_MODEL_STAGE_MODEL_H_
#define SKEIN_SERVICES_WORKER_MODEL_STAGE_MODEL_H_

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "services/worker/model/rwkv_config.h"
#include "services/worker/model/state.h"

namespace skein::model {

// What passes between stages: for every token of the step, sequences in step order, its
// hidden state and (x070 only; empty for other versions) its layer-0 value, each [rows, C]
// row-major fp32.
struct StageActivations {
  int64_t rows = 0;
  int64_t width = 0;  // C
  std::vector<float> hidden;
  std::vector<float> v_first;
};

// One sequence's part of a step.
struct SequenceStep {
  RwkvState* state = nullptr;  // this stage's layers; advanced in place
  // First stage: the token ids to feed (at least one). Later stages: leave empty.
  absl::Span<const int32_t> tokens;
  // Later stages: how many rows of the input activations belong to this sequence.
  int64_t num_tokens = 0;
  // Last stage: logits for every token of this sequence, not only for its last one.
  bool all_logits = false;
  // Last stage: no logits for this sequence (a prefill chunk that samples nothing). A step
  // where every sequence sets it skips ln_out and the head entirely.
  bool no_logits = false;
};

struct StepResult {
  // Last stage: logits rows [R, V], sequences in step order, each contributing its last
  // token's row, one row per token with all_logits, or none with no_logits.
  // `logits_rows[s]` is the count.
  std::vector<float> logits;
  std::vector<int64_t> logits_rows;
  // Other stages: the input of the next stage.
  StageActivations activations;
};

class StageModel {
 public:
  virtual ~StageModel() = default;

  // The shape of the states this stage advances (its layer range).
  virtual StateShape state_shape() const = 0;
  // A zero state for this stage's layers.
  RwkvState NewState() const { return RwkvState(state_shape()); }

  // Runs one step, writing into `*result` and reusing its memory. `input` is required when
  // the stage does not start at layer 0 (and must be null otherwise). INVALID_ARGUMENT for
  // malformed requests (ValidateStep); the states are unchanged then. Other errors are the
  // engine's (a device failure: INTERNAL, and the step's states may have advanced partly).
  // Thread-safe: concurrent steps over distinct states are serialized by the engine.
  virtual absl::Status Step(absl::Span<const SequenceStep> sequences, const StageActivations* input,
                            StepResult* result) = 0;
  // The same, returning a fresh result.
  absl::StatusOr<StepResult> Step(absl::Span<const SequenceStep> sequences,
                                  const StageActivations* input = nullptr);
};

// The checks every engine makes before a step, for a stage of `config` over layers `shape`
// (first_layer == 0: the stage takes token ids; else activations): each sequence has a state
// of this shape, used once in the step; token ids within the vocabulary (first stage) or a
// positive num_tokens (later stages); activations of exactly the rows the sequences need.
// INVALID_ARGUMENT naming the sequence otherwise. Sets `*rows` to the step's token count.
absl::Status ValidateStep(const RwkvConfig& config, const StateShape& shape,
                          absl::Span<const SequenceStep> sequences, const StageActivations* input,
                          int64_t* rows);

}  // namespace skein::model

#endif  // SKEIN_SERVICES_WORKER_MODEL_STAGE_MODEL_H_
