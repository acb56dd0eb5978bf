// QuantizeRowsInt8 (kernels.h): symmetric per-row int8 quantisation of weight matrices, done
// once when weights are loaded; QuantizeActivationsInt8: per-block quantisation of activations
// for products with int8 activations, done per product. Portable code: the results must not
// depend on the ISA level.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <vector>

#include "base/dtype.h"
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

// round_half_even(v) clamped to [-127, 127], for any v that is not NaN: QuantizeValue with
// the clamp first (quotients over a subnormal scale can exceed 127·1.5) and its comparisons
// made on the bit patterns (the same order for non-negative floats; the sign is the top bit,
// and -0 gives 0 either way). Branch-free, as QuantizeValue.
inline int8_t QuantizeActivation(float v) {
  int32_t v_bits;
  std::memcpy(&v_bits, &v, sizeof(v_bits));
  constexpr int32_t k127 = 0x42fe0000;  // 127.0f
  const int32_t a_bits = std::min(v_bits & 0x7fffffff, k127);
  float a;
  std::memcpy(&a, &a_bits, sizeof(a));
  int32_t i = static_cast<int32_t>(a);
  const float frac = a - static_cast<float>(i);
  int32_t frac_bits;
  std::memcpy(&frac_bits, &frac, sizeof(frac_bits));
  constexpr int32_t kHalf = 0x3f000000;  // 0.5f
  i += static_cast<int32_t>(frac_bits > kHalf) | (static_cast<int32_t>(frac_bits == kHalf) & i & 1);
  const int32_t negative = v_bits >> 31;  // all ones or zero
  return static_cast<int8_t>((i ^ negative) - negative);
}

// One whole block: writes its kInt8ActivationBlock q and returns its scale. The reference
// for the variants' own SIMD quantisers (int8_dot_impl.h), which MatMul uses: they follow the
// same steps and must give the same bits.
inline float QuantizeActivationBlock(const float* in, int8_t* out) {
  constexpr int kBlock = static_cast<int>(kInt8ActivationBlock);
  // max |x| over the bit patterns: for non-negative floats the integer order is the numeric
  // order, and NaN and ±inf (exponent all ones) are exactly the patterns >= 0x7f800000.
  int32_t amax_bits = 0;
  for (int i = 0; i < kBlock; ++i) {
    int32_t bits;
    std::memcpy(&bits, in + i, sizeof(bits));
    amax_bits = std::max(amax_bits, bits & 0x7fffffff);
  }
  if (amax_bits >= 0x7f800000) {
    std::memset(out, 0, kBlock);
    return std::numeric_limits<float>::quiet_NaN();
  }
  float amax;
  std::memcpy(&amax, &amax_bits, sizeof(amax));
  const float scale = amax / 127.0f;
  if (!(scale > 0.0f)) {
    std::memset(out, 0, kBlock);
    return scale;
  }
  for (int i = 0; i < kBlock; ++i) out[i] = QuantizeActivation(in[i] / scale);
  return scale;
}

// One row: `blocks` blocks of kInt8ActivationBlock (those past `cols` are padding).
void QuantizeActivationRow(const float* x, int64_t cols, int64_t blocks, int8_t* q, float* scales) {
  constexpr int64_t kBlock = kInt8ActivationBlock;
  const int64_t full = cols / kBlock;
  for (int64_t j = 0; j < full; ++j) {
    scales[j] = QuantizeActivationBlock(x + j * kBlock, q + j * kBlock);
  }
  int64_t j = full;
  if (j < blocks && cols > full * kBlock) {
    // The tail block, zero-filled to a whole one: zeros change neither its maximum nor, being
    // quantised to 0, the padding.
    float tail[kBlock] = {};
    std::copy(x + full * kBlock, x + cols, tail);
    scales[j] = QuantizeActivationBlock(tail, q + j * kBlock);
    ++j;
  }
  for (; j < blocks; ++j) {
    scales[j] = 0.0f;
    std::memset(q + j * kBlock, 0, kBlock);
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

void DequantizeRowsInt8(const int8_t* q, const float* scales, int64_t rows, int64_t cols, DType to,
                        void* out) {
  std::vector<float> row(static_cast<size_t>(cols));
  for (int64_t r = 0; r < rows; ++r) {
    base::ConvertElements(DType::kI8, q + r * cols, DType::kF32, row.data(), cols);
    for (float& v : row) v *= scales[r];
    base::ConvertElements(DType::kF32, row.data(), to,
                          static_cast<uint8_t*>(out) + r * cols * DTypeSize(to), cols);
  }
}

}  // namespace skein::kernels
