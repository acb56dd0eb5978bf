// The AVX512_BF16 matrix product (kernels_avx512_bf16.cc), separate from the kernel table
// because it needs a CPU feature beyond the AVX-512 level.
#ifndef SKEIN_KERNELS_CPU_KERNELS_BF16_H_
#define SKEIN_KERNELS_CPU_KERNELS_BF16_H_

#include <cstdint>

#include "kernels/cpu/kernels.h"

namespace skein::kernels {

// Whether this build has MatMulBf16Dot (the CPU must still be checked).
bool HaveBf16DotKernels();

// Rows [b_begin, b_end) × columns [o_begin, o_end) of `job` (bf16 weights) with the
// activations rounded to bf16 (nearest even) and fp32 accumulation.
void MatMulBf16Dot(const MatMulJob& job, int64_t b_begin, int64_t b_end, int64_t o_begin,
                   int64_t o_end);

}  // namespace skein::kernels

#endif  // SKEIN_KERNELS_CPU_KERNELS_BF16_H_
