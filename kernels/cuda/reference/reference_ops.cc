#include "kernels/cuda/reference/reference_ops.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "base/float16.h"
#include "kernels/cuda/hash_uniform.h"

namespace skein::cuda::reference {
namespace {

float Sigmoid(float x) { return 1.0f / (1.0f + std::exp(-x)); }

// Mean and 1/√(var + eps) of n values (var biased), accumulated in double.
void Stats(const float* x, int64_t n, float eps, float* mean, float* rstd) {
  double sum = 0.0;
  for (int64_t i = 0; i < n; ++i) sum += x[i];
  const double m = sum / static_cast<double>(n);
  double squares = 0.0;
  for (int64_t i = 0; i < n; ++i) squares += (x[i] - m) * (x[i] - m);
  *mean = static_cast<float>(m);
  *rstd = static_cast<float>(1.0 / std::sqrt(squares / static_cast<double>(n) + eps));
}

void LayerNormRow(const float* x, const float* w, const float* b, int64_t n, float eps, float* y) {
  float mean = 0.0f, rstd = 0.0f;
  Stats(x, n, eps, &mean, &rstd);
  for (int64_t i = 0; i < n; ++i) y[i] = (x[i] - mean) * rstd * w[i] + b[i];
}

}  // namespace

float LoadAs(const void* p, DType type, int64_t i) {
  switch (type) {
    case DType::kBF16:
      return base::Bf16ToF32(static_cast<const uint16_t*>(p)[i]);
    case DType::kF16:
      return base::F16ToF32(static_cast<const uint16_t*>(p)[i]);
    default:
      return static_cast<const float*>(p)[i];
  }
}

void StoreAs(void* p, DType type, int64_t i, float v) {
  switch (type) {
    case DType::kBF16:
      static_cast<uint16_t*>(p)[i] = base::F32ToBf16(v);
      break;
    case DType::kF16:
      static_cast<uint16_t*>(p)[i] = base::F32ToF16(v);
      break;
    default:
      static_cast<float*>(p)[i] = v;
  }
}

float RoundTo(DType type, float v) {
  switch (type) {
    case DType::kBF16:
      return base::Bf16ToF32(base::F32ToBf16(v));
    case DType::kF16:
      return base::F16ToF32(base::F32ToF16(v));
    default:
      return v;
  }
}

void FillUniform(void* dst, DType type, int64_t count, uint64_t seed, float offset, float scale) {
  for (int64_t i = 0; i < count; ++i) {
    StoreAs(dst, type, i, HashUniform(seed, static_cast<uint64_t>(i), offset, scale));
  }
}

void EmbedLayerNorm(const EmbedArgs& a) {
  std::vector<float> e(a.C);
  for (int64_t r = 0; r < a.rows; ++r) {
    const int64_t base = static_cast<int64_t>(a.tokens[r]) * a.C;
    for (int64_t i = 0; i < a.C; ++i) e[i] = LoadAs(a.emb, a.emb_type, base + i);
    LayerNormRow(e.data(), a.ln_w, a.ln_b, a.C, kLayerNormEps, a.x + r * a.C);
  }
}

void ShiftMix(const ShiftMixArgs& a) {
  const int64_t C = a.C;
  std::vector<float> cur(C), prev(C);
  for (int64_t s = 0; s < a.sessions; ++s) {
    float* state = a.shift_state + static_cast<int64_t>(a.slots[s]) * a.slot_stride;
    std::copy(state, state + C, prev.begin());
    for (int64_t t = 0; t < a.tokens; ++t) {
      const int64_t row = s * a.tokens + t;
      LayerNormRow(a.x + row * C, a.ln_w, a.ln_b, C, kLayerNormEps, cur.data());
      for (int m = 0; m < a.mixes; ++m) {
        for (int64_t i = 0; i < C; ++i) {
          StoreAs(a.out[m], a.out_type, row * C + i, cur[i] + (prev[i] - cur[i]) * a.mix[m][i]);
        }
      }
      prev = cur;
    }
    // The contract: in place for one token, else into `saved` for CommitShift.
    std::copy(cur.begin(), cur.end(), a.tokens == 1 ? state : a.saved + s * C);
  }
}

void CommitShift(const float* saved, float* shift_state, int64_t slot_stride, const int32_t* slots,
                 int64_t sessions, int64_t C) {
  for (int64_t s = 0; s < sessions; ++s) {
    std::memcpy(shift_state + static_cast<int64_t>(slots[s]) * slot_stride, saved + s * C,
                C * sizeof(float));
  }
}

void Unary(UnaryOp op, const float* x, void* y, DType y_type, int64_t n) {
  Unary(op, x, y, y_type, n, 0);
}

void Unary(UnaryOp op, const float* x, void* y, DType y_type, int64_t n, int64_t y_offset) {
  for (int64_t i = 0; i < n; ++i) {
    float v = x[i];
    switch (op) {
      case UnaryOp::kTanh:
        v = std::tanh(v);
        break;
      case UnaryOp::kSigmoid:
        v = Sigmoid(v);
        break;
      case UnaryOp::kSquaredRelu:
        v = std::max(v, 0.0f) * std::max(v, 0.0f);
        break;
      case UnaryOp::kIdentity:
        break;
    }
    StoreAs(y, y_type, y_offset + i, v);
  }
}

void Rwkv7Prepare(const PrepareArgs& p) {
  const int64_t N = p.head_size;
  for (int64_t row = 0; row < p.rows; ++row) {
    const int64_t o = row * p.C;
    for (int64_t h = 0; h < p.C / N; ++h) {
      double squares = 0.0;
      for (int64_t c = h * N; c < (h + 1) * N; ++c) {
        const double kappa = static_cast<double>(p.k[o + c]) * p.k_k[c];
        squares += kappa * kappa;
      }
      const float norm = std::max(static_cast<float>(std::sqrt(squares)), kL2MinNorm);
      for (int64_t c = h * N; c < (h + 1) * N; ++c) {
        const int64_t i = o + c;
        const float kappa = p.k[i] * p.k_k[c] / norm;
        const float alpha = Sigmoid(p.a0[c] + p.alpha[i]);
        p.decay[i] = std::exp(-kDecayScale * Sigmoid(p.w0[c] + p.decay[i]));
        p.a[i] = -kappa;
        p.b[i] = kappa * alpha;
        p.k[i] = p.k[i] * (1.0f + (alpha - 1.0f) * p.k_a[c]);
        if (p.first_layer) {
          p.v_first[i] = p.v[i];
        } else {
          p.v[i] = p.v[i] + (p.v_first[i] - p.v[i]) * Sigmoid(p.v0[c] + p.v_gate[i]);
        }
      }
    }
  }
}

void Wkv7(const Wkv7Args& p) {
  const int64_t N = kWkvHeadSize;
  for (int64_t s = 0; s < p.sessions; ++s) {
    for (int64_t h = 0; h < p.C / N; ++h) {
      float* S = p.state + static_cast<int64_t>(p.slots[s]) * p.slot_stride + h * N * N;
      for (int64_t t = 0; t < p.tokens; ++t) {
        const int64_t o = (s * p.tokens + t) * p.C + h * N;
        for (int64_t i = 0; i < N; ++i) {
          float* row = S + i * N;
          double sa = 0.0;
          for (int64_t j = 0; j < N; ++j) sa += static_cast<double>(p.a[o + j]) * row[j];
          double y = 0.0;
          for (int64_t j = 0; j < N; ++j) {
            row[j] =
                row[j] * p.w[o + j] + p.k[o + j] * p.v[o + i] + static_cast<float>(sa) * p.b[o + j];
            y += static_cast<double>(row[j]) * p.r[o + j];
          }
          p.y[o + i] = static_cast<float>(y);
        }
      }
    }
  }
}

void Wkv7Chunked(const Wkv7Args& p, int64_t chunk, float* scratch) {
  const int64_t N = kWkvHeadSize, H = p.C / N;
  const int64_t chunks = (p.tokens + chunk - 1) / chunk;
  const int64_t per = p.sessions * H * chunks * N * N;
  float* transfer_p = scratch;
  float* transfer_c = scratch + per;
  float* starts = scratch + 2 * per;
  auto block = [&](int64_t s, int64_t h, int64_t c) { return ((s * H + h) * chunks + c) * N * N; };
  // One token's update of an N×N matrix M (rows = value channels); without the k·v term
  // when `with_kv` is false (the transfer P).
  auto update = [&](float* M, int64_t o, bool with_kv) {
    for (int64_t i = 0; i < N; ++i) {
      float* row = M + i * N;
      float sa = 0.0f;
      for (int64_t j = 0; j < N; ++j) sa += p.a[o + j] * row[j];
      for (int64_t j = 0; j < N; ++j) {
        row[j] = row[j] * p.w[o + j] + (with_kv ? p.k[o + j] * p.v[o + i] : 0.0f) + sa * p.b[o + j];
      }
    }
  };
  for (int64_t s = 0; s < p.sessions; ++s) {
    for (int64_t h = 0; h < H; ++h) {
      // 1. Each chunk's transfer: S_end = S_start·P + Cc.
      for (int64_t c = 0; c < chunks; ++c) {
        float* P = transfer_p + block(s, h, c);
        float* Cc = transfer_c + block(s, h, c);
        for (int64_t e = 0; e < N * N; ++e) {
          P[e] = (e / N == e % N) ? 1.0f : 0.0f;
          Cc[e] = 0.0f;
        }
        for (int64_t t = c * chunk; t < std::min(p.tokens, (c + 1) * chunk); ++t) {
          const int64_t o = (s * p.tokens + t) * p.C + h * N;
          update(Cc, o, true);
          update(P, o, false);
        }
      }
      // 2. The chain of start states.
      float* state = p.state + static_cast<int64_t>(p.slots[s]) * p.slot_stride + h * N * N;
      std::vector<float> cur(state, state + N * N), next(N * N);
      for (int64_t c = 0; c < chunks; ++c) {
        std::copy(cur.begin(), cur.end(), starts + block(s, h, c));
        const float* P = transfer_p + block(s, h, c);
        const float* Cc = transfer_c + block(s, h, c);
        for (int64_t i = 0; i < N; ++i) {
          for (int64_t j = 0; j < N; ++j) {
            float sum = Cc[i * N + j];
            for (int64_t m = 0; m < N; ++m) sum += cur[i * N + m] * P[m * N + j];
            next[i * N + j] = sum;
          }
        }
        cur.swap(next);
      }
      // 3. Each chunk rerun from its start state, with outputs; the last one ends in the state.
      for (int64_t c = 0; c < chunks; ++c) {
        std::vector<float> M(starts + block(s, h, c), starts + block(s, h, c) + N * N);
        for (int64_t t = c * chunk; t < std::min(p.tokens, (c + 1) * chunk); ++t) {
          const int64_t o = (s * p.tokens + t) * p.C + h * N;
          update(M.data(), o, true);
          for (int64_t i = 0; i < N; ++i) {
            double y = 0.0;
            for (int64_t j = 0; j < N; ++j) y += static_cast<double>(M[i * N + j]) * p.r[o + j];
            p.y[o + i] = static_cast<float>(y);
          }
        }
        if (c == chunks - 1) std::copy(M.begin(), M.end(), state);
      }
    }
  }
}

void GroupNormBonusGate(const GroupNormBonusGateArgs& a) {
  const int64_t N = a.head_size;
  std::vector<float> o(N);
  for (int64_t row = 0; row < a.rows; ++row) {
    for (int64_t h = 0; h < a.C / N; ++h) {
      const int64_t base = row * a.C + h * N;
      LayerNormRow(a.y + base, a.ln_w + h * N, a.ln_b + h * N, N, kGroupNormEps, o.data());
      double bonus = 0.0;
      for (int64_t j = 0; j < N; ++j) {
        bonus += static_cast<double>(a.r[base + j]) * a.k[base + j] * a.r_k[h * N + j];
      }
      for (int64_t j = 0; j < N; ++j) {
        const float out = (o[j] + static_cast<float>(bonus) * a.v[base + j]) * a.g[base + j];
        StoreAs(a.out, a.out_type, base + j, out);
      }
    }
  }
}

void Rwkv7TimeMixCore(const TimeMixCoreArgs& a) {
  const int64_t n = a.sessions * a.tokens * a.C;
  std::vector<float> decay(a.decay, a.decay + n), k(a.k, a.k + n), v(a.v, a.v + n);
  std::vector<float> av(n), bv(n), y(n);
  PrepareArgs p;
  p.rows = a.sessions * a.tokens;
  p.C = a.C;
  p.head_size = kWkvHeadSize;
  p.first_layer = a.first_layer;
  p.decay = decay.data();
  p.w0 = a.w0;
  p.alpha = a.alpha;
  p.a0 = a.a0;
  p.k = k.data();
  p.k_k = a.k_k;
  p.k_a = a.k_a;
  p.v = v.data();
  p.v_gate = a.v_gate;
  p.v0 = a.v0;
  p.v_first = a.v_first;
  p.a = av.data();
  p.b = bv.data();
  Rwkv7Prepare(p);
  Wkv7Args w;
  w.sessions = a.sessions;
  w.tokens = a.tokens;
  w.C = a.C;
  w.state = a.state;
  w.slot_stride = a.slot_stride;
  w.slots = a.slots;
  w.r = a.r;
  w.w = decay.data();
  w.k = k.data();
  w.v = v.data();
  w.a = av.data();
  w.b = bv.data();
  w.y = y.data();
  Wkv7(w);
  GroupNormBonusGateArgs g;
  g.rows = p.rows;
  g.C = a.C;
  g.head_size = kWkvHeadSize;
  g.y = y.data();
  g.r = a.r;
  g.k = k.data();
  g.v = v.data();
  g.r_k = a.r_k;
  g.ln_w = a.ln_w;
  g.ln_b = a.ln_b;
  g.g = a.g;
  g.out = a.out;
  g.out_type = a.out_type;
  GroupNormBonusGate(g);
}

void LayerNormLastRows(const float* x, const float* ln_w, const float* ln_b, int64_t sessions,
                       int64_t tokens, int64_t C, void* out, DType out_type) {
  std::vector<float> y(C);
  for (int64_t s = 0; s < sessions; ++s) {
    LayerNormRow(x + (s * tokens + tokens - 1) * C, ln_w, ln_b, C, kLayerNormEps, y.data());
    for (int64_t i = 0; i < C; ++i) StoreAs(out, out_type, s * C + i, y[i]);
  }
}

void Gemm(const GemmArgs& g) {
  std::vector<float> w(g.n * g.k);  // as [n][k]
  for (int64_t o = 0; o < g.n; ++o) {
    for (int64_t i = 0; i < g.k; ++i) {
      const int64_t index = g.layout == WeightLayout::kOutIn ? o * g.k + i : i * g.n + o;
      w[o * g.k + i] = LoadAs(g.w, g.type, index);
    }
  }
  std::vector<float> x(g.k);
  for (int64_t r = 0; r < g.m; ++r) {
    for (int64_t i = 0; i < g.k; ++i) x[i] = LoadAs(g.x, g.x_type, r * g.k + i);
    for (int64_t o = 0; o < g.n; ++o) {
      double sum = 0.0;
      for (int64_t i = 0; i < g.k; ++i) sum += static_cast<double>(x[i]) * w[o * g.k + i];
      float* y = g.y + r * g.n + o;
      *y = g.accumulate ? *y + static_cast<float>(sum) : static_cast<float>(sum);
      if (g.y_act != nullptr) Unary(g.act, y, g.y_act, g.x_type, 1, r * g.n + o);
    }
  }
}

void GemmGroup(const GemmArgs* jobs, int count) {
  for (int j = 0; j < count; ++j) Gemm(jobs[j]);
}

}  // namespace skein::cuda::reference
