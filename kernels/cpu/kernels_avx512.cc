// AVX-512 (F, BW, VL) kernels. Compiled with -mavx512f -mavx512bw -mavx512vl -mfma -mf16c.
#include "kernels/cpu/kernel_table.h"

#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VL__)
#include <immintrin.h>

#include "kernels/cpu/simd_kernels_impl.h"

namespace skein::kernels {
namespace {

struct Avx512 {
  using V = __m512;
  static constexpr int kLanes = 16;
  // 4×6 accumulators + 4 rows of x + 1 weight vector fit the 32 zmm registers.
  static constexpr int kTileRows = 4;
  static constexpr int kTileCols = 6;

  static __mmask16 Mask(int count) { return static_cast<__mmask16>((1u << count) - 1u); }

  static V Zero() { return _mm512_setzero_ps(); }
  static V Set1(float f) { return _mm512_set1_ps(f); }
  static V Load(const float* p) { return _mm512_loadu_ps(p); }
  static V LoadPartial(const float* p, int count) {
    return _mm512_maskz_loadu_ps(Mask(count), p);
  }
  static void Store(float* p, V v) { _mm512_storeu_ps(p, v); }
  static void StorePartial(float* p, int count, V v) {
    _mm512_mask_storeu_ps(p, Mask(count), v);
  }
  static V KeepFirst(V v, int count) { return _mm512_maskz_mov_ps(Mask(count), v); }
  static V Add(V a, V b) { return _mm512_add_ps(a, b); }
  static V Sub(V a, V b) { return _mm512_sub_ps(a, b); }
  static V Mul(V a, V b) { return _mm512_mul_ps(a, b); }
  static V Fma(V a, V b, V c) { return _mm512_fmadd_ps(a, b, c); }
  static float ReduceAdd(V v) {
    const __m512 halves = _mm512_add_ps(v, _mm512_shuffle_f32x4(v, v, 0x4e));
    const __m256 h = _mm512_castps512_ps256(halves);
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
  }

  static V Bf16BitsToF32(__m256i h) {
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
  }
  static V LoadWeights(const float* p, simd::F32Tag) { return Load(p); }
  static V LoadWeightsPartial(const float* p, int count, simd::F32Tag) {
    return LoadPartial(p, count);
  }
  static V LoadWeights(const uint16_t* p, simd::Bf16Tag) {
    return Bf16BitsToF32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
  }
  static V LoadWeightsPartial(const uint16_t* p, int count, simd::Bf16Tag) {
    return Bf16BitsToF32(_mm256_maskz_loadu_epi16(Mask(count), p));
  }
  static V LoadWeights(const uint16_t* p, simd::F16Tag) {
    return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
  }
  static V LoadWeightsPartial(const uint16_t* p, int count, simd::F16Tag) {
    return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(Mask(count), p));
  }
};

constexpr KernelTable kAvx512Table = simd::Kernels<Avx512>::MakeTable(IsaLevel::kAvx512);

}  // namespace

const KernelTable* Avx512Kernels() { return &kAvx512Table; }

}  // namespace skein::kernels

#else

namespace skein::kernels {
const KernelTable* Avx512Kernels() { return nullptr; }
}  // namespace skein::kernels

#endif
