// The x070 layer (spec §2.4) over every row of a step.
#include <cmath>
#include <cstring>
#include <vector>

#include "kernels/cpu/kernels.h"
#include "services/worker/model/layer_step.h"

namespace skein::model {
namespace {

using kernels::MatMulJob;

constexpr float kL2MinNorm = 1e-12f;
// exp(-0.5): the decay is w = exp(-e^{-1/2}·σ(z)) (spec §2.4).
constexpr float kDecayScale = 0.6065306597126334f;

}  // namespace

void RunX070Layer(const LayerStep& step) {
  const RwkvConfig& d = step.d;
  const RwkvLayerWeights& lw = step.lw;
  RwkvModel::Scratch& sc = step.sc;
  const absl::Span<const SequenceStep> sequences = step.sequences;
  const absl::Span<const int64_t> offsets = step.offsets;
  const int layer = step.layer;
  const int64_t T = sc.rows;
  const int64_t C = d.n_embd;
  const int64_t H = d.n_head;
  const int64_t N = d.head_size;
  const bool value_residual = layer > 0;
  const bool bf16 = step.bf16;
  kernels::ThreadPool* const pool = step.pool;

  // ---- time mix ----
  step.ParallelRows(8, [&](int64_t r) {
    kernels::LayerNorm(sc.x.row(r), lw.ln1_w, lw.ln1_b, C, kLayerNormEps, sc.xa.row(r));
  });
  step.ParallelRows(8, [&](int64_t r) {
    const float* cur = sc.xa.row(r);
    const float* prev = step.Previous(sc.xa, r, false);
    float* xr = sc.xr.row(r);
    float* xw = sc.xw.row(r);
    float* xk = sc.xk.row(r);
    float* xv = sc.xv.row(r);
    float* xa = sc.xa_mix.row(r);
    float* xg = sc.xg.row(r);
    for (int64_t i = 0; i < C; ++i) {
      const float diff = prev[i] - cur[i];
      xr[i] = cur[i] + diff * lw.x_r[i];
      xw[i] = cur[i] + diff * lw.x_w[i];
      xk[i] = cur[i] + diff * lw.x_k[i];
      xv[i] = cur[i] + diff * lw.x_v[i];
      xa[i] = cur[i] + diff * lw.x_a[i];
      xg[i] = cur[i] + diff * lw.x_g[i];
    }
  });
  step.SaveLastRows(sc.xa, false);

  {
    std::vector<MatMulJob> jobs = {
        Job(sc.xr, lw.receptance, sc.r, T, bf16),   Job(sc.xk, lw.key, sc.k, T, bf16),
        Job(sc.xv, lw.value, sc.v, T, bf16),        Job(sc.xw, lw.w1, sc.lora_w, T, false),
        Job(sc.xa_mix, lw.a1, sc.lora_a, T, false), Job(sc.xg, lw.g1, sc.lora_g, T, false)};
    if (value_residual) jobs.push_back(Job(sc.xv, lw.v1, sc.lora_v, T, false));
    kernels::MatMulMany(jobs, pool);
  }
  step.ParallelRows(8, [&](int64_t r) {
    kernels::Tanh(sc.lora_w.row(r), sc.lora_w.row(r), d.d_decay);
    kernels::Sigmoid(sc.lora_g.row(r), sc.lora_g.row(r), d.d_gate);
  });
  {
    // The LoRAs keep fp32 activations even in bf16-activation runs: they are a few percent
    // of the work, and the decay (exp of exp) and gates they feed are where rounding hurts.
    std::vector<MatMulJob> jobs = {Job(sc.lora_w, lw.w2, sc.decay, T, false),
                                   Job(sc.lora_a, lw.a2, sc.alpha, T, false),
                                   Job(sc.lora_g, lw.g2, sc.gate, T, false)};
    if (value_residual) jobs.push_back(Job(sc.lora_v, lw.v2, sc.v_gate, T, false));
    kernels::MatMulMany(jobs, pool);
  }
  step.ParallelRows(1, [&](int64_t r) {
    float* decay = sc.decay.row(r);
    float* alpha = sc.alpha.row(r);
    float* k = sc.k.row(r);
    float* v = sc.v.row(r);
    float* kappa = sc.kappa.row(r);
    float* a_in = sc.a_in.row(r);
    float* b_in = sc.b_in.row(r);
    float* v_first = sc.v_first.row(r);
    float* v_gate = sc.v_gate.row(r);
    // decay = exp(−e^{−1/2}·σ(w0 + z)), α = σ(a0 + z'), κ = k ⊙ k_k
    for (int64_t i = 0; i < C; ++i) decay[i] += lw.w0[i];
    kernels::Sigmoid(decay, decay, C);
    for (int64_t i = 0; i < C; ++i) decay[i] *= -kDecayScale;
    kernels::Exp(decay, decay, C);
    for (int64_t i = 0; i < C; ++i) alpha[i] += lw.a0[i];
    kernels::Sigmoid(alpha, alpha, C);
    for (int64_t i = 0; i < C; ++i) kappa[i] = k[i] * lw.k_k[i];
    kernels::L2NormalizeGroups(kappa, H, N, kL2MinNorm, kappa);
    for (int64_t i = 0; i < C; ++i) {
      k[i] = k[i] * (1.0f + (alpha[i] - 1.0f) * lw.k_a[i]);
      a_in[i] = -kappa[i];
      b_in[i] = kappa[i] * alpha[i];
    }
    if (value_residual) {
      for (int64_t i = 0; i < C; ++i) v_gate[i] += lw.v0[i];
      kernels::Sigmoid(v_gate, v_gate, C);
      for (int64_t i = 0; i < C; ++i) v[i] = v[i] + (v_first[i] - v[i]) * v_gate[i];
    } else {
      std::memcpy(v_first, v, C * sizeof(float));
    }
  });

  // WKV recurrence: independent per (sequence, head), in token order within a sequence.
  const int64_t tasks = static_cast<int64_t>(sequences.size()) * H;
  auto wkv = [&](int64_t begin, int64_t end) {
    for (int64_t task = begin; task < end; ++task) {
      const int64_t s = task / H, h = task % H;
      const int64_t row0 = offsets[s];
      const int64_t off = row0 * C + h * N;
      kernels::Wkv7HeadArgs args;
      args.state = sequences[s].state->att_kv(layer).data() + h * N * N;
      args.n = N;
      args.tokens = offsets[s + 1] - row0;
      args.stride = C;
      args.r = sc.r.ptr() + off;
      args.w = sc.decay.ptr() + off;
      args.k = sc.k.ptr() + off;
      args.v = sc.v.ptr() + off;
      args.a = sc.a_in.ptr() + off;
      args.b = sc.b_in.ptr() + off;
      args.y = sc.y.ptr() + off;
      args.y_stride = C;
      kernels::Wkv7Head(args);
    }
  };
  // One sequence per chunk when there are enough: its heads are adjacent in memory and the
  // kernel prefetches the next one.
  step.ParallelTasks(tasks, sequences.size() >= 4 ? H : 1, wkv);

  step.ParallelRows(4, [&](int64_t r) {
    float* y = sc.y.row(r);
    const float* rr = sc.r.row(r);
    const float* k = sc.k.row(r);
    const float* v = sc.v.row(r);
    const float* g = sc.gate.row(r);
    kernels::GroupNorm(y, lw.ln_x_w, lw.ln_x_b, H, N, kGroupNormEps, y);
    for (int64_t h = 0; h < H; ++h) {
      float bonus = 0.0f;
      for (int64_t j = h * N; j < (h + 1) * N; ++j) bonus += rr[j] * k[j] * lw.r_k[j];
      for (int64_t j = h * N; j < (h + 1) * N; ++j) y[j] += bonus * v[j];
    }
    for (int64_t i = 0; i < C; ++i) y[i] *= g[i];
  });
  kernels::MatMul(Job(sc.y, lw.output, sc.x, T, bf16, /*accumulate=*/true), pool);

  // ---- channel mix ----
  step.ParallelRows(8, [&](int64_t r) {
    kernels::LayerNorm(sc.x.row(r), lw.ln2_w, lw.ln2_b, C, kLayerNormEps, sc.xf.row(r));
  });
  step.ParallelRows(8, [&](int64_t r) {
    const float* cur = sc.xf.row(r);
    const float* prev = step.Previous(sc.xf, r, true);
    float* kx = sc.xk.row(r);
    for (int64_t i = 0; i < C; ++i) kx[i] = cur[i] + (prev[i] - cur[i]) * lw.ffn_x_k[i];
  });
  step.SaveLastRows(sc.xf, true);
  kernels::MatMul(Job(sc.xk, lw.ffn_key, sc.ffn_hidden, T, bf16), pool);
  step.SquaredRelu();
  kernels::MatMul(Job(sc.ffn_hidden, lw.ffn_value, sc.x, T, bf16, /*accumulate=*/true), pool);
}

}  // namespace skein::model
