// Products over packed int8 panels (kernels.h, "Pre-packed int8 weights") on AVX512-VNNI
// CPUs: with int8 activations on vpdpbusd, and with fp32 activations (exact) on fp32 FMAs. Compiled
// with the AVX-512 flags plus -mavx512vnni (in the int8_dot_avx512_vnni library); chosen only on
// CPUs with AVX512-VNNI.
//
// A register tile is up to kRows batch rows × up to 3 vectors of 16 output rows (one panel).
// For each group of 4 k, one load per vector of weights (16 rows × 4 bytes, unsigned) and one
// broadcast per batch row of its 4 activation bytes (signed) feed one vpdpbusd per tile cell,
// which adds the 4 products to each lane's int32 sum: no horizontal sums and no sign fix-ups,
// unlike the row-major kernels. A block's sum starts at the row's correction (−128·Σ qx),
// which cancels the weights' +128 offset, so after its 8 groups it is exactly Σ qx·q; it is
// then converted (exact: |S| <= 32·127² < 2²⁴) and multiply-added with the block's scale into
// the cell's fp32 sum. The row scales multiply once at the end.
#include "kernels/cpu/kernel_table.h"

#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VNNI__)
#include <immintrin.h>

#include <algorithm>
#include <cstring>
#include <utility>

#include "kernels/cpu/int8_panels_internal.h"

#define SKEIN_PANEL_UNROLL _Pragma("GCC unroll 16")

