// QuantizeRowsInt8 (kernels.h): symmetric per-row int8 quantisation of weight matrices, done
// once when weights are loaded. Portable code: its result must not depend on the ISA level.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <limits>

#include "base/float16.h"
#include "kernels/cpu/kernels.h"

namespace skein::kernels {
namespace {

// Rounds to the nearest integer, ties to even, whatever the floating-point rounding mode
// (std::nearbyint would follow fesetround). Works on |v| so that v - floor(v) is exact: for
// a < 1 it is a itself, and for a >= 1, floor(a) >= a/2 (Sterbenz).
float RoundHalfEven(float v) {
  const float a = std::fabs(v);
  const float lower = std::floor(a);
  const float frac = a - lower;
  float r = lower;
  if (frac > 0.5f || (frac == 0.5f && std::fmod(lower, 2.0f) != 0.0f)) r = lower + 1.0f;
  return std::copysign(r, v);
}

template <class T, class Widen>
void QuantizeRows(const T* src, int64_t stride, int64_t cols, int64_t first, int64_t last,
                  Widen widen, int8_t* q, float* scales) {
  for (int64_t o = first; o < last; ++o) {
    const T* row = src + o * stride;
    int8_t* out = q + o * cols;
    float amax = 0.0f;
    bool finite = true;
    for (int64_t i = 0; i < cols; ++i) {
      const float w = widen(row[i]);
      finite = finite && std::isfinite(w);
      amax = std::max(amax, std::fabs(w));
    }
    const float scale = finite ? amax / 127.0f : std::numeric_limits<float>::quiet_NaN();
    scales[o] = scale;
    // A zero scale (all zeros, or an amax so small that amax / 127 underflows) leaves nothing
    // to divide by; a NaN scale already makes every product NaN. Either way q is 0.
    if (!(scale > 0.0f)) {
      std::fill(out, out + cols, int8_t{0});
      continue;
    }
    for (int64_t i = 0; i < cols; ++i) {
      // Clamped because a subnormal scale is rounded coarsely enough that amax / scale can
      // pass 127.5.
      const float v = std::clamp(RoundHalfEven(widen(row[i]) / scale), -127.0f, 127.0f);
      out[i] = static_cast<int8_t>(v);
    }
  }
}

void QuantizeRange(const WeightMatrix& src, int64_t first, int64_t last, int8_t* q, float* scales) {
  switch (src.type) {
    case DType::kF32:
      return QuantizeRows(
          static_cast<const float*>(src.data), src.stride, src.cols, first, last,
          [](float f) { return f; }, q, scales);
    case DType::kBF16:
      return QuantizeRows(
          static_cast<const uint16_t*>(src.data), src.stride, src.cols, first, last,
          [](uint16_t h) { return base::Bf16ToF32(h); }, q, scales);
    case DType::kF16:
      return QuantizeRows(
          static_cast<const uint16_t*>(src.data), src.stride, src.cols, first, last,
          [](uint16_t h) { return base::F16ToF32(h); }, q, scales);
    case DType::kI8:
      break;
  }
  std::fprintf(stderr, "QuantizeRowsInt8: the source must be fp32, bf16 or fp16, not %s\n",
               base::DTypeName(src.type).data());
  std::abort();
}

}  // namespace

void QuantizeRowsInt8(const WeightMatrix& src, int8_t* q, float* scales, ThreadPool* pool) {
  if (src.rows <= 0) return;
  // Chunks of about 64K elements: enough work per chunk to amortise handing it out.
  const int64_t grain = std::max<int64_t>(1, (int64_t{1} << 16) / std::max<int64_t>(1, src.cols));
  if (pool == nullptr || src.rows <= grain) {
    QuantizeRange(src, 0, src.rows, q, scales);
    return;
  }
  pool->ParallelFor(src.rows, grain, [&](int64_t first, int64_t last) {
    QuantizeRange(src, first, last, q, scales);
  });
}

}  // namespace skein::kernels
