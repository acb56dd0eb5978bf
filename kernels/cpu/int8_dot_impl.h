// The SIMD products with int8 activations (MatMulJob::int8_activations), written once over a
// traits class `S` and instantiated by each variant's translation unit (int8_dot_avx2.cc,
// int8_dot_avx_vnni.cc, int8_dot_avx512_vnni.cc) with its own traits and -m flags.
//
// Include only from those units, after defining the traits in an unnamed namespace: every
// function here is a template over `S`, so each unit gets private copies compiled with its
// own flags (see kernel_table.h).
//
// `S` provides: V (a vector of fp32 lanes) and I (a vector of bytes), kBytes (bytes of a row
// of x or w per step: a whole number of 32-byte blocks), X (one step of one row of quantised
// activations, prepared once and multiplied with many weight rows, with its `scale` member:
// each lane's block scale), LoadX(q, scales) (kBytes of qx and the scales of their blocks),
// LoadW(p) (kBytes of weights), LoadWPartial(p, count) (the first `count` bytes, zero after,
// reading nothing past them), Dot(X, I) (the lane-wise exact integer partial sums
// Σ qx·qw over 4 consecutive bytes, converted to fp32 — exact, |sum| <= 4·127²), Fma(a, b, c)
// = a·b + c, Zero, ReduceAdd, Prefetch; kTileRows × kTileCols (the register tile) and
// kDecodeCols (the tile's width for a single row of x, which streams W).
#ifndef SKEIN_KERNELS_CPU_INT8_DOT_IMPL_H_
#define SKEIN_KERNELS_CPU_INT8_DOT_IMPL_H_

#include <immintrin.h>

#include <cstdint>
#include <cstring>
#include <limits>
#include <utility>

#include "kernels/cpu/kernel_table.h"

#define SKEIN_INT8_UNROLL _Pragma("GCC unroll 16")

namespace skein::kernels::int8dot {

template <class S>
struct Kernels {
  using V = typename S::V;
  using X = typename S::X;
  static constexpr int kBytes = S::kBytes;
  static constexpr int kMR = S::kTileRows;
  static constexpr int kNR = S::kTileCols;
  static_assert(kBytes % kInt8ActivationBlock == 0 && 2 * kInt8ActivationBlock % kBytes == 0,
                "a step is one or two blocks (rows of x are padded to 64 bytes)");
  // Output rows per block of the loop: their weights stay in L2 while every tile of batch rows
  // passes over them.
  static constexpr int64_t kRowBlock = 64;

  // y[m][n] (+)= wscales[n] · Σ_blocks sx[m][j] · Σ_{i in j} qx[m][i]·q[n][i] for an MR×NR
  // tile, over all of K: per lane, fp32 sums of sx · (exact 4-product partial sums).
  template <int MR, int NR>
  static void Tile(const int8_t* xq, int64_t ldq, const float* xs, int64_t lds, const int8_t* w,
                   int64_t ldw, int64_t kdim, const float* wscales, float* y, int64_t ldy,
                   bool add) {
    V acc[MR][NR];
    SKEIN_INT8_UNROLL
    for (int m = 0; m < MR; ++m) {
      SKEIN_INT8_UNROLL
      for (int n = 0; n < NR; ++n) acc[m][n] = S::Zero();
    }
    int64_t k = 0;
    for (; k + kBytes <= kdim; k += kBytes) {
      X xv[MR];
      SKEIN_INT8_UNROLL
      for (int m = 0; m < MR; ++m) {
        xv[m] = S::LoadX(xq + m * ldq + k, xs + m * lds + k / kInt8ActivationBlock);
      }
      SKEIN_INT8_UNROLL
      for (int n = 0; n < NR; ++n) {
        if constexpr (MR <= 2) {
          // Few rows of x: the tile streams W. Fetch the next tile's rows ahead, one prefetch
          // per cache line (NR rows side by side are more streams than the hardware follows).
          if (k % 64 == 0) S::Prefetch(w + (n + NR) * ldw + k);
        }
        const auto wv = S::LoadW(w + n * ldw + k);
        SKEIN_INT8_UNROLL
        for (int m = 0; m < MR; ++m) acc[m][n] = S::Fma(S::Dot(xv[m], wv), xv[m].scale, acc[m][n]);
      }
    }
    if (k < kdim) {
      // The tail: x is padded with zeros (scale 0) to a whole step; W must not be read past K.
      const int rest = static_cast<int>(kdim - k);
      X xv[MR];
      SKEIN_INT8_UNROLL
      for (int m = 0; m < MR; ++m) {
        xv[m] = S::LoadX(xq + m * ldq + k, xs + m * lds + k / kInt8ActivationBlock);
      }
      SKEIN_INT8_UNROLL
      for (int n = 0; n < NR; ++n) {
        const auto wv = S::LoadWPartial(w + n * ldw + k, rest);
        SKEIN_INT8_UNROLL
        for (int m = 0; m < MR; ++m) acc[m][n] = S::Fma(S::Dot(xv[m], wv), xv[m].scale, acc[m][n]);
      }
    }
    SKEIN_INT8_UNROLL
    for (int m = 0; m < MR; ++m) {
      float* out = y + m * ldy;
      SKEIN_INT8_UNROLL
      for (int n = 0; n < NR; ++n) {
        const float sum = S::ReduceAdd(acc[m][n]) * wscales[n];
        out[n] = add ? out[n] + sum : sum;
      }
    }
  }

