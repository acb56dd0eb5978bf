// Matrix products with bf16 weights and bf16-rounded activations, on vdpbf16ps (AVX512_BF16):
// twice the multiply-add rate of widening bf16 to fp32, with fp32 accumulation. Compiled with
// -mavx512bf16 on top of the AVX-512 flags; called only when the CPU has AVX512_BF16.
//
// The same packed GEMM as simd_kernels_impl.h, over pairs: a 32-bit lane holds two
// consecutive k of one output row (weights) or one batch row (activations), and vdpbf16ps
// adds both products into an fp32 lane.
#include "kernels/cpu/bf16_panels_internal.h"
#include "kernels/cpu/kernels_bf16.h"

#if defined(__AVX512BF16__) && defined(__AVX512BW__) && defined(__AVX512VL__)
#include <immintrin.h>

#include <cstdint>
#include <cstdlib>
#include <utility>

namespace skein::kernels {
namespace {

#define SKEIN_UNROLL _Pragma("GCC unroll 16")

constexpr int kLanes = 16;
constexpr int kPanelVectors = 3;
constexpr int kPanel = kPanelVectors * kLanes;  // output rows per panel
constexpr int kRows = 8;                        // batch rows per register tile
constexpr int64_t kPairsPerBlock = 128;         // k-pairs per block (256 values of k)
constexpr int64_t kBatchBlock = 128;
// Smaller batches use the dot-product tiles (below); packing pays off from here.
constexpr int64_t kMinPackedBatch = 64;

// In-place transpose of a 16×16 block of 32-bit lanes.
[[gnu::always_inline]] inline void Transpose(__m512i* rows) {
  __m512i t[16], u[16], v[16];
  for (int i = 0; i < 16; i += 2) {
    t[i] = _mm512_unpacklo_epi32(rows[i], rows[i + 1]);
    t[i + 1] = _mm512_unpackhi_epi32(rows[i], rows[i + 1]);
  }
  for (int i = 0; i < 16; i += 4) {
    for (int h = 0; h < 2; ++h) {
      u[i + 2 * h] = _mm512_unpacklo_epi64(t[i + h], t[i + 2 + h]);
      u[i + 2 * h + 1] = _mm512_unpackhi_epi64(t[i + h], t[i + 2 + h]);
    }
  }
  for (int g = 0; g < 4; g += 2) {
    for (int r = 0; r < 4; ++r) {
      v[4 * g + r] = _mm512_shuffle_i32x4(u[4 * g + r], u[4 * (g + 1) + r], 0x88);
      v[4 * (g + 1) + r] = _mm512_shuffle_i32x4(u[4 * g + r], u[4 * (g + 1) + r], 0xdd);
    }
  }
  for (int r = 0; r < 4; ++r) {
    rows[r] = _mm512_shuffle_i32x4(v[r], v[8 + r], 0x88);
    rows[8 + r] = _mm512_shuffle_i32x4(v[r], v[8 + r], 0xdd);
    rows[4 + r] = _mm512_shuffle_i32x4(v[4 + r], v[12 + r], 0x88);
    rows[12 + r] = _mm512_shuffle_i32x4(v[4 + r], v[12 + r], 0xdd);
  }
}

__mmask32 HalfMask(int64_t count) {
  return count >= 32 ? ~__mmask32{0} : static_cast<__mmask32>((uint32_t{1} << count) - 1);
}

// panel[j·kPanel + p] = (w[p][2j], w[p][2j+1]) for p < rows and 2j < kc, zero elsewhere.
void PackPanel(const uint16_t* w, int64_t ldw, int rows, int64_t kc, uint32_t* panel) {
  const int64_t pairs = (kc + 1) / 2;
  int64_t j = 0;
  if (rows == kPanel) {
    // Full panel, whole blocks of 16 pairs: no masks.
    for (; 2 * (j + kLanes) <= kc; j += kLanes) {
      SKEIN_UNROLL
      for (int q = 0; q < kPanelVectors; ++q) {
        __m512i block[kLanes];
        SKEIN_UNROLL
        for (int i = 0; i < kLanes; ++i) {
          const uint16_t* row = w + (q * kLanes + i) * ldw + 2 * j;
          // 48 rows are read side by side, more streams than the hardware prefetchers
          // follow; weights that come from DRAM (the head) stream when each load also
          // fetches the same bytes of the next panel.
          _mm_prefetch(reinterpret_cast<const char*>(row + kPanel * ldw), _MM_HINT_T1);
          block[i] = _mm512_loadu_si512(row);
        }
        Transpose(block);
        SKEIN_UNROLL
        for (int i = 0; i < kLanes; ++i) {
          _mm512_storeu_si512(panel + (j + i) * kPanel + q * kLanes, block[i]);
        }
      }
    }
  }
  for (; j < pairs; j += kLanes) {
    const int64_t values = kc - 2 * j;  // bf16 values left in each row from pair j
    const int width = pairs - j < kLanes ? static_cast<int>(pairs - j) : kLanes;
    for (int q = 0; q < kPanelVectors; ++q) {
      __m512i block[kLanes];
      for (int i = 0; i < kLanes; ++i) {
        const int p = q * kLanes + i;
        block[i] = p < rows ? _mm512_maskz_loadu_epi16(HalfMask(values), w + p * ldw + 2 * j)
                            : _mm512_setzero_si512();
      }
      Transpose(block);
      for (int i = 0; i < width; ++i) {
        _mm512_storeu_si512(panel + (j + i) * kPanel + q * kLanes, block[i]);
      }
    }
  }
}

// xb[m·ldb + j] = (bf16(x[m][2j]), bf16(x[m][2j+1])), rounded to nearest even.
void ConvertRows(const float* x, int64_t ldx, int64_t rows, int64_t kc, uint32_t* xb, int64_t ldb) {
  for (int64_t m = 0; m < rows; ++m) {
    const float* src = x + m * ldx;
    uint32_t* dst = xb + m * ldb;
    for (int64_t k = 0; k < kc; k += 32) {
      const int64_t left = kc - k;
      const __mmask16 lo_mask =
          left >= 16 ? __mmask16(0xffff) : static_cast<__mmask16>((1u << left) - 1);
      const __mmask16 hi_mask =
          left >= 32
              ? __mmask16(0xffff)
              : (left <= 16 ? __mmask16(0) : static_cast<__mmask16>((1u << (left - 16)) - 1));
      const __m512 lo = _mm512_maskz_loadu_ps(lo_mask, src + k);
      const __m512 hi = _mm512_maskz_loadu_ps(hi_mask, src + k + 16);
      const __m512i pairs = (__m512i)_mm512_cvtne2ps_pbh(hi, lo);
      const int64_t pair_count = (left + 1) / 2;
      _mm512_mask_storeu_epi32(
          dst + k / 2,
          pair_count >= 16 ? __mmask16(0xffff) : static_cast<__mmask16>((1u << pair_count) - 1),
          pairs);
    }
  }
}

// NV: the panel's vectors of 16 output rows that hold rows of W (a matrix's last panel may hold
// only 16 or 32 of its 48 rows; the rest is zero padding, neither read nor multiplied).
// kAhead: also fetch, into L2, the words that follow this block in memory (the next K block of
// the panel, or the next panel), one block ahead, so that the next block's first tile does
// not wait for DRAM (the head's panels are read from memory once per product).
template <int MR, int NV, bool kAhead = false>
void Tile(const uint32_t* xb, int64_t ldb, const uint32_t* panel, int64_t pairs, float* y,
          int64_t ldy, int cols, bool add) {
  static_assert(NV >= 1 && NV <= kPanelVectors);
  __m512 acc[MR][NV];
  SKEIN_UNROLL
  for (int m = 0; m < MR; ++m) {
    SKEIN_UNROLL
    for (int q = 0; q < NV; ++q) acc[m][q] = _mm512_setzero_ps();
  }
  for (int64_t j = 0; j < pairs; ++j) {
    __m512bh wv[NV];
    SKEIN_UNROLL
    for (int q = 0; q < NV; ++q) {
      if constexpr (kAhead) {
        _mm_prefetch(reinterpret_cast<const char*>(panel + (pairs + j) * kPanel + q * kLanes),
                     _MM_HINT_T1);
      }
      wv[q] = (__m512bh)_mm512_loadu_si512(panel + j * kPanel + q * kLanes);
    }
    SKEIN_UNROLL
    for (int m = 0; m < MR; ++m) {
      const __m512bh xv = (__m512bh)_mm512_set1_epi32(static_cast<int>(xb[m * ldb + j]));
      SKEIN_UNROLL
      for (int q = 0; q < NV; ++q) acc[m][q] = _mm512_dpbf16_ps(acc[m][q], xv, wv[q]);
    }
  }
  SKEIN_UNROLL
  for (int m = 0; m < MR; ++m) {
    float* out = y + m * ldy;
    SKEIN_UNROLL
    for (int q = 0; q < NV; ++q) {
      const int left = cols - q * kLanes;
      if (left <= 0) continue;
      const __mmask16 mask =
          left >= kLanes ? __mmask16(0xffff) : static_cast<__mmask16>((1u << left) - 1);
      const __m512 prior =
          add ? _mm512_maskz_loadu_ps(mask, out + q * kLanes) : _mm512_setzero_ps();
      _mm512_mask_storeu_ps(out + q * kLanes, mask, _mm512_add_ps(prior, acc[m][q]));
    }
  }
}

using TileFn = void (*)(const uint32_t*, int64_t, const uint32_t*, int64_t, float*, int64_t, int,
                        bool);
// table.fn[nv - 1][mr - 1] = Tile<mr, nv, kAhead>.
template <bool kAhead, int... I>
constexpr auto MakeTiles(std::integer_sequence<int, I...>) {
  struct Table {
    TileFn fn[kPanelVectors][kRows];
  } table{};
  ((table.fn[I / kRows][I % kRows] = &Tile<I % kRows + 1, I / kRows + 1, kAhead>), ...);
  return table;
}
constexpr auto kTiles = MakeTiles<false>(std::make_integer_sequence<int, kPanelVectors * kRows>{});
constexpr auto kTilesAhead =
    MakeTiles<true>(std::make_integer_sequence<int, kPanelVectors * kRows>{});

// The vectors of a panel that hold any of its `cols` output rows.
int PanelVectors(int cols) { return (cols + kLanes - 1) / kLanes; }

// ---- Mid-size batches: dot-product tiles on W in place (no packing). ----
// An MR×NR tile of y as MR·NR vector accumulators over k, summed across lanes at the end;
// W rows are read straight from their storage, so no packing cost is paid for a batch too
// small to amortize it.
constexpr int kDotRows = 4;
constexpr int kDotCols = 6;
constexpr int64_t kDotBlockRows = 96;
constexpr int64_t kDotBlockK = 1024;  // even, so blocks start on a pair

float ReduceAdd(__m512 v) {
  const __m512 halves = _mm512_add_ps(v, _mm512_shuffle_f32x4(v, v, 0x4e));
  const __m256 h = _mm512_castps512_ps256(halves);
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

// The lane sums of four vectors, as one 4-float vector (fewer shuffles than four ReduceAdds).
__m128 ReduceAdd4(__m512 a, __m512 b, __m512 c, __m512 d) {
  // Fold 512 → 256 bits: s0 = [a halves summed | b halves summed], s1 likewise for c, d.
  const __m512 s0 =
      _mm512_add_ps(_mm512_shuffle_f32x4(a, b, 0x44), _mm512_shuffle_f32x4(a, b, 0xee));
  const __m512 s1 =
      _mm512_add_ps(_mm512_shuffle_f32x4(c, d, 0x44), _mm512_shuffle_f32x4(c, d, 0xee));
  // Fold 256 → 128 bits: one 128-bit lane each for a, b, c, d.
  const __m512 u =
      _mm512_add_ps(_mm512_shuffle_f32x4(s0, s1, 0x88), _mm512_shuffle_f32x4(s0, s1, 0xdd));
  // Sum the four floats within each lane.
  const __m512 w = _mm512_add_ps(u, _mm512_shuffle_ps(u, u, 0xb1));
  const __m512 z = _mm512_add_ps(w, _mm512_shuffle_ps(w, w, 0x4e));
  return _mm512_castps512_ps128(
      _mm512_permutexvar_ps(_mm512_setr_epi32(0, 4, 8, 12, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0), z));
}

// y[m][n] (+)= Σ_j xb[m][j] · w[n][2j, 2j+1] over kc values of k.
template <int MR, int NR>
void DotTile(const uint32_t* xb, int64_t ldb, const uint16_t* w, int64_t ldw, int64_t kc, float* y,
             int64_t ldy, bool add) {
  __m512 acc[MR][NR];
  SKEIN_UNROLL
  for (int m = 0; m < MR; ++m) {
    SKEIN_UNROLL
    for (int n = 0; n < NR; ++n) acc[m][n] = _mm512_setzero_ps();
  }
  const int64_t pairs = (kc + 1) / 2;
  for (int64_t j = 0; j < pairs; j += kLanes) {
    const int64_t left = kc - 2 * j;
    const __mmask32 wmask = HalfMask(left);
    const __mmask16 xmask =
        static_cast<__mmask16>(pairs - j >= kLanes ? 0xffff : (1u << (pairs - j)) - 1);
    __m512bh xv[MR];
    SKEIN_UNROLL
    for (int m = 0; m < MR; ++m)
      xv[m] = (__m512bh)_mm512_maskz_loadu_epi32(xmask, xb + m * ldb + j);
    SKEIN_UNROLL
    for (int n = 0; n < NR; ++n) {
      const uint16_t* row = w + n * ldw + 2 * j;
      _mm_prefetch(reinterpret_cast<const char*>(row + NR * ldw), _MM_HINT_T1);
      const __m512bh wv = (__m512bh)_mm512_maskz_loadu_epi16(wmask, row);
      SKEIN_UNROLL
      for (int m = 0; m < MR; ++m) acc[m][n] = _mm512_dpbf16_ps(acc[m][n], xv[m], wv);
    }
  }
  SKEIN_UNROLL
  for (int m = 0; m < MR; ++m) {
    float* out = y + m * ldy;
    int n = 0;
    if constexpr (NR >= 4) {
      __m128 sums = ReduceAdd4(acc[m][0], acc[m][1], acc[m][2], acc[m][3]);
      if (add) sums = _mm_add_ps(sums, _mm_loadu_ps(out));
      _mm_storeu_ps(out, sums);
      n = 4;
    }
    SKEIN_UNROLL
    for (; n < NR; ++n) {
      const float sum = ReduceAdd(acc[m][n]);
      out[n] = add ? out[n] + sum : sum;
    }
  }
}

using DotTileFn = void (*)(const uint32_t*, int64_t, const uint16_t*, int64_t, int64_t, float*,
                           int64_t, bool);

template <int... I>
constexpr auto MakeDotTiles(std::integer_sequence<int, I...>) {
  struct Table {
    DotTileFn fn[kDotRows][kDotCols];
  } table{};
  ((table.fn[I / kDotCols][I % kDotCols] = &DotTile<I / kDotCols + 1, I % kDotCols + 1>), ...);
  return table;
}
constexpr auto kDotTiles = MakeDotTiles(std::make_integer_sequence<int, kDotRows * kDotCols>{});

static_assert(kPanel == kBf16PanelRows, "packed panels are the GEMM's panels");

// ---- Exact products over packed panels: bf16 weights widened to fp32. ----
// A word holds k = 2j in its low half and 2j + 1 in its high half; shifting the low half up
// (or masking the high half) gives each as an fp32 lane, multiplied by the fp32 activation.
constexpr int kWideRows = 6;

// NV as for Tile.
template <int MR, int NV>
void WideTile(const float* x, int64_t ldx, const uint32_t* panel, int64_t kc, float* y, int64_t ldy,
              int cols, bool add) {
  // Few rows (decode): the odd k go to accumulators of their own, so each pair's two
  // multiply-adds do not wait on each other; the two sets are summed at the end.
  constexpr bool kSplit = MR <= 2;
  static_assert(NV >= 1 && NV <= kPanelVectors);
  __m512 acc[MR][NV];
  __m512 acc_odd[MR][NV];
  SKEIN_UNROLL
  for (int m = 0; m < MR; ++m) {
    SKEIN_UNROLL
    for (int q = 0; q < NV; ++q) {
      acc[m][q] = _mm512_setzero_ps();
      acc_odd[m][q] = _mm512_setzero_ps();
    }
  }
  const __m512i high_half = _mm512_set1_epi32(static_cast<int>(0xFFFF0000u));
  const int64_t full_pairs = kc / 2;
  for (int64_t j = 0; j < full_pairs; ++j) {
    __m512 even[NV], odd[NV];
    SKEIN_UNROLL
    for (int q = 0; q < NV; ++q) {
      const __m512i words = _mm512_loadu_si512(panel + j * kPanel + q * kLanes);
      even[q] = _mm512_castsi512_ps(_mm512_slli_epi32(words, 16));
      odd[q] = _mm512_castsi512_ps(_mm512_and_si512(words, high_half));
    }
    SKEIN_UNROLL
    for (int m = 0; m < MR; ++m) {
      const __m512 x0 = _mm512_set1_ps(x[m * ldx + 2 * j]);
      const __m512 x1 = _mm512_set1_ps(x[m * ldx + 2 * j + 1]);
      SKEIN_UNROLL
      for (int q = 0; q < NV; ++q) {
        acc[m][q] = _mm512_fmadd_ps(even[q], x0, acc[m][q]);
        if constexpr (kSplit) {
          acc_odd[m][q] = _mm512_fmadd_ps(odd[q], x1, acc_odd[m][q]);
        } else {
          acc[m][q] = _mm512_fmadd_ps(odd[q], x1, acc[m][q]);
        }
      }
    }
  }
  if (kc % 2 != 0) {  // the last k has no partner (its high half is zero padding)
    const int64_t j = full_pairs;
    SKEIN_UNROLL
    for (int q = 0; q < NV; ++q) {
      const __m512 even = _mm512_castsi512_ps(
          _mm512_slli_epi32(_mm512_loadu_si512(panel + j * kPanel + q * kLanes), 16));
      SKEIN_UNROLL
      for (int m = 0; m < MR; ++m) {
        acc[m][q] = _mm512_fmadd_ps(even, _mm512_set1_ps(x[m * ldx + 2 * j]), acc[m][q]);
      }
    }
  }
  SKEIN_UNROLL
  for (int m = 0; m < MR; ++m) {
    float* out = y + m * ldy;
    SKEIN_UNROLL
    for (int q = 0; q < NV; ++q) {
      const int left = cols - q * kLanes;
      if (left <= 0) continue;
      const __mmask16 mask =
          left >= kLanes ? __mmask16(0xffff) : static_cast<__mmask16>((1u << left) - 1);
      const __m512 prior =
          add ? _mm512_maskz_loadu_ps(mask, out + q * kLanes) : _mm512_setzero_ps();
      const __m512 sum = kSplit ? _mm512_add_ps(acc[m][q], acc_odd[m][q]) : acc[m][q];
      _mm512_mask_storeu_ps(out + q * kLanes, mask, _mm512_add_ps(prior, sum));
    }
  }
}

using WideTileFn = void (*)(const float*, int64_t, const uint32_t*, int64_t, float*, int64_t, int,
                            bool);
// table.fn[nv - 1][mr - 1] = WideTile<mr, nv>.
template <int... I>
constexpr auto MakeWideTiles(std::integer_sequence<int, I...>) {
  struct Table {
    WideTileFn fn[kPanelVectors][kWideRows];
  } table{};
  ((table.fn[I / kWideRows][I % kWideRows] = &WideTile<I % kWideRows + 1, I / kWideRows + 1>), ...);
  return table;
}
constexpr auto kWideTiles =
    MakeWideTiles(std::make_integer_sequence<int, kPanelVectors * kWideRows>{});

// The bf16 pairs of up to kBatchBlock rows of x, all of K, reused by every panel; per thread.
uint32_t* ActivationPairs(int64_t stride) {
  static thread_local uint32_t* xb = nullptr;
  static thread_local int64_t capacity = 0;
  if (capacity < kBatchBlock * stride) {
    std::free(xb);
    capacity = kBatchBlock * stride;
    xb = static_cast<uint32_t*>(std::aligned_alloc(64, capacity * sizeof(uint32_t)));
  }
  return xb;
}

}  // namespace

void ConvertToBf16Pairs(const MatMulJob& job, int64_t b_begin, int64_t b_end, uint32_t* pairs) {
  const int64_t stride = Bf16PairStride(job.w.cols);
  ConvertRows(job.x + b_begin * job.ldx, job.ldx, b_end - b_begin, job.w.cols,
              pairs + b_begin * stride, stride);
}

void MatMulBf16PanelsAvx512(const MatMulJob& job, const uint32_t* converted, int64_t o_begin,
                            int64_t o_end) {
  const int64_t kdim = job.w.cols;
  const int64_t pairs = (kdim + 1) / 2;
  const int64_t panel_words = pairs * kPanel;
  if (kdim == 0) {
    if (!job.accumulate) {
      for (int64_t b = 0; b < job.batch; ++b)
        for (int64_t o = o_begin; o < o_end; ++o) job.y[b * job.ldy + o] = 0.0f;
    }
    return;
  }
  if (!job.bf16_activations) {
    for (int64_t o = o_begin; o < o_end; o += kPanel) {
      const int cols = o_end - o < kPanel ? static_cast<int>(o_end - o) : kPanel;
      const uint32_t* panel = job.w.panels + (o / kPanel) * panel_words;
      for (int64_t b = 0; b < job.batch; b += kWideRows) {
        const int mr = job.batch - b < kWideRows ? static_cast<int>(job.batch - b) : kWideRows;
        kWideTiles.fn[PanelVectors(cols) - 1][mr - 1](job.x + b * job.ldx, job.ldx, panel, kdim,
                                                      job.y + b * job.ldy + o, job.ldy, cols,
                                                      job.accumulate);
      }
    }
    return;
  }
  const int64_t stride = Bf16PairStride(kdim);
  uint32_t* scratch = converted == nullptr ? ActivationPairs(stride) : nullptr;
  for (int64_t b0 = 0; b0 < job.batch; b0 += kBatchBlock) {
    const int64_t b1 = job.batch - b0 < kBatchBlock ? job.batch : b0 + kBatchBlock;
    const uint32_t* xb = converted != nullptr ? converted + b0 * stride : scratch;
    if (converted == nullptr) {
      ConvertRows(job.x + b0 * job.ldx, job.ldx, b1 - b0, kdim, scratch, stride);
    }
    // One register tile of rows streams each panel once, front to back (decode); more rows
    // take the panel in K blocks that stay in L1 while every tile of rows uses them.
    const int64_t block = b1 - b0 <= kRows ? pairs : kPairsPerBlock;
    for (int64_t o = o_begin; o < o_end; o += kPanel) {
      const int cols = o_end - o < kPanel ? static_cast<int>(o_end - o) : kPanel;
      const int nv = PanelVectors(cols);
      const uint32_t* panel = job.w.panels + (o / kPanel) * panel_words;
      for (int64_t j0 = 0; j0 < pairs; j0 += block) {
        const int64_t count = pairs - j0 < block ? pairs - j0 : block;
        const bool add = job.accumulate || j0 > 0;
        for (int64_t b = b0; b < b1; b += kRows) {
          const int mr = b1 - b < kRows ? static_cast<int>(b1 - b) : kRows;
          // The first tile of rows fetches the next block while later tiles reuse this one.
          const TileFn tile = b == b0 && b1 - b0 > kRows ? kTilesAhead.fn[nv - 1][mr - 1]
                                                         : kTiles.fn[nv - 1][mr - 1];
          tile(xb + (b - b0) * stride + j0, stride, panel + j0 * kPanel, count,
               job.y + b * job.ldy + o, job.ldy, cols, add);
        }
      }
    }
  }
}

bool HaveBf16DotKernels() { return true; }

void MatMulBf16Dot(const MatMulJob& job, int64_t b_begin, int64_t b_end, int64_t o_begin,
                   int64_t o_end) {
  alignas(64) static thread_local uint32_t panel[kPairsPerBlock * kPanel];
  // The bf16 pairs of one batch block of x, all of K.
  const int64_t kXStride = Bf16PairStride(job.w.cols);
  uint32_t* const xb = ActivationPairs(kXStride);
  const auto* w = static_cast<const uint16_t*>(job.w.data);
  const int64_t kdim = job.w.cols;
  if (kdim == 0 && !job.accumulate) {
    for (int64_t b = b_begin; b < b_end; ++b)
      for (int64_t o = o_begin; o < o_end; ++o) job.y[b * job.ldy + o] = 0.0f;
  }
  if (b_end - b_begin < kMinPackedBatch) {
    ConvertRows(job.x + b_begin * job.ldx, job.ldx, b_end - b_begin, kdim, xb, kXStride);
    for (int64_t o0 = o_begin; o0 < o_end; o0 += kDotBlockRows) {
      const int64_t o1 = o_end - o0 < kDotBlockRows ? o_end : o0 + kDotBlockRows;
      // K in blocks, so a tile's rows of W and x stay in L1 for long rows (the FFN's 4C).
      for (int64_t k0 = 0; k0 < kdim || k0 == 0; k0 += kDotBlockK) {
        const int64_t kc = kdim - k0 < kDotBlockK ? kdim - k0 : kDotBlockK;
        const bool add = job.accumulate || k0 > 0;
        for (int64_t b = b_begin; b < b_end; b += kDotRows) {
          const int mr = b_end - b < kDotRows ? static_cast<int>(b_end - b) : kDotRows;
          for (int64_t o = o0; o < o1; o += kDotCols) {
            const int nr = o1 - o < kDotCols ? static_cast<int>(o1 - o) : kDotCols;
            kDotTiles.fn[mr - 1][nr - 1](xb + (b - b_begin) * kXStride + k0 / 2, kXStride,
                                         w + o * job.w.stride + k0, job.w.stride, kc,
                                         job.y + b * job.ldy + o, job.ldy, add);
          }
        }
      }
    }
    return;
  }
  // As in the fp32 packed GEMM: batch blocks, then output panels, then K, so each panel's
  // rows of W are read front to back. A batch block's x is converted to bf16 pairs once, for
  // all of K, and kept for every panel.
  const int64_t kblocks = (kdim + 2 * kPairsPerBlock - 1) / (2 * kPairsPerBlock);
  for (int64_t b0 = b_begin; b0 < b_end; b0 += kBatchBlock) {
    const int64_t b1 = b_end - b0 < kBatchBlock ? b_end : b0 + kBatchBlock;
    ConvertRows(job.x + b0 * job.ldx, job.ldx, b1 - b0, kdim, xb, kXStride);
    for (int64_t o = o_begin; o < o_end; o += kPanel) {
      const int cols = o_end - o < kPanel ? static_cast<int>(o_end - o) : kPanel;
      for (int64_t kb = 0; kb < kblocks; ++kb) {
        const int64_t k0 = kb * 2 * kPairsPerBlock;
        const int64_t kc = kdim - k0 < 2 * kPairsPerBlock ? kdim - k0 : 2 * kPairsPerBlock;
        const int64_t pairs = (kc + 1) / 2;
        const bool add = job.accumulate || k0 > 0;
        PackPanel(w + o * job.w.stride + k0, job.w.stride, cols, kc, panel);
        for (int64_t b = b0; b < b1; b += kRows) {
          const int mr = b1 - b < kRows ? static_cast<int>(b1 - b) : kRows;
          kTiles.fn[PanelVectors(cols) - 1][mr - 1](xb + (b - b0) * kXStride + k0 / 2, kXStride,
                                                    panel, pairs, job.y + b * job.ldy + o, job.ldy,
                                                    cols, add);
        }
      }
    }
  }
}

}  // namespace skein::kernels

#else

namespace skein::kernels {
bool HaveBf16DotKernels() { return false; }
void MatMulBf16Dot(const MatMulJob&, int64_t, int64_t, int64_t, int64_t) {}
void ConvertToBf16Pairs(const MatMulJob&, int64_t, int64_t, uint32_t*) {}
void MatMulBf16PanelsAvx512(const MatMulJob&, const uint32_t*, int64_t, int64_t) {}
}  // namespace skein::kernels

#endif
