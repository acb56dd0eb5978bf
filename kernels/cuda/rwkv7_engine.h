// One pipeline stage of an RWKV-7 (x070) model on a device, behind a plain C++ interface that
// the worker's model library drives (services/worker/model/device/): the weights of a layer
// range resident in the device's memory, a pool of state slots, and uniform steps of S
// sessions × T tokens. Two implementations run the same launch sequence (rwkv7_step.h):
//   - the GPU one (Rwkv7Gpu, CreateGpuRwkv7Engine), with the CUDA kernels;
//   - the host one (CreateHostRwkv7Engine), with the scalar CPU references of every kernel:
//     slow, exact, and available on every machine, so the worker's device path (slot pool,
//     snapshots, stages, step grouping) is tested where there is no GPU.
//
// Not thread-safe: one host thread at a time drives an engine.
#ifndef SKEIN_KERNELS_CUDA_RWKV7_ENGINE_H_
#define SKEIN_KERNELS_CUDA_RWKV7_ENGINE_H_

#include <cstdint>
#include <memory>
#include <vector>

#include "kernels/cuda/context.h"
#include "kernels/cuda/rwkv7_step.h"  // LogitsMode
#include "kernels/cuda/rwkv7_weights.h"

namespace skein::cuda {

// One uniform step. Host pointers; the engine copies what it needs before Step returns.
struct Rwkv7StepIo {
  int64_t sessions = 0;            // S ≥ 1
  int64_t tokens = 0;              // T ≥ 1 per session
  const int32_t* slots = nullptr;  // [S], distinct, each < slots()
  // First stage (layout().first_layer() == 0): the token ids, session-major [S·T].
  const int32_t* token_ids = nullptr;
  // Later stages: the previous stage's output, session-major rows [S·T][C] fp32.
  const float* hidden_in = nullptr;
  const float* v_first_in = nullptr;
  // Last stage (layout().last_layer() == L): which logits to write to `logits` (fp32, [S][V]
  // for kLast, [S·T][V] for kAll, untouched for kNone).
  LogitsMode logits_mode = LogitsMode::kLast;
  float* logits = nullptr;
  // Other stages: this stage's output rows [S·T][C] fp32, the next stage's hidden_in and
  // v_first_in.
  float* hidden_out = nullptr;
  float* v_first_out = nullptr;
};

class Rwkv7Engine {
 public:
  virtual ~Rwkv7Engine() = default;

  // The stage's tensors (and its layer range, shape and run dtype).
  virtual const Rwkv7WeightLayout& layout() const = 0;
  // State slots: each holds one session's recurrent state for the stage's layers, fp32.
  virtual int64_t slots() const = 0;

  // Runs one step and waits for it: every output is on the host when it returns. Each
  // session's state in slots[s] advances by its T tokens. An error (bad arguments: ids ≥ V,
  // repeated or out-of-range slots, missing buffers for this stage) changes nothing; a device
  // failure may leave the step's slots partly advanced.
  virtual Status Step(const Rwkv7StepIo& io) = 0;

  // A slot's state as the worker's host state keeps it (services/worker/model/state.h): per
  // stage layer, in order, att_x_prev [C], the WKV matrices [H][N][N] (row = value channel,
  // column = key channel), ffn_x_prev [C]; StateFloats() floats in all. WriteSlot replaces
  // the slot's state; ReadSlot copies it out (waiting for the device). Both fail only for a
  // slot out of range or a device failure.
  virtual Status WriteSlot(int32_t slot, const float* state) = 0;
  virtual Status ReadSlot(int32_t slot, float* state) = 0;
  int64_t StateFloats() const {
    const Rwkv7Shape& s = layout().shape();
    return layout().stage_layers() * (2 * s.embd + s.embd * s.head_size);
  }
};

// Whether `io` is a valid step for an engine of `layout` with `slots` slots (Step's argument
// checks, shared by both engines): S, T ≥ 1; distinct slots in [0, slots); for a first stage
// token_ids with every id in [0, V), else hidden_in and v_first_in; for a last stage a known
// logits_mode and, unless kNone, logits, else hidden_out and v_first_out. The error names
// the first problem found.
Status CheckRwkv7StepIo(const Rwkv7WeightLayout& layout, int64_t slots, const Rwkv7StepIo& io);

// The engine on the host, with the scalar references (reference/reference_ops.h), the WKV-7
// always sequential (the references' ground truth; the GPU's chunked form computes the same).
// `bytes` is the whole weight buffer in `layout` (layout.total_bytes() bytes). Defined in
// the kernels/cuda:reference library (CMake: skein_cuda_reference). Fails for an unsupported
// shape (head size other than 64) or dtype (fp32, bf16, fp16 only), a buffer of the wrong
// size, or slots < 1.
struct Rwkv7HostEngineOptions {
  int64_t slots = 1;
  // As Rwkv7GpuEngineOptions::round_activations: the same semantics, so that the two engines
  // with the same options compute the same (up to summation order).
  bool round_activations = false;
};
Status CreateHostRwkv7Engine(const Rwkv7WeightLayout& layout, std::vector<uint8_t> bytes,
                             const Rwkv7HostEngineOptions& options,
                             std::unique_ptr<Rwkv7Engine>* out);
// The same with `slots` slots and exact (fp32) activations.
Status CreateHostRwkv7Engine(const Rwkv7WeightLayout& layout, std::vector<uint8_t> bytes,
                             int64_t slots, std::unique_ptr<Rwkv7Engine>* out);

// The engine on a GPU (Rwkv7Gpu over `ctx`, which must outlive it), weights copied from
// `bytes` to the device. Declared here, defined only in builds with CUDA
// (kernels/cuda:kernels); the same failures as the host engine, and the device's.
struct Rwkv7GpuEngineOptions {
  int64_t slots = 1;
  bool use_graphs = true;  // Rwkv7GpuOptions::use_graphs
  // Product inputs rounded to the weights' type (Rwkv7GpuOptions::round_activations); false:
  // fp32, exact (a bf16 model computes its weights' fp32 run).
  bool round_activations = false;
};
Status CreateGpuRwkv7Engine(Context* ctx, const Rwkv7WeightLayout& layout,
                            const std::vector<uint8_t>& bytes, const Rwkv7GpuEngineOptions& options,
                            std::unique_ptr<Rwkv7Engine>* out);

}  // namespace skein::cuda

#endif  // SKEIN_KERNELS_CUDA_RWKV7_ENGINE_H_
