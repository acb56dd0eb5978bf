// Internal to the model library: the named operations an RWKV layer is written in, run on the
// CPU over every row of one step (LayerStep). The x070 layer (rwkv7_layer.cc) is nothing but a
// chain of these calls; the CUDA forward step (kernels/cuda/rwkv7_step.h, where CUDA is built)
// runs the same chain over its device kernels: token shift and mixes, products, LoRA
// activations, the x070 prepare (decay, in-context learning rate, key, value residual), the
// WKV-7 update, GroupNorm with bonus and gate, squared ReLU.
//
// Every operation writes only the scratch buffers (and, for TokenShiftMix and Wkv7, the step's
// sequence states) it names, reads nothing it writes except where it says "in place", and
// splits its rows over the step's pool. The arithmetic is plain fp32 C++ or a kernels::
// function, each of which has a scalar reference beside its SIMD paths (kernels.h); the
// results do not depend on the thread count.
#ifndef SKEIN_SERVICES_WORKER_MODEL_LAYER_OPS_H_
#define SKEIN_SERVICES_WORKER_MODEL_LAYER_OPS_H_

#include <cstdint>
#include <initializer_list>

#include "absl/types/span.h"
#include "kernels/cpu/kernels.h"
#include "services/worker/model/layer_step.h"
#include "services/worker/model/rwkv_weights.h"

namespace skein::model::layer_ops {

// out = LayerNorm(in) with weight w and bias b, row by row (eps 1e-5).
void LayerNorm(const LayerStep& step, const Buffer& in, const float* w, const float* b,
               Buffer& out);

// One token-shift mix: out = cur + (prev − cur) ⊙ coefficients.
struct Mix {
  const float* coefficients;
  Buffer* out;
};

// For every row, with cur its row of `normed` and prev the previous token's (the row before
// in the same sequence, or the state's saved value for a sequence's first row), writes each
// mix; then saves each sequence's last row of `normed` as its state's token-shift value
// (att_x_prev, or ffn_x_prev when `ffn`).
void TokenShiftMix(const LayerStep& step, const Buffer& normed, bool ffn,
                   std::initializer_list<Mix> mixes);

// Independent matrix products in one parallel pass (kernels::MatMulMany).
void Products(const LayerStep& step, absl::Span<const kernels::MatMulJob> jobs);

enum class Activation { kTanh, kSigmoid, kSquaredRelu };

// An activation applied in place to the first `cols` values of every row of `buffer`.
struct Activate {
  Activation activation;
  Buffer* buffer;
  int64_t cols;
};

// Applies each activation, all in one parallel pass over the rows.
void Activations(const LayerStep& step, std::initializer_list<Activate> activations);

// x070's per-channel preparation of the WKV-7 inputs (spec §2.4), in place on the step's
// scratch: decay = exp(−e^{−1/2}·σ(w0 + decay)), α = σ(a0 + alpha), κ = L2-normalised per head
// (k ⊙ k_k), k ← k ⊙ (1 + (α − 1) ⊙ k_a), a_in = −κ, b_in = κ ⊙ α; with `value_residual`
// v ← v + (v_first − v) ⊙ σ(v0 + v_gate), else v_first = v (layer 0).
void PrepareX070(const LayerStep& step, bool value_residual);

// The WKV-7 recurrence (kernels::Wkv7Head) of every (sequence, head), each sequence's tokens
// in order, from and into its state's att_kv; y = the outputs.
void Wkv7(const LayerStep& step);

// In place on y, per row: GroupNorm per head (ln_x, eps 64e-5), plus the bonus
// (Σ_head r ⊙ k ⊙ r_k)·v of each head, times the gate.
void GroupNormBonusGate(const LayerStep& step);

}  // namespace skein::model::layer_ops

#endif  // SKEIN_SERVICES_WORKER_MODEL_LAYER_OPS_H_
