// The SIMD kernels, written once over a vector-traits class `S` and instantiated by each ISA
// translation unit (kernels_avx2.cc, kernels_avx512.cc) with its own traits.
//
// Include only from those units, and only after defining the traits in an unnamed namespace:
// every function here is a template over `S`, so each unit gets its own private copies
// compiled with its own -m flags (see kernel_table.h).
//
// `S` provides: V (vector of kLanes floats); kTileRows/kTileCols (register tile of the
// matrix product); Zero, Set1, Load, LoadPartial (first `count` lanes, rest zero), Store,
// StorePartial, KeepFirst (zero all but the first `count` lanes), Add, Sub, Mul,
// Fma(a, b, c) = a·b + c, ReduceAdd; and weight loads
// LoadWeights(const T*, Tag) / LoadWeightsPartial(const T*, int count, Tag) widening
// kLanes weights of type Tag to fp32.
#ifndef SKEIN_KERNELS_CPU_SIMD_KERNELS_IMPL_H_
#define SKEIN_KERNELS_CPU_SIMD_KERNELS_IMPL_H_

#include <cmath>
#include <cstdint>
#include <utility>

#include "kernels/cpu/kernel_table.h"

namespace skein::kernels::simd {

// Weight element tags.
struct F32Tag {
  using T = float;
};
struct Bf16Tag {
  using T = uint16_t;
};
struct F16Tag {
  using T = uint16_t;
};

// The contraction dimension is cut into blocks of this many values so that a register tile's
// rows of x and w stay in L1 when K is large (the FFN's down-projection has K = 4C).
inline constexpr int64_t kBlockK = 1024;
// Output rows per block: the weights of one block (kBlockRows × kBlockK) stay in L2 while
// every batch row is multiplied with them.
inline constexpr int64_t kBlockRows = 96;

template <class S>
struct Kernels {
  using V = typename S::V;
  static constexpr int kLanes = S::kLanes;
  static constexpr int kMR = S::kTileRows;
  static constexpr int kNR = S::kTileCols;

  // y[m][n] (+)= Σ_{i<kc} x[m][i]·w[n][i] for an MR×NR tile.
  template <class Tag, int MR, int NR>
  static void Tile(const float* x, int64_t ldx, const typename Tag::T* w, int64_t ldw,
                   int64_t kc, float* y, int64_t ldy, bool add) {
    V acc[MR][NR];
    for (int m = 0; m < MR; ++m)
      for (int n = 0; n < NR; ++n) acc[m][n] = S::Zero();
    int64_t k = 0;
    for (; k + kLanes <= kc; k += kLanes) {
      V xv[MR];
      for (int m = 0; m < MR; ++m) xv[m] = S::Load(x + m * ldx + k);
      for (int n = 0; n < NR; ++n) {
        const V wv = S::LoadWeights(w + n * ldw + k, Tag{});
        for (int m = 0; m < MR; ++m) acc[m][n] = S::Fma(xv[m], wv, acc[m][n]);
      }
    }
    if (k < kc) {
      const int rest = static_cast<int>(kc - k);
      V xv[MR];
      for (int m = 0; m < MR; ++m) xv[m] = S::LoadPartial(x + m * ldx + k, rest);
      for (int n = 0; n < NR; ++n) {
        const V wv = S::LoadWeightsPartial(w + n * ldw + k, rest, Tag{});
        for (int m = 0; m < MR; ++m) acc[m][n] = S::Fma(xv[m], wv, acc[m][n]);
      }
    }
    for (int m = 0; m < MR; ++m) {
      float* out = y + m * ldy;
      for (int n = 0; n < NR; ++n) {
        const float sum = S::ReduceAdd(acc[m][n]);
        out[n] = add ? out[n] + sum : sum;
      }
    }
  }

  template <class Tag>
  using TileFn = void (*)(const float*, int64_t, const typename Tag::T*, int64_t, int64_t,
                          float*, int64_t, bool);

