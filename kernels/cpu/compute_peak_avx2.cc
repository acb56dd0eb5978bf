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
  // Every lane, so that none of the work is dead.
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(sum), _mm256_extractf128_ps(sum, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

}  // namespace skein::kernels::peak
