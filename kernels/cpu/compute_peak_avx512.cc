// Compiled with the AVX-512 F, BF16 and VNNI flags; each loop is called only where the CPU has
// its instructions.
#include <immintrin.h>

#include "kernels/cpu/compute_peak_loops.h"

namespace skein::kernels::peak {

float Avx512FmaLoop(int64_t iterations) {
  __m512 acc[kPeakChains];
  for (int c = 0; c < kPeakChains; ++c) acc[c] = _mm512_set1_ps(0.01f * static_cast<float>(c + 1));
  const __m512 a = _mm512_set1_ps(0.999f), b = _mm512_set1_ps(0.001f);
  for (int64_t i = 0; i < iterations; ++i) {
#pragma GCC unroll 12
    for (int c = 0; c < kPeakChains; ++c) acc[c] = _mm512_fmadd_ps(acc[c], a, b);
  }
  __m512 sum = acc[0];
  for (int c = 1; c < kPeakChains; ++c) sum = _mm512_add_ps(sum, acc[c]);
  return _mm512_reduce_add_ps(sum);
}

float Avx512Bf16DotLoop(int64_t iterations) {
  __m512 acc[kPeakChains];
  for (int c = 0; c < kPeakChains; ++c) acc[c] = _mm512_set1_ps(0.01f * static_cast<float>(c + 1));
  // bf16 pairs (1.0, 0.5) and (2^-10, 2^-10): small products, so the sums stay finite.
  const __m512bh a = (__m512bh)_mm512_set1_epi32(0x3F003F80);
  const __m512bh b = (__m512bh)_mm512_set1_epi32(0x3A803A80);
  for (int64_t i = 0; i < iterations; ++i) {
#pragma GCC unroll 12
    for (int c = 0; c < kPeakChains; ++c) acc[c] = _mm512_dpbf16_ps(acc[c], a, b);
  }
  __m512 sum = acc[0];
  for (int c = 1; c < kPeakChains; ++c) sum = _mm512_add_ps(sum, acc[c]);
  return _mm512_reduce_add_ps(sum);
}

float Avx512VnniDotLoop(int64_t iterations) {
  __m512i acc[kPeakChains];
  for (int c = 0; c < kPeakChains; ++c) acc[c] = _mm512_set1_epi32(c + 1);
  // Unsigned bytes 1 by signed bytes 2: each round adds 4·1·2 = 8 to every lane.
  const __m512i a = _mm512_set1_epi32(0x01010101), b = _mm512_set1_epi32(0x02020202);
  for (int64_t i = 0; i < iterations; ++i) {
#pragma GCC unroll 12
    for (int c = 0; c < kPeakChains; ++c) acc[c] = _mm512_dpbusd_epi32(acc[c], a, b);
  }
  __m512i sum = acc[0];
  for (int c = 1; c < kPeakChains; ++c) sum = _mm512_add_epi32(sum, acc[c]);
  return static_cast<float>(_mm512_reduce_add_epi32(sum));
}

}  // namespace skein::kernels::peak