  // kTiles<Tag>[mr-1][nr-1] = Tile<Tag, mr, nr>, for edge tiles.
  template <class Tag, int... I>
  static constexpr auto MakeTileTable(std::integer_sequence<int, I...>) {
    struct Table {
      TileFn<Tag> fn[kMR][kNR];
    } table{};
    ((table.fn[I / kNR][I % kNR] = &Tile<Tag, I / kNR + 1, I % kNR + 1>), ...);
    return table;
  }

  template <class Tag>
  static void MatMulTyped(const MatMulJob& job, int64_t b_begin, int64_t b_end,
                          int64_t o_begin, int64_t o_end) {
    static constexpr auto kTiles =
        MakeTileTable<Tag>(std::make_integer_sequence<int, kMR * kNR>{});
    const auto* w = static_cast<const typename Tag::T*>(job.w.data);
    const int64_t ldw = job.w.stride;
    const int64_t kdim = job.w.cols;
    if (kdim == 0 && !job.accumulate) {
      for (int64_t b = b_begin; b < b_end; ++b)
        for (int64_t o = o_begin; o < o_end; ++o) job.y[b * job.ldy + o] = 0.0f;
    }
    for (int64_t k0 = 0; k0 < kdim; k0 += kBlockK) {
      const int64_t kc = kdim - k0 < kBlockK ? kdim - k0 : kBlockK;
      const bool add = job.accumulate || k0 > 0;
      for (int64_t o0 = o_begin; o0 < o_end; o0 += kBlockRows) {
        const int64_t o1 = o_end - o0 < kBlockRows ? o_end : o0 + kBlockRows;
        for (int64_t b = b_begin; b < b_end; b += kMR) {
          const int mr = b_end - b < kMR ? static_cast<int>(b_end - b) : kMR;
          const float* x = job.x + b * job.ldx + k0;
          float* y = job.y + b * job.ldy;
          for (int64_t o = o0; o < o1; o += kNR) {
            const int nr = o1 - o < kNR ? static_cast<int>(o1 - o) : kNR;
            kTiles.fn[mr - 1][nr - 1](x, job.ldx, w + o * ldw + k0, ldw, kc, y + o, job.ldy,
                                      add);
          }
        }
      }
    }
  }

  static void MatMul(const MatMulJob& job, int64_t b_begin, int64_t b_end, int64_t o_begin,
                     int64_t o_end) {
    switch (job.w.type) {
      case ElementType::kF32:
        return MatMulTyped<F32Tag>(job, b_begin, b_end, o_begin, o_end);
      case ElementType::kBF16:
        return MatMulTyped<Bf16Tag>(job, b_begin, b_end, o_begin, o_end);
      case ElementType::kF16:
        return MatMulTyped<F16Tag>(job, b_begin, b_end, o_begin, o_end);
    }
  }

  static float Sum(const float* x, int64_t n) {
    V acc = S::Zero();
    int64_t i = 0;
    for (; i + kLanes <= n; i += kLanes) acc = S::Add(acc, S::Load(x + i));
    if (i < n) acc = S::Add(acc, S::LoadPartial(x + i, static_cast<int>(n - i)));
    return S::ReduceAdd(acc);
  }

  // Σ (x - c)² over n values (zero-filled tail lanes must not count: they are masked).
  static float SumSquaredDeviation(const float* x, int64_t n, float c) {
    const V cv = S::Set1(c);
    V acc = S::Zero();
    int64_t i = 0;
    for (; i + kLanes <= n; i += kLanes) {
      const V d = S::Sub(S::Load(x + i), cv);
      acc = S::Fma(d, d, acc);
    }
    if (i < n) {
      const int rest = static_cast<int>(n - i);
      const V d = S::KeepFirst(S::Sub(S::LoadPartial(x + i, rest), cv), rest);
      acc = S::Fma(d, d, acc);
    }
    return S::ReduceAdd(acc);
  }

