// Products with int8 activations on AVX2 (kernels.h, "int8 activations"). Compiled with
// -mavx2 -mfma.
//
// vpmaddubsw multiplies unsigned bytes by signed bytes, so x enters as |qx| and its signs move
// onto the weights (vpsignb: qw·sign(qx), 0 where qx = 0): |qx|·(qw·sign(qx)) = qx·qw. It adds
// pairs of products into int16 with saturation, which never happens here: |qx|, |qw| <= 127
// (-128 is never produced), so a pair is at most 2·127² = 32258 < 32767 in magnitude.
// vpmaddwd by ones then adds pairs of pairs into int32 lanes (4 products per lane).
#include "kernels/cpu/kernel_table.h"

#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>

#include <cstring>

#include "kernels/cpu/int8_dot_impl.h"

namespace skein::kernels {
namespace {

struct Avx2Dot {
  using V = __m256;
  using I = __m256i;
  static constexpr int kBytes = 32;  // one block per step
  // 2×4 accumulators + 2 rows of x (|qx|, qx, scale) + weights fit the 16 ymm registers.
  static constexpr int kTileRows = 2;
  static constexpr int kTileCols = 4;
  static constexpr int kDecodeCols = 8;

  struct X {
    I q;      // qx (its signs)
    I abs;    // |qx|
    V scale;  // the block's scale in every lane
  };
  static X LoadX(const int8_t* q, const float* scales) {
    const I v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(q));
    return {v, _mm256_abs_epi8(v), _mm256_broadcast_ss(scales)};
  }
  static I LoadW(const int8_t* p) {
    return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
  }
  static I LoadWPartial(const int8_t* p, int count) {
    // No byte-masked loads before AVX-512: copy the tail so nothing past it is read.
    alignas(32) int8_t buffer[32] = {};
    std::memcpy(buffer, p, count);
    return _mm256_load_si256(reinterpret_cast<const __m256i*>(buffer));
  }
  static V Dot(const X& x, I w) {
    const I pairs = _mm256_maddubs_epi16(x.abs, _mm256_sign_epi8(w, x.q));
    return _mm256_cvtepi32_ps(_mm256_madd_epi16(pairs, _mm256_set1_epi16(1)));
  }
  static V Fma(V a, V b, V c) { return _mm256_fmadd_ps(a, b, c); }
  static V Zero() { return _mm256_setzero_ps(); }
  static float ReduceAdd(V v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
  }
  // Into L2.
  static void Prefetch(const void* p) { _mm_prefetch(static_cast<const char*>(p), _MM_HINT_T1); }
};

constexpr Int8DotTable kAvx2Int8Dot = {Int8DotIsa::kAvx2, &int8dot::Kernels<Avx2Dot>::MatMul,
                                       &int8dot::Kernels<Avx2Dot>::Quantize};

}  // namespace

const Int8DotTable* Avx2Int8Dot() { return &kAvx2Int8Dot; }

}  // namespace skein::kernels

#else

namespace skein::kernels {
const Int8DotTable* Avx2Int8Dot() { return nullptr; }
}  // namespace skein::kernels

#endif
