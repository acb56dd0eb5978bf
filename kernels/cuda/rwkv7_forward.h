// An RWKV-7 (x070) forward step on one GPU, built from the kernels of rwkv7_ops.h and gemm.h:
// embedding → L layers → ln_out → head, for `sessions` sessions of `tokens` tokens each, with
// every session's recurrent state resident on the device in a slot. The model is the whole
// network or one pipeline stage (a layer range, rwkv7_weights.h): a later stage takes the
// previous stage's hidden rows instead of token ids, and a stage before the last hands its
// rows on instead of making logits. Weights are random, made on the device (FillUniform), for
// the end-to-end checks and the benchmark, or copied from host bytes in the stage's layout
// (CreateFromHost); reading checkpoints is the model library's job (services/worker/model).
//
// Not thread-safe: one host thread drives a model and its Context.
#ifndef SKEIN_KERNELS_CUDA_RWKV7_FORWARD_H_
#define SKEIN_KERNELS_CUDA_RWKV7_FORWARD_H_

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <utility>
#include <vector>

#include "kernels/cuda/context.h"
#include "kernels/cuda/rwkv7_engine.h"
#include "kernels/cuda/rwkv7_step.h"
#include "kernels/cuda/rwkv7_weights.h"

namespace skein::cuda {

struct Rwkv7GpuOptions {
  DType dtype = DType::kBF16;  // large matrices; state and vectors are always fp32
  // Product inputs rounded to the weights' type (rwkv7_step.h: ActivationType): one cuBLASLt
  // product instead of two for large steps, at the accuracy of rounded activations. False:
  // fp32 product inputs, what the official fp32 run of the same weights computes.
  bool round_activations = false;
  uint64_t seed = 1;
  int64_t slots = 1;  // sessions whose state stays on the device
  // Decode steps (tokens == 1) are captured once per session count and logits mode into a
  // CUDA graph and replayed: a step is ~25 launches per layer, which at batch 1 cost more
  // than the work. The copies in and out of a step stay outside the graphs.
  bool use_graphs = true;
  // Prompts of at least this many tokens run the chunked WKV-7 (Wkv7Chunked), in chunks of
  // `wkv_chunk`, when the step has few (session, head) pairs to spread over the GPU.
  int64_t wkv_chunked_min_tokens = 128;
  int64_t wkv_chunk = 64;
};

class Rwkv7Gpu {
 public:
  // Allocates and fills random weights (seed options.seed) and zeroed states for
  // options.slots sessions. `ctx` must outlive the model.
  static Status Create(Context* ctx, const Rwkv7Shape& shape, const Rwkv7GpuOptions& options,
                       std::unique_ptr<Rwkv7Gpu>* out);
  // The model or stage of `layout` with weights copied from `bytes` (layout.total_bytes()
  // bytes, host) and zeroed states for options.slots sessions; options.dtype and seed are
  // unused (the layout's dtype is the run dtype). Waits for the copy. Fails as Create does,
  // and for a buffer of the wrong size.
  static Status CreateFromHost(Context* ctx, const Rwkv7WeightLayout& layout,
                               const std::vector<uint8_t>& bytes, const Rwkv7GpuOptions& options,
                               std::unique_ptr<Rwkv7Gpu>* out);
  ~Rwkv7Gpu();

  const Rwkv7WeightLayout& layout() const { return layout_; }
  const Rwkv7GpuOptions& options() const { return options_; }

  // Zeroes the state of each slot in `slots` (each < options.slots). Enqueued.
  Status ResetSlots(const std::vector<int32_t>& slots);

  // One step of a first stage: session s (< sessions) consumes tokens[s·tokens_per_session +
  // t] in order, continuing the state in slot slots[s] (distinct, < options.slots); afterwards
  // logits() holds (with the head), for each session, the fp32 logits [vocab] after its last
  // token. Host arrays; ids are checked (< vocab). Enqueued: the call returns before the GPU
  // is done (read the logits with CopyLogits, or Synchronize the context).
  Status Step(const int32_t* tokens, const int32_t* slots, int64_t sessions,
              int64_t tokens_per_session);

