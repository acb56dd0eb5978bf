// Products over pre-packed bf16 panels (kernels.h, "Pre-packed bf16 weights"): the vector
// kernel (kernels_avx512_bf16.cc) and the portable loop (bf16_panels.cc). Internal to the
// kernels library; callers use MatMul.
#ifndef SKEIN_KERNELS_CPU_BF16_PANELS_INTERNAL_H_
#define SKEIN_KERNELS_CPU_BF16_PANELS_INTERNAL_H_

#include <cstdint>

#include "kernels/cpu/kernels.h"

namespace skein::kernels {

// Words per row of activations converted to bf16 pairs for a product with `cols` inputs.
int64_t Bf16PairStride(int64_t cols);

// Rounds rows [b_begin, b_end) of job.x to bf16 pairs (nearest even) at
// pairs + b · Bf16PairStride(job.w.cols): done once per product and shared by all its pieces.
// Needs AVX512_BF16.
void ConvertToBf16Pairs(const MatMulJob& job, int64_t b_begin, int64_t b_end, uint32_t* pairs);

// Output rows [o_begin, o_end) of `job` for every batch row; o_begin is a multiple of
// kBf16PanelRows. With job.bf16_activations the activations are rounded to bf16 (nearest
// even) and multiplied on vdpbf16ps, read from `converted` (ConvertToBf16Pairs of the whole
// batch) or converted here when it is null; otherwise the weights are widened and the product
// is fp32 like the row-major kernels. Needs AVX512_BF16 (Bf16PanelsAccelerated()).
void MatMulBf16PanelsAvx512(const MatMulJob& job, const uint32_t* converted, int64_t o_begin,
                            int64_t o_end);

// The same product on any CPU, one multiply-add at a time.
void MatMulBf16PanelsPortable(const MatMulJob& job, int64_t o_begin, int64_t o_end);

}  // namespace skein::kernels

#endif  // SKEIN_KERNELS_CPU_BF16_PANELS_INTERNAL_H_
