// The step orchestration of rwkv7_step.h on the CPU: the scalar references behind its Ops
// interface, and host scratch of the sizes Rwkv7Gpu allocates on the device. Shared by the
// host engine (CreateHostRwkv7Engine) and the reference test, so that both run one copy.
// Plain C++.
#ifndef SKEIN_KERNELS_CUDA_REFERENCE_HOST_STEP_H_
#define SKEIN_KERNELS_CUDA_REFERENCE_HOST_STEP_H_

#include <cstdint>
#include <vector>

#include "kernels/cuda/context.h"
#include "kernels/cuda/gemm.h"
#include "kernels/cuda/reference/reference_ops.h"
#include "kernels/cuda/rwkv7_ops.h"
#include "kernels/cuda/rwkv7_step.h"
#include "kernels/cuda/rwkv7_weights.h"

namespace skein::cuda::reference {

// The scalar references (reference_ops.h) behind the Ops interface of rwkv7_step.h. They
// cannot fail: every call returns ok.
struct HostOps {
  Status GemmGroup(const GemmArgs* jobs, int count) {
    reference::GemmGroup(jobs, count);
    return Status();
  }
  Status EmbedLayerNorm(const EmbedArgs& a) {
    reference::EmbedLayerNorm(a);
    return Status();
  }
  Status ShiftMix(const ShiftMixArgs& a) {
    reference::ShiftMix(a);
    return Status();
  }
  Status CommitShift(const float* saved, float* state, int64_t stride, const int32_t* slots,
                     int64_t sessions, int64_t C) {
    reference::CommitShift(saved, state, stride, slots, sessions, C);
    return Status();
  }
  Status Rwkv7Prepare(const PrepareArgs& p) {
    reference::Rwkv7Prepare(p);
    return Status();
  }
  Status Rwkv7TimeMixCore(const TimeMixCoreArgs& a) {
    reference::Rwkv7TimeMixCore(a);
    return Status();
  }
  Status Wkv7Chunked(const Wkv7Args& p, int64_t chunk, float* scratch) {
    reference::Wkv7Chunked(p, chunk, scratch);
    return Status();
  }
  Status GroupNormBonusGate(const GroupNormBonusGateArgs& a) {
    reference::GroupNormBonusGate(a);
    return Status();
  }
  Status LayerNormLastRows(const float* x, const float* w, const float* b, int64_t sessions,
                           int64_t tokens, int64_t C, void* out, DType t) {
    reference::LayerNormLastRows(x, w, b, sessions, tokens, C, out, t);
    return Status();
  }
};

// Host scratch for one step (everything of Rwkv7StepBuffers but the token ids, the slots and
// the resident state, which the caller owns).
class HostStepScratch {
 public:
  // Sizes every scratch buffer for S sessions × T tokens of `layout`'s stage and head rows of
  // `logits` mode, zeroes them, and points the scratch fields of *b at them (leaving tokens,
  // slots and the state fields as they are). chunk > 0: the WKV-7 runs chunked in chunks of
  // `chunk` (b->wkv_scratch set); else sequential (b->wkv_scratch null). The product inputs
  // are fp32, or in the weights' type with `round_activations` (b->act_type, rwkv7_step.h).
  void Prepare(const Rwkv7WeightLayout& layout, int64_t S, int64_t T, LogitsMode logits,
               int64_t chunk, bool round_activations, Rwkv7StepBuffers* b);

  // Valid after Prepare until the next one.
  std::vector<float>& x() { return x_; }
  std::vector<float>& v_first() { return v_first_; }
  std::vector<float>& logits() { return logits_; }

 private:
  std::vector<float> x_, r_, k_, v_, decay_, alpha_, gate_, v_gate_, a_, b_, y_, v_first_;
  std::vector<float> lora_w_, lora_a_, lora_v_, lora_g_, hidden_, saved_, logits_, wkv_scratch_;
  std::vector<uint8_t> mix_[6], lora_w16_, lora_a16_, lora_v16_, lora_g16_, out16_, hidden16_,
      head_in_;
};

}  // namespace skein::cuda::reference

#endif  // SKEIN_KERNELS_CUDA_REFERENCE_HOST_STEP_H_
