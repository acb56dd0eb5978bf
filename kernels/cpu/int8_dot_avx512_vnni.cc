// Products with int8 activations on AVX512-VNNI (kernels.h, "int8 activations"): 512-bit
// vpdpbusd over two blocks per step (lanes 0-7 hold the first block's partial sums, lanes
// 8-15 the second's, so one fp32 vector of scales serves both). Compiled with the AVX-512
// flags plus -mavx512vnni; chosen only on CPUs with AVX512-VNNI.
//
// vpdpbusd multiplies unsigned bytes by signed bytes: x enters as |qx| and its signs move
// onto the weights. AVX-512 has no vpsignb, so the weights are negated under a mask of the
// negative qx (where qx = 0, |qx| = 0 zeroes the product anyway). No saturation is involved.
#include "kernels/cpu/kernel_table.h"

#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VNNI__)
#include <immintrin.h>

#include "kernels/cpu/int8_dot_impl.h"

namespace skein::kernels {
namespace {

struct Avx512VnniDot {
  using V = __m512;
  using I = __m512i;
  static constexpr int kBytes = 64;  // two blocks per step
  // 4×4 accumulators + 4 rows of x + weights fit the 32 zmm registers.
  static constexpr int kTileRows = 4;
  static constexpr int kTileCols = 4;
  static constexpr int kDecodeCols = 8;

  struct X {
    I abs;          // |qx|
    __mmask64 neg;  // the bytes where qx < 0
    V scale;        // lanes 0-7: the first block's scale, lanes 8-15: the second's
  };
  static X LoadX(const int8_t* q, const float* scales) {
    const I v = _mm512_loadu_si512(q);
    const V scale =
        _mm512_mask_mov_ps(_mm512_set1_ps(scales[0]), 0xff00, _mm512_set1_ps(scales[1]));
    return {_mm512_abs_epi8(v), _mm512_movepi8_mask(v), scale};
  }
  static I LoadW(const int8_t* p) { return _mm512_loadu_si512(p); }
  static I LoadWPartial(const int8_t* p, int count) {
    // Masked: bytes past `count` (< 64) are neither read nor used.
    return _mm512_maskz_loadu_epi8((uint64_t{1} << count) - 1, p);
  }
  static V Dot(const X& x, I w) {
    const I signed_w = _mm512_mask_sub_epi8(w, x.neg, _mm512_setzero_si512(), w);
    return _mm512_cvtepi32_ps(_mm512_dpbusd_epi32(_mm512_setzero_si512(), x.abs, signed_w));
  }
  static V Fma(V a, V b, V c) { return _mm512_fmadd_ps(a, b, c); }
  static V Zero() { return _mm512_setzero_ps(); }
  static float ReduceAdd(V v) {
    const __m256 h =
        _mm256_add_ps(_mm512_castps512_ps256(v),
                      _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1)));
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
  }
  // Into L2.
  static void Prefetch(const void* p) { _mm_prefetch(static_cast<const char*>(p), _MM_HINT_T1); }
};

constexpr Int8DotTable kAvx512VnniInt8Dot = {Int8DotIsa::kAvx512Vnni,
                                             &int8dot::Kernels<Avx512VnniDot>::MatMul,
                                             &int8dot::Kernels<Avx512VnniDot>::Quantize};

}  // namespace

const Int8DotTable* Avx512VnniInt8Dot() { return &kAvx512VnniInt8Dot; }

}  // namespace skein::kernels

#else

namespace skein::kernels {
const Int8DotTable* Avx512VnniInt8Dot() { return nullptr; }
}  // namespace skein::kernels

#endif
