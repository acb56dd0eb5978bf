// CUDA kernels for the RWKV-7 (x070) layer, spec §2.4-§2.8, with a plain C++ interface: all
// pointers are device pointers (from DeviceBuffer), all work is enqueued on the Context's
// stream (see context.h for errors and waiting).
//
// Conventions shared by every kernel here:
// - A step covers `sessions` sessions of `tokens` tokens each; its rows are row = s·tokens + t
//   (session-major), and a per-row activation is a row-major [rows][C] matrix.
// - Residual-stream activations, kernel outputs feeding element-wise work, and every state are
//   fp32 (spec §2.8). Inputs of matrix products (`out_type` below) are fp32 too by default,
//   so that bf16/fp16 weights compute what the official fp32 run of the same weights does;
//   or, when the caller rounds activations (rwkv7_step.h: ActivationType), the weights' type,
//   so that cuBLASLt multiplies them as they are (gemm.h).
// - Recurrent state is resident on the device: session s uses slot slots[s] (device int32
//   array, distinct slots within one call) of a state array whose slot i begins at
//   base + i·slot_stride (floats). Callers point `base` at the layer they run.
// - Small per-channel parameters (LayerNorm γ/β, mixes, biases, r_k) are fp32 [C].
// - Every kernel has a scalar CPU reference of the same name in reference/reference_ops.h.
#ifndef SKEIN_KERNELS_CUDA_RWKV7_OPS_H_
#define SKEIN_KERNELS_CUDA_RWKV7_OPS_H_

#include <cstdint>

#include "kernels/cuda/context.h"
#include "kernels/cuda/gemm.h"

