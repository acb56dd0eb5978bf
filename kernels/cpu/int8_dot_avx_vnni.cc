// Products with int8 activations on AVX-VNNI (kernels.h, "int8 activations"): the AVX2
// version with vpmaddubsw + vpmaddwd replaced by one 256-bit vpdpbusd (VEX encoding), which
// adds the four products of each lane into int32 directly. Compiled with -mavx2 -mfma
// -mavxvnni; chosen only on CPUs with AVX-VNNI (Alder Lake and later; not implied by
// AVX512-VNNI).
//
// vpdpbusd multiplies unsigned bytes by signed bytes: x enters as |qx| and its signs move
// onto the weights (vpsignb), as in int8_dot_avx2.cc. No saturation is involved.
#include "kernels/cpu/kernel_table.h"

#if defined(__AVX2__) && defined(__FMA__) && defined(__AVXVNNI__)
#include <immintrin.h>

#include <cstring>

#include "kernels/cpu/int8_dot_impl.h"

namespace skein::kernels {
namespace {

struct AvxVnniDot {
  using V = __m256;
  using I = __m256i;
  static constexpr int kBytes = 32;  // one block per step
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
    // No byte-masked loads without AVX-512: copy the tail so nothing past it is read.
    alignas(32) int8_t buffer[32] = {};
    std::memcpy(buffer, p, count);
    return _mm256_load_si256(reinterpret_cast<const __m256i*>(buffer));
  }
  static V Dot(const X& x, I w) {
    return _mm256_cvtepi32_ps(
        _mm256_dpbusd_avx_epi32(_mm256_setzero_si256(), x.abs, _mm256_sign_epi8(w, x.q)));
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

constexpr Int8DotTable kAvxVnniInt8Dot = {Int8DotIsa::kAvxVnni,
                                          &int8dot::Kernels<AvxVnniDot>::MatMul,
                                          &int8dot::Kernels<AvxVnniDot>::Quantize};

}  // namespace

const Int8DotTable* AvxVnniInt8Dot() { return &kAvxVnniInt8Dot; }

}  // namespace skein::kernels

#else

namespace skein::kernels {
const Int8DotTable* AvxVnniInt8Dot() { return nullptr; }
}  // namespace skein::kernels

#endif
