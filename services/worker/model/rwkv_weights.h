// RWKV weights (x070, x060, x052 or RWKV-4) for a range of layers, ready for the CPU kernels.
//
// Loaded from a TensorArchive (spec §§2.2, 3-5): the big projection matrices (att r/k/v/g/o,
// ffn key/value/receptance, head) in the run dtype; everything else in fp32: the per-channel
// vectors, the LayerNorm/GroupNorm parameters and the LoRA matrices, which are stored
// transposed here ([out, in], so they go through the same matrix kernel as the Linear
// weights). Per-channel constants the references precompute at load are precomputed here
// too, in fp32 (spec §7.2): the static decays of RWKV-4 and x052. Where a
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
#ifndef SKEIN_SERVICES_WORKER_MODEL_RWKV_WEIGHTS_H_
#define SKEIN_SERVICES_WORKER_MODEL_RWKV_WEIGHTS_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "kernels/cpu/kernels.h"
#include "services/worker/model/checkpoint/tensor_archive.h"
#include "services/worker/model/rwkv_config.h"
#include "services/worker/model/state.h"

namespace skein::model {

struct RwkvLoadOptions {
  DType run_dtype = DType::kF32;  // for the big matrices
  int first_layer = 0;
  int last_layer = -1;  // exclusive; -1 = all layers
  // With run_dtype bf16, on CPUs with AVX512_BF16: store the big matrices as packed panels
  // (kernels::PackBf16Panels), which every product then streams sequentially. Converted
  // matrices keep only the packed copy; matrices used in place keep their mapping too.
  bool bf16_panels = true;
  // With run_dtype int8, on CPUs with AVX512-VNNI: store the big matrices as packed int8
  // panels (kernels::PackInt8Panels), which every product then streams sequentially: on
  // vpdpbusd with int8 activations, on fp32 FMAs otherwise. Quantised matrices keep only the
  // packed copy; int8 matrices stored in the checkpoint keep their mapping too. Where the CPU
  // has bf16 panels as well (and bf16_panels is set), the LoRAs go on bf16 panels: exact for a
  // bf16 checkpoint, rounded to bf16 for an fp32 or fp16 one (far less than the int8 matrices
  // are).
  bool int8_panels = true;
  // Threads to pack with (optional; not kept).
  kernels::ThreadPool* pool = nullptr;
};

// One layer's tensors. Vectors are C floats unless noted; a field a version does not use is
// null (or an empty matrix).
//
// Token shift: x_r, x_w, x_k, x_v, x_a, x_g, ffn_x_k and ffn_x_r hold the weight of the
// PREVIOUS token in every version (mixed = cur + (prev − cur)⊙μ, the x060/x070 form). RWKV-4
// and x052 store the weight of the current token instead (spec §4), so they are loaded as
// 1 − μ, which is exact in fp32 for the stored bf16/fp16 values in [0, 1].
struct RwkvLayerWeights {
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
  // the big matrices are packed (RwkvLoadOptions::bf16_panels, or int8_panels on a CPU with
  // bf16 panels). Their products keep fp32 activations in every mode.
  kernels::WeightMatrix w1, w2, a1, a2, g1, g2;
  kernels::WeightMatrix v1, v2;  // empty (rows = 0) in layer 0

  // RWKV-4, x052 and x060 (spec §§3-5).
  const float* ffn_x_r;                  // the FFN receptance's token shift
  kernels::WeightMatrix ffn_receptance;  // [C, C], run dtype
  kernels::WeightMatrix gate;            // x052, x060: [C, C], run dtype
  // RWKV-4: −exp(time_decay); x052: exp(−exp(time_decay)) ([H, N] flattened); x060:
  // time_decay as stored (the LoRA is added before the exp-exp).
  const float* time_decay;
  const float* bonus;  // u: RWKV-4 time_first, x052/x060 time_faaaa
  // x060: the data-dependent token shift, maa_x and the LoRA time_maa_w1ᵀ [5·D_mix, C] with
  // time_maa_w2[i]ᵀ [C, D_mix] for i = w, k, v, r, g; and the decay LoRA time_decay_w1ᵀ
  // [D_dec, C], time_decay_w2ᵀ [C, D_dec].
  const float* maa_x;
  kernels::WeightMatrix maa_w1;
  kernels::WeightMatrix maa_w2[5];
  kernels::WeightMatrix decay_w1, decay_w2;
};

class RwkvWeights {
 public:
  // Loads layers [first_layer, last_layer) of a checkpoint of a supported version; the
  // embedding if first_layer == 0; ln_out and head if last_layer == L. INVALID_ARGUMENT for a
  // bad layer range; otherwise the errors of LoadRwkvConfig for a checkpoint that is not a
  // well-formed model of a supported version.
  static absl::StatusOr<std::unique_ptr<RwkvWeights>> Load(
      std::shared_ptr<const TensorArchive> archive, const RwkvLoadOptions& options);

  const RwkvConfig& config() const { return config_; }
  RwkvVersion version() const { return config_.version; }
  int first_layer() const { return first_layer_; }
  int last_layer() const { return last_layer_; }
  bool has_embedding() const { return first_layer_ == 0; }
  bool has_head() const { return last_layer_ == config_.n_layer; }
  DType run_dtype() const { return run_dtype_; }
  StateShape state_shape() const;

  // Absolute layer index, first_layer() <= layer < last_layer().
  const RwkvLayerWeights& layer(int layer) const { return layers_[layer - first_layer_]; }

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

  // Bytes of weights one token's forward pass reads for this stage (matrices as
  // WeightMatrix::bytes() counts them, LoRAs, vectors; one embedding row), the numerator of
  // the decode roofline.
  int64_t bytes_read_per_token() const;

  // Multiply-adds of one token's matrix products in this stage's layers (projections, FFN,
  // LoRAs), and of the head for one row of logits (0 without a head): the numerators of the
  // compute roofline of prefill and batched decode (kernels/cpu/compute_peak.h).
  int64_t layer_multiply_adds_per_token() const;
  int64_t head_multiply_adds_per_row() const;

 private:
  RwkvWeights() = default;

  std::shared_ptr<const TensorArchive> archive_;
  RwkvConfig config_;
  int first_layer_ = 0;
  int last_layer_ = 0;
  DType run_dtype_ = DType::kF32;
  std::vector<RwkvLayerWeights> layers_;
  const TensorView* emb_ = nullptr;
  const float* ln0_w_ = nullptr;
  const float* ln0_b_ = nullptr;
  const float* ln_out_w_ = nullptr;
  const float* ln_out_b_ = nullptr;
  kernels::WeightMatrix head_;
  uint64_t fingerprint_ = 0;
  // Converted copies the pointers above refer to (64-byte aligned).
  std::vector<std::unique_ptr<uint8_t[], void (*)(void*)>> owned_;

  friend class RwkvWeightsBuilder;
};

}  // namespace skein::model

#endif  // SKEIN_SERVICES_WORKER_MODEL_RWKV_WEIGHTS_H_
