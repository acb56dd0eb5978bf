// The RWKV-4, x052 (RWKV-5.2) and x060 (RWKV-6) layers (spec §§3-5) over every row of a step.
//
// They share a shape: token shift, r/k/v projections, a recurrence per sequence, an output
// projection; then a channel mix gated by σ(receptance). They differ in the token shift
// (x060's is data-dependent through a LoRA), the decay (static for RWKV-4 and x052, a LoRA
// for x060) and the recurrence (RWKV-4's per-channel running average, a matrix per head for
// x052 and x060, read before it is updated, plus the bonus u for the current token).
#include <algorithm>
#include <cmath>
#include <vector>

#include "kernels/cpu/kernels.h"
#include "services/worker/model/layer_ops.h"
#include "services/worker/model/layer_step.h"

namespace skein::model {
namespace {

using kernels::MatMulJob;

// Channels per task of the RWKV-4 recurrence: enough work per task to be worth a thread,
// and several tasks per sequence so one sequence still spreads over the pool.
constexpr int64_t kV4ChannelsPerTask = 64;

// The token shift: mixes each row with the previous token's (in the x070 form; the weights
// hold 1 − μ for RWKV-4 and x052, see RwkvLayerWeights).
void TokenShift(const LayerStep& step) {
  const RwkvConfig& d = step.d;
  const RwkvLayerWeights& lw = step.lw;
  RwkvModel::Scratch& sc = step.sc;
  const int64_t C = d.n_embd, T = step.rows();
  if (d.version != RwkvVersion::kV6) {
    const bool has_gate = d.version == RwkvVersion::kV5_2;
    step.ParallelRows(8, [&](int64_t r) {
      const float* cur = sc.xa.row(r);
      const float* prev = step.Previous(sc.xa, r, false);
      float* xk = sc.xk.row(r);
      float* xv = sc.xv.row(r);
      float* xr = sc.xr.row(r);
      for (int64_t i = 0; i < C; ++i) {
        const float diff = prev[i] - cur[i];
        xk[i] = cur[i] + diff * lw.x_k[i];
        xv[i] = cur[i] + diff * lw.x_v[i];
        xr[i] = cur[i] + diff * lw.x_r[i];
      }
      if (has_gate) {
        float* xg = sc.xg.row(r);
        for (int64_t i = 0; i < C; ++i) xg[i] = cur[i] + (prev[i] - cur[i]) * lw.x_g[i];
      }
    });
    return;
  }
  // x060: m_i = tanh((xa + d⊙maa_x)·w1)[i-th D_mix slice]·w2[i] shifts each mix by a
  // data-dependent amount, for i = w, k, v, r, g.
  step.ParallelRows(8, [&](int64_t r) {
    const float* cur = sc.xa.row(r);
    const float* prev = step.Previous(sc.xa, r, false);
    float* xx = sc.xa_mix.row(r);
    for (int64_t i = 0; i < C; ++i) xx[i] = cur[i] + (prev[i] - cur[i]) * lw.maa_x[i];
  });
  kernels::MatMul(Job(sc.xa_mix, lw.maa_w1, sc.maa, T, false), step.pool);
  step.ParallelRows(8,
                    [&](int64_t r) { kernels::Tanh(sc.maa.row(r), sc.maa.row(r), 5 * d.d_mix); });
  Buffer* outs[5] = {&sc.xw, &sc.xk, &sc.xv, &sc.xr, &sc.xg};
  std::vector<MatMulJob> jobs;
  for (int i = 0; i < 5; ++i) {
    jobs.push_back(MatMulJob{sc.maa.ptr() + i * d.d_mix, sc.maa.cols, lw.maa_w2[i], outs[i]->ptr(),
                             C, T, false, false});
  }
  kernels::MatMulMany(jobs, step.pool);
  step.ParallelRows(8, [&](int64_t r) {
    const float* cur = sc.xa.row(r);
    const float* prev = step.Previous(sc.xa, r, false);
    const float* base[5] = {lw.x_w, lw.x_k, lw.x_v, lw.x_r, lw.x_g};
    for (int m = 0; m < 5; ++m) {
      float* out = outs[m]->row(r);  // holds m_i; becomes the mixed input
      for (int64_t i = 0; i < C; ++i) out[i] = cur[i] + (prev[i] - cur[i]) * (base[m][i] + out[i]);
    }
  });
}

// RWKV-4's recurrence (spec §5), per channel, in the max-tracking form that keeps the
// exponentials in range: y = σ(r) ⊙ wkv.
void V4Recurrence(const LayerStep& step) {
  const RwkvLayerWeights& lw = step.lw;
  RwkvModel::Scratch& sc = step.sc;
  const int64_t C = step.d.n_embd;
  step.ParallelRows(8, [&](int64_t r) { kernels::Sigmoid(sc.r.row(r), sc.r.row(r), C); });
  const int64_t chunks = (C + kV4ChannelsPerTask - 1) / kV4ChannelsPerTask;
  const int64_t tasks = static_cast<int64_t>(step.sequences.size()) * chunks;
  step.ParallelTasks(tasks, 1, [&](int64_t begin, int64_t end) {
    for (int64_t task = begin; task < end; ++task) {
      const int64_t s = task / chunks;
      const int64_t c0 = task % chunks * kV4ChannelsPerTask;
      const int64_t c1 = std::min(C, c0 + kV4ChannelsPerTask);
      absl::Span<float> att = step.sequences[s].state->att_kv(step.layer);
      float* aa = att.data();
      float* bb = aa + C;
      float* pp = bb + C;
      for (int64_t row = step.offsets[s]; row < step.offsets[s + 1]; ++row) {
        const float* k = sc.k.row(row);
        const float* v = sc.v.row(row);
        const float* rr = sc.r.row(row);
        float* y = sc.y.row(row);
        for (int64_t c = c0; c < c1; ++c) {
          float ww = lw.bonus[c] + k[c];
          float q = std::max(pp[c], ww);
          float e1 = std::exp(pp[c] - q), e2 = std::exp(ww - q);
          y[c] = rr[c] * (e1 * aa[c] + e2 * v[c]) / (e1 * bb[c] + e2);
          ww = lw.time_decay[c] + pp[c];
          q = std::max(ww, k[c]);
          e1 = std::exp(ww - q);
          e2 = std::exp(k[c] - q);
          aa[c] = e1 * aa[c] + e2 * v[c];
          bb[c] = e1 * bb[c] + e2;
          pp[c] = q;
        }
      }
    }
  });
}

// x052 / x060: the matrix recurrence per (sequence, head), then GroupNorm and the SiLU gate.
void MatrixRecurrence(const LayerStep& step) {
  const RwkvConfig& d = step.d;
  const RwkvLayerWeights& lw = step.lw;
  RwkvModel::Scratch& sc = step.sc;
  const int64_t C = d.n_embd, H = d.n_head, N = d.head_size;
  const bool static_decay = d.version == RwkvVersion::kV5_2;
  const int64_t tasks = static_cast<int64_t>(step.sequences.size()) * H;
  step.ParallelTasks(tasks, step.sequences.size() >= 4 ? H : 1, [&](int64_t begin, int64_t end) {
    for (int64_t task = begin; task < end; ++task) {
      const int64_t s = task / H, h = task % H;
      const int64_t row0 = step.offsets[s];
      const int64_t off = row0 * C + h * N;
      kernels::Wkv6HeadArgs args;
      args.state = step.sequences[s].state->att_kv(step.layer).data() + h * N * N;
      args.n = N;
      args.tokens = step.offsets[s + 1] - row0;
      args.stride = C;
      args.r = sc.r.ptr() + off;
      args.w = static_decay ? lw.time_decay + h * N : sc.decay.ptr() + off;
      args.w_stride = static_decay ? 0 : C;
      args.k = sc.k.ptr() + off;
      args.v = sc.v.ptr() + off;
      args.u = lw.bonus + h * N;
      args.y = sc.y.ptr() + off;
      args.y_stride = C;
      kernels::Wkv6Head(args);
    }
  });
  step.ParallelRows(4, [&](int64_t r) {
    float* y = sc.y.row(r);
    float* g = sc.gate.row(r);
    float* sig = sc.alpha.row(r);
    kernels::GroupNorm(y, lw.ln_x_w, lw.ln_x_b, H, N, kGroupNormEps, y);
    kernels::Sigmoid(g, sig, C);
    for (int64_t i = 0; i < C; ++i) y[i] *= g[i] * sig[i];  // silu(g) = g·σ(g)
  });
}

}  // namespace

void RunClassicLayer(const LayerStep& step) {
  const RwkvConfig& d = step.d;
  const RwkvLayerWeights& lw = step.lw;
  RwkvModel::Scratch& sc = step.sc;
  const int64_t T = step.rows();
  const int64_t C = d.n_embd;
  const bool v4 = d.version == RwkvVersion::kV4, v6 = d.version == RwkvVersion::kV6;

  // ---- time mix ----
  layer_ops::LayerNorm(step, sc.x, lw.ln1_w, lw.ln1_b, sc.xa);
  TokenShift(step);
  step.SaveLastRows(sc.xa, false);
  {
    std::vector<MatMulJob> jobs = {step.Big(sc.xr, lw.receptance, sc.r),
                                   step.Big(sc.xk, lw.key, sc.k), step.Big(sc.xv, lw.value, sc.v)};
    if (!v4) jobs.push_back(step.Big(sc.xg, lw.gate, sc.gate));
    if (v6) jobs.push_back(Job(sc.xw, lw.decay_w1, sc.lora_w, T, false));
    kernels::MatMulMany(jobs, step.pool);
  }
  if (v6) {
    // w = exp(−exp(time_decay + tanh(xw·w1)·w2)), in fp32 (spec §3).
    step.ParallelRows(
        8, [&](int64_t r) { kernels::Tanh(sc.lora_w.row(r), sc.lora_w.row(r), d.d_decay); });
    kernels::MatMul(Job(sc.lora_w, lw.decay_w2, sc.decay, T, false), step.pool);
    step.ParallelRows(8, [&](int64_t r) {
      float* w = sc.decay.row(r);
      for (int64_t i = 0; i < C; ++i) w[i] += lw.time_decay[i];
      kernels::Exp(w, w, C);
      for (int64_t i = 0; i < C; ++i) w[i] = -w[i];
      kernels::Exp(w, w, C);
    });
  }
  if (v4) {
    V4Recurrence(step);
  } else {
    MatrixRecurrence(step);
  }
  kernels::MatMul(step.Big(sc.y, lw.output, sc.x, /*accumulate=*/true), step.pool);

  // ---- channel mix: x += σ(W_r·rx) ⊙ W_v·relu(W_k·kx)² ----
  layer_ops::LayerNorm(step, sc.x, lw.ln2_w, lw.ln2_b, sc.xf);
  layer_ops::TokenShiftMix(step, sc.xf, /*ffn=*/true, {{lw.ffn_x_k, &sc.xk}, {lw.ffn_x_r, &sc.xr}});
  {
    std::vector<MatMulJob> jobs = {step.Big(sc.xk, lw.ffn_key, sc.ffn_hidden),
                                   step.Big(sc.xr, lw.ffn_receptance, sc.r)};
    kernels::MatMulMany(jobs, step.pool);
  }
  layer_ops::Activations(step, {{layer_ops::Activation::kSquaredRelu, &sc.ffn_hidden, d.ffn}});
  kernels::MatMul(step.Big(sc.ffn_hidden, lw.ffn_value, sc.v), step.pool);
  step.ParallelRows(4, [&](int64_t r) {
    float* gate = sc.r.row(r);
    const float* value = sc.v.row(r);
    float* x = sc.x.row(r);
    kernels::Sigmoid(gate, gate, C);
    for (int64_t i = 0; i < C; ++i) x[i] += gate[i] * value[i];
  });
}

}  // namespace skein::model
