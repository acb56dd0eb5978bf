// A CPU reference of the RWKV-7 (x070) forward pass, one token at a time, written straight
// from spec §2.4 (not from the GPU step's launch sequence, so that a mistake in the GPU
// orchestration shows up as a difference). It reads the weights in the GPU model's layout
// (rwkv7_weights.h), widened to fp32. The inputs of every matrix product stay fp32 (exact
// activations: a bf16/fp16 model computes its weights' fp32 run), or, with
// round_activations, are rounded to the run dtype at the points where the GPU rounds them
// (rwkv7_step.h: ActivationType), so that the two differ only by summation order and the rare
// rounding that order flips. Plain C++; slow; for tiny shapes.
#ifndef SKEIN_KERNELS_CUDA_REFERENCE_RWKV7_REFERENCE_FORWARD_H_
#define SKEIN_KERNELS_CUDA_REFERENCE_RWKV7_REFERENCE_FORWARD_H_

#include <cstdint>
#include <vector>

#include "kernels/cuda/rwkv7_weights.h"

namespace skein::cuda::reference {

// One session's recurrent state (spec §2.6), fp32, zero at the start.
struct Rwkv7HostState {
  std::vector<float> att_x_prev;  // [L][C]
  std::vector<float> wkv;         // [L][H][N][N], row = value channel
  std::vector<float> ffn_x_prev;  // [L][C]
};

class Rwkv7ReferenceModel {
 public:
  // `bytes` is the whole weight buffer in `layout` (Rwkv7Gpu::DownloadWeights, or made on the
  // host with reference::FillUniform per tensor). The whole model only: Token needs every
  // layer, the embedding and the head (a stage layout is for MakeRandomWeights alone).
  Rwkv7ReferenceModel(const Rwkv7WeightLayout& layout, const std::vector<uint8_t>& bytes,
                      bool round_activations = false);

  // Weights made on the host exactly as Rwkv7Gpu::Create makes them on the device.
  static std::vector<uint8_t> MakeRandomWeights(const Rwkv7WeightLayout& layout, uint64_t seed);
  // The same weights in the fp32 layout of the same stage (Rwkv7WeightLayout(layout.shape(),
  // kF32, first, last)), each widened exactly: the model whose fp32 run a bf16/fp16 model with
  // exact activations computes.
  static std::vector<uint8_t> WidenToF32(const Rwkv7WeightLayout& layout,
                                         const std::vector<uint8_t>& bytes);

  Rwkv7HostState NewState() const;
  // Consumes one token; writes the vocab logits after it.
  void Token(int32_t token, Rwkv7HostState* state, std::vector<float>* logits) const;

 private:
  const float* G(GlobalTensor t) const { return tensors_[layout_.index(t)].data(); }
  const float* P(int64_t layer, LayerTensor t) const {
    return tensors_[layout_.index(layer, t)].data();
  }

  Rwkv7WeightLayout layout_;
  DType act_;                                // product inputs' type
  std::vector<std::vector<float>> tensors_;  // every tensor widened to fp32
};

}  // namespace skein::cuda::reference

#endif  // SKEIN_KERNELS_CUDA_REFERENCE_RWKV7_REFERENCE_FORWARD_H_
