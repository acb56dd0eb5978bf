// The SIMD kernels, written once over a vector-traits class `S` and instantiated by each ISA
// translation unit (kernels_avx2.cc, kernels_avx512.cc) with its own traits.
//
// Include only from those units, and only after defining the traits in an unnamed namespace:
// every function here is a template over `S`, so each unit gets its own private copies
// compiled with its own -m flags (see kernel_table.h).
//
// `S` provides: V (vector of kLanes floats); kTileRows/kTileCols (register tile of the
// dot-product matrix kernel); kPanelVectors/kPackRows/kMinPackedBatch (the packed GEMM);
// kWkvChains (partial sums per reduction in the key-major WKV update);
// Transpose (a kLanes×kLanes block in place); Prefetch (a cache line into L1); Zero, Set1, Load,
// LoadPartial (first `count` lanes, rest zero), Store, StorePartial, KeepFirst (zero all but the
// first `count` lanes), Add, Sub, Mul, Div, Fma(a, b, c) = a·b + c, ReduceAdd, ReduceAdd4 (four
// vectors' sums), Exp (see ExpPolynomial); and weight loads LoadWeights(const T*, Tag) /
// LoadWeightsPartial(const T*, int count, Tag) widening kLanes weights of type Tag to fp32
// (for I8Tag, the integers themselves: the row scales are applied by the kernels here).
#ifndef SKEIN_KERNELS_CPU_SIMD_KERNELS_IMPL_H_
#define SKEIN_KERNELS_CPU_SIMD_KERNELS_IMPL_H_

#include <cmath>
#include <cstdint>
#include <type_traits>
#include <utility>

#include "kernels/cpu/kernel_table.h"

// Register tiles must be fully unrolled so their accumulators live in registers; GCC's -O2
// heuristics do not always do it on their own.
#define SKEIN_UNROLL _Pragma("GCC unroll 16")

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
// int8 weights with one fp32 scale per output row (WeightMatrix::scales).
struct I8Tag {
  using T = int8_t;
};

// Whether a product over Tag's weights sums x·q and multiplies each output by its row's scale
// at the end (once per output, so the K loop must not be cut into blocks that store partial
// sums in y).
template <class Tag>
inline constexpr bool kScaledTag = std::is_same_v<Tag, I8Tag>;

// The contraction dimension is cut into blocks of this many values so that a register tile's
// rows of x and w stay in L1 when K is large (the FFN's down-projection has K = 4C).
inline constexpr int64_t kBlockK = 1024;
// Output rows per block: the weights of one block (kBlockRows × kBlockK) stay in L2 while
// every batch row is multiplied with them.
inline constexpr int64_t kBlockRows = 96;
// How far ahead of its reads a single weight stream prefetches (StreamRows): about what one
// core reads from DRAM during a memory latency.
inline constexpr int64_t kStreamPrefetchBytes = 768;

template <class S>
struct Kernels {
  using V = typename S::V;
  static constexpr int kLanes = S::kLanes;
  static constexpr int kMR = S::kTileRows;
  static constexpr int kNR = S::kTileCols;