namespace skein::kernels {
namespace {

constexpr int kLanes = 16;
constexpr int kPanel = static_cast<int>(kInt8PanelRows);
constexpr int kPanelVectors = kPanel / kLanes;
static_assert(kPanel % kLanes == 0);
constexpr int kGroupBytes = 4;
constexpr int64_t kGroupPanelBytes = kGroupBytes * kPanel;
constexpr int kGroupsPerBlock = static_cast<int>(kInt8ActivationBlock) / kGroupBytes;
// Batch rows per register tile: 4 rows × 3 vectors need 12 int32 and 12 fp32 sums and 3
// vectors of weights, within the 32 zmm registers.
constexpr int kRows = 4;
// Blocks of K per pass when several tiles of rows share a panel: 48 rows × 8 blocks × 32 bytes
// = 12 KiB of weights, which stay in L1 while every tile of rows passes over them.
constexpr int64_t kBlocksPerPass = 8;
// Bytes of int8 activations per block of batch rows (long batches): well inside L2 beside
// the panels' passes, and at least kMinBatchBlock rows so each pass still serves many tiles.
constexpr int64_t kBatchBlockBytes = int64_t{256} << 10;
constexpr int64_t kMinBatchBlock = 16;

struct TileArgs {
  const int8_t* xq;      // the tile's first row of activations
  int64_t ldq;           // bytes per row of activations
  const float* xs;       // the first row's block scales
  const int32_t* xc;     // the first row's block corrections
  int64_t ldb;           // blocks per row of activations (scales and corrections)
  const uint8_t* panel;  // the panel's first group
  int64_t groups;        // groups of 4 k in the panel (all of K)
  int64_t j_begin;       // blocks of K to take
  int64_t j_end;
  const float* wscales;  // the panel's first row's scale
  float* y;              // the first row's output at the panel's first row
  int64_t ldy;
  int cols;  // outputs of the panel to write, 1..48
  bool add;  // y += instead of y =
};

// Lanes of a panel's vector v that hold outputs, for a panel with `cols` of them: the last
// panel's rows past the matrix have no scale to read and no output to write.
inline __mmask16 OutputMask(int cols, int v) {
  const int valid = cols - v * kLanes < kLanes ? cols - v * kLanes : kLanes;
  return static_cast<__mmask16>((1u << valid) - 1);
}

// out (+)= sum · wscale on the lanes of `mask`.
inline void StoreScaled(float* out, __m512 sum, __m512 wscale, __mmask16 mask, bool add) {
  __m512 r = _mm512_mul_ps(sum, wscale);
  if (add) r = _mm512_add_ps(r, _mm512_maskz_loadu_ps(mask, out));
  _mm512_mask_storeu_ps(out, mask, r);
}

// The panel holding output row o (a multiple of kPanel) of a matrix with `groups` groups of K,
// and how many of its rows a product over [o, o_end) writes.
struct PanelSpan {
  const uint8_t* panel;
  int cols;  // 1..48
  int nv;    // vectors of 16 rows that hold them
};
inline PanelSpan SpanAt(const MatMulJob& job, int64_t groups, int64_t o, int64_t o_end) {
  const int cols = o_end - o < kPanel ? static_cast<int>(o_end - o) : kPanel;
  return {reinterpret_cast<const uint8_t*>(job.w.panels) + (o / kPanel) * groups * kGroupPanelBytes,
          cols, (cols + kLanes - 1) / kLanes};
}

inline int32_t LoadGroup(const int8_t* p) {
  int32_t v;
  std::memcpy(&v, p, sizeof(v));
  return v;
}

// One group of 4 k: sum[m][v] += Σ_t x[m][t] · w[v][lane][t].
template <int MR, int NV>
inline void Group(__m512i (&sum)[MR][NV], const uint8_t* w, const int8_t* x, int64_t ldq) {
  __m512i wv[NV];
  SKEIN_PANEL_UNROLL
  for (int v = 0; v < NV; ++v) {
    wv[v] = _mm512_loadu_si512(w + v * kLanes * kGroupBytes);
  }
  SKEIN_PANEL_UNROLL
  for (int m = 0; m < MR; ++m) {
    const __m512i xb = _mm512_set1_epi32(LoadGroup(x + m * ldq));
    SKEIN_PANEL_UNROLL
    for (int v = 0; v < NV; ++v) sum[m][v] = _mm512_dpbusd_epi32(sum[m][v], wv[v], xb);
  }
}

template <int MR, int NV>
void Tile(const TileArgs& a) {
  __m512 acc[MR][NV];
  SKEIN_PANEL_UNROLL
  for (int m = 0; m < MR; ++m) {
    SKEIN_PANEL_UNROLL
    for (int v = 0; v < NV; ++v) acc[m][v] = _mm512_setzero_ps();
  }
  for (int64_t j = a.j_begin; j < a.j_end; ++j) {
    __m512i sum[MR][NV];
    SKEIN_PANEL_UNROLL
    for (int m = 0; m < MR; ++m) {
      const __m512i start = _mm512_set1_epi32(a.xc[m * a.ldb + j]);
      SKEIN_PANEL_UNROLL
      for (int v = 0; v < NV; ++v) sum[m][v] = start;
    }
    const int64_t g0 = j * kGroupsPerBlock;
    const uint8_t* w = a.panel + g0 * kGroupPanelBytes;
    const int8_t* x = a.xq + g0 * kGroupBytes;
    if (a.groups - g0 >= kGroupsPerBlock) {
      SKEIN_PANEL_UNROLL
      for (int g = 0; g < kGroupsPerBlock; ++g) {
        Group<MR, NV>(sum, w + g * kGroupPanelBytes, x + g * kGroupBytes, a.ldq);
      }
    } else {
      // The last block of a K that is not a multiple of 32: the panel ends sooner (x is
      // padded with zeros, so the missing groups would add nothing).
      for (int64_t g = 0; g < a.groups - g0; ++g) {
        Group<MR, NV>(sum, w + g * kGroupPanelBytes, x + g * kGroupBytes, a.ldq);
      }
    }
    SKEIN_PANEL_UNROLL
    for (int m = 0; m < MR; ++m) {
      const __m512 scale = _mm512_set1_ps(a.xs[m * a.ldb + j]);
      SKEIN_PANEL_UNROLL
      for (int v = 0; v < NV; ++v) {
        acc[m][v] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(sum[m][v]), scale, acc[m][v]);
      }
    }
  }
  SKEIN_PANEL_UNROLL
  for (int v = 0; v < NV; ++v) {
    const __mmask16 mask = OutputMask(a.cols, v);
    const __m512 wscale = _mm512_maskz_loadu_ps(mask, a.wscales + v * kLanes);
    SKEIN_PANEL_UNROLL
    for (int m = 0; m < MR; ++m) {
      StoreScaled(a.y + m * a.ldy + v * kLanes, acc[m][v], wscale, mask, a.add);
    }
  }
}

using TileFn = void (*)(const TileArgs&);

// kTiles.fn[nv-1][mr-1] = Tile<mr, nv>.
template <int... I>
constexpr auto MakeTileTable(std::integer_sequence<int, I...>) {
  struct Table {
    TileFn fn[kPanelVectors][kRows];
  } table{};
  ((table.fn[I / kRows][I % kRows] = &Tile<I % kRows + 1, I / kRows + 1>), ...);
  return table;
}
constexpr auto kTiles = MakeTileTable(std::make_integer_sequence<int, kPanelVectors * kRows>{});

// ---- Exact products over int8 panels: fp32 activations, weights widened to fp32. ----
// XOR with 0x80 turns each offset byte back into the signed q; a shift left then an
// arithmetic shift right brings byte t of every lane down as an int32, converted exactly.
constexpr int kWideRows = 6;

template <int MR, int NV>
void WideTile(const float* x, int64_t ldx, const uint8_t* panel, int64_t kdim, const float* wscales,
              float* y, int64_t ldy, int cols, bool add) {
  // Few rows (decode): k = 4g + 2, 4g + 3 go to accumulators of their own, so a group's four
  // multiply-adds do not all wait on each other; the two sets are summed at the end.
  constexpr bool kSplit = MR <= 2;
  __m512 acc[MR][NV];
  __m512 acc2[MR][NV];
  SKEIN_PANEL_UNROLL
  for (int m = 0; m < MR; ++m) {
    SKEIN_PANEL_UNROLL
    for (int v = 0; v < NV; ++v) {
      acc[m][v] = _mm512_setzero_ps();
      acc2[m][v] = _mm512_setzero_ps();
    }
  }
  const __m512i sign_flip = _mm512_set1_epi32(static_cast<int>(0x80808080u));
  const int64_t groups = (kdim + kGroupBytes - 1) / kGroupBytes;
  for (int64_t g = 0; g < groups; ++g) {
    // x past K is not read (its row may end there); those weights are 0 anyway.
    const int taken = kdim - g * kGroupBytes < kGroupBytes
                          ? static_cast<int>(kdim - g * kGroupBytes)
                          : kGroupBytes;
    __m512i q[NV];
    SKEIN_PANEL_UNROLL
    for (int v = 0; v < NV; ++v) {
      q[v] = _mm512_xor_si512(
          _mm512_loadu_si512(panel + g * kGroupPanelBytes + v * kLanes * kGroupBytes), sign_flip);
    }
    SKEIN_PANEL_UNROLL
    for (int t = 0; t < kGroupBytes; ++t) {
      if (t >= taken) break;
      __m512 wt[NV];
      SKEIN_PANEL_UNROLL
      for (int v = 0; v < NV; ++v) {
        const __m512i up = t == 3 ? q[v] : _mm512_slli_epi32(q[v], 24 - 8 * t);
        wt[v] = _mm512_cvtepi32_ps(_mm512_srai_epi32(up, 24));
      }
      SKEIN_PANEL_UNROLL
      for (int m = 0; m < MR; ++m) {
        const __m512 xb = _mm512_set1_ps(x[m * ldx + g * kGroupBytes + t]);
        SKEIN_PANEL_UNROLL
        for (int v = 0; v < NV; ++v) {
          if (kSplit && t >= 2) {
            acc2[m][v] = _mm512_fmadd_ps(wt[v], xb, acc2[m][v]);
          } else {
            acc[m][v] = _mm512_fmadd_ps(wt[v], xb, acc[m][v]);
          }
        }
      }
    }
  }
  SKEIN_PANEL_UNROLL
  for (int v = 0; v < NV; ++v) {
    const __mmask16 mask = OutputMask(cols, v);
    const __m512 wscale = _mm512_maskz_loadu_ps(mask, wscales + v * kLanes);
    SKEIN_PANEL_UNROLL
    for (int m = 0; m < MR; ++m) {
      const __m512 sum = kSplit ? _mm512_add_ps(acc[m][v], acc2[m][v]) : acc[m][v];
      StoreScaled(y + m * ldy + v * kLanes, sum, wscale, mask, add);
    }
  }
}

using WideTileFn = void (*)(const float*, int64_t, const uint8_t*, int64_t, const float*, float*,
                            int64_t, int, bool);

// kWideTiles.fn[nv-1][mr-1] = WideTile<mr, nv>.
template <int... I>
constexpr auto MakeWideTileTable(std::integer_sequence<int, I...>) {
  struct Table {
    WideTileFn fn[kPanelVectors][kWideRows];
  } table{};
  ((table.fn[I / kWideRows][I % kWideRows] = &WideTile<I % kWideRows + 1, I / kWideRows + 1>), ...);
  return table;
}
constexpr auto kWideTiles =
    MakeWideTileTable(std::make_integer_sequence<int, kPanelVectors * kWideRows>{});

}  // namespace

