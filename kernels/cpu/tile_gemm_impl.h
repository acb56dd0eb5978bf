// The tile kernel over packed bf16 panels, written once against a tile unit `Tiles` and
// compiled for AMX (tile_gemm_amx.cc) and for a software model of the unit
// (tile_gemm_model.cc). Included by those two files only, each with its own flags: everything
// here is file-local (see kernel_table.h on sharing inline code between ISA units).
//
// Tile plan (8 tile registers of up to 16 rows × 64 bytes):
//   0-2  accumulators: 16 batch rows × 16 output rows of fp32 each, together one 48-row panel
//   3    activations: 16 batch rows × 16 pairs of bf16 (32 values of k)
//   4-6  weights: 16 pairs of k × 16 output rows, read straight from the panel (a panel's
//        pair j is 48 words, so the three 16-row slices are tiles with a 192-byte row stride)
// For every 32 values of k the weights are loaded once and each activation part multiplies
// them into the same accumulators.
//
// `Tiles` provides: a constructor that configures the tiles as above and a destructor that
// releases them; ZeroAccumulators(); LoadWeights(b0, b1, b2, stride_bytes);
// MultiplyActivations(a, stride_bytes) (load tile 3, then accumulate 3×4 → 0, 3×5 → 1,
// 3×6 → 2); StoreAccumulator(s, float out[16 * 16]) (tile s, rows 64 bytes apart).
#ifndef SKEIN_KERNELS_CPU_TILE_GEMM_IMPL_H_
#define SKEIN_KERNELS_CPU_TILE_GEMM_IMPL_H_

#include <cstdint>
#include <vector>

#include "kernels/cpu/bf16_panels_internal.h"
#include "kernels/cpu/kernels.h"
#include "kernels/cpu/tile_products_internal.h"

namespace skein::kernels {
namespace {

constexpr int kTileColumns = 16;            // output rows per accumulator tile
constexpr int kPanelSlices = 3;             // accumulator tiles per panel
constexpr int kPairsPerStep = 16;           // k-pairs per activation tile
constexpr int64_t kPanelRowBytes = 48 * 4;  // bytes between pairs of a panel
constexpr int64_t kTileRowBytes = 64;

static_assert(kPanelSlices * kTileColumns == kBf16PanelRows);

// The palette-1 configuration the tile instructions read (LDTILECFG's 64-byte layout).
struct alignas(64) TileConfig {
  uint8_t palette = 1;
  uint8_t start_row = 0;
  uint8_t reserved[14] = {};
  uint16_t colsb[16] = {};
  uint8_t rows[16] = {};
};
static_assert(sizeof(TileConfig) == 64);

TileConfig PanelTileConfig() {
  TileConfig c;
  for (int t = 0; t < 7; ++t) {
    c.rows[t] = kTileRows;
    c.colsb[t] = kTileRowBytes;
  }
  return c;
}

template <class Tiles>
void TilePanelProduct(const MatMulJob& job, const uint32_t* split, int parts, int64_t o_begin,
                      int64_t o_end) {
  const int64_t kdim = job.w.cols;
  if (kdim == 0) {
    if (!job.accumulate) {
      for (int64_t b = 0; b < job.batch; ++b)
        for (int64_t o = o_begin; o < o_end; ++o) job.y[b * job.ldy + o] = 0.0f;
    }
    return;
  }
  if (split == nullptr) {
    static thread_local std::vector<uint32_t> scratch;
    const size_t words = static_cast<size_t>(Bf16PartsWords(job.batch, kdim, parts));
    if (scratch.size() < words) scratch.resize(words);
    SplitToBf16Parts(job, parts, 0, job.batch, scratch.data());
    split = scratch.data();
  }
  const int64_t pairs = (kdim + 1) / 2;
  const int64_t stride = Bf16PairStride(kdim);  // words per activation row
  const int64_t padded = (job.batch + kTileRows - 1) / kTileRows * kTileRows;
  const int64_t full_steps = pairs / kPairsPerStep;
  const int64_t tail = pairs % kPairsPerStep;
  const int64_t a_stride_bytes = stride * 4;

  Tiles tiles;
  // The last, partial step of k: its weight rows copied with zeros after them (the panel's
  // next rows belong to the next panel, or lie past the matrix).
  alignas(64) uint32_t tail_weights[kPanelSlices][kPairsPerStep * kTileColumns];
  alignas(64) float out[kTileRows * kTileColumns];
  for (int64_t o0 = o_begin; o0 < o_end; o0 += kBf16PanelRows) {
    const uint32_t* panel = job.w.panels + (o0 / kBf16PanelRows) * pairs * kBf16PanelRows;
    if (tail != 0) {
      for (int s = 0; s < kPanelSlices; ++s) {
        for (int64_t r = 0; r < kPairsPerStep; ++r) {
          const uint32_t* src =
              panel + (full_steps * kPairsPerStep + r) * kBf16PanelRows + s * kTileColumns;
          for (int c = 0; c < kTileColumns; ++c) {
            tail_weights[s][r * kTileColumns + c] = r < tail ? src[c] : 0;
          }
        }
      }
    }
    const int64_t columns = o_end - o0 < kBf16PanelRows ? o_end - o0 : kBf16PanelRows;
    for (int64_t m0 = 0; m0 < job.batch; m0 += kTileRows) {
      tiles.ZeroAccumulators();
      const uint32_t* a = split + m0 * stride;
      for (int64_t step = 0; step < full_steps; ++step) {
        const uint32_t* b = panel + step * kPairsPerStep * kBf16PanelRows;
        tiles.LoadWeights(b, b + kTileColumns, b + 2 * kTileColumns, kPanelRowBytes);
        for (int p = 0; p < parts; ++p) {
          tiles.MultiplyActivations(a + p * padded * stride + step * kPairsPerStep, a_stride_bytes);
        }
      }
      if (tail != 0) {
        tiles.LoadWeights(tail_weights[0], tail_weights[1], tail_weights[2], kTileRowBytes);
        for (int p = 0; p < parts; ++p) {
          tiles.MultiplyActivations(a + p * padded * stride + full_steps * kPairsPerStep,
                                    a_stride_bytes);
        }
      }
      const int64_t rows = job.batch - m0 < kTileRows ? job.batch - m0 : kTileRows;
      for (int s = 0; s < kPanelSlices && s * kTileColumns < columns; ++s) {
        tiles.StoreAccumulator(s, out);
        const int64_t n =
            columns - s * kTileColumns < kTileColumns ? columns - s * kTileColumns : kTileColumns;
        for (int64_t r = 0; r < rows; ++r) {
          float* y = job.y + (m0 + r) * job.ldy + o0 + s * kTileColumns;
          const float* sums = out + r * kTileColumns;
          if (job.accumulate) {
            for (int64_t c = 0; c < n; ++c) y[c] += sums[c];
          } else {
            for (int64_t c = 0; c < n; ++c) y[c] = sums[c];
          }
        }
      }
    }
  }
}

}  // namespace
}  // namespace skein::kernels

#endif  // SKEIN_KERNELS_CPU_TILE_GEMM_IMPL_H_
