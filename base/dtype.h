// The element types of weights, activations and states: fp32, bf16, IEEE fp16 and int8. One
// enum for the whole project (checkpoints, kernels, the engine), with exact conversions between
// the floating-point types (float16.h has the scalar ones).
//
// kI8 is a storage type for quantised weight matrices only (kernels.h: WeightMatrix::scales):
// its values mean nothing without their per-row scales, so it is not a checkpoint type and
// ConvertElements only widens it to fp32.
#ifndef SKEIN_BASE_DTYPE_H_
#define SKEIN_BASE_DTYPE_H_

#include <cstddef>
#include <string_view>

namespace skein::base {

enum class DType { kF32, kBF16, kF16, kI8 };

// "fp32", "bf16", "fp16", "int8".
std::string_view DTypeName(DType t);
// Bytes per element: 4, 2 or 1.
size_t DTypeSize(DType t);

// Converts `count` elements from `src` (of `from`) into `dst` (of `to`), rounding to nearest
// even when narrowing (NaN stays NaN, overflow becomes infinity). The buffers must not
// overlap; neither needs any alignment. Pure and thread-safe.
//
// kI8 is supported only as a source converted to kF32: each int8 becomes the float of the
// same integer value (no scale is applied; scales live with the matrix, not the elements).
// Any other conversion involving kI8 (to kI8 included, even from kI8) is a programming
// error: it prints the pair of types to stderr and aborts rather than produce wrong data.
void ConvertElements(DType from, const void* src, DType to, void* dst, size_t count);

}  // namespace skein::base

#endif  // SKEIN_BASE_DTYPE_H_
