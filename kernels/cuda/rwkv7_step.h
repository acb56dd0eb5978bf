// The launch sequence of one RWKV-7 (x070) forward step (spec §2.4) over one pipeline stage
// (a layer range, rwkv7_weights.h), written once over an `Ops` type so that the same
// orchestration runs on the GPU (Rwkv7Gpu, with the kernels of rwkv7_ops.h and gemm.h) and on
// the CPU with the scalar references (reference/), where a test compares it to the
// independent per-token reference forward on any machine.
//
// Ops must provide, with the contracts of rwkv7_ops.h / gemm.h:
//   Status GemmGroup(const GemmArgs*, int count);  Status EmbedLayerNorm(const EmbedArgs&);
//   Status ShiftMix(const ShiftMixArgs&);
//   Status CommitShift(const float* saved, float* state, int64_t stride, const int32_t* slots,
//                      int64_t sessions, int64_t C);
//   Status Rwkv7Prepare(const PrepareArgs&);
//   Status Wkv7Chunked(const Wkv7Args&, int64_t chunk, float* scratch);
//   Status GroupNormBonusGate(const GroupNormBonusGateArgs&);
//   Status Rwkv7TimeMixCore(const TimeMixCoreArgs&);
//   Status LayerNormLastRows(const float* x, const float* w, const float* b, int64_t sessions,
//                            int64_t tokens, int64_t C, void* out, DType);
// Plain C++17 (nvcc compiles it too).
#ifndef SKEIN_KERNELS_CUDA_RWKV7_STEP_H_
#define SKEIN_KERNELS_CUDA_RWKV7_STEP_H_

#include <cstdint>

#include "kernels/cuda/context.h"
#include "kernels/cuda/gemm.h"
#include "kernels/cuda/rwkv7_ops.h"
#include "kernels/cuda/rwkv7_weights.h"

