// AVX2 + FMA + F16C kernels. Compiled with -mavx2 -mfma -mf16c.
#include "kernels/cpu/kernel_table.h"

#if defined(__AVX2__) && defined(__FMA__) && defined(__F16C__)
#include <immintrin.h>

#include <cstring>

#include "kernels/cpu/simd_kernels_impl.h"

namespace skein::kernels {
namespace {

struct Avx2 {
  using V = __m256;
  static constexpr int kLanes = 8;
  // 3×4 accumulators + 3 rows of x + 1 weight vector fit the 16 ymm registers.
  static constexpr int kTileRows = 3;
  static constexpr int kTileCols = 4;
  // Packed GEMM: 6 rows × 16 outputs = 12 accumulators, 2 weight vectors, 1 broadcast.
  static constexpr int kWkvChains = 1;
  static constexpr int kPanelVectors = 2;
  static constexpr int kPackRows = 6;
  static constexpr int64_t kMinPackedBatch = 48;

  // In-place transpose of an 8×8 block.
  [[gnu::always_inline]] static inline void Transpose(V* rows) {
    __m256 t[8], u[8];
    for (int i = 0; i < 8; i += 2) {
      t[i] = _mm256_unpacklo_ps(rows[i], rows[i + 1]);
      t[i + 1] = _mm256_unpackhi_ps(rows[i], rows[i + 1]);
    }
    for (int i = 0; i < 8; i += 4) {
      u[i] = _mm256_shuffle_ps(t[i], t[i + 2], 0x44);
      u[i + 1] = _mm256_shuffle_ps(t[i], t[i + 2], 0xee);
      u[i + 2] = _mm256_shuffle_ps(t[i + 1], t[i + 3], 0x44);
      u[i + 3] = _mm256_shuffle_ps(t[i + 1], t[i + 3], 0xee);
    }
    for (int i = 0; i < 4; ++i) {
      rows[i] = _mm256_permute2f128_ps(u[i], u[i + 4], 0x20);
      rows[i + 4] = _mm256_permute2f128_ps(u[i], u[i + 4], 0x31);
    }
  }

  static __m256i Mask(int count) {
    const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(count), lane);
  }

  // Into L2.
  static void Prefetch(const void* p) { _mm_prefetch(static_cast<const char*>(p), _MM_HINT_T1); }
  static V Zero() { return _mm256_setzero_ps(); }
  static V Set1(float f) { return _mm256_set1_ps(f); }
  static V Load(const float* p) { return _mm256_loadu_ps(p); }
  static V LoadPartial(const float* p, int count) { return _mm256_maskload_ps(p, Mask(count)); }
  static void Store(float* p, V v) { _mm256_storeu_ps(p, v); }
  static void StorePartial(float* p, int count, V v) {
    _mm256_maskstore_ps(p, Mask(count), v);
  }
  static V KeepFirst(V v, int count) {
    return _mm256_and_ps(v, _mm256_castsi256_ps(Mask(count)));
  }
  static V Add(V a, V b) { return _mm256_add_ps(a, b); }
  static V Sub(V a, V b) { return _mm256_sub_ps(a, b); }
  static V Mul(V a, V b) { return _mm256_mul_ps(a, b); }
  static V Div(V a, V b) { return _mm256_div_ps(a, b); }
  static V Fma(V a, V b, V c) { return _mm256_fmadd_ps(a, b, c); }
  // e^x = 2^n · e^r with n = round(x·log2 e), x clamped so that 2^n is a normal float
  // (results saturate near 1e-38 and 2e38 instead of reaching 0 and infinity).
  static V Exp(V x) {
    x = _mm256_min_ps(_mm256_max_ps(x, _mm256_set1_ps(-87.0f)), _mm256_set1_ps(88.0f));
    const V n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                                _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    V r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
    const __m256i bits = _mm256_slli_epi32(
        _mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
    return _mm256_mul_ps(simd::Kernels<Avx2>::ExpPolynomial(r), _mm256_castsi256_ps(bits));
  }
  static float ReduceAdd(V v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
  }

  // The lane sums of four vectors into out[0..3].
  static void ReduceAdd4(V a, V b, V c, V d, float* out) {
    const __m256 ab = _mm256_hadd_ps(a, b), cd = _mm256_hadd_ps(c, d);
    const __m256 abcd = _mm256_hadd_ps(ab, cd);  // per 128-bit half: [a b c d] partial sums
    _mm_storeu_ps(out, _mm_add_ps(_mm256_castps256_ps128(abcd), _mm256_extractf128_ps(abcd, 1)));
  }

  static __m128i LoadHalfPartial(const uint16_t* p, int count) {
    alignas(16) uint16_t buffer[8] = {};
    std::memcpy(buffer, p, sizeof(uint16_t) * count);
    return _mm_load_si128(reinterpret_cast<const __m128i*>(buffer));
  }
  static V Bf16BitsToF32(__m128i h) {
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
  }
  static V LoadWeights(const float* p, simd::F32Tag) { return Load(p); }
  static V LoadWeightsPartial(const float* p, int count, simd::F32Tag) {
    return LoadPartial(p, count);
  }
  static V LoadWeights(const uint16_t* p, simd::Bf16Tag) {
    return Bf16BitsToF32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
  }
  static V LoadWeightsPartial(const uint16_t* p, int count, simd::Bf16Tag) {
    return Bf16BitsToF32(LoadHalfPartial(p, count));
  }
  static V LoadWeights(const uint16_t* p, simd::F16Tag) {
    return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
  }
  static V LoadWeightsPartial(const uint16_t* p, int count, simd::F16Tag) {
    return _mm256_cvtph_ps(LoadHalfPartial(p, count));
  }
  // int8: sign-extended to int32, then converted (exact: |q| <= 127).
  static V I8ToF32(__m128i q) { return _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(q)); }
  static V LoadWeights(const int8_t* p, simd::I8Tag) {
    return I8ToF32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p)));
  }
  static V LoadWeightsPartial(const int8_t* p, int count, simd::I8Tag) {
    // No byte-masked loads before AVX-512: copy the tail so nothing past it is read.
    alignas(16) int8_t buffer[16] = {};
    std::memcpy(buffer, p, count);
    return I8ToF32(_mm_load_si128(reinterpret_cast<const __m128i*>(buffer)));
  }
};

constexpr KernelTable kAvx2Table = simd::Kernels<Avx2>::MakeTable(IsaLevel::kAvx2);

}  // namespace

const KernelTable* Avx2Kernels() { return &kAvx2Table; }

}  // namespace skein::kernels

#else

namespace skein::kernels {
const KernelTable* Avx2Kernels() { return nullptr; }
}  // namespace skein::kernels

#endif
