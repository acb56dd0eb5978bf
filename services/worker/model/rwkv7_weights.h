// RWKV-7 (x070) weights for a range of layers, ready for the CPU kernels.
//
// Loaded from a TensorArchive (spec §2.2): the big projection matrices (att r/k/v/o, ffn
// key/value, head) in the run dtype; everything else in fp32: the per-channel vectors, the
// LayerNorm/GroupNorm parameters and the LoRA matrices, which are stored transposed here
// ([out, in], so they go through the same matrix kernel as the Linear weights). Where a
// matrix is already stored in the run dtype it is used in place, in the archive's mapped
// memory (no copy); the archive must outlive the weights (they hold a reference to it).
//
// The embedding stays as stored (one row is read per token) and ln0 is applied to the row at
// lookup time in fp32. This is the same function as the reference's load-time LN(emb; ln0)
// (spec §2.3) without a second copy of the V×C table; in bf16/fp16 runs it is slightly more
// precise than the reference, which rounds the normalised table to the run dtype.
//
// Precision: activations, accumulations, the state and all decay math are fp32 whatever the
// run dtype. Rounding fp32 weights to bf16 moves the logits by about 1e-2 of their standard
// deviation (fp16: about 1.5e-3), measured on random models (rwkv7_model_test); a bf16
// checkpoint run in bf16 gives exactly its fp32 run.
//
// Immutable after Load and safe to share between threads.
#ifndef SKEIN_SERVICES_WORKER_MODEL_RWKV7_WEIGHTS_H_
#define SKEIN_SERVICES_WORKER_MODEL_RWKV7_WEIGHTS_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "kernels/cpu/kernels.h"
#include "services/worker/model/rwkv_config.h"
#include "services/worker/model/state.h"
#include "services/worker/model/checkpoint/tensor_archive.h"

namespace skein::model {

struct Rwkv7LoadOptions {
  DType run_dtype = DType::kF32;  // for the big matrices
  int first_layer = 0;
  int last_layer = -1;  // exclusive; -1 = all layers
  // With run_dtype bf16, on CPUs with AVX512_BF16: store the big matrices as packed panels
  // (kernels::PackBf16Panels), which every product then streams sequentially. Converted
  // matrices keep only the packed copy; matrices used in place keep their mapping too.
  bool bf16_panels = true;
  // Threads to pack with (optional; not kept).
  kernels::ThreadPool* pool = nullptr;
};

// One layer's tensors. Vectors are C floats unless noted.
struct Rwkv7LayerWeights {
  const float* ln1_w;
  const float* ln1_b;
  const float* ln2_w;
  const float* ln2_b;
  const float* x_r;
  const float* x_w;
  const float* x_k;
  const float* x_v;
  const float* x_a;
  const float* x_g;
  const float* w0;
  const float* a0;
  const float* v0;  // null in layer 0 (unused there)
  const float* k_k;
  const float* k_a;
  const float* r_k;  // [H·N]
  const float* ln_x_w;
  const float* ln_x_b;
  const float* ffn_x_k;
  kernels::WeightMatrix receptance, key, value, output;  // [C, C], run dtype
  kernels::WeightMatrix ffn_key;                         // [F, C]
  kernels::WeightMatrix ffn_value;                       // [C, F]
  // LoRAs transposed to [out, in]: w1ᵀ [D_w, C], w2ᵀ [C, D_w], …; fp32, or bf16 panels when
  // the big matrices are packed (Rwkv7LoadOptions::bf16_panels).
  kernels::WeightMatrix w1, w2, a1, a2, g1, g2;
  kernels::WeightMatrix v1, v2;  // empty (rows = 0) in layer 0
};

class Rwkv7Weights {
 public:
  // Loads layers [first_layer, last_layer) of an x070 checkpoint; the embedding if
  // first_layer == 0; ln_out and head if last_layer == L. INVALID_ARGUMENT for a bad layer
  // range; otherwise the errors of LoadRwkv7Config for a checkpoint that is not a well-formed
  // x070 model.
  static absl::StatusOr<std::unique_ptr<Rwkv7Weights>> Load(
      std::shared_ptr<const TensorArchive> archive, const Rwkv7LoadOptions& options);

  const Rwkv7Config& config() const { return config_; }
  int first_layer() const { return first_layer_; }
  int last_layer() const { return last_layer_; }
  bool has_embedding() const { return first_layer_ == 0; }
  bool has_head() const { return last_layer_ == config_.n_layer; }
  DType run_dtype() const { return run_dtype_; }
  StateShape state_shape() const;

  // Absolute layer index, first_layer() <= layer < last_layer().
  const Rwkv7LayerWeights& layer(int layer) const { return layers_[layer - first_layer_]; }

  // Writes LN(emb[token]; ln0) to `out` (C floats). Requires has_embedding() and
  // 0 <= token < V.
  void Embed(int64_t token, float* out) const;

  const float* ln_out_w() const { return ln_out_w_; }
  const float* ln_out_b() const { return ln_out_b_; }
  const kernels::WeightMatrix& head() const { return head_; }  // [V, C], run dtype

  // Identifies the checkpoint, whatever the layer range and run dtype: XXH3-64 over every
  // tensor's name, dtype, shape and every byte of its contents (each tensor hashed on the
  // load's pool, then combined in name order). Any change to any weight changes it, so a
  // state blob can never be applied to another model; the price is reading the whole file
  // once at load, every stage included (+30 ms for the 0.1B shape's 380 MB file from the page
  // cache on the 2-vCPU VM: 0.14 s against 0.11 s for `skein generate` of one token).
  uint64_t fingerprint() const { return fingerprint_; }

  // Bytes of weights one token's forward pass reads for this stage (matrices, LoRAs,
  // vectors; one embedding row), the numerator of the decode roofline.
  int64_t bytes_read_per_token() const;

 private:
  Rwkv7Weights() = default;

  std::shared_ptr<const TensorArchive> archive_;
  Rwkv7Config config_;
  int first_layer_ = 0;
  int last_layer_ = 0;
  DType run_dtype_ = DType::kF32;
  std::vector<Rwkv7LayerWeights> layers_;
  const TensorView* emb_ = nullptr;
  const float* ln0_w_ = nullptr;
  const float* ln0_b_ = nullptr;
  const float* ln_out_w_ = nullptr;
  const float* ln_out_b_ = nullptr;
  kernels::WeightMatrix head_;
  uint64_t fingerprint_ = 0;
  // Converted copies the pointers above refer to (64-byte aligned).
  std::vector<std::unique_ptr<uint8_t[], void (*)(void*)>> owned_;

  friend class Rwkv7WeightsBuilder;
};

}  // namespace skein::model

#endif  // SKEIN_SERVICES_WORKER_MODEL_RWKV7_WEIGHTS_H_
