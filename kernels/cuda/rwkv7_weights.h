// The tensors of an RWKV-7 (x070) model as the CUDA forward pass stores them: one buffer,
// each tensor at a 256-byte-aligned offset. Large matrices are in the run dtype (fp32, bf16
// or fp16), per-channel vectors in fp32. Shared by the GPU model (rwkv7_forward.h) and the CPU
// reference forward (reference/rwkv7_reference_forward.h), which reads a host copy of the same
// bytes. A layout may also hold one pipeline stage: a range of layers, with the embedding
// only in the first stage and the head only in the last. Plain C++.
#ifndef SKEIN_KERNELS_CUDA_RWKV7_WEIGHTS_H_
#define SKEIN_KERNELS_CUDA_RWKV7_WEIGHTS_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "base/dtype.h"

namespace skein::cuda {

using base::DType;

// Hyper-parameters (spec §2.1). F = 4C; the LoRA ranks follow the official formulas (spec
// §2.1: 0.1B gets 64/64/32/128, 1.5B 96/96/64/256).
struct Rwkv7Shape {
  int64_t layers = 0;
  int64_t embd = 0;
  int64_t head_size = 64;
  int64_t vocab = 0;
  int64_t ffn = 0;
  int64_t d_decay = 0;
  int64_t d_iclr = 0;
  int64_t d_value = 0;
  int64_t d_gate = 0;

  int64_t heads() const { return embd / head_size; }
  static Rwkv7Shape Official(int64_t layers, int64_t embd, int64_t vocab);
  // "L12 C768 V65536".
  std::string ToString() const;
};

// Tensors of the whole model, then of each layer (official names in comments).
enum GlobalTensor {
  kEmb,   // emb.weight [V][C], matrix
  kLn0W,  // blocks.0.ln0
  kLn0B,
  kLnOutW,  // ln_out
  kLnOutB,
  kHead,  // head.weight [V][C], matrix
  kGlobalTensors,
};
enum LayerTensor {
  kLn1W,
  kLn1B,
  kLn2W,
  kLn2B,
  kXr,  // att.x_r … att.x_g
  kXw,
  kXk,
  kXv,
  kXa,
  kXg,
  kW0,
  // The LoRA factors (att.w1 … att.g2) are stored TRANSPOSED, [out][in] like nn.Linear (the
  // checkpoint's [in][out], spec §1, transposed once at load): the same math, but every
  // product then streams whole rows and takes the GEMV path at decode batch sizes (gemm.h).
  kW1,  // att.w1ᵀ [Dw][C]
  kW2,  // att.w2ᵀ [C][Dw]
  kA0,
  kA1,
  kA2,
  kV0,  // value residual: used in layers ≥ 1 only (present in every layer here)
  kV1,
  kV2,
  kG1,
  kG2,
  kKk,
  kKa,
  kRk,  // att.r_k [H][N], flattened to [C]
  kWr,  // att.receptance.weight [C][C]
  kWk,
  kWv,
  kWo,
  kLnxW,  // att.ln_x
  kLnxB,
  kFfnXk,
  kFfnKey,    // ffn.key.weight [F][C]
  kFfnValue,  // ffn.value.weight [C][F]
  kLayerTensors,
};

struct TensorSpec {
  std::string name;
  int64_t rows = 1;
  int64_t cols = 0;
  bool matrix = false;  // stored in the run dtype; else fp32
  // Random initialisation: offset + scale·U[-1, 1) (hash_uniform.h), seed = model seed + index.
  float init_offset = 0.0f;
  float init_scale = 0.0f;
  size_t offset = 0;  // bytes from the start of the buffer
  size_t bytes = 0;
  // False for a tensor outside the layout's stage: it has no storage (rows = cols = 0, bytes
  // = 0), but keeps its name and its index, so that the indices (and the random seeds made
  // from them) are the whole model's in every stage.
  bool present = true;
  int64_t count() const { return rows * cols; }
};

class Rwkv7WeightLayout {
 public:
  // The tensors of layers [first_layer, last_layer) (last_layer −1: to the last layer), the
  // embedding and ln0 when first_layer is 0, ln_out and the head when last_layer is L. The
  // defaults give the whole model. A range outside 0 ≤ first_layer < last_layer ≤ L is a
  // programming error: it prints the range to stderr and aborts.
  Rwkv7WeightLayout(const Rwkv7Shape& shape, DType dtype, int64_t first_layer = 0,
                    int64_t last_layer = -1);

  const Rwkv7Shape& shape() const { return shape_; }
  DType dtype() const { return dtype_; }
  // The stage's layers, in the whole model's numbering: [first_layer, last_layer).
  int64_t first_layer() const { return first_layer_; }
  int64_t last_layer() const { return last_layer_; }
  int64_t stage_layers() const { return last_layer_ - first_layer_; }
  bool has_embedding() const { return first_layer_ == 0; }        // emb and ln0
  bool has_head() const { return last_layer_ == shape_.layers; }  // ln_out and head
  bool whole_model() const { return has_embedding() && has_head(); }
  // Bytes of the stage's buffer (present tensors only).
  size_t total_bytes() const { return total_bytes_; }
  // Every tensor of the whole model, globals then layer by layer; absent ones have
  // present = false and no bytes.
  const std::vector<TensorSpec>& tensors() const { return tensors_; }
  int index(GlobalTensor t) const { return static_cast<int>(t); }
  int index(int64_t layer, LayerTensor t) const {
    return static_cast<int>(kGlobalTensors + layer * kLayerTensors + t);
  }
  // An absent global (the embedding of a later stage, the head of an earlier one) has
  // present = false.
  const TensorSpec& get(GlobalTensor t) const { return tensors_[index(t)]; }
  // `layer` in the whole model's numbering, within the stage; another layer is a programming
  // error (aborts).
  const TensorSpec& get(int64_t layer, LayerTensor t) const {
    if (layer < first_layer_ || layer >= last_layer_) LayerOutOfStage(layer);
    return tensors_[index(layer, t)];
  }

 private:
  [[noreturn]] void LayerOutOfStage(int64_t layer) const;

  Rwkv7Shape shape_;
  DType dtype_;
  int64_t first_layer_ = 0;
  int64_t last_layer_ = 0;
  std::vector<TensorSpec> tensors_;
  size_t total_bytes_ = 0;
};

// Copies every tensor present in `to` from the same tensor in `from` (a layout of the same
// shape and dtype whose stage covers `to`'s: the whole model, say), tensor by tensor, into
// `to_bytes` (to.total_bytes()). How a stage's buffer is cut out of a whole model's. False,
// copying nothing, when the shapes or dtypes differ or `from` lacks a tensor `to` has.
bool CopyStageWeights(const Rwkv7WeightLayout& from, const uint8_t* from_bytes,
                      const Rwkv7WeightLayout& to, uint8_t* to_bytes);

}  // namespace skein::cuda

#endif  // SKEIN_KERNELS_CUDA_RWKV7_WEIGHTS_H_
