// Compiled with -mavx2 -mfma; called only where the CPU has them.
#include <immintrin.h>

#include "kernels/cpu/compute_peak_loops.h"

namespace skein::kernels::peak {

float Avx2FmaLoop(int64_t iterations) {
  // Distinct starting values: identical chains could be merged into one by the compiler.
  __m256 acc[kPeakChains];
  for (int c = 0; c < kPeakChains; ++c) acc[c] = _mm256_set1_ps(0.01f * static_cast<float>(c + 1));
  const __m256 a = _mm256_set1_ps(0.999f), b = _mm256_set1_ps(0.001f);
  for (int64_t i = 0; i < iterations; ++i) {
#pragma GCC unroll 12
    for (int c = 0; c < kPeakChains; ++c) acc[c] = _mm256_fmadd_ps(acc[c], a, b);
  }
  __m256 sum = acc[0];
  for (int c = 1; c < kPeakChains; ++c) sum = _mm256_add_ps(sum, acc[c]);
  return _mm256_cvtss_f32(sum);
}

}  // namespace skein::kernels::peak
