// The element types of weights, activations and states: fp32, bf16 and IEEE fp16. One enum
// for the whole project (checkpoints, kernels, the engine), with exact conversions between
// them (float16.h has the scalar ones).
#ifndef SKEIN_BASE_DTYPE_H_
#define SKEIN_BASE_DTYPE_H_

#include <cstddef>
#include <string_view>

namespace skein::base {

enum class DType { kF32, kBF16, kF16 };

// "fp32", "bf16", "fp16".
std::string_view DTypeName(DType t);
// Bytes per element: 4 or 2.
size_t DTypeSize(DType t);

// Converts `count` elements from `src` (of `from`) into `dst` (of `to`), rounding to nearest
// even when narrowing (NaN stays NaN, overflow becomes infinity). The buffers must not
// overlap; neither needs any alignment. Pure and thread-safe.
void ConvertElements(DType from, const void* src, DType to, void* dst, size_t count);

}  // namespace skein::base

#endif  // SKEIN_BASE_DTYPE_H_