  // y[m][n] (+)= Σ_{i<kc} x[m][i]·w[n][i] for an MR×NR tile; for scaled (int8) weights
  // y[m][n] (+)= scales[n] · Σ_{i<kc} x[m][i]·q[n][i] (`scales` is unused otherwise).
  template <class Tag, int MR, int NR>
  static void Tile(const float* x, int64_t ldx, const typename Tag::T* w, int64_t ldw, int64_t kc,
                   float* y, int64_t ldy, const float* scales, bool add) {
    V acc[MR][NR];
    SKEIN_UNROLL
    for (int m = 0; m < MR; ++m) SKEIN_UNROLL
    for (int n = 0; n < NR; ++n) acc[m][n] = S::Zero();
    int64_t k = 0;
    for (; k + kLanes <= kc; k += kLanes) {
      V xv[MR];
      SKEIN_UNROLL
      for (int m = 0; m < MR; ++m) xv[m] = S::Load(x + m * ldx + k);
      SKEIN_UNROLL
      for (int n = 0; n < NR; ++n) {
        if constexpr (MR <= 2) {
          // Few rows of x: the tile streams W from memory. Fetch the next tile's rows ahead
          // (NR rows side by side are more streams than the hardware prefetchers follow).
          // One-byte weights advance a cache line every few steps: one prefetch per line.
          if (sizeof(typename Tag::T) > 1 || k % 64 == 0) {
            S::Prefetch(w + (n + NR) * ldw + k);
          }
        }
        const V wv = S::LoadWeights(w + n * ldw + k, Tag{});
        SKEIN_UNROLL
        for (int m = 0; m < MR; ++m) acc[m][n] = S::Fma(xv[m], wv, acc[m][n]);
      }
    }
    if (k < kc) {
      const int rest = static_cast<int>(kc - k);
      V xv[MR];
      SKEIN_UNROLL
      for (int m = 0; m < MR; ++m) xv[m] = S::LoadPartial(x + m * ldx + k, rest);
      SKEIN_UNROLL
      for (int n = 0; n < NR; ++n) {
        const V wv = S::LoadWeightsPartial(w + n * ldw + k, rest, Tag{});
        SKEIN_UNROLL
        for (int m = 0; m < MR; ++m) acc[m][n] = S::Fma(xv[m], wv, acc[m][n]);
      }
    }
    SKEIN_UNROLL
    for (int m = 0; m < MR; ++m) {
      float* out = y + m * ldy;
      int n = 0;
      SKEIN_UNROLL
      for (; n + 4 <= NR; n += 4) {
        float sums[4];
        S::ReduceAdd4(acc[m][n], acc[m][n + 1], acc[m][n + 2], acc[m][n + 3], sums);
        SKEIN_UNROLL
        for (int i = 0; i < 4; ++i) {
          if constexpr (kScaledTag<Tag>) sums[i] *= scales[n + i];
          out[n + i] = add ? out[n + i] + sums[i] : sums[i];
        }
      }
      SKEIN_UNROLL
      for (; n < NR; ++n) {
        float sum = S::ReduceAdd(acc[m][n]);
        if constexpr (kScaledTag<Tag>) sum *= scales[n];
        out[n] = add ? out[n] + sum : sum;
      }
    }
  }

  // One row of x against `rows` consecutive rows of W, one weight row after the other: the
  // weights are read as a single sequential stream (rows of a matrix are adjacent), with a
  // software prefetch kStreamPrefetchBytes ahead, and four accumulators per row. Decode (one
  // row of x) is bound by reading W; on a 2-vCPU EPYC (AVX2, a 65536×768 bf16 matrix, two
  // threads) several rows side by side read at most ~35 GB/s while the read loop of
  // memory_bandwidth.h did 44–46 GB/s, and this single stream reached 42–46 GB/s.
  template <class Tag>
  static void StreamRows(const float* x, const typename Tag::T* w, int64_t ldw, int64_t kc,
                         float* y, int64_t rows, const float* scales, bool add) {
    using T = typename Tag::T;
    constexpr int64_t kStep = 4 * kLanes;
    constexpr int64_t kStepBytes = kStep * static_cast<int64_t>(sizeof(T));
    for (int64_t n = 0; n < rows; ++n) {
      const T* row = w + n * ldw;
      V a0 = S::Zero(), a1 = S::Zero(), a2 = S::Zero(), a3 = S::Zero();
      int64_t k = 0;
      for (; k + kStep <= kc; k += kStep) {
        const char* ahead = reinterpret_cast<const char*>(row + k) + kStreamPrefetchBytes;
        SKEIN_UNROLL
        for (int64_t b = 0; b < kStepBytes; b += 64) S::Prefetch(ahead + b);
        a0 = S::Fma(S::Load(x + k), S::LoadWeights(row + k, Tag{}), a0);
        a1 = S::Fma(S::Load(x + k + kLanes), S::LoadWeights(row + k + kLanes, Tag{}), a1);
        a2 = S::Fma(S::Load(x + k + 2 * kLanes), S::LoadWeights(row + k + 2 * kLanes, Tag{}), a2);
        a3 = S::Fma(S::Load(x + k + 3 * kLanes), S::LoadWeights(row + k + 3 * kLanes, Tag{}), a3);
      }
      for (; k + kLanes <= kc; k += kLanes) {
        a0 = S::Fma(S::Load(x + k), S::LoadWeights(row + k, Tag{}), a0);
      }
      if (k < kc) {
        const int rest = static_cast<int>(kc - k);
        a1 = S::Fma(S::LoadPartial(x + k, rest), S::LoadWeightsPartial(row + k, rest, Tag{}), a1);
      }
      float sum = S::ReduceAdd(S::Add(S::Add(a0, a1), S::Add(a2, a3)));
      if constexpr (kScaledTag<Tag>) sum *= scales[n];
      y[n] = add ? y[n] + sum : sum;
    }
  }