bool HaveInt8PanelKernels() { return true; }

void MatMulInt8PanelsFp32Avx512(const MatMulJob& job, int64_t o_begin, int64_t o_end) {
  const int64_t kdim = job.w.cols;
  const int64_t groups = (kdim + kGroupBytes - 1) / kGroupBytes;
  for (int64_t o = o_begin; o < o_end; o += kPanel) {
    const PanelSpan span = SpanAt(job, groups, o, o_end);
    for (int64_t b = 0; b < job.batch; b += kWideRows) {
      const int mr = job.batch - b < kWideRows ? static_cast<int>(job.batch - b) : kWideRows;
      kWideTiles.fn[span.nv - 1][mr - 1](job.x + b * job.ldx, job.ldx, span.panel, kdim,
                                         job.w.scales + o, job.y + b * job.ldy + o, job.ldy,
                                         span.cols, job.accumulate);
    }
  }
}

void MatMulInt8PanelsAvx512Vnni(const MatMulJob& job, const Int8ActivationRows& xq, int64_t o_begin,
                                int64_t o_end) {
  const int64_t kdim = job.w.cols;
  if (kdim == 0) {
    // An empty sum: nothing to scale or add.
    if (!job.accumulate) {
      for (int64_t b = 0; b < job.batch; ++b)
        for (int64_t o = o_begin; o < o_end; ++o) job.y[b * job.ldy + o] = 0.0f;
    }
    return;
  }
  const int64_t groups = (kdim + kGroupBytes - 1) / kGroupBytes;
  const int64_t blocks = (kdim + kInt8ActivationBlock - 1) / kInt8ActivationBlock;
  const int64_t ldb = xq.ldq / kInt8ActivationBlock;
  // One tile of rows streams each panel once, front to back (decode); more rows take the
  // panel in passes of K that stay in L1 while every tile of rows uses them, and long batches
  // (prompts) go in blocks of rows whose activations stay in L2 while every panel of the range
  // passes over them (otherwise each pass would fetch every row's activations from memory
  // again, in short strided pieces).
  const int64_t pass = job.batch <= kRows ? blocks : kBlocksPerPass;
  const int64_t batch_block =
      std::max<int64_t>(kMinBatchBlock, kBatchBlockBytes / xq.ldq / kRows * kRows);
  for (int64_t b0 = 0; b0 < job.batch; b0 += batch_block) {
    const int64_t b1 = job.batch - b0 < batch_block ? job.batch : b0 + batch_block;
    for (int64_t o = o_begin; o < o_end; o += kPanel) {
      const PanelSpan span = SpanAt(job, groups, o, o_end);
      for (int64_t j0 = 0; j0 < blocks; j0 += pass) {
        const int64_t j1 = blocks - j0 < pass ? blocks : j0 + pass;
        for (int64_t b = b0; b < b1; b += kRows) {
          const int mr = b1 - b < kRows ? static_cast<int>(b1 - b) : kRows;
          const TileArgs args{xq.q + b * xq.ldq,
                              xq.ldq,
                              xq.scales + b * ldb,
                              xq.corrections + b * ldb,
                              ldb,
                              span.panel,
                              groups,
                              j0,
                              j1,
                              job.w.scales + o,
                              job.y + b * job.ldy + o,
                              job.ldy,
                              span.cols,
                              job.accumulate || j0 > 0};
          kTiles.fn[span.nv - 1][mr - 1](args);
        }
      }
    }
  }
}

}  // namespace skein::kernels

#else

namespace skein::kernels {
bool HaveInt8PanelKernels() { return false; }
void MatMulInt8PanelsAvx512Vnni(const MatMulJob&, const Int8ActivationRows&, int64_t, int64_t) {}
void MatMulInt8PanelsFp32Avx512(const MatMulJob&, int64_t, int64_t) {}
}  // namespace skein::kernels

#endif