namespace skein::cuda {

// Which rows of a last stage's step go through ln_out and the head.
enum class LogitsMode {
  kLast,  // one row per session: its last token's
  kAll,   // every token's row, S·T rows in session-major order
  kNone,  // none (a prefill chunk that samples nothing)
};

// The rows that go through the head for `mode`: S, S·T or 0.
inline int64_t LogitRows(LogitsMode mode, int64_t sessions, int64_t tokens) {
  switch (mode) {
    case LogitsMode::kAll:
      return sessions * tokens;
    case LogitsMode::kNone:
      return 0;
    default:
      return sessions;
  }
}

// The type of the product inputs ("activations") for weights in `weights`: fp32 by default,
// so that a bf16/fp16 model computes what its weights widened to fp32 compute (the official
// model's run, up to summation order); with `round_activations`, the weights' type, so that
// cuBLASLt takes them as they are (one product instead of two, gemm.h) at a cost in accuracy
// (bf16 on the official small golden model: 0.18σ of the logits off its official run, against
// 2.2e-4σ exact, the official fp32 run's own error).
inline DType ActivationType(DType weights, bool round_activations) {
  return round_activations ? weights : DType::kF32;
}

// Everything one step reads and writes besides the weights, for `rows` = sessions · tokens
// rows. "Product inputs" are in act_type, the rest fp32; sizes in brackets. Ls is the
// stage's layer count, `head rows` LogitRows(mode, S, T).
struct Rwkv7StepBuffers {
  // The product inputs' type: ActivationType(weights' type, round_activations), fp32 or the
  // weights' type. The buffers named …16 are in it (16-bit when rounding).
  DType act_type = DType::kF32;
  const int32_t* tokens = nullptr;  // [rows]; read by a first stage only
  const int32_t* slots = nullptr;   // [sessions]
  // Resident state of the stage's layers, slot-major: att/ffn shift [slots][Ls][C], wkv
  // [slots][Ls][C·N] (stage layer l − first_layer at offset (l − first_layer)·C, resp. ·C·N).
  float* att_shift = nullptr;
  float* ffn_shift = nullptr;
  float* wkv_state = nullptr;
  // [rows][C] residual. A later stage's input (the previous stage's output) is put here, and
  // the previous stage's v_first rows in v_first, before the step; a stage without the head
  // leaves its output rows in both.
  float* x = nullptr;
  void* mix[6] = {};                               // product inputs xr xw xk xv xa xg [rows][C]
  float *r = nullptr, *k = nullptr, *v = nullptr;  // [rows][C]
  float *decay = nullptr, *alpha = nullptr, *gate = nullptr, *v_gate = nullptr;
  float *a = nullptr, *b = nullptr, *y = nullptr, *v_first = nullptr;
  float *lora_w = nullptr, *lora_a = nullptr, *lora_v = nullptr, *lora_g = nullptr;  // [rows][D]
  void *lora_w16 = nullptr, *lora_a16 = nullptr, *lora_v16 = nullptr, *lora_g16 = nullptr;
  void* out16 = nullptr;     // W_o input [rows][C]
  float* hidden = nullptr;   // [rows][F]
  void* hidden16 = nullptr;  // [rows][F]
  float* saved = nullptr;    // [sessions][C]
  void* head_in = nullptr;   // [head rows][C]
  float* logits = nullptr;   // [head rows][V]
  // Set: the WKV-7 runs chunked (Wkv7Chunked) in chunks of `wkv_chunk` with this scratch.
  float* wkv_scratch = nullptr;
  int64_t wkv_chunk = 0;
};

// Runs one step of the stage: S sessions × T tokens through layers [first_layer, last_layer),
// weights in `layout` at `weights` (a device pointer for the GPU). A first stage embeds
// b.tokens; a last stage writes the logits of `logits` mode (kLast: [S][V], kAll: [S·T][V],
// kNone: nothing). Stops at the first error.
template <typename Ops>
Status RunRwkv7Step(Ops& ops, const Rwkv7WeightLayout& layout, const uint8_t* weights,
                    const Rwkv7StepBuffers& b, int64_t S, int64_t T,
                    LogitsMode logits = LogitsMode::kLast) {
  const Rwkv7Shape& sh = layout.shape();
  const DType dt = layout.dtype();
  const DType at = b.act_type;
  const int64_t R = S * T, C = sh.embd, N = kWkvHeadSize;
  const int64_t L0 = layout.first_layer(), Ls = layout.stage_layers();
  auto tensor = [&](int64_t l, LayerTensor t) -> const void* {
    return weights + layout.get(l, t).offset;
  };
  auto vec = [&](int64_t l, LayerTensor t) {
    return reinterpret_cast<const float*>(weights + layout.get(l, t).offset);
  };
  auto global = [&](GlobalTensor t) { return weights + layout.get(t).offset; };
  // Every matrix is stored [out][in], the LoRA factors included (rwkv7_weights.h). A product
  // may also write its activation, in act_type, as the next product's input.
  auto job = [&](const void* x, const void* w, int64_t n, int64_t k, float* y, int64_t m,
                 bool accumulate = false, void* y_act = nullptr, UnaryOp act = UnaryOp::kIdentity) {
    GemmArgs g;
    g.x = x;
    g.w = w;
    g.type = dt;
    g.x_type = at;
    g.layout = WeightLayout::kOutIn;
    g.m = m;
    g.n = n;
    g.k = k;
    g.y = y;
    g.accumulate = accumulate;
    g.y_act = y_act;
    g.act = act;
    return g;
  };

  if (layout.has_embedding()) {
    EmbedArgs emb;
    emb.emb = global(kEmb);
    emb.emb_type = dt;
    emb.tokens = b.tokens;
    emb.ln_w = reinterpret_cast<const float*>(global(kLn0W));
    emb.ln_b = reinterpret_cast<const float*>(global(kLn0B));
    emb.rows = R;
    emb.C = C;
    emb.x = b.x;
    SKEIN_CUDA_RETURN_IF_ERROR(ops.EmbedLayerNorm(emb));
  }

  for (int64_t l = L0; l < L0 + Ls; ++l) {
    // Layer 0 of the whole model makes v_first; every later layer, in any stage, reads it.
    const bool first = l == 0;
    const int64_t sl = l - L0;  // the layer's place in the stage's state
    // ---- time mix ----
    ShiftMixArgs mix;
    mix.x = b.x;
    mix.ln_w = vec(l, kLn1W);
    mix.ln_b = vec(l, kLn1B);
    mix.sessions = S;
    mix.tokens = T;
    mix.C = C;
    mix.shift_state = b.att_shift + sl * C;
    mix.slot_stride = Ls * C;
    mix.slots = b.slots;
    mix.mixes = 6;
    const LayerTensor coefficients[6] = {kXr, kXw, kXk, kXv, kXa, kXg};
    for (int m = 0; m < 6; ++m) {
      mix.mix[m] = vec(l, coefficients[m]);
      mix.out[m] = b.mix[m];
    }
    mix.out_type = at;
    mix.saved = b.saved;
    SKEIN_CUDA_RETURN_IF_ERROR(ops.ShiftMix(mix));
    if (T > 1) {
      SKEIN_CUDA_RETURN_IF_ERROR(ops.CommitShift(b.saved, mix.shift_state, Ls * C, b.slots, S, C));
    }
    const void *xr = b.mix[0], *xw = b.mix[1], *xk = b.mix[2], *xv = b.mix[3], *xa = b.mix[4],
               *xg = b.mix[5];
    {
      // Everything that reads the mixed inputs, in one group: r, k, v and the first LoRA
      // factors with their activations (tanh for the decay, σ for the gate; the value
      // residual exists from layer 1 on, spec §2.2).
      GemmArgs jobs[7] = {
          job(xr, tensor(l, kWr), C, C, b.r, R),
          job(xk, tensor(l, kWk), C, C, b.k, R),
          job(xv, tensor(l, kWv), C, C, b.v, R),
          job(xw, tensor(l, kW1), sh.d_decay, C, b.lora_w, R, false, b.lora_w16, UnaryOp::kTanh),
          job(xa, tensor(l, kA1), sh.d_iclr, C, b.lora_a, R, false, b.lora_a16),
          job(xg, tensor(l, kG1), sh.d_gate, C, b.lora_g, R, false, b.lora_g16, UnaryOp::kSigmoid),
          job(xv, tensor(l, kV1), sh.d_value, C, b.lora_v, R, false, b.lora_v16),
      };
      SKEIN_CUDA_RETURN_IF_ERROR(ops.GemmGroup(jobs, first ? 6 : 7));
    }
    {
      GemmArgs jobs[4] = {
          job(b.lora_w16, tensor(l, kW2), C, sh.d_decay, b.decay, R),
          job(b.lora_a16, tensor(l, kA2), C, sh.d_iclr, b.alpha, R),
          job(b.lora_g16, tensor(l, kG2), C, sh.d_gate, b.gate, R),
          job(b.lora_v16, tensor(l, kV2), C, sh.d_value, b.v_gate, R),
      };
      SKEIN_CUDA_RETURN_IF_ERROR(ops.GemmGroup(jobs, first ? 3 : 4));
    }
    if (b.wkv_scratch == nullptr) {
      // Decode and short prompts: prepare, WKV and GroupNorm/bonus/gate in one kernel.
      TimeMixCoreArgs core;
      core.sessions = S;
      core.tokens = T;
      core.C = C;
      core.first_layer = first;
      core.decay = b.decay;
      core.alpha = b.alpha;
      core.v_gate = b.v_gate;
      core.r = b.r;
      core.k = b.k;
      core.v = b.v;
      core.g = b.gate;
      core.v_first = b.v_first;
      core.w0 = vec(l, kW0);
      core.a0 = vec(l, kA0);
      core.v0 = vec(l, kV0);
      core.k_k = vec(l, kKk);
      core.k_a = vec(l, kKa);
      core.r_k = vec(l, kRk);
      core.ln_w = vec(l, kLnxW);
      core.ln_b = vec(l, kLnxB);
      core.state = b.wkv_state + sl * C * N;
      core.slot_stride = Ls * C * N;
      core.slots = b.slots;
      core.out = b.out16;
      core.out_type = at;
      SKEIN_CUDA_RETURN_IF_ERROR(ops.Rwkv7TimeMixCore(core));
    } else {
      // Long prompts: the chunked WKV between separate prepare and GroupNorm kernels.
      PrepareArgs prep;
      prep.rows = R;
      prep.C = C;
      prep.head_size = N;
      prep.first_layer = first;
      prep.decay = b.decay;
      prep.w0 = vec(l, kW0);
      prep.alpha = b.alpha;
      prep.a0 = vec(l, kA0);
      prep.k = b.k;
      prep.k_k = vec(l, kKk);
      prep.k_a = vec(l, kKa);
      prep.v = b.v;
      prep.v_gate = b.v_gate;
      prep.v0 = vec(l, kV0);
      prep.v_first = b.v_first;
      prep.a = b.a;
      prep.b = b.b;
      SKEIN_CUDA_RETURN_IF_ERROR(ops.Rwkv7Prepare(prep));

      Wkv7Args wkv;
      wkv.sessions = S;
      wkv.tokens = T;
      wkv.C = C;
      wkv.state = b.wkv_state + sl * C * N;
      wkv.slot_stride = Ls * C * N;
      wkv.slots = b.slots;
      wkv.r = b.r;
      wkv.w = b.decay;
      wkv.k = b.k;
      wkv.v = b.v;
      wkv.a = b.a;
      wkv.b = b.b;
      wkv.y = b.y;
      SKEIN_CUDA_RETURN_IF_ERROR(ops.Wkv7Chunked(wkv, b.wkv_chunk, b.wkv_scratch));

      GroupNormBonusGateArgs gn;
      gn.rows = R;
      gn.C = C;
      gn.head_size = N;
      gn.y = b.y;
      gn.r = b.r;
      gn.k = b.k;
      gn.v = b.v;
      gn.r_k = vec(l, kRk);
      gn.ln_w = vec(l, kLnxW);
      gn.ln_b = vec(l, kLnxB);
      gn.g = b.gate;
      gn.out = b.out16;
      gn.out_type = at;
      SKEIN_CUDA_RETURN_IF_ERROR(ops.GroupNormBonusGate(gn));
    }
    {
      const GemmArgs out = job(b.out16, tensor(l, kWo), C, C, b.x, R, /*accumulate=*/true);
      SKEIN_CUDA_RETURN_IF_ERROR(ops.GemmGroup(&out, 1));
    }

    // ---- channel mix ----
    ShiftMixArgs ffn;
    ffn.x = b.x;
    ffn.ln_w = vec(l, kLn2W);
    ffn.ln_b = vec(l, kLn2B);
    ffn.sessions = S;
    ffn.tokens = T;
    ffn.C = C;
    ffn.shift_state = b.ffn_shift + sl * C;
    ffn.slot_stride = Ls * C;
    ffn.slots = b.slots;
    ffn.mixes = 1;
    ffn.mix[0] = vec(l, kFfnXk);
    ffn.out[0] = b.mix[2];  // xk is free again
    ffn.out_type = at;
    ffn.saved = b.saved;
    SKEIN_CUDA_RETURN_IF_ERROR(ops.ShiftMix(ffn));
    if (T > 1) {
      SKEIN_CUDA_RETURN_IF_ERROR(ops.CommitShift(b.saved, ffn.shift_state, Ls * C, b.slots, S, C));
    }
    {
      const GemmArgs key = job(b.mix[2], tensor(l, kFfnKey), sh.ffn, C, b.hidden, R, false,
                               b.hidden16, UnaryOp::kSquaredRelu);
      SKEIN_CUDA_RETURN_IF_ERROR(ops.GemmGroup(&key, 1));
      const GemmArgs value =
          job(b.hidden16, tensor(l, kFfnValue), C, sh.ffn, b.x, R, /*accumulate=*/true);
      SKEIN_CUDA_RETURN_IF_ERROR(ops.GemmGroup(&value, 1));
    }
  }

  // A stage without the head hands x and v_first on as they are.
  if (!layout.has_head() || logits == LogitsMode::kNone) return Status();
  // kAll: every row is a "last row" of a one-token session.
  const bool all = logits == LogitsMode::kAll;
  const int64_t head_rows = LogitRows(logits, S, T);
  SKEIN_CUDA_RETURN_IF_ERROR(ops.LayerNormLastRows(
      b.x, reinterpret_cast<const float*>(global(kLnOutW)),
      reinterpret_cast<const float*>(global(kLnOutB)), all ? R : S, all ? 1 : T, C, b.head_in, at));
  const GemmArgs head = job(b.head_in, global(kHead), sh.vocab, C, b.logits, head_rows);
  return ops.GemmGroup(&head, 1);
}

}  // namespace skein::cuda

#endif  // SKEIN_KERNELS_CUDA_RWKV7_STEP_H_
