#include "services/worker/model/layer_ops.h"

#include <algorithm>
#include <cstring>

namespace skein::model::layer_ops {
namespace {

constexpr float kL2MinNorm = 1e-12f;
// exp(-0.5): the decay is w = exp(-e^{-1/2}·σ(z)) (spec §2.4).
constexpr float kDecayScale = 0.6065306597126334f;

}  // namespace

void LayerNorm(const LayerStep& step, const Buffer& in, const float* w, const float* b,
               Buffer& out) {
  const int64_t C = step.d.n_embd;
  step.ParallelRows(
      8, [&](int64_t r) { kernels::LayerNorm(in.row(r), w, b, C, kLayerNormEps, out.row(r)); });
}

void TokenShiftMix(const LayerStep& step, const Buffer& normed, bool ffn,
                   std::initializer_list<Mix> mixes) {
  const int64_t C = step.d.n_embd;
  step.ParallelRows(8, [&](int64_t r) {
    const float* cur = normed.row(r);
    const float* prev = step.Previous(normed, r, ffn);
    for (const Mix& m : mixes) {
      float* out = m.out->row(r);
      const float* mu = m.coefficients;
      for (int64_t i = 0; i < C; ++i) out[i] = cur[i] + (prev[i] - cur[i]) * mu[i];
    }
  });
  step.SaveLastRows(normed, ffn);
}

void Products(const LayerStep& step, absl::Span<const kernels::MatMulJob> jobs) {
  kernels::MatMulMany(jobs, step.pool);
}

void Activations(const LayerStep& step, std::initializer_list<Activate> activations) {
  step.ParallelRows(8, [&](int64_t r) {
    for (const Activate& a : activations) {
      float* x = a.buffer->row(r);
      switch (a.activation) {
        case Activation::kTanh:
          kernels::Tanh(x, x, a.cols);
          break;
        case Activation::kSigmoid:
          kernels::Sigmoid(x, x, a.cols);
          break;
        case Activation::kSquaredRelu:
          for (int64_t i = 0; i < a.cols; ++i) {
            const float relu = std::max(x[i], 0.0f);  // branch-free, so it vectorizes
            x[i] = relu * relu;
          }
          break;
      }
    }
  });
}

void PrepareX070(const LayerStep& step, bool value_residual) {
  const RwkvLayerWeights& lw = step.lw;
  RwkvModel::Scratch& sc = step.sc;
  const int64_t C = step.d.n_embd, H = step.d.n_head, N = step.d.head_size;
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
}

void Wkv7(const LayerStep& step) {
  RwkvModel::Scratch& sc = step.sc;
  const int64_t C = step.d.n_embd, H = step.d.n_head, N = step.d.head_size;
  const int64_t tasks = static_cast<int64_t>(step.sequences.size()) * H;
  auto wkv = [&](int64_t begin, int64_t end) {
    for (int64_t task = begin; task < end; ++task) {
      const int64_t s = task / H, h = task % H;
      const int64_t row0 = step.offsets[s];
      const int64_t off = row0 * C + h * N;
      kernels::Wkv7HeadArgs args;
      args.state = step.sequences[s].state->att_kv(step.layer).data() + h * N * N;
      args.n = N;
      args.tokens = step.offsets[s + 1] - row0;
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
  step.ParallelTasks(tasks, step.sequences.size() >= 4 ? H : 1, wkv);
}

void GroupNormBonusGate(const LayerStep& step) {
  const RwkvLayerWeights& lw = step.lw;
  RwkvModel::Scratch& sc = step.sc;
  const int64_t C = step.d.n_embd, H = step.d.n_head, N = step.d.head_size;
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
}

}  // namespace skein::model::layer_ops