namespace skein::cuda {

inline constexpr float kLayerNormEps = 1e-5f;               // ln0, ln1, ln2, ln_out
inline constexpr float kGroupNormEps = 64e-5f;              // ln_x (spec §1)
inline constexpr float kL2MinNorm = 1e-12f;                 // κ̂ (spec §1)
inline constexpr float kDecayScale = 0.60653065971263342f;  // e^{-1/2}
// The WKV-7 kernels are written for the head size of every official model.
inline constexpr int kWkvHeadSize = 64;

// dst[i] = offset + scale·u_i (HashUniform(seed, i, …), hash_uniform.h), rounded to `type`;
// i < count.
Status FillUniform(Context& ctx, void* dst, DType type, int64_t count, uint64_t seed, float offset,
                   float scale);

// x[r] = LayerNorm(emb[tokens[r]]; ln0) for r < rows; emb is [vocab][C] in `emb_type`,
// tokens a device int32 array of ids < vocab (not checked on the device).
struct EmbedArgs {
  const void* emb = nullptr;
  DType emb_type = DType::kBF16;
  const int32_t* tokens = nullptr;
  const float* ln_w = nullptr;
  const float* ln_b = nullptr;
  int64_t rows = 0;
  int64_t C = 0;
  float* x = nullptr;
};
Status EmbedLayerNorm(Context& ctx, const EmbedArgs& a);

// The token shift of the time mix (6 mixes) or the channel mix (1 mix), fused with the
// LayerNorm before it. For each row, with cur = LN(x[row]; ln) and prev the LN output of the
// session's previous token (the state's saved value for t = 0):
//   out[m][row][i] = cur[i] + (prev[i] − cur[i])·mix[m][i]     (rounded to out_type)
// and the state's saved value becomes the LN output of the session's last token: written in
// place when tokens == 1, else into `saved` ([sessions][C] fp32, needed then) for CommitShift
// to copy after this kernel (rows of one session run in different blocks, so the state may not
// change while they read it).
struct ShiftMixArgs {
  const float* x = nullptr;
  const float* ln_w = nullptr;
  const float* ln_b = nullptr;
  int64_t sessions = 0;
  int64_t tokens = 0;
  int64_t C = 0;
  float* shift_state = nullptr;  // slot i's [C] at shift_state + i·slot_stride
  int64_t slot_stride = 0;
  const int32_t* slots = nullptr;
  int mixes = 0;  // 1..6
  const float* mix[6] = {};
  void* out[6] = {};
  DType out_type = DType::kBF16;
  float* saved = nullptr;
};
Status ShiftMix(Context& ctx, const ShiftMixArgs& a);
// shift_state's slot slots[s] ← saved[s] for s < sessions.
Status CommitShift(Context& ctx, const float* saved, float* shift_state, int64_t slot_stride,
                   const int32_t* slots, int64_t sessions, int64_t C);

// Element-wise y = f(x) over n values (UnaryOp: gemm.h), y rounded to y_type (may be kF32).
Status Unary(Context& ctx, UnaryOp op, const float* x, void* y, DType y_type, int64_t n);

// Everything between the LoRA products and the WKV update, per row (spec §2.4), in place:
//   decay ← exp(−e^{−1/2}·σ(w0 + decay))          (the decay LoRA's output in, w out)
//   α = σ(a0 + alpha);  κ = k ⊙ k_k;  κ̂ = κ / max(‖κ_h‖₂, 1e-12) per head
//   a ← −κ̂;  b ← κ̂ ⊙ α;  k ← k ⊙ (1 + (α − 1) ⊙ k_a)
//   layer 0: v_first ← v;  else v ← v + (v_first − v) ⊙ σ(v0 + v_gate)
// All [rows][C] fp32; H heads of `head_size` channels (a multiple of 32, at most 256).
struct PrepareArgs {
  int64_t rows = 0;
  int64_t C = 0;
  int64_t head_size = 0;
  bool first_layer = false;
  float* decay = nullptr;
  const float* w0 = nullptr;
  const float* alpha = nullptr;
  const float* a0 = nullptr;
  float* k = nullptr;
  const float* k_k = nullptr;
  const float* k_a = nullptr;
  float* v = nullptr;
  const float* v_gate = nullptr;  // unused in layer 0
  const float* v0 = nullptr;      // unused in layer 0
  float* v_first = nullptr;
  float* a = nullptr;
  float* b = nullptr;
};
Status Rwkv7Prepare(Context& ctx, const PrepareArgs& p);

// The WKV-7 state update and output (spec §2.5) for every session and head, tokens in order:
//   for each row i:  sa = Σ_j a[j]·S[i][j];  S[i][j] = S[i][j]·w[j] + k[j]·v[i] + sa·b[j];
//                    y[i] = Σ_j S[i][j]·r[j]
// S is the fp32 [H][N][N] block of slot slots[s] (row = value channel), N = kWkvHeadSize.
// Inputs and y are [rows][C] fp32. One block per (session, head) with the state in registers
// for tokens == 1 (decode) and short prompts; a chunked form for long prompts (Wkv7Chunked).
struct Wkv7Args {
  int64_t sessions = 0;
  int64_t tokens = 0;
  int64_t C = 0;
  float* state = nullptr;
  int64_t slot_stride = 0;
  const int32_t* slots = nullptr;
  const float* r = nullptr;
  const float* w = nullptr;
  const float* k = nullptr;
  const float* v = nullptr;
  const float* a = nullptr;
  const float* b = nullptr;
  float* y = nullptr;
};
Status Wkv7(Context& ctx, const Wkv7Args& p);

// The same result by chunks (spec §2.7, "chunked form"): for chunks of `chunk` tokens, the
// transfer of each chunk (S_end = S_start·P + Cc) is built in parallel over chunks, the chunk
// start states are chained sequentially (one N×N product per chunk), and each chunk is then
// rerun from its start state in parallel to produce y. About 3× the arithmetic of Wkv7 but
// `tokens / chunk` times the parallelism, which pays for long prompts of few sessions.
// `scratch` must hold Wkv7ChunkedScratchFloats(sessions, tokens, C, chunk) floats.
// (P, Cc and the start state of every (session, head, chunk).)
inline int64_t Wkv7ChunkedScratchFloats(int64_t sessions, int64_t tokens, int64_t C,
                                        int64_t chunk) {
  const int64_t chunks = (tokens + chunk - 1) / chunk;
  return 3 * sessions * (C / kWkvHeadSize) * chunks * kWkvHeadSize * kWkvHeadSize;
}
Status Wkv7Chunked(Context& ctx, const Wkv7Args& p, int64_t chunk, float* scratch);

// The time mix's output before W_o, per row (spec §2.4):
//   o = GroupNorm(y; ln_x, H groups, eps 64e-5);  o_h += (Σ_j r_h[j]·k_h[j]·r_k[h][j])·v_h
//   out = o ⊙ g      (rounded to out_type)
// y, r, k, v (the modified k and v), g: [rows][C] fp32; r_k [C] fp32.
struct GroupNormBonusGateArgs {
  int64_t rows = 0;
  int64_t C = 0;
  int64_t head_size = 0;  // multiple of 32, at most 256
  const float* y = nullptr;
  const float* r = nullptr;
  const float* k = nullptr;
  const float* v = nullptr;
  const float* r_k = nullptr;
  const float* ln_w = nullptr;
  const float* ln_b = nullptr;
  const float* g = nullptr;
  void* out = nullptr;
  DType out_type = DType::kBF16;
};
Status GroupNormBonusGate(Context& ctx, const GroupNormBonusGateArgs& a);

// Rwkv7Prepare, Wkv7 and GroupNormBonusGate fused: one block per (session, head) runs the
// session's tokens in order, from the LoRA outputs to W_o's input, with the head's state in
// registers. The decode path (and short prompts): three launches become one, and nothing in
// between goes through memory. Same results as the three kernels up to summation order. The
// inputs are read only (the modified k and v stay in the kernel), except v_first, which layer
// 0 writes (v) and later layers read.
struct TimeMixCoreArgs {
  int64_t sessions = 0;
  int64_t tokens = 0;
  int64_t C = 0;  // H heads of kWkvHeadSize
  bool first_layer = false;
  // [rows][C] fp32: the decay/α/value-gate LoRA outputs (before bias and activation), r, k, v
  // from their products, and the gate g.
  const float* decay = nullptr;
  const float* alpha = nullptr;
  const float* v_gate = nullptr;  // unused in layer 0
  const float* r = nullptr;
  const float* k = nullptr;
  const float* v = nullptr;
  const float* g = nullptr;
  float* v_first = nullptr;
  // [C] fp32 parameters.
  const float* w0 = nullptr;
  const float* a0 = nullptr;
  const float* v0 = nullptr;  // unused in layer 0
  const float* k_k = nullptr;
  const float* k_a = nullptr;
  const float* r_k = nullptr;
  const float* ln_w = nullptr;  // ln_x
  const float* ln_b = nullptr;
  // The resident WKV state, as in Wkv7Args.
  float* state = nullptr;
  int64_t slot_stride = 0;
  const int32_t* slots = nullptr;
  // [rows][C] in out_type: W_o's input.
  void* out = nullptr;
  DType out_type = DType::kBF16;
};
Status Rwkv7TimeMixCore(Context& ctx, const TimeMixCoreArgs& a);

// out[s] = LayerNorm(x[s·tokens + tokens − 1]; ln_out) for s < sessions: the input of the head
// for each session's last token, rounded to out_type.
Status LayerNormLastRows(Context& ctx, const float* x, const float* ln_w, const float* ln_b,
                         int64_t sessions, int64_t tokens, int64_t C, void* out, DType out_type);

}  // namespace skein::cuda

#endif  // SKEIN_KERNELS_CUDA_RWKV7_OPS_H_