  using TileFn = void (*)(const int8_t*, int64_t, const float*, int64_t, const int8_t*, int64_t,
                          int64_t, const float*, float*, int64_t, bool);

  // kTiles.fn[mr-1][nr-1] = Tile<mr, nr>, for edge tiles.
  template <int... I>
  static constexpr auto MakeTileTable(std::integer_sequence<int, I...>) {
    struct Table {
      TileFn fn[kMR][kNR];
    } table{};
    ((table.fn[I / kNR][I % kNR] = &Tile<I / kNR + 1, I % kNR + 1>), ...);
    return table;
  }

  // ---- Quantising activations (QuantizeActivationsInt8, bit for bit) ----
  // AVX2 for every variant (their units all have it). The same steps as the portable code:
  // the maximum over the bit patterns of |x| (integer order = numeric order for non-negative
  // floats; NaN and ±inf are the patterns >= 0x7f800000), the scale as one fp32 division,
  // each x divided by it (correctly rounded either way), clamped to ±127 and rounded half to
  // even by an explicit rounding mode (not MXCSR's); round-half-even is symmetric, so
  // rounding x equals the portable code's sign times the rounding of |x|.
  static float QuantizeBlock(const float* in, int8_t* out) {
    __m256 v[4];
    __m256i amax = _mm256_setzero_si256();
    const __m256i abs_mask = _mm256_set1_epi32(0x7fffffff);
    for (int i = 0; i < 4; ++i) {
      v[i] = _mm256_loadu_ps(in + 8 * i);
      amax = _mm256_max_epi32(amax, _mm256_and_si256(_mm256_castps_si256(v[i]), abs_mask));
    }
    __m128i m = _mm_max_epi32(_mm256_castsi256_si128(amax), _mm256_extracti128_si256(amax, 1));
    m = _mm_max_epi32(m, _mm_shuffle_epi32(m, 0x4e));
    m = _mm_max_epi32(m, _mm_shuffle_epi32(m, 0xb1));
    const int32_t amax_bits = _mm_cvtsi128_si32(m);
    float scale = std::numeric_limits<float>::quiet_NaN();
    if (amax_bits < 0x7f800000) {
      float amax_f;
      std::memcpy(&amax_f, &amax_bits, sizeof(amax_f));
      scale = amax_f / 127.0f;
    }
    if (!(scale > 0.0f)) {
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(out), _mm256_setzero_si256());
      return scale;
    }
    const __m256 s = _mm256_set1_ps(scale);
    const __m256 hi = _mm256_set1_ps(127.0f), lo = _mm256_set1_ps(-127.0f);
    __m256i q[4];
    for (int i = 0; i < 4; ++i) {
      const __m256 r = _mm256_min_ps(_mm256_max_ps(_mm256_div_ps(v[i], s), lo), hi);
      q[i] = _mm256_cvtps_epi32(_mm256_round_ps(r, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
    }
    // Packing works per 128-bit half: the bytes come out in groups of 4 consecutive values,
    // q0[0:4] q1[0:4] q2[0:4] q3[0:4] | q0[4:8] q1[4:8] …; the permutation puts them in order.
    const __m256i packed =
        _mm256_packs_epi16(_mm256_packs_epi32(q[0], q[1]), _mm256_packs_epi32(q[2], q[3]));
    _mm256_storeu_si256(
        reinterpret_cast<__m256i*>(out),
        _mm256_permutevar8x32_epi32(packed, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7)));
    return scale;
  }

