// Packing of int8 weights into panels, the activations' block corrections, and the portable
// product over panels (used where the CPU or the active ISA level has no vector kernel for
// them: tests force such levels).
#include <algorithm>
#include <cstdint>

#include "kernels/cpu/int8_panels_internal.h"
#include "kernels/cpu/kernels.h"
#include "kernels/cpu/panel_packing.h"

namespace skein::kernels {
namespace {

// Bytes of k one 32-bit word of a panel lane holds (vpdpbusd's group).
constexpr int64_t kGroup = 4;
// The offset that makes a signed weight an unsigned byte.
constexpr int kOffset = 128;

int64_t Groups(int64_t cols) { return (cols + kGroup - 1) / kGroup; }

void PackPanelRange(const WeightMatrix& w, uint32_t* out, int64_t first, int64_t last) {
  const auto* data = static_cast<const int8_t*>(w.data);
  const int64_t groups = Groups(w.cols);
  for (int64_t p = first; p < last; ++p) {
    uint32_t* panel = out + p * groups * kInt8PanelRows;
    for (int64_t i = 0; i < kInt8PanelRows; ++i) {
      const int64_t row = p * kInt8PanelRows + i;
      const int8_t* src = row < w.rows ? data + row * w.stride : nullptr;
      for (int64_t g = 0; g < groups; ++g) {
        uint32_t word = 0;
        for (int64_t t = 0; t < kGroup; ++t) {
          const int64_t k = g * kGroup + t;
          const int q = src != nullptr && k < w.cols ? src[k] : 0;
          word |= static_cast<uint32_t>(q + kOffset) << (8 * t);
        }
        panel[g * kInt8PanelRows + i] = word;
      }
    }
  }
}

// q[o][k] as stored in the panels.
int Weight(const WeightMatrix& w, int64_t o, int64_t k) {
  const uint32_t word = w.panels[(o / kInt8PanelRows) * Groups(w.cols) * kInt8PanelRows +
                                 (k / kGroup) * kInt8PanelRows + o % kInt8PanelRows];
  return static_cast<int>((word >> (8 * (k % kGroup))) & 0xff) - kOffset;
}

}  // namespace

int64_t Int8PanelWords(int64_t rows, int64_t cols) {
  const int64_t panels = (rows + kInt8PanelRows - 1) / kInt8PanelRows;
  return panels * Groups(cols) * kInt8PanelRows;
}

void PackInt8Panels(const WeightMatrix& w, uint32_t* out, ThreadPool* pool) {
  PackPanelsInChunks((w.rows + kInt8PanelRows - 1) / kInt8PanelRows, pool,
                     [&](int64_t first, int64_t last) { PackPanelRange(w, out, first, last); });
}

void Int8PanelCorrections(const int8_t* q, int64_t ldq, int64_t batch, int32_t* out) {
  const int64_t blocks = ldq / kInt8ActivationBlock;
  for (int64_t b = 0; b < batch; ++b) {
    for (int64_t j = 0; j < blocks; ++j) {
      const int8_t* block = q + b * ldq + j * kInt8ActivationBlock;
      int32_t sum = 0;
      for (int64_t i = 0; i < kInt8ActivationBlock; ++i) sum += block[i];
      out[b * blocks + j] = -kOffset * sum;
    }
  }
}

void MatMulInt8PanelsPortable(const MatMulJob& job, const Int8ActivationRows* xq, int64_t o_begin,
                              int64_t o_end) {
  const WeightMatrix& w = job.w;
  const int64_t blocks = (w.cols + kInt8ActivationBlock - 1) / kInt8ActivationBlock;
  for (int64_t b = 0; b < job.batch; ++b) {
    float* y = job.y + b * job.ldy;
    for (int64_t o = o_begin; o < o_end; ++o) {
      float sum = 0.0f;
      if (xq != nullptr) {
        if (w.cols == 0) {
          // An empty sum: nothing to scale or add.
          if (!job.accumulate) y[o] = 0.0f;
          continue;
        }
        const int8_t* x = xq->q + b * xq->ldq;
        const float* sx = xq->scales + b * (xq->ldq / kInt8ActivationBlock);
        for (int64_t j = 0; j < blocks; ++j) {
          const int64_t end = std::min(w.cols, (j + 1) * kInt8ActivationBlock);
          int32_t dot = 0;  // exact: |dot| <= 32·127²
          for (int64_t i = j * kInt8ActivationBlock; i < end; ++i) dot += x[i] * Weight(w, o, i);
          sum += sx[j] * static_cast<float>(dot);
        }
      } else {
        const float* x = job.x + b * job.ldx;
        for (int64_t i = 0; i < w.cols; ++i) sum += x[i] * static_cast<float>(Weight(w, o, i));
      }
      sum *= w.scales[o];
      y[o] = job.accumulate ? y[o] + sum : sum;
    }
  }
}

}  // namespace skein::kernels