  static void LayerNorm(const float* x, const float* gamma, const float* beta, int64_t n,
                        float eps, float* y) {
    const float mean = Sum(x, n) / static_cast<float>(n);
    const float variance = SumSquaredDeviation(x, n, mean) / static_cast<float>(n);
    const float rstd = 1.0f / std::sqrt(variance + eps);
    const V mv = S::Set1(mean);
    const V rv = S::Set1(rstd);
    int64_t i = 0;
    for (; i + kLanes <= n; i += kLanes) {
      const V norm = S::Mul(S::Sub(S::Load(x + i), mv), rv);
      S::Store(y + i, S::Fma(norm, S::Load(gamma + i), S::Load(beta + i)));
    }
    if (i < n) {
      const int rest = static_cast<int>(n - i);
      const V norm = S::Mul(S::Sub(S::LoadPartial(x + i, rest), mv), rv);
      S::StorePartial(y + i, rest,
                      S::Fma(norm, S::LoadPartial(gamma + i, rest),
                             S::LoadPartial(beta + i, rest)));
    }
  }

  static void L2Normalize(const float* x, int64_t n, float min_norm, float* y) {
    V acc = S::Zero();
    int64_t i = 0;
    for (; i + kLanes <= n; i += kLanes) {
      const V v = S::Load(x + i);
      acc = S::Fma(v, v, acc);
    }
    if (i < n) {
      const V v = S::LoadPartial(x + i, static_cast<int>(n - i));
      acc = S::Fma(v, v, acc);
    }
    float norm = std::sqrt(S::ReduceAdd(acc));
    if (norm < min_norm) norm = min_norm;
    const V inv = S::Set1(1.0f / norm);
    for (i = 0; i + kLanes <= n; i += kLanes) S::Store(y + i, S::Mul(S::Load(x + i), inv));
    if (i < n) {
      const int rest = static_cast<int>(n - i);
      S::StorePartial(y + i, rest, S::Mul(S::LoadPartial(x + i, rest), inv));
    }
  }

  static void Wkv7Head(const Wkv7HeadArgs& p) {
    const int64_t n = p.n;
    const int64_t full = n - n % kLanes;
    const int rest = static_cast<int>(n - full);
    for (int64_t t = 0; t < p.tokens; ++t) {
      const int64_t off = t * p.stride;
      const float* r = p.r + off;
      const float* w = p.w + off;
      const float* k = p.k + off;
      const float* v = p.v + off;
      const float* a = p.a + off;
      const float* b = p.b + off;
      float* y = p.y + t * p.y_stride;
      for (int64_t i = 0; i < n; ++i) {
        float* row = p.state + i * n;
        V sa_acc = S::Zero();
        for (int64_t j = 0; j < full; j += kLanes) {
          sa_acc = S::Fma(S::Load(a + j), S::Load(row + j), sa_acc);
        }
        if (rest) {
          sa_acc = S::Fma(S::LoadPartial(a + full, rest), S::LoadPartial(row + full, rest),
                          sa_acc);
        }
        const V sa = S::Set1(S::ReduceAdd(sa_acc));
        const V vi = S::Set1(v[i]);
        V y_acc = S::Zero();
        for (int64_t j = 0; j < full; j += kLanes) {
          V s = S::Mul(S::Load(row + j), S::Load(w + j));
          s = S::Fma(S::Load(k + j), vi, s);
          s = S::Fma(sa, S::Load(b + j), s);
          S::Store(row + j, s);
          y_acc = S::Fma(s, S::Load(r + j), y_acc);
        }
        if (rest) {
          V s = S::Mul(S::LoadPartial(row + full, rest), S::LoadPartial(w + full, rest));
          s = S::Fma(S::LoadPartial(k + full, rest), vi, s);
          s = S::Fma(sa, S::LoadPartial(b + full, rest), s);
          S::StorePartial(row + full, rest, s);
          y_acc = S::Fma(s, S::LoadPartial(r + full, rest), y_acc);
        }
        y[i] = S::ReduceAdd(y_acc);
      }
    }
  }

  static constexpr KernelTable MakeTable(IsaLevel level) {
    return KernelTable{level, &MatMul, &LayerNorm, &L2Normalize, &Wkv7Head};
  }
};

}  // namespace skein::kernels::simd

#endif  // SKEIN_KERNELS_CPU_SIMD_KERNELS_IMPL_H_
