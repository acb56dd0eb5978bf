// QuantizeRowsInt8 (kernels.h): symmetric per-row int8 quantisation of weight matrices, done
// once when weights are loaded; QuantizeActivationsInt8: per-block quantisation of activations
// for products with int8 activations, done per product. Portable code: the results must not
// depend on the ISA level.
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

// round_half_even(v) clamped to [-127, 127], for finite v with |v| < 127·1.5 (the most a
// subnormal scale's rounding allows: see the clamp). Integer arithmetic rather than
// std::nearbyint, whose result follows fesetround; branch-free, because which way random
// weights round is a coin toss that mispredicted branches made cost most of the time.
// |v| - trunc(|v|) is exact: it is |v| itself below 1, and trunc(|v|) >= |v|/2 above
// (Sterbenz).
inline int8_t QuantizeValue(float v) {
  const float a = std::fabs(v);
  int32_t i = static_cast<int32_t>(a);  // truncation: floor for a >= 0
  const float frac = a - static_cast<float>(i);
  i += static_cast<int32_t>(frac > 0.5f) | (static_cast<int32_t>(frac == 0.5f) & i & 1);
  i = std::min(i, 127);
  const int32_t negative = -static_cast<int32_t>(v < 0.0f);  // all ones or zero
  return static_cast<int8_t>((i ^ negative) - negative);
}

template <class T, class Widen>
void QuantizeRows(const T* src, int64_t stride, int64_t cols, int64_t first, int64_t last,
                  Widen widen, int8_t* q, float* scales) {
  for (int64_t o = first; o < last; ++o) {
    const T* row = src + o * stride;
    int8_t* out = q + o * cols;
    float amax = 0.0f;
    // w - w is 0 for finite w and NaN for NaN or ±inf; the NaN sticks in the sum.
    float nonfinite = 0.0f;
    for (int64_t i = 0; i < cols; ++i) {
      const float w = widen(row[i]);
      nonfinite += w - w;
      amax = std::max(amax, std::fabs(w));
    }
    const bool finite = nonfinite == 0.0f;
    const float scale = finite ? amax / 127.0f : std::numeric_limits<float>::quiet_NaN();
    scales[o] = scale;
    // A zero scale (all zeros, or an amax so small that amax / 127 underflows) leaves nothing
    // to divide by; a NaN scale already makes every product NaN. Either way q is 0.
    if (!(scale > 0.0f)) {
      std::fill(out, out + cols, int8_t{0});
      continue;
    }
    for (int64_t i = 0; i < cols; ++i) out[i] = QuantizeValue(widen(row[i]) / scale);
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

// round_half_even(v) clamped to [-127, 127], for any v that is not NaN (QuantizeValue with
// the clamp first, so that quotients over a subnormal scale, which can exceed 127·1.5, stay
// in range of the integer conversion).
inline int8_t QuantizeActivation(float v) {
  const float a = std::min(std::fabs(v), 127.0f);
  int32_t i = static_cast<int32_t>(a);
  const float frac = a - static_cast<float>(i);
  i += static_cast<int32_t>(frac > 0.5f) | (static_cast<int32_t>(frac == 0.5f) & i & 1);
  const int32_t negative = -static_cast<int32_t>(v < 0.0f);
  return static_cast<int8_t>((i ^ negative) - negative);
}

// One row: `blocks` blocks of kInt8ActivationBlock (those past `cols` are padding).
void QuantizeActivationRow(const float* x, int64_t cols, int64_t blocks, int8_t* q, float* scales) {
  constexpr int64_t kBlock = kInt8ActivationBlock;
  for (int64_t j = 0; j < blocks; ++j) {
    const int64_t begin = j * kBlock;
    const int64_t n = std::clamp<int64_t>(cols - begin, 0, kBlock);
    const float* in = x + begin;
    int8_t* out = q + begin;
    float amax = 0.0f;
    float nonfinite = 0.0f;  // as in QuantizeRows: NaN once any value is NaN or ±inf
    for (int64_t i = 0; i < n; ++i) {
      nonfinite += in[i] - in[i];
      amax = std::max(amax, std::fabs(in[i]));
    }
    const float scale = nonfinite == 0.0f ? amax / 127.0f : std::numeric_limits<float>::quiet_NaN();
    scales[j] = scale;
    int64_t i = 0;
    if (scale > 0.0f) {
      for (; i < n; ++i) out[i] = QuantizeActivation(in[i] / scale);
    }
    // Zero and NaN scales, the tail past `cols` and the padding blocks: 0.
    for (; i < kBlock; ++i) out[i] = 0;
  }
}

}  // namespace

int64_t Int8ActivationRowBytes(int64_t cols) {
  constexpr int64_t kAlign = 2 * kInt8ActivationBlock;
  return (cols + kAlign - 1) / kAlign * kAlign;
}

void QuantizeActivationsInt8(const float* x, int64_t ldx, int64_t batch, int64_t cols, int8_t* q,
                             float* scales) {
  const int64_t ldq = Int8ActivationRowBytes(cols);
  const int64_t blocks = ldq / kInt8ActivationBlock;
  for (int64_t b = 0; b < batch; ++b) {
    QuantizeActivationRow(x + b * ldx, cols, blocks, q + b * ldq, scales + b * blocks);
  }
}

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