  template <class Tag>
  using TileFn = void (*)(const float*, int64_t, const typename Tag::T*, int64_t, int64_t, float*,
                          int64_t, const float*, bool);

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
  static void MatMulTyped(const MatMulJob& job, int64_t b_begin, int64_t b_end, int64_t o_begin,
                          int64_t o_end) {
    static constexpr auto kTiles = MakeTileTable<Tag>(std::make_integer_sequence<int, kMR * kNR>{});
    const auto* w = static_cast<const typename Tag::T*>(job.w.data);
    const int64_t ldw = job.w.stride;
    const int64_t kdim = job.w.cols;
    if (kdim == 0 && !job.accumulate) {
      for (int64_t b = b_begin; b < b_end; ++b)
        for (int64_t o = o_begin; o < o_end; ++o) job.y[b * job.ldy + o] = 0.0f;
    }
    // K blocks keep a tile's rows in L1 for the next batch tile; with a single batch tile
    // (decode) there is no next one, and whole rows stream better. Scaled (int8) weights take
    // whole rows always, so that each output's scale multiplies its complete sum once; their
    // rows are a quarter of fp32's, so a tile of them still fits L1 at the model's K.
    const int64_t block_k =
        b_end - b_begin <= kMR || kScaledTag<Tag> ? (kdim > 0 ? kdim : 1) : kBlockK;
    // Row o's scale, for scaled weights (null otherwise: the tiles ignore it).
    const float* scales = kScaledTag<Tag> ? job.w.scales : nullptr;
    for (int64_t k0 = 0; k0 < kdim; k0 += block_k) {
      const int64_t kc = kdim - k0 < block_k ? kdim - k0 : block_k;
      const bool add = job.accumulate || k0 > 0;
      for (int64_t o0 = o_begin; o0 < o_end; o0 += kBlockRows) {
        const int64_t o1 = o_end - o0 < kBlockRows ? o_end : o0 + kBlockRows;
        for (int64_t b = b_begin; b < b_end; b += kMR) {
          const int mr = b_end - b < kMR ? static_cast<int>(b_end - b) : kMR;
          const float* x = job.x + b * job.ldx + k0;
          float* y = job.y + b * job.ldy;
          int64_t o = o0;
          if (mr == 1) {
            // A single row of x (decode) is bound by streaming W: one sequential stream.
            StreamRows<Tag>(x, w + o * ldw + k0, ldw, kc, y + o, o1 - o,
                            scales ? scales + o : nullptr, add);
            continue;
          }
          for (; o < o1; o += kNR) {
            const int nr = o1 - o < kNR ? static_cast<int>(o1 - o) : kNR;
            kTiles.fn[mr - 1][nr - 1](x, job.ldx, w + o * ldw + k0, ldw, kc, y + o, job.ldy,
                                      scales ? scales + o : nullptr, add);
          }
        }
      }
    }
  }

  // ---- Large batches: a packed GEMM. ----
  // A panel of kPanel output rows × kPackK inputs of W is converted to fp32 and transposed
  // into k-major order, so the micro-kernel multiplies broadcast x values with whole vectors
  // of outputs: an kPackMR × kPanel tile of y held in registers, no horizontal sums.
  static constexpr int kPanelVectors = S::kPanelVectors;
  static constexpr int kPanel = kPanelVectors * kLanes;
  static constexpr int kPackMR = S::kPackRows;
  static constexpr int64_t kPackK = 128;
  static constexpr int64_t kPackBatch = 512;
  // Scaled (int8) weights: batch rows per block, whose unscaled sums wait in a stack buffer
  // (kScaledPackBatch × kPanel floats) until the last K block, when each output gets its
  // scale once.
  static constexpr int64_t kScaledPackBatch = 128;

