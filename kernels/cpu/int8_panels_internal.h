// Products over pre-packed int8 panels (kernels.h, "Pre-packed int8 weights"): the
// AVX512-VNNI kernel (int8_panels_avx512_vnni.cc) and the portable loop (int8_panels.cc).
// Internal to the kernels library; callers use MatMul.
#ifndef SKEIN_KERNELS_CPU_INT8_PANELS_INTERNAL_H_
#define SKEIN_KERNELS_CPU_INT8_PANELS_INTERNAL_H_

#include <cstdint>

#include "kernels/cpu/kernel_table.h"
#include "kernels/cpu/kernels.h"

namespace skein::kernels {

// For each of `batch` rows of quantised activations (row b at q + b·ldq, ldq a multiple of
// kInt8ActivationBlock) and each of its ldq / 32 blocks: −128 · Σ qx over the block, which is
// what the panels' +128 offset adds to that block's integer sum. Written at
// out + b·(ldq / 32) + j. Portable; exact (|Σ| <= 32·127).
void Int8PanelCorrections(const int8_t* q, int64_t ldq, int64_t batch, int32_t* out);

// Whether this build has the AVX512-VNNI panel kernel (the CPU must still be checked).
bool HaveInt8PanelKernels();

// Output rows [o_begin, o_end) of `job` (int8 panels, int8 activations) for every batch row,
// from `xq` (corrections set); o_begin is a multiple of kInt8PanelRows. Each block's integer
// sum S is exact; A = Σ_j sx[j]·S_j is summed in fp32 in block order (fused multiply-adds;
// products with many columns add it to y in pieces of several blocks). Needs AVX512-VNNI.
void MatMulInt8PanelsAvx512Vnni(const MatMulJob& job, const Int8ActivationRows& xq, int64_t o_begin,
                                int64_t o_end);

// Output rows [o_begin, o_end) of `job` (int8 panels, fp32 activations: job.int8_activations
// false) for every batch row; o_begin a multiple of kInt8PanelRows. Exact like the row-major
// kernels: each q widened to fp32, y (+)= scales[o]·Σ x·q with the sum in fp32 (in another
// order). Compiled beside the VNNI kernel and run where it runs (Int8PanelsAccelerated()).
void MatMulInt8PanelsFp32Avx512(const MatMulJob& job, int64_t o_begin, int64_t o_end);

// The same product on any CPU, one multiply-add at a time: with `xq` (int8 activations) it is
// the scalar reference's formula; with null it multiplies job.x (fp32) by the widened weights
// as the row-major scalar kernel does. Corrections are not read.
void MatMulInt8PanelsPortable(const MatMulJob& job, const Int8ActivationRows* xq, int64_t o_begin,
                              int64_t o_end);

}  // namespace skein::kernels

#endif  // SKEIN_KERNELS_CPU_INT8_PANELS_INTERNAL_H_