  static void Quantize(const float* x, int64_t ldx, int64_t batch, int64_t cols, int8_t* q,
                       float* scales) {
    constexpr int64_t kBlock = kInt8ActivationBlock;
    const int64_t ldq = Int8ActivationRowBytes(cols);
    const int64_t blocks = ldq / kBlock;
    const int64_t full = cols / kBlock;
    for (int64_t b = 0; b < batch; ++b) {
      const float* in = x + b * ldx;
      int8_t* out = q + b * ldq;
      float* s = scales + b * blocks;
      for (int64_t j = 0; j < full; ++j) s[j] = QuantizeBlock(in + j * kBlock, out + j * kBlock);
      int64_t j = full;
      if (cols > full * kBlock) {
        // The tail, zero-filled to a whole block (as the portable code does).
        alignas(32) float tail[kBlock] = {};
        std::memcpy(tail, in + full * kBlock, sizeof(float) * (cols - full * kBlock));
        s[j] = QuantizeBlock(tail, out + j * kBlock);
        ++j;
      }
      for (; j < blocks; ++j) {
        s[j] = 0.0f;
        std::memset(out + j * kBlock, 0, kBlock);
      }
    }
  }

  static void MatMul(const MatMulJob& job, const Int8ActivationRows& xq, int64_t b_begin,
                     int64_t b_end, int64_t o_begin, int64_t o_end) {
    static constexpr auto kTiles = MakeTileTable(std::make_integer_sequence<int, kMR * kNR>{});
    const int64_t kdim = job.w.cols;
    if (kdim == 0) {
      // An empty sum: nothing to scale or add.
      if (!job.accumulate) {
        for (int64_t b = b_begin; b < b_end; ++b)
          for (int64_t o = o_begin; o < o_end; ++o) job.y[b * job.ldy + o] = 0.0f;
      }
      return;
    }
    const auto* w = static_cast<const int8_t*>(job.w.data);
    const int64_t ldw = job.w.stride;
    const int64_t lds = xq.ldq / kInt8ActivationBlock;
    for (int64_t o0 = o_begin; o0 < o_end; o0 += kRowBlock) {
      const int64_t o1 = o_end - o0 < kRowBlock ? o_end : o0 + kRowBlock;
      for (int64_t b = b_begin; b < b_end; b += kMR) {
        const int mr = b_end - b < kMR ? static_cast<int>(b_end - b) : kMR;
        const int8_t* x = xq.q + b * xq.ldq;
        const float* xs = xq.scales + b * lds;
        float* y = job.y + b * job.ldy;
        int64_t o = o0;
        if (mr == 1) {
          // A single row of x (decode) is bound by streaming W: more rows in flight.
          for (; o + S::kDecodeCols <= o1; o += S::kDecodeCols) {
            Tile<1, S::kDecodeCols>(x, xq.ldq, xs, lds, w + o * ldw, ldw, kdim, job.w.scales + o,
                                    y + o, job.ldy, job.accumulate);
          }
        }
        for (; o < o1; o += kNR) {
          const int nr = o1 - o < kNR ? static_cast<int>(o1 - o) : kNR;
          kTiles.fn[mr - 1][nr - 1](x, xq.ldq, xs, lds, w + o * ldw, ldw, kdim, job.w.scales + o,
                                    y + o, job.ldy, job.accumulate);
        }
      }
    }
  }
};

}  // namespace skein::kernels::int8dot

#endif  // SKEIN_KERNELS_CPU_INT8_DOT_IMPL_H_