  // One step of the stage with the arguments and outputs of Rwkv7Engine::Step
  // (rwkv7_engine.h): checks `io` (CheckRwkv7StepIo; an error changes nothing), copies the
  // token ids or hidden_in/v_first_in to the device, runs the step (from a CUDA graph when
  // decoding), copies the logits or hidden/v_first rows out, and waits.
  Status RunStep(const Rwkv7StepIo& io);

  // Device pointer to the last step's logits, [rows][vocab] fp32 (rows: S for kLast, S·T for
  // kAll).
  const float* logits() const;
  // Waits for the last step and copies its first `rows` logit rows ([rows][vocab]) to the
  // host.
  Status CopyLogits(int64_t rows, std::vector<float>* out);

  // A slot's state in the host layout of Rwkv7Engine::WriteSlot/ReadSlot (per stage layer:
  // att_x_prev [C], wkv [H][N][N], ffn_x_prev [C]). Both wait.
  Status WriteSlot(int32_t slot, const float* state);
  Status ReadSlot(int32_t slot, float* state);

  // Waits, then copies the weight buffer (layout().total_bytes()) to the host.
  Status DownloadWeights(std::vector<uint8_t>* bytes);
  // Waits, then copies slot `slot`'s state: att_x_prev [Ls][C], wkv [Ls][H][N][N], ffn_x_prev
  // [Ls][C], each fp32, Ls the stage's layers.
  Status DownloadState(int32_t slot, std::vector<float>* att_x_prev, std::vector<float>* wkv,
                       std::vector<float>* ffn_x_prev);

  // Bytes a decode step of `sessions` sessions must move at least: every weight of the stage
  // except the embedding table once (one embedding row per token), and each session's state
  // read and written once. The bandwidth roofline divides this by the copy bandwidth.
  double DecodeStepBytes(int64_t sessions) const;
  size_t state_bytes_per_slot() const;

 private:
  struct Scratch;
  Rwkv7Gpu(Context* ctx, const Rwkv7WeightLayout& layout, const Rwkv7GpuOptions& options);
  static Status CheckSupported(const Rwkv7WeightLayout& layout, const Rwkv7GpuOptions& options);
  // Allocates and zeroes the slots' states.
  Status AllocateStates();
  // Sizes the scratch for `rows` rows of `sessions` sessions and `head_rows` head rows.
  Status EnsureScratch(int64_t sessions, int64_t rows, int64_t head_rows);
  bool UseChunkedWkv(int64_t sessions, int64_t tokens) const;
  // Stages the token ids (a first stage; else `hidden_in`/`v_first_in` into x/v_first) and
  // slots, and enqueues the step, replaying or capturing a graph when decoding. Host arrays,
  // checked by the caller.
  Status Launch(const int32_t* tokens, const int32_t* slots, int64_t sessions,
                int64_t tokens_per_session, const float* hidden_in, const float* v_first_in,
                LogitsMode mode);
  // Enqueues the whole step on the stream, reading tokens/slots from the device buffers; with
  // plan_only, enqueues nothing and only prepares the products' plans (before a capture).
  Status Enqueue(int64_t sessions, int64_t tokens_per_session, LogitsMode mode,
                 bool plan_only = false);
  // Copies a slot's state from `from_host` to the device arrays, or (from_host null) from them
  // to `to_host`, in the host layout; waits.
  Status CopySlot(int32_t slot, const float* from_host, float* to_host);

  Context* ctx_;
  Rwkv7WeightLayout layout_;
  Rwkv7GpuOptions options_;
  DeviceBuffer weights_;
  DeviceBuffer att_shift_, wkv_state_, ffn_shift_;
  std::unique_ptr<Scratch> scratch_;
  // Decode graphs (cudaGraphExec_t) by session count and logits mode; dropped when the
  // scratch moves.
  std::map<std::pair<int64_t, int>, void*> graphs_;
  int64_t last_logit_rows_ = 0;
};

}  // namespace skein::cuda

#endif  // SKEIN_KERNELS_CUDA_RWKV7_FORWARD_H_