  // panel[k·kPanel + p] = w[(o0 + p)·ldw + k0 + k] for p < rows, k < kc; zero elsewhere.
  template <class Tag>
  static void PackPanel(const typename Tag::T* w, int64_t ldw, int rows, int64_t kc, float* panel) {
    int64_t k = 0;
    if (rows == kPanel) {
      // Full panel, whole blocks of kLanes: no per-row checks.
      for (; k + kLanes <= kc; k += kLanes) {
        SKEIN_UNROLL
        for (int q = 0; q < kPanelVectors; ++q) {
          V block[kLanes];
          SKEIN_UNROLL
          for (int i = 0; i < kLanes; ++i) {
            const typename Tag::T* row = w + (q * kLanes + i) * ldw + k;
            // kPanel rows are read side by side, more streams than the hardware prefetchers
            // follow; weights that come from DRAM (the head) stream when each load also
            // fetches the same bytes of the next panel.
            S::Prefetch(row + kPanel * ldw);
            block[i] = S::LoadWeights(row, Tag{});
          }
          S::Transpose(block);
          SKEIN_UNROLL
          for (int i = 0; i < kLanes; ++i) {
            S::Store(panel + (k + i) * kPanel + q * kLanes, block[i]);
          }
        }
      }
    }
    for (; k < kc; k += kLanes) {
      const int width = kc - k < kLanes ? static_cast<int>(kc - k) : kLanes;
      for (int q = 0; q < kPanelVectors; ++q) {
        V block[kLanes];
        for (int i = 0; i < kLanes; ++i) {
          const int p = q * kLanes + i;
          if (p >= rows) {
            block[i] = S::Zero();
          } else if (width == kLanes) {
            block[i] = S::LoadWeights(w + p * ldw + k, Tag{});
          } else {
            block[i] = S::LoadWeightsPartial(w + p * ldw + k, width, Tag{});
          }
        }
        S::Transpose(block);
        for (int i = 0; i < width; ++i) S::Store(panel + (k + i) * kPanel + q * kLanes, block[i]);
      }
    }
  }

  // y[m][0:cols] (+)= Σ_k x[m][k] · panel[k][0:cols] for MR rows.
  template <int MR>
  static void PackedTile(const float* x, int64_t ldx, const float* panel, int64_t kc, float* y,
                         int64_t ldy, int cols, bool add) {
    V acc[MR][kPanelVectors];
    SKEIN_UNROLL
    for (int m = 0; m < MR; ++m) {
      SKEIN_UNROLL
      for (int q = 0; q < kPanelVectors; ++q) acc[m][q] = S::Zero();
    }
    for (int64_t k = 0; k < kc; ++k) {
      V wv[kPanelVectors];
      SKEIN_UNROLL
      for (int q = 0; q < kPanelVectors; ++q) wv[q] = S::Load(panel + k * kPanel + q * kLanes);
      SKEIN_UNROLL
      for (int m = 0; m < MR; ++m) {
        const V xb = S::Set1(x[m * ldx + k]);
        SKEIN_UNROLL
        for (int q = 0; q < kPanelVectors; ++q) acc[m][q] = S::Fma(xb, wv[q], acc[m][q]);
      }
    }
    SKEIN_UNROLL
    for (int m = 0; m < MR; ++m) {
      float* out = y + m * ldy;
      SKEIN_UNROLL
      for (int q = 0; q < kPanelVectors; ++q) {
        const int left = cols - q * kLanes;
        if (left >= kLanes) {
          S::Store(out + q * kLanes,
                   add ? S::Add(S::Load(out + q * kLanes), acc[m][q]) : acc[m][q]);
        } else if (left > 0) {
          const V prior = add ? S::LoadPartial(out + q * kLanes, left) : S::Zero();
          S::StorePartial(out + q * kLanes, left, S::Add(prior, acc[m][q]));
        }
      }
    }
  }

  template <int... I>
  static constexpr auto MakePackedTable(std::integer_sequence<int, I...>) {
    using Fn = void (*)(const float*, int64_t, const float*, int64_t, float*, int64_t, int, bool);
    struct Table {
      Fn fn[kPackMR];
    } table{};
    ((table.fn[I] = &PackedTile<I + 1>), ...);
    return table;
  }

