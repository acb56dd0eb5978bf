#include "services/worker/model/rwkv7_reference.h"

#include <cmath>
#include <cstring>
#include <string>

#include "absl/strings/str_cat.h"
#include "base/float16.h"

namespace skein::model::testing {
namespace {

using Vec = std::vector<double>;

Vec LayerNorm(const Vec& x, const Vec& g, const Vec& b, double eps) {
  double mean = 0, var = 0;
  for (double v : x) mean += v;
  mean /= x.size();
  for (double v : x) var += (v - mean) * (v - mean);
  var /= x.size();
  Vec y(x.size());
  for (size_t i = 0; i < x.size(); ++i) y[i] = (x[i] - mean) / std::sqrt(var + eps) * g[i] + b[i];
  return y;
}

// y = W·x for W [rows, cols] stored row-major (nn.Linear).
Vec Linear(const Vec& w, const Vec& x) {
  const size_t cols = x.size(), rows = w.size() / cols;
  Vec y(rows, 0.0);
  for (size_t o = 0; o < rows; ++o)
    for (size_t i = 0; i < cols; ++i) y[o] += w[o * cols + i] * x[i];
  return y;
}

// y = x @ A for A [in, out] (LoRA layout).
Vec RowTimes(const Vec& x, const Vec& a) {
  const size_t in = x.size(), out = a.size() / in;
  Vec y(out, 0.0);
  for (size_t i = 0; i < in; ++i)
    for (size_t o = 0; o < out; ++o) y[o] += x[i] * a[i * out + o];
  return y;
}

double Sigmoid(double z) { return 1.0 / (1.0 + std::exp(-z)); }

}  // namespace

Rwkv7Reference::Rwkv7Reference(const TensorArchive& archive) : archive_(archive) {
  config_ = *LoadRwkvConfig(archive);
  const int64_t C = config_.n_embd, H = config_.n_head, N = config_.head_size;
  att_x_prev_.assign(config_.n_layer, Vec(C, 0.0));
  ffn_x_prev_.assign(config_.n_layer, Vec(C, 0.0));
  att_kv_.assign(config_.n_layer, Vec(H * N * N, 0.0));
}

Vec Rwkv7Reference::Get(const std::string& name) const {
  const TensorView* t = archive_.Find(name);
  Vec out(t->numel());
  Vec scales;
  for (int64_t i = 0; i < t->numel(); ++i) {
    const auto* bytes = static_cast<const uint8_t*>(t->data);
    if (t->dtype == DType::kF32) {
      float f;
      std::memcpy(&f, bytes + 4 * i, 4);
      out[i] = f;
    } else if (t->dtype == DType::kI8) {
      // An int8 matrix [rows, cols]: q · its row's scale (rwkv_config.h).
      if (scales.empty()) scales = Get(Int8ScaleName(name));
      out[i] = static_cast<int8_t>(bytes[i]) * scales[i / t->shape.back()];
    } else {
      uint16_t h;
      std::memcpy(&h, bytes + 2 * i, 2);
      out[i] = t->dtype == DType::kBF16 ? base::Bf16ToF32(h) : base::F16ToF32(h);
    }
  }
  return out;
}

std::vector<double> Rwkv7Reference::Forward(int64_t token) {
  const int64_t C = config_.n_embd, H = config_.n_head, N = config_.head_size;
  const Vec emb = Get("emb.weight");
  Vec x(emb.begin() + token * C, emb.begin() + (token + 1) * C);
  x = LayerNorm(x, Get("blocks.0.ln0.weight"), Get("blocks.0.ln0.bias"), 1e-5);
  Vec v_first;
  for (int l = 0; l < config_.n_layer; ++l) {
    const std::string p = absl::StrCat("blocks.", l, ".");
    auto P = [&](const char* name) { return Get(p + name); };
    // Time mix.
    const Vec xa = LayerNorm(x, P("ln1.weight"), P("ln1.bias"), 1e-5);
    Vec d(C);
    for (int64_t i = 0; i < C; ++i) d[i] = att_x_prev_[l][i] - xa[i];
    att_x_prev_[l] = xa;
    auto mix = [&](const char* name) {
      const Vec m = P(name);
      Vec out(C);
      for (int64_t i = 0; i < C; ++i) out[i] = xa[i] + d[i] * m[i];
      return out;
    };
    const Vec xr = mix("att.x_r"), xw = mix("att.x_w"), xk = mix("att.x_k"), xv = mix("att.x_v"),
              xA = mix("att.x_a"), xg = mix("att.x_g");
    const Vec r = Linear(P("att.receptance.weight"), xr);
    Vec k = Linear(P("att.key.weight"), xk);
    Vec v = Linear(P("att.value.weight"), xv);
    Vec wl = RowTimes(xw, P("att.w1"));
    for (double& z : wl) z = std::tanh(z);
    const Vec wz = RowTimes(wl, P("att.w2"));
    const Vec w0 = P("att.w0"), a0 = P("att.a0");
    const Vec az = RowTimes(RowTimes(xA, P("att.a1")), P("att.a2"));
    Vec gl = RowTimes(xg, P("att.g1"));
    for (double& z : gl) z = Sigmoid(z);
    const Vec g = RowTimes(gl, P("att.g2"));
    Vec w(C), alpha(C), kappa(C);
    const Vec k_k = P("att.k_k"), k_a = P("att.k_a");
    for (int64_t i = 0; i < C; ++i) {
      w[i] = std::exp(-std::exp(-0.5) * Sigmoid(w0[i] + wz[i]));
      alpha[i] = Sigmoid(a0[i] + az[i]);
      kappa[i] = k[i] * k_k[i];
    }
    for (int64_t h = 0; h < H; ++h) {
      double norm = 0;
      for (int64_t j = h * N; j < (h + 1) * N; ++j) norm += kappa[j] * kappa[j];
      norm = std::max(std::sqrt(norm), 1e-12);
      for (int64_t j = h * N; j < (h + 1) * N; ++j) kappa[j] /= norm;
    }
    for (int64_t i = 0; i < C; ++i) k[i] = k[i] * (1 + (alpha[i] - 1) * k_a[i]);
    if (l == 0) {
      v_first = v;
    } else {
      const Vec v0 = P("att.v0");
      const Vec vz = RowTimes(RowTimes(xv, P("att.v1")), P("att.v2"));
      for (int64_t i = 0; i < C; ++i) v[i] = v[i] + (v_first[i] - v[i]) * Sigmoid(v0[i] + vz[i]);
    }
    Vec y(C);
    for (int64_t h = 0; h < H; ++h) {
      double* S = att_kv_[l].data() + h * N * N;
      for (int64_t i = 0; i < N; ++i) {
        double sa = 0;
        for (int64_t j = 0; j < N; ++j) sa += -kappa[h * N + j] * S[i * N + j];
        double out = 0;
        for (int64_t j = 0; j < N; ++j) {
          const int64_t c = h * N + j;
          S[i * N + j] = S[i * N + j] * w[c] + k[c] * v[h * N + i] + sa * kappa[c] * alpha[c];
          out += S[i * N + j] * r[c];
        }
        y[h * N + i] = out;
      }
    }
    const Vec lnx_w = P("att.ln_x.weight"), lnx_b = P("att.ln_x.bias"), r_k = P("att.r_k");
    for (int64_t h = 0; h < H; ++h) {
      Vec part(y.begin() + h * N, y.begin() + (h + 1) * N);
      Vec gw(lnx_w.begin() + h * N, lnx_w.begin() + (h + 1) * N);
      Vec gb(lnx_b.begin() + h * N, lnx_b.begin() + (h + 1) * N);
      part = LayerNorm(part, gw, gb, 64e-5);
      double bonus = 0;
      for (int64_t j = 0; j < N; ++j) bonus += r[h * N + j] * k[h * N + j] * r_k[h * N + j];
      for (int64_t j = 0; j < N; ++j) y[h * N + j] = (part[j] + bonus * v[h * N + j]);
    }
    for (int64_t i = 0; i < C; ++i) y[i] *= g[i];
    const Vec att_out = Linear(P("att.output.weight"), y);
    for (int64_t i = 0; i < C; ++i) x[i] += att_out[i];
    // Channel mix.
    const Vec xf = LayerNorm(x, P("ln2.weight"), P("ln2.bias"), 1e-5);
    const Vec fx_k = P("ffn.x_k");
    Vec kx(C);
    for (int64_t i = 0; i < C; ++i) kx[i] = xf[i] + (ffn_x_prev_[l][i] - xf[i]) * fx_k[i];
    ffn_x_prev_[l] = xf;
    Vec hidden = Linear(P("ffn.key.weight"), kx);
    for (double& z : hidden) z = z > 0 ? z * z : 0.0;
    const Vec ffn_out = Linear(P("ffn.value.weight"), hidden);
    for (int64_t i = 0; i < C; ++i) x[i] += ffn_out[i];
  }
  return Linear(Get("head.weight"), LayerNorm(x, Get("ln_out.weight"), Get("ln_out.bias"), 1e-5));
}

}  // namespace skein::model::testing
