#include "kernels/cuda/reference/rwkv7_reference_forward.h"

#include <algorithm>
#include <cmath>

#include "kernels/cuda/reference/reference_ops.h"
#include "kernels/cuda/rwkv7_step.h"

namespace skein::cuda::reference {
namespace {

using Vector = std::vector<float>;

float Sigmoid(float x) { return 1.0f / (1.0f + std::exp(-x)); }

// LayerNorm over x (n values), biased variance, in double.
Vector LayerNorm(const float* x, const float* w, const float* b, int64_t n, float eps) {
  double sum = 0.0;
  for (int64_t i = 0; i < n; ++i) sum += x[i];
  const double mean = sum / static_cast<double>(n);
  double squares = 0.0;
  for (int64_t i = 0; i < n; ++i) squares += (x[i] - mean) * (x[i] - mean);
  const double rstd = 1.0 / std::sqrt(squares / static_cast<double>(n) + eps);
  Vector y(n);
  for (int64_t i = 0; i < n; ++i) y[i] = static_cast<float>((x[i] - mean) * rstd * w[i] + b[i]);
  return y;
}

// x rounded to `t` (the product inputs' type; the identity for fp32).
Vector Round(DType t, Vector x) {
  for (float& v : x) v = RoundTo(t, v);
  return x;
}

// y = W·x for W stored [n][k] (nn.Linear, and the transposed LoRA factors).
Vector Linear(const float* w, const Vector& x, int64_t n) {
  const int64_t k = static_cast<int64_t>(x.size());
  Vector y(n);
  for (int64_t o = 0; o < n; ++o) {
    double sum = 0.0;
    for (int64_t i = 0; i < k; ++i) sum += static_cast<double>(w[o * k + i]) * x[i];
    y[o] = static_cast<float>(sum);
  }
  return y;
}

}  // namespace

Rwkv7ReferenceModel::Rwkv7ReferenceModel(const Rwkv7WeightLayout& layout,
                                         const std::vector<uint8_t>& bytes, bool round_activations)
    : layout_(layout), act_(ActivationType(layout.dtype(), round_activations)) {
  for (const TensorSpec& t : layout.tensors()) {
    const DType type = t.matrix ? layout.dtype() : DType::kF32;
    Vector values(t.count());
    for (int64_t i = 0; i < t.count(); ++i) values[i] = LoadAs(bytes.data() + t.offset, type, i);
    tensors_.push_back(std::move(values));
  }
}

std::vector<uint8_t> Rwkv7ReferenceModel::MakeRandomWeights(const Rwkv7WeightLayout& layout,
                                                            uint64_t seed) {
  std::vector<uint8_t> bytes(layout.total_bytes());
  const auto& tensors = layout.tensors();
  for (size_t i = 0; i < tensors.size(); ++i) {
    const TensorSpec& t = tensors[i];
    FillUniform(bytes.data() + t.offset, t.matrix ? layout.dtype() : DType::kF32, t.count(),
                seed + i, t.init_offset, t.init_scale);
  }
  return bytes;
}

std::vector<uint8_t> Rwkv7ReferenceModel::WidenToF32(const Rwkv7WeightLayout& layout,
                                                     const std::vector<uint8_t>& bytes) {
  const Rwkv7WeightLayout f32(layout.shape(), DType::kF32, layout.first_layer(),
                              layout.last_layer());
  std::vector<uint8_t> out(f32.total_bytes());
  for (size_t i = 0; i < layout.tensors().size(); ++i) {
    const TensorSpec& from = layout.tensors()[i];
    const TensorSpec& to = f32.tensors()[i];
    const DType type = from.matrix ? layout.dtype() : DType::kF32;
    for (int64_t e = 0; e < from.count(); ++e) {
      StoreAs(out.data() + to.offset, DType::kF32, e, LoadAs(bytes.data() + from.offset, type, e));
    }
  }
  return out;
}

Rwkv7HostState Rwkv7ReferenceModel::NewState() const {
  const Rwkv7Shape& s = layout_.shape();
  Rwkv7HostState state;
  state.att_x_prev.assign(s.layers * s.embd, 0.0f);
  state.ffn_x_prev.assign(s.layers * s.embd, 0.0f);
  state.wkv.assign(s.layers * s.embd * s.head_size, 0.0f);
  return state;
}

void Rwkv7ReferenceModel::Token(int32_t token, Rwkv7HostState* state, Vector* logits) const {
  const Rwkv7Shape& s = layout_.shape();
  const int64_t C = s.embd, H = s.heads(), N = s.head_size;
  Vector x =
      LayerNorm(G(kEmb) + static_cast<int64_t>(token) * C, G(kLn0W), G(kLn0B), C, kLayerNormEps);
  Vector v_first;
  for (int64_t l = 0; l < s.layers; ++l) {
    // ---- time mix ----
    const Vector xa = LayerNorm(x.data(), P(l, kLn1W), P(l, kLn1B), C, kLayerNormEps);
    float* prev = state->att_x_prev.data() + l * C;
    auto mixed = [&](LayerTensor mu) {
      Vector out(C);
      for (int64_t i = 0; i < C; ++i) out[i] = xa[i] + (prev[i] - xa[i]) * P(l, mu)[i];
      return Round(act_, std::move(out));
    };
    const Vector xr = mixed(kXr), xw = mixed(kXw), xk = mixed(kXk), xv = mixed(kXv),
                 xA = mixed(kXa), xg = mixed(kXg);
    std::copy(xa.begin(), xa.end(), prev);
    const Vector r = Linear(P(l, kWr), xr, C);
    Vector k = Linear(P(l, kWk), xk, C);
    Vector v = Linear(P(l, kWv), xv, C);

    Vector tw = Linear(P(l, kW1), xw, s.d_decay);
    for (float& e : tw) e = std::tanh(e);
    const Vector z = Linear(P(l, kW2), Round(act_, tw), C);
    const Vector za = Linear(P(l, kA2), Round(act_, Linear(P(l, kA1), xA, s.d_iclr)), C);
    Vector tg = Linear(P(l, kG1), xg, s.d_gate);
    for (float& e : tg) e = Sigmoid(e);
    const Vector g = Linear(P(l, kG2), Round(act_, tg), C);

    Vector w(C), alpha(C), kappa(C);
    for (int64_t i = 0; i < C; ++i) {
      w[i] = std::exp(-kDecayScale * Sigmoid(P(l, kW0)[i] + z[i]));
      alpha[i] = Sigmoid(P(l, kA0)[i] + za[i]);
      kappa[i] = k[i] * P(l, kKk)[i];
    }
    for (int64_t h = 0; h < H; ++h) {
      double squares = 0.0;
      for (int64_t j = h * N; j < (h + 1) * N; ++j)
        squares += static_cast<double>(kappa[j]) * kappa[j];
      const float norm = std::max(static_cast<float>(std::sqrt(squares)), kL2MinNorm);
      for (int64_t j = h * N; j < (h + 1) * N; ++j) kappa[j] /= norm;
    }
    for (int64_t i = 0; i < C; ++i) k[i] = k[i] * (1.0f + (alpha[i] - 1.0f) * P(l, kKa)[i]);
    if (l == 0) {
      v_first = v;
    } else {
      const Vector zv = Linear(P(l, kV2), Round(act_, Linear(P(l, kV1), xv, s.d_value)), C);
      for (int64_t i = 0; i < C; ++i) {
        v[i] = v[i] + (v_first[i] - v[i]) * Sigmoid(P(l, kV0)[i] + zv[i]);
      }
    }

    Vector y(C);
    for (int64_t h = 0; h < H; ++h) {
      float* S = state->wkv.data() + (l * H + h) * N * N;
      const int64_t o = h * N;
      for (int64_t i = 0; i < N; ++i) {
        float* row = S + i * N;
        double sa = 0.0;
        for (int64_t j = 0; j < N; ++j) sa -= static_cast<double>(kappa[o + j]) * row[j];
        double out = 0.0;
        for (int64_t j = 0; j < N; ++j) {
          const float b = kappa[o + j] * alpha[o + j];
          row[j] = row[j] * w[o + j] + k[o + j] * v[o + i] + static_cast<float>(sa) * b;
          out += static_cast<double>(row[j]) * r[o + j];
        }
        y[o + i] = static_cast<float>(out);
      }
    }
    Vector gated(C);
    for (int64_t h = 0; h < H; ++h) {
      const int64_t o = h * N;
      const Vector gn = LayerNorm(y.data() + o, P(l, kLnxW) + o, P(l, kLnxB) + o, N, kGroupNormEps);
      double bonus = 0.0;
      for (int64_t j = o; j < o + N; ++j) bonus += static_cast<double>(r[j]) * k[j] * P(l, kRk)[j];
      for (int64_t j = 0; j < N; ++j) {
        gated[o + j] = (gn[j] + static_cast<float>(bonus) * v[o + j]) * g[o + j];
      }
    }
    const Vector att = Linear(P(l, kWo), Round(act_, gated), C);
    for (int64_t i = 0; i < C; ++i) x[i] += att[i];

    // ---- channel mix ----
    const Vector xf = LayerNorm(x.data(), P(l, kLn2W), P(l, kLn2B), C, kLayerNormEps);
    float* fprev = state->ffn_x_prev.data() + l * C;
    Vector kx(C);
    for (int64_t i = 0; i < C; ++i) kx[i] = xf[i] + (fprev[i] - xf[i]) * P(l, kFfnXk)[i];
    std::copy(xf.begin(), xf.end(), fprev);
    Vector hidden = Linear(P(l, kFfnKey), Round(act_, kx), s.ffn);
    for (float& e : hidden) e = std::max(e, 0.0f) * std::max(e, 0.0f);
    const Vector ffn = Linear(P(l, kFfnValue), Round(act_, hidden), C);
    for (int64_t i = 0; i < C; ++i) x[i] += ffn[i];
  }
  const Vector out = Round(act_, LayerNorm(x.data(), G(kLnOutW), G(kLnOutB), C, kLayerNormEps));
  *logits = Linear(G(kHead), out, s.vocab);
}

}  // namespace skein::cuda::reference