  // y[b][o0:o0+cols] (+)= scales[o0:o0+cols] ⊙ sums[b - b0][0:cols] for b in [b0, b1): the
  // one multiply per output of a scaled product.
  static void ApplyScales(const MatMulJob& job, const float* sums, int64_t b0, int64_t b1,
                          int64_t o0, int cols) {
    const float* scales = job.w.scales + o0;
    for (int64_t b = b0; b < b1; ++b) {
      const float* s = sums + (b - b0) * kPanel;
      float* out = job.y + b * job.ldy + o0;
      SKEIN_UNROLL
      for (int q = 0; q < kPanelVectors; ++q) {
        const int left = cols - q * kLanes;
        if (left >= kLanes) {
          V v = S::Mul(S::Load(s + q * kLanes), S::Load(scales + q * kLanes));
          if (job.accumulate) v = S::Add(S::Load(out + q * kLanes), v);
          S::Store(out + q * kLanes, v);
        } else if (left > 0) {
          V v = S::Mul(S::Load(s + q * kLanes), S::LoadPartial(scales + q * kLanes, left));
          if (job.accumulate) v = S::Add(S::LoadPartial(out + q * kLanes, left), v);
          S::StorePartial(out + q * kLanes, left, v);
        }
      }
    }
  }

  template <class Tag>
  static void MatMulPacked(const MatMulJob& job, int64_t b_begin, int64_t b_end, int64_t o_begin,
                           int64_t o_end) {
    static constexpr auto kTiles = MakePackedTable(std::make_integer_sequence<int, kPackMR>{});
    constexpr bool kScaled = kScaledTag<Tag>;
    constexpr int64_t kBatchBlock = kScaled ? kScaledPackBatch : kPackBatch;
    alignas(64) float panel[kPackK * kPanel];
    // Scaled weights: Σ x·q of the current batch block and panel, full kPanel wide (the
    // panel's zero rows past `cols` add nothing).
    alignas(64) float sums[kScaled ? kScaledPackBatch * kPanel : 1];
    const auto* w = static_cast<const typename Tag::T*>(job.w.data);
    const int64_t kdim = job.w.cols;
    // Batch blocks outermost, then output panels, then K: each panel's rows of W are read
    // front to back (streams the prefetchers follow, for weights that come from DRAM), while
    // a block of x stays in L2 for all panels.
    for (int64_t b0 = b_begin; b0 < b_end; b0 += kBatchBlock) {
      const int64_t b1 = b_end - b0 < kBatchBlock ? b_end : b0 + kBatchBlock;
      for (int64_t o = o_begin; o < o_end; o += kPanel) {
        const int cols = o_end - o < kPanel ? static_cast<int>(o_end - o) : kPanel;
        for (int64_t k0 = 0; k0 < kdim; k0 += kPackK) {
          const int64_t kc = kdim - k0 < kPackK ? kdim - k0 : kPackK;
          PackPanel<Tag>(w + o * job.w.stride + k0, job.w.stride, cols, kc, panel);
          for (int64_t b = b0; b < b1; b += kPackMR) {
            const int mr = b1 - b < kPackMR ? static_cast<int>(b1 - b) : kPackMR;
            const float* x = job.x + b * job.ldx + k0;
            if constexpr (kScaled) {
              kTiles.fn[mr - 1](x, job.ldx, panel, kc, sums + (b - b0) * kPanel, kPanel, kPanel,
                                k0 > 0);
            } else {
              kTiles.fn[mr - 1](x, job.ldx, panel, kc, job.y + b * job.ldy + o, job.ldy, cols,
                                job.accumulate || k0 > 0);
            }
          }
        }
        if constexpr (kScaled) ApplyScales(job, sums, b0, b1, o, cols);
      }
    }
  }

  // Batches at least this large use the packed GEMM; smaller ones are bound by reading the
  // weights and use the dot-product tiles, which read W in place.
  static constexpr int64_t kMinPackedBatch = S::kMinPackedBatch;

  template <class Tag>
  static void MatMulDispatch(const MatMulJob& job, int64_t b_begin, int64_t b_end, int64_t o_begin,
                             int64_t o_end) {
    if (b_end - b_begin >= kMinPackedBatch && job.w.cols > 0) {
      MatMulPacked<Tag>(job, b_begin, b_end, o_begin, o_end);
    } else {
      MatMulTyped<Tag>(job, b_begin, b_end, o_begin, o_end);
    }
  }

