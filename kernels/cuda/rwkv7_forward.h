// A whole RWKV-7 (x070) forward step on one GPU, built from the kernels of rwkv7_ops.h and
// gemm.h: embedding → L layers → ln_out → head, for `sessions` sessions of `tokens` tokens each,
// with every session's recurrent state resident on the device in a slot. Weights are random,
// made on the device (FillUniform), for the end-to-end checks and the benchmark; loading real
// checkpoints is the model library's job (services/worker/model).
//
// Not thread-safe: one host thread drives a model and its Context.
#ifndef SKEIN_KERNELS_CUDA_RWKV7_FORWARD_H_
#define SKEIN_KERNELS_CUDA_RWKV7_FORWARD_H_

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <vector>

#include "kernels/cuda/context.h"
#include "kernels/cuda/rwkv7_weights.h"

namespace skein::cuda {

struct Rwkv7GpuOptions {
  DType dtype = DType::kBF16;  // large matrices; state and vectors are always fp32
  uint64_t seed = 1;
  int64_t slots = 1;  // sessions whose state stays on the device
  // Decode steps (tokens == 1) are captured once per session count into a CUDA graph and
  // replayed: a step is ~25 launches per layer, which at batch 1 cost more than the work.
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
  ~Rwkv7Gpu();

  const Rwkv7WeightLayout& layout() const { return layout_; }
  const Rwkv7GpuOptions& options() const { return options_; }

  // Zeroes the state of each slot in `slots` (each < options.slots). Enqueued.
  Status ResetSlots(const std::vector<int32_t>& slots);

  // One step: session s (< sessions) consumes tokens[s·tokens_per_session + t] in order,
  // continuing the state in slot slots[s] (distinct, < options.slots); afterwards logits()
  // holds, for each session, the fp32 logits [vocab] after its last token. Host arrays; ids
  // are checked (< vocab). Enqueued: the call returns before the GPU is done (read the logits
  // with CopyLogits, or Synchronize the context).
  Status Step(const int32_t* tokens, const int32_t* slots, int64_t sessions,
              int64_t tokens_per_session);

  // Device pointer to the last step's logits, [sessions][vocab] fp32.
  const float* logits() const;
  // Waits for the last step and copies its logits ([sessions][vocab]) to the host.
  Status CopyLogits(int64_t sessions, std::vector<float>* out);

  // Waits, then copies the weight buffer (layout().total_bytes()) to the host.
  Status DownloadWeights(std::vector<uint8_t>* bytes);
  // Waits, then copies slot `slot`'s state: att_x_prev [L][C], wkv [L][H][N][N], ffn_x_prev
  // [L][C], each fp32.
  Status DownloadState(int32_t slot, std::vector<float>* att_x_prev, std::vector<float>* wkv,
                       std::vector<float>* ffn_x_prev);

  // Bytes a decode step of `sessions` sessions must move at least: every weight except the
  // embedding table once (one embedding row per token), and each session's state read and
  // written once. The bandwidth roofline divides this by the copy bandwidth.
  double DecodeStepBytes(int64_t sessions) const;
  size_t state_bytes_per_slot() const;

 private:
  struct Scratch;
  Rwkv7Gpu(Context* ctx, const Rwkv7Shape& shape, const Rwkv7GpuOptions& options);
  Status EnsureScratch(int64_t sessions, int64_t rows);
  bool UseChunkedWkv(int64_t sessions, int64_t tokens) const;
  // Enqueues the whole step on the stream, reading tokens/slots from the device buffers; with
  // plan_only, enqueues nothing and only prepares the products' plans (before a capture).
  Status Enqueue(int64_t sessions, int64_t tokens_per_session, bool plan_only = false);

  Context* ctx_;
  Rwkv7WeightLayout layout_;
  Rwkv7GpuOptions options_;
  DeviceBuffer weights_;
  DeviceBuffer att_shift_, wkv_state_, ffn_shift_;
  std::unique_ptr<Scratch> scratch_;
  // Decode graphs by session count (cudaGraphExec_t); dropped when the scratch moves.
  std::map<int64_t, void*> graphs_;
  int64_t last_sessions_ = 0;
};

}  // namespace skein::cuda

#endif  // SKEIN_KERNELS_CUDA_RWKV7_FORWARD_H_
