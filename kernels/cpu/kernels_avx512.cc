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
  // Packed GEMM: 8 rows × 48 outputs = 24 accumulators, 3 weight vectors, 1 broadcast.
  static constexpr int kWkvChains = 2;
  static constexpr int kPanelVectors = 3;
  static constexpr int kPackRows = 8;
  static constexpr int64_t kMinPackedBatch = 64;

  // In-place transpose of a 16×16 block (rows[i] lane j ↔ rows[j] lane i).
  [[gnu::always_inline]] static inline void Transpose(V* rows) {
    __m512 t[16];
    for (int i = 0; i < 16; i += 2) {
      t[i] = _mm512_unpacklo_ps(rows[i], rows[i + 1]);
      t[i + 1] = _mm512_unpackhi_ps(rows[i], rows[i + 1]);
    }
    __m512 u[16];
    for (int i = 0; i < 16; i += 4) {
      for (int h = 0; h < 2; ++h) {
        const __m512d a = _mm512_castps_pd(t[i + h]), b = _mm512_castps_pd(t[i + 2 + h]);
        u[i + 2 * h] = _mm512_castpd_ps(_mm512_unpacklo_pd(a, b));
        u[i + 2 * h + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(a, b));
      }
    }
    // Now u[4g + r] holds, in each 128-bit lane L, elements (row 4g..4g+3, column 4L + r).
    __m512 v[16];
    for (int g = 0; g < 4; g += 2) {
      for (int r = 0; r < 4; ++r) {
        v[4 * g + r] = _mm512_shuffle_f32x4(u[4 * g + r], u[4 * (g + 1) + r], 0x88);
        v[4 * (g + 1) + r] = _mm512_shuffle_f32x4(u[4 * g + r], u[4 * (g + 1) + r], 0xdd);
      }
    }
    for (int r = 0; r < 4; ++r) {
      rows[r] = _mm512_shuffle_f32x4(v[r], v[8 + r], 0x88);
      rows[8 + r] = _mm512_shuffle_f32x4(v[r], v[8 + r], 0xdd);
      rows[4 + r] = _mm512_shuffle_f32x4(v[4 + r], v[12 + r], 0x88);
      rows[12 + r] = _mm512_shuffle_f32x4(v[4 + r], v[12 + r], 0xdd);
    }
  }

  static __mmask16 Mask(int count) { return static_cast<__mmask16>((1u << count) - 1u); }

  // Into L2.
  static void Prefetch(const void* p) { _mm_prefetch(static_cast<const char*>(p), _MM_HINT_T1); }
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
  static V Div(V a, V b) { return _mm512_div_ps(a, b); }
  static V Fma(V a, V b, V c) { return _mm512_fmadd_ps(a, b, c); }
  // e^x = 2^n · e^r with n = round(x·log2 e); scalef handles overflow (inf) and underflow (0).
  static V Exp(V x) {
    const V n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                     _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    V r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
    return _mm512_scalef_ps(simd::Kernels<Avx512>::ExpPolynomial(r), n);
  }
  static float ReduceAdd(V v) {
    const __m512 halves = _mm512_add_ps(v, _mm512_shuffle_f32x4(v, v, 0x4e));
    const __m256 h = _mm512_castps512_ps256(halves);
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
  }

  // The lane sums of four vectors into out[0..3].
  static void ReduceAdd4(V a, V b, V c, V d, float* out) {
    const __m512 s0 = _mm512_add_ps(_mm512_shuffle_f32x4(a, b, 0x44), _mm512_shuffle_f32x4(a, b, 0xee));
    const __m512 s1 = _mm512_add_ps(_mm512_shuffle_f32x4(c, d, 0x44), _mm512_shuffle_f32x4(c, d, 0xee));
    const __m512 u =
        _mm512_add_ps(_mm512_shuffle_f32x4(s0, s1, 0x88), _mm512_shuffle_f32x4(s0, s1, 0xdd));
    const __m512 w = _mm512_add_ps(u, _mm512_shuffle_ps(u, u, 0xb1));
    const __m512 z = _mm512_add_ps(w, _mm512_shuffle_ps(w, w, 0x4e));
    _mm_storeu_ps(out, _mm512_castps512_ps128(_mm512_permutexvar_ps(
                           _mm512_setr_epi32(0, 4, 8, 12, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0), z)));
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
  // int8: sign-extended to int32, then converted (exact: |q| <= 127).
  static V I8ToF32(__m128i q) { return _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(q)); }
  static V LoadWeights(const int8_t* p, simd::I8Tag) {
    return I8ToF32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
  }
  static V LoadWeightsPartial(const int8_t* p, int count, simd::I8Tag) {
    // Masked: bytes past `count` are neither read (no fault past the end) nor used.
    return I8ToF32(_mm_maskz_loadu_epi8(Mask(count), p));
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