  static void MatMul(const MatMulJob& job, int64_t b_begin, int64_t b_end, int64_t o_begin,
                     int64_t o_end) {
    switch (job.w.type) {
      case DType::kF32:
        return MatMulDispatch<F32Tag>(job, b_begin, b_end, o_begin, o_end);
      case DType::kBF16:
        return MatMulDispatch<Bf16Tag>(job, b_begin, b_end, o_begin, o_end);
      case DType::kF16:
        return MatMulDispatch<F16Tag>(job, b_begin, b_end, o_begin, o_end);
      case DType::kI8:
        return MatMulDispatch<I8Tag>(job, b_begin, b_end, o_begin, o_end);
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

  static void LayerNorm(const float* x, const float* gamma, const float* beta, int64_t n, float eps,
                        float* y) {
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
      S::StorePartial(
          y + i, rest,
          S::Fma(norm, S::LoadPartial(gamma + i, rest), S::LoadPartial(beta + i, rest)));
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

  // Many tokens, n = NB·kLanes: the head's state is transposed to key-major order (row j =
  // key channel) in a scratch copy, where both products of the update become sums of rows
  // scaled by broadcast scalars — sa = Σ_j a[j]·Sᵀ[j], y = Σ_j r[j]·Sᵀ[j] — with no
  // horizontal reductions; the copy is transposed back at the end.
  template <int NB>
  static void Wkv7HeadKeyMajor(const Wkv7HeadArgs& p) {
    constexpr int64_t n = NB * kLanes;
    // The sums over j run as kChains interleaved partial sums (shorter rounding chains).
    constexpr int kChains = S::kWkvChains;
    constexpr int64_t kChainLength = n / kChains;
    alignas(64) float st[n * n];
    for (int64_t i = 0; i < n; ++i)
      for (int64_t j = 0; j < n; ++j) st[j * n + i] = p.state[i * n + j];
    for (int64_t t = 0; t < p.tokens; ++t) {
      const int64_t off = t * p.stride;
      const float* r = p.r + off;
      const float* w = p.w + off;
      const float* k = p.k + off;
      const float* a = p.a + off;
      const float* b = p.b + off;
      V sa[kChains][NB], y[kChains][NB], v[NB];
      SKEIN_UNROLL
      for (int q = 0; q < NB; ++q) {
        v[q] = S::Load(p.v + off + q * kLanes);
        SKEIN_UNROLL
        for (int c = 0; c < kChains; ++c) sa[c][q] = y[c][q] = S::Zero();
      }
      for (int64_t j = 0; j < kChainLength; ++j) {
        SKEIN_UNROLL
        for (int c = 0; c < kChains; ++c) {
          const int64_t jj = c * kChainLength + j;
          const V aj = S::Set1(a[jj]);
          SKEIN_UNROLL
          for (int q = 0; q < NB; ++q) {
            sa[c][q] = S::Fma(aj, S::Load(st + jj * n + q * kLanes), sa[c][q]);
          }
        }
      }
      SKEIN_UNROLL
      for (int c = 1; c < kChains; ++c) {
        SKEIN_UNROLL
        for (int q = 0; q < NB; ++q) sa[0][q] = S::Add(sa[0][q], sa[c][q]);
      }
      for (int64_t j = 0; j < kChainLength; ++j) {
        SKEIN_UNROLL
        for (int c = 0; c < kChains; ++c) {
          const int64_t jj = c * kChainLength + j;
          const V wj = S::Set1(w[jj]), kj = S::Set1(k[jj]), bj = S::Set1(b[jj]),
                  rj = S::Set1(r[jj]);
          float* row = st + jj * n;
          SKEIN_UNROLL
          for (int q = 0; q < NB; ++q) {
            V s = S::Mul(S::Load(row + q * kLanes), wj);
            s = S::Fma(kj, v[q], s);
            s = S::Fma(bj, sa[0][q], s);
            S::Store(row + q * kLanes, s);
            y[c][q] = S::Fma(rj, s, y[c][q]);
          }
        }
      }
      float* out = p.y + t * p.y_stride;
      SKEIN_UNROLL
      for (int q = 0; q < NB; ++q) {
        V sum = y[0][q];
        SKEIN_UNROLL
        for (int c = 1; c < kChains; ++c) sum = S::Add(sum, y[c][q]);
        S::Store(out + q * kLanes, sum);
      }
    }
    for (int64_t i = 0; i < n; ++i)
      for (int64_t j = 0; j < n; ++j) p.state[i * n + j] = st[j * n + i];
  }

  // Few tokens, n = NB·kLanes, state in place (row-major). Expanding the update,
  //   y = S'·r = S·(w⊙r) + sa·(b·r) + v·(k·r),   sa = S·a,
  // so one read of S gives both row products (summed across lanes kLanes rows at a time with
  // a transpose instead of one reduction per row), and the update
  //   S'[i] = S[i]⊙w + sa[i]·b + v[i]·k
  // is a second, reduction-free pass.
  template <int NB>
  static void Wkv7HeadRowMajor(const Wkv7HeadArgs& p) {
    constexpr int64_t n = NB * kLanes;
    for (int64_t t = 0; t < p.tokens; ++t) {
      const int64_t off = t * p.stride;
      const float* r = p.r + off;
      const float* w = p.w + off;
      const float* k = p.k + off;
      const float* v = p.v + off;
      const float* a = p.a + off;
      const float* b = p.b + off;
      V av[NB], wr[NB], wv[NB], bv[NB], kv[NB];
      V br = S::Zero(), kr = S::Zero();
      SKEIN_UNROLL
      for (int q = 0; q < NB; ++q) {
        const V rq = S::Load(r + q * kLanes);
        av[q] = S::Load(a + q * kLanes);
        wv[q] = S::Load(w + q * kLanes);
        bv[q] = S::Load(b + q * kLanes);
        kv[q] = S::Load(k + q * kLanes);
        wr[q] = S::Mul(wv[q], rq);
        br = S::Fma(bv[q], rq, br);
        kr = S::Fma(kv[q], rq, kr);
      }
      const V b_dot_r = S::Set1(S::ReduceAdd(br));
      const V k_dot_r = S::Set1(S::ReduceAdd(kr));
      alignas(64) float sa[n];
      float* y = p.y + t * p.y_stride;
      for (int64_t i0 = 0; i0 < n; i0 += kLanes) {
        V ps[kLanes], pq[kLanes];
        SKEIN_UNROLL
        for (int i = 0; i < kLanes; ++i) {
          const float* row = p.state + (i0 + i) * n;
          // The next head's state usually follows this one (a sequence's heads are adjacent
          // and run in order): fetch it while this one is computed.
          SKEIN_UNROLL
          for (int q = 0; q < NB; ++q) S::Prefetch(row + n * n + q * kLanes);
          V s0 = S::Zero(), q0 = S::Zero();
          SKEIN_UNROLL
          for (int q = 0; q < NB; ++q) {
            const V sv = S::Load(row + q * kLanes);
            s0 = S::Fma(sv, av[q], s0);
            q0 = S::Fma(sv, wr[q], q0);
          }
          ps[i] = s0;
          pq[i] = q0;
        }
        S::Transpose(ps);
        S::Transpose(pq);
        V sum_s = ps[0], sum_q = pq[0];
        SKEIN_UNROLL
        for (int i = 1; i < kLanes; ++i) {
          sum_s = S::Add(sum_s, ps[i]);
          sum_q = S::Add(sum_q, pq[i]);
        }
        S::Store(sa + i0, sum_s);
        const V vi = S::Load(v + i0);
        S::Store(y + i0, S::Fma(vi, k_dot_r, S::Fma(sum_s, b_dot_r, sum_q)));
      }
      for (int64_t i = 0; i < n; ++i) {
        float* row = p.state + i * n;
        const V sai = S::Set1(sa[i]), vi = S::Set1(v[i]);
        SKEIN_UNROLL
        for (int q = 0; q < NB; ++q) {
          V sv = S::Mul(S::Load(row + q * kLanes), wv[q]);
          sv = S::Fma(sai, bv[q], sv);
          sv = S::Fma(vi, kv[q], sv);
          S::Store(row + q * kLanes, sv);
        }
      }
    }
  }

  static void Wkv7Head(const Wkv7HeadArgs& p) {
    // Transposing costs about as much as a few tokens' updates, so only long runs use it.
    constexpr int64_t kMinTokensForKeyMajor = 8;
    if (p.n == 64 && 64 % kLanes == 0) {
      if (p.tokens >= kMinTokensForKeyMajor) return Wkv7HeadKeyMajor<64 / kLanes>(p);
      // The row-major form keeps 5·NB vectors live: only with 32 registers (AVX-512).
      if constexpr (kLanes >= 16) return Wkv7HeadRowMajor<64 / kLanes>(p);
    }
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
          sa_acc = S::Fma(S::LoadPartial(a + full, rest), S::LoadPartial(row + full, rest), sa_acc);
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

  // RWKV-5.2/6: y[i] = S[i]·r + v[i]·(Σ_j r[j]·u[j]·k[j]), then S[i] = S[i]⊙w + v[i]·k. The
  // bonus term is one dot product per token, so each row is read and written once.
  static void Wkv6Head(const Wkv6HeadArgs& p) {
    const int64_t n = p.n;
    const int64_t full = n - n % kLanes;
    const int rest = static_cast<int>(n - full);
    for (int64_t t = 0; t < p.tokens; ++t) {
      const int64_t off = t * p.stride;
      const float* r = p.r + off;
      const float* w = p.w + t * p.w_stride;
      const float* k = p.k + off;
      const float* v = p.v + off;
      float* y = p.y + t * p.y_stride;
      V ruk_acc = S::Zero();
      for (int64_t j = 0; j < full; j += kLanes) {
        ruk_acc = S::Fma(S::Mul(S::Load(r + j), S::Load(p.u + j)), S::Load(k + j), ruk_acc);
      }
      if (rest) {
        ruk_acc = S::Fma(S::Mul(S::LoadPartial(r + full, rest), S::LoadPartial(p.u + full, rest)),
                         S::LoadPartial(k + full, rest), ruk_acc);
      }
      const float ruk = S::ReduceAdd(ruk_acc);
      for (int64_t i = 0; i < n; ++i) {
        float* row = p.state + i * n;
        const V vi = S::Set1(v[i]);
        V y_acc = S::Zero();
        for (int64_t j = 0; j < full; j += kLanes) {
          const V sv = S::Load(row + j);
          y_acc = S::Fma(sv, S::Load(r + j), y_acc);
          S::Store(row + j, S::Fma(S::Load(k + j), vi, S::Mul(sv, S::Load(w + j))));
        }
        if (rest) {
          const V sv = S::LoadPartial(row + full, rest);
          y_acc = S::Fma(sv, S::LoadPartial(r + full, rest), y_acc);
          S::StorePartial(row + full, rest,
                          S::Fma(S::LoadPartial(k + full, rest), vi,
                                 S::Mul(sv, S::LoadPartial(w + full, rest))));
        }
        y[i] = S::ReduceAdd(y_acc) + v[i] * ruk;
      }
    }
  }

  // e^r for |r| <= ln2/2 (Cephes' expf polynomial, relative error ~1e-7); the traits' Exp
  // reduces x = n·ln2 + r and scales the result by 2^n.
  static V ExpPolynomial(V r) {
    V p = S::Set1(1.9875691500e-4f);
    p = S::Fma(p, r, S::Set1(1.3981999507e-3f));
    p = S::Fma(p, r, S::Set1(8.3334519073e-3f));
    p = S::Fma(p, r, S::Set1(4.1665795894e-2f));
    p = S::Fma(p, r, S::Set1(1.6666665459e-1f));
    p = S::Fma(p, r, S::Set1(5.0000001201e-1f));
    return S::Fma(S::Mul(p, r), r, S::Add(r, S::Set1(1.0f)));
  }

  template <typename F>
  static void Map(const float* x, float* y, int64_t n, F f) {
    int64_t i = 0;
    for (; i + kLanes <= n; i += kLanes) S::Store(y + i, f(S::Load(x + i)));
    if (i < n) {
      const int rest = static_cast<int>(n - i);
      S::StorePartial(y + i, rest, f(S::LoadPartial(x + i, rest)));
    }
  }

  static V SigmoidV(V x) {
    const V one = S::Set1(1.0f);
    return S::Div(one, S::Add(one, S::Exp(S::Sub(S::Zero(), x))));
  }

  static void ExpArray(const float* x, float* y, int64_t n) {
    Map(x, y, n, [](V v) { return S::Exp(v); });
  }
  static void SigmoidArray(const float* x, float* y, int64_t n) { Map(x, y, n, &SigmoidV); }
  static void TanhArray(const float* x, float* y, int64_t n) {
    // tanh x = 1 − 2/(e^{2x} + 1): saturates cleanly to ±1 at both ends.
    Map(x, y, n, [](V v) {
      const V one = S::Set1(1.0f);
      const V e = S::Exp(S::Add(v, v));
      return S::Sub(one, S::Div(S::Set1(2.0f), S::Add(e, one)));
    });
  }

  static constexpr KernelTable MakeTable(IsaLevel level) {
    return KernelTable{level,     &MatMul,   &LayerNorm,    &L2Normalize, &Wkv7Head,
                       &Wkv6Head, &ExpArray, &SigmoidArray, &TanhArray};
  }
};

}  // namespace skein::kernels::simd

#endif  // SKEIN_KERNELS_CPU_SIMD_KERNELS_IMPL_H_
