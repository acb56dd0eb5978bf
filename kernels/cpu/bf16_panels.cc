// Packing of bf16 weights into panels, and the portable product over them (used where the
// CPU or the active ISA level has no vector kernel for panels: tests force such levels).
#include <cstdint>
#include <cstring>

#include "base/float16.h"
#include "kernels/cpu/bf16_panels_internal.h"
#include "kernels/cpu/kernels.h"
#include "kernels/cpu/panel_packing.h"

namespace skein::kernels {

int64_t Bf16PanelWords(int64_t rows, int64_t cols) {
  const int64_t panels = (rows + kBf16PanelRows - 1) / kBf16PanelRows;
  return panels * ((cols + 1) / 2) * kBf16PanelRows;
}

namespace {

void PackPanelRange(const WeightMatrix& w, uint32_t* out, int64_t first, int64_t last) {
  const auto* data = static_cast<const uint16_t*>(w.data);
  const int64_t pairs = (w.cols + 1) / 2;
  for (int64_t p = first; p < last; ++p) {
    uint32_t* panel = out + p * pairs * kBf16PanelRows;
    for (int64_t i = 0; i < kBf16PanelRows; ++i) {
      const int64_t row = p * kBf16PanelRows + i;
      if (row >= w.rows) {
        for (int64_t j = 0; j < pairs; ++j) panel[j * kBf16PanelRows + i] = 0;
        continue;
      }
      const uint16_t* src = data + row * w.stride;
      for (int64_t j = 0; j < pairs; ++j) {
        const uint32_t lo = src[2 * j];
        const uint32_t hi = 2 * j + 1 < w.cols ? src[2 * j + 1] : 0;
        panel[j * kBf16PanelRows + i] = lo | hi << 16;
      }
    }
  }
}

}  // namespace

void PackBf16Panels(const WeightMatrix& w, uint32_t* out, ThreadPool* pool) {
  PackPanelsInChunks((w.rows + kBf16PanelRows - 1) / kBf16PanelRows, pool,
                     [&](int64_t first, int64_t last) { PackPanelRange(w, out, first, last); });
}

int64_t Bf16PairStride(int64_t cols) { return ((cols + 1) / 2 + 15) / 16 * 16; }

void MatMulBf16PanelsPortable(const MatMulJob& job, int64_t o_begin, int64_t o_end) {
  const int64_t pairs = (job.w.cols + 1) / 2;
  for (int64_t b = 0; b < job.batch; ++b) {
    const float* x = job.x + b * job.ldx;
    for (int64_t o = o_begin; o < o_end; ++o) {
      const uint32_t* words =
          job.w.panels + (o / kBf16PanelRows) * pairs * kBf16PanelRows + o % kBf16PanelRows;
      float sum = 0.0f;
      for (int64_t k = 0; k < job.w.cols; ++k) {
        const uint32_t word = words[(k / 2) * kBf16PanelRows];
        const float weight = base::Bf16ToF32(static_cast<uint16_t>(k % 2 == 0 ? word : word >> 16));
        const float value = job.bf16_activations ? base::Bf16ToF32(base::F32ToBf16(x[k])) : x[k];
        sum += weight * value;
      }
      float& y = job.y[b * job.ldy + o];
      y = job.accumulate ? y + sum : sum;
    }
  }
}

}  // namespace skein::kernels
