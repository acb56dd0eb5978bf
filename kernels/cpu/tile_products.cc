// The tile policy, AMX availability and the portable activation splitter (tile_products.h,
// tile_products_internal.h).
#include "kernels/cpu/tile_products.h"

#include <atomic>
#include <cmath>
#include <cstring>

#include "base/float16.h"
#include "kernels/cpu/bf16_panels_internal.h"
#include "kernels/cpu/cpu_features.h"
#include "kernels/cpu/tile_products_internal.h"

namespace skein::kernels {
namespace {

std::atomic<int64_t> min_batch_exact{TilePolicy{}.min_batch_exact};
std::atomic<int64_t> min_batch_rounded{TilePolicy{}.min_batch_rounded};
std::atomic<bool> emulate{false};

// bf16 of `v`, to nearest even, except that a finite value too large for that (it would
// round to infinity) is truncated instead, so that the remainder after it stays finite.
uint16_t LeadingBf16(float v) {
  const uint16_t h = base::F32ToBf16(v);
  if (std::isinf(base::Bf16ToF32(h)) && std::isfinite(v)) {
    uint32_t bits;
    std::memcpy(&bits, &v, sizeof(bits));
    return static_cast<uint16_t>(bits >> 16);
  }
  return h;
}

}  // namespace

bool AmxTilesAvailable() {
  static const bool available = [] {
    const CpuFeatures& f = DetectCpuFeatures();
    return HaveAmxTileKernel() && f.amx_tile && f.amx_bf16 && RequestAmxTileData();
  }();
  return available;
}

void SetTilePolicy(const TilePolicy& policy) {
  min_batch_exact.store(policy.min_batch_exact, std::memory_order_relaxed);
  min_batch_rounded.store(policy.min_batch_rounded, std::memory_order_relaxed);
  emulate.store(policy.emulate, std::memory_order_relaxed);
}

TilePolicy GetTilePolicy() {
  TilePolicy p;
  p.min_batch_exact = min_batch_exact.load(std::memory_order_relaxed);
  p.min_batch_rounded = min_batch_rounded.load(std::memory_order_relaxed);
  p.emulate = emulate.load(std::memory_order_relaxed);
  return p;
}

int64_t Bf16PartsWords(int64_t batch, int64_t cols, int parts) {
  const int64_t padded = (batch + kTileRows - 1) / kTileRows * kTileRows;
  return parts * padded * Bf16PairStride(cols);
}

void SplitToBf16Parts(const MatMulJob& job, int parts, int64_t b_begin, int64_t b_end,
                      uint32_t* out) {
  const int64_t cols = job.w.cols;
  const int64_t stride = Bf16PairStride(cols);
  const int64_t padded = (job.batch + kTileRows - 1) / kTileRows * kTileRows;
  const int64_t rows_end = b_end == job.batch ? padded : b_end;
  for (int p = 0; p < parts; ++p) {
    std::memset(out + (p * padded + b_begin) * stride, 0,
                static_cast<size_t>((rows_end - b_begin) * stride) * sizeof(uint32_t));
  }
  for (int64_t b = b_begin; b < b_end; ++b) {
    const float* x = job.x + b * job.ldx;
    for (int64_t i = 0; i < cols; ++i) {
      float rest = x[i];
      for (int p = 0; p < parts; ++p) {
        const uint16_t h = p + 1 < parts ? LeadingBf16(rest) : base::F32ToBf16(rest);
        uint32_t& word = out[(p * padded + b) * stride + i / 2];
        word |= static_cast<uint32_t>(h) << (i % 2 == 0 ? 0 : 16);
        const float taken = base::Bf16ToF32(h);
        // Infinities and NaNs have no finer parts: the first part carries them.
        if (!std::isfinite(taken)) break;
        rest -= taken;
      }
    }
  }
}

}  // namespace skein::kernels
