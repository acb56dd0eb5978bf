// The RWKV forward pass on CPU over a batch of sequences, for one layer range: x070, x060,
// x052 or RWKV-4, whichever the weights hold (the layers differ, the step does not).
//
// A step advances any number of sequences at once, each by any number of tokens (decode: 1
// token each; prefill: many; mixed, for continuous batching). All projections run as matrix
// products over every token of the step, reading each weight once per step; the WKV
// recurrence runs per sequence in token order. Each sequence brings its own state.
//
// Stages: a model split in layer ranges [0,a), [a,b), …, [z,L) runs one RwkvModel per range.
// The first takes token ids; the others take the previous stage's StageActivations (the
// hidden state of every token and, for x070, its layer-0 value `v_first`, spec §2.4). The last
// produces logits; the others produce StageActivations for the next stage.
//
// Thread-safe: concurrent Step calls are serialized (one step at a time uses the thread
// pool and scratch memory). The weights may be shared with other models.
#ifndef SKEIN_SERVICES_WORKER_MODEL_RWKV_MODEL_H_
#define SKEIN_SERVICES_WORKER_MODEL_RWKV_MODEL_H_

#include <cstdint>
#include <memory>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/types/span.h"
#include "kernels/cpu/thread_pool.h"
#include "services/worker/model/rwkv_weights.h"
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

struct RwkvModelOptions {
  // With bf16 weights, let large matrix products (16+ rows: prefill, batched decode) round
  // their input activations to bf16 and use the CPU's bf16 dot-product instructions
  // (AVX512_BF16), about twice as fast. Off: activations stay fp32 and a bf16 checkpoint run
  // in bf16 computes exactly what its fp32 run computes. On, the largest logit error per
  // token is about 3e-2 of the logits' standard deviation (rwkv7_model_test measures it).
  bool bf16_activations = false;
  // With int8 weights, quantise the input activations of the large products to int8 too, per
  // block of 32 values (kernels.h, MatMulJob::int8_activations), so that the products run on
  // integers (AVX2 vpmaddubsw, AVX-VNNI / AVX512-VNNI vpdpbusd): faster, and approximate on
  // top of the weights' own quantisation (rwkv_multiversion_test measures the logit error).
  // The LoRAs keep fp32 activations. Ignored for other weight dtypes.
  bool int8_activations = false;
};

class RwkvModel {
 public:
  // `pool` may be null (single-threaded) and must outlive the model.
  RwkvModel(std::shared_ptr<const RwkvWeights> weights, kernels::ThreadPool* pool,
            RwkvModelOptions options = {});
  ~RwkvModel();

  const RwkvWeights& weights() const { return *weights_; }

  // A zero state for this model's layers.
  RwkvState NewState() const { return RwkvState(weights_->state_shape()); }

  // Runs one step. `input` is required when the model does not start at layer 0 (and must be
  // null otherwise). INVALID_ARGUMENT for malformed requests (token id out of range, empty
  // sequence, a state of another shape, the same state twice, activations that do not match
  // the token counts); the states are unchanged then.
  absl::StatusOr<StepResult> Step(absl::Span<const SequenceStep> sequences,
                                  const StageActivations* input = nullptr);
  // The same, writing into `*result` and reusing its memory (a decode loop that keeps one
  // StepResult avoids allocating and faulting in the logits every step).
  absl::Status Step(absl::Span<const SequenceStep> sequences, const StageActivations* input,
                    StepResult* result);

  // Steps of up to this many rows (tokens of all sequences together) keep their scratch
  // memory for the next step; a larger one (an oversized prefill) gives it back when it ends,
  // so one long prompt does not pin its peak memory for the life of the worker.
  static constexpr int64_t kRetainedScratchRows = 1024;
  // Bytes of scratch memory held between steps. Call only while no Step runs (tests).
  size_t scratch_bytes() const;

  // The step's scratch memory (defined in layer_step.h, internal to the model library).
  struct Scratch;

 private:
  absl::Status Validate(absl::Span<const SequenceStep> sequences,
                        const StageActivations* input) const;
  void RunLayer(int layer, absl::Span<const SequenceStep> sequences,
                absl::Span<const int64_t> offsets) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_);

  std::shared_ptr<const RwkvWeights> weights_;
  kernels::ThreadPool* pool_;
  RwkvModelOptions options_;
  mutable absl::Mutex mutex_;  // one step at a time uses the scratch memory (and the pool)
  std::unique_ptr<Scratch> scratch_ ABSL_GUARDED_BY(mutex_) ABSL_PT_GUARDED_BY(mutex_);
};

}  // namespace skein::model

#endif  // SKEIN_SERVICES_WORKER_MODEL_RWKV_MODEL_H_
