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
#include "kernels/cpu/path_choice.h"
#include "kernels/cpu/thread_pool.h"
#include "services/worker/model/rwkv_weights.h"
#include "services/worker/model/stage_model.h"
#include "services/worker/model/state.h"

namespace skein::model {

struct RwkvModelOptions {
  // With bf16 weights, let large matrix products (16+ rows: prefill, batched decode) round
  // their input activations to bf16 and use the CPU's bf16 dot-product instructions
  // (AVX512_BF16), about twice as fast where they pay. "Let": the model times both paths on
  // its own FFN matrix at load (kernels/cpu/path_choice.h) and keeps rounding only if it is
  // faster on this CPU at every batch size timed (bf16_activations() says what it chose). Off:
  // activations stay fp32 and a bf16 checkpoint run in bf16 computes exactly what its fp32 run
  // computes. On, the largest logit error per token is about 3e-2 of the logits' standard deviation
  // (rwkv7_model_test measures it).
  bool bf16_activations = false;
  // False: keep bf16_activations as asked, without timing it (tests of the rounding itself).
  bool measure_bf16_activations = true;
  // With int8 weights, quantise the input activations of the large products to int8 too, per
  // block of 32 values (kernels.h, MatMulJob::int8_activations), so that the products run on
  // integers (AVX2 vpmaddubsw, AVX-VNNI / AVX512-VNNI vpdpbusd): faster, and approximate on
  // top of the weights' own quantisation (rwkv_multiversion_test measures the logit error).
  // The LoRAs keep fp32 activations. Ignored for other weight dtypes.
  bool int8_activations = false;
  // Most rows (tokens of all sequences together) one pass through the layers takes. A longer
  // step runs as consecutive passes over pieces of its sequences, in token order, so a long
  // prompt's activations stay in the caches between the operations of a layer and its
  // scratch memory stays at this many rows. The results are the one-pass step's up to the
  // order of fp32 sums (kernels pick their paths by batch size). 0: no limit.
  int64_t max_rows_per_pass = 512;
};

class RwkvModel : public StageModel {
 public:
  // `pool` may be null (single-threaded) and must outlive the model.
  RwkvModel(std::shared_ptr<const RwkvWeights> weights, kernels::ThreadPool* pool,
            RwkvModelOptions options = {});
  ~RwkvModel();

  const RwkvWeights& weights() const { return *weights_; }

  StateShape state_shape() const override { return weights_->state_shape(); }

  // Whether products round activations to bf16 (RwkvModelOptions::bf16_activations asked for
  // and measured faster here), and the timings behind the choice (empty when nothing was
  // timed: not asked for, or a CPU without the bf16 instructions, where the option is moot).
  bool bf16_activations() const { return options_.bf16_activations; }
  const std::vector<kernels::Bf16ActivationTiming>& bf16_activation_timings() const {
    return bf16_timings_;
  }
  // Where the CPU has AMX tiles: the tile policy in force when this model loaded and the
  // timings behind it (kernels/cpu/path_choice.h); empty timings elsewhere.
  const kernels::TileChoice& tile_choice() const { return tile_choice_; }

  // StageModel::Step: the CPU kernels over the weights' layer range.
  using StageModel::Step;
  absl::Status Step(absl::Span<const SequenceStep> sequences, const StageActivations* input,
                    StepResult* result) override;

  // Passes of up to this many rows (tokens of all sequences together) keep their scratch
  // memory for the next step; a larger one (max_rows_per_pass above it, or 0) gives it back
  // when it ends, so one long prompt does not pin its peak memory for the life of the worker.
  static constexpr int64_t kRetainedScratchRows = 1024;
  // Bytes of scratch memory held between steps. Call only while no Step runs (tests).
  size_t scratch_bytes() const;

  // The step's scratch memory (defined in layer_step.h, internal to the model library).
  struct Scratch;

 private:
  // One step in passes of at most max_rows_per_pass rows (Step checked the request).
  absl::Status RunInPasses(absl::Span<const SequenceStep> sequences, const StageActivations* input,
                           StepResult* result) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_);
  // One pass: every row of `sequences` through the layer range at once; a later stage's rows
  // start at row `input_row` of `input`.
  absl::Status RunPass(absl::Span<const SequenceStep> sequences, const StageActivations* input,
                       int64_t input_row, StepResult* result) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_);
  void RunLayer(int layer, absl::Span<const SequenceStep> sequences,
                absl::Span<const int64_t> offsets) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_);

  std::shared_ptr<const RwkvWeights> weights_;
  kernels::ThreadPool* pool_;
  RwkvModelOptions options_;
  std::vector<kernels::Bf16ActivationTiming> bf16_timings_;
  kernels::TileChoice tile_choice_;
  mutable absl::Mutex mutex_;  // one step at a time uses the scratch memory (and the pool)
  std::unique_ptr<Scratch> scratch_ ABSL_GUARDED_BY(mutex_) ABSL_PT_GUARDED_BY(mutex_);
  // A long step's result of one pass (RunInPasses), kept for its memory.
  StepResult pass_result_ ABSL_GUARDED_BY(mutex_);
};

}  // namespace skein::model

#endif  // SKEIN_SERVICES_WORKER_MODEL_RWKV_MODEL_H_
