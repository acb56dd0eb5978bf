#include "services/worker/model/checkpoint/dtype_convert.h"

#include <cstring>

namespace skein::model {
namespace {

uint32_t FloatBits(float f) {
  uint32_t b;
  std::memcpy(&b, &f, sizeof(b));
  return b;
}

float BitsFloat(uint32_t b) {
  float f;
  std::memcpy(&f, &b, sizeof(f));
  return f;
}

float LoadAs(DType t, const char* p) {
  uint16_t h;
  switch (t) {
    case DType::kF32: {
      float f;
      std::memcpy(&f, p, sizeof(f));
      return f;
    }
    case DType::kBF16:
      std::memcpy(&h, p, sizeof(h));
      return BF16ToFloat(h);
    case DType::kF16:
      std::memcpy(&h, p, sizeof(h));
      return F16ToFloat(h);
  }
  return 0;
}

void StoreAs(DType t, float f, char* p) {
  uint16_t h;
  switch (t) {
    case DType::kF32:
      std::memcpy(p, &f, sizeof(f));
      return;
    case DType::kBF16:
      h = FloatToBF16(f);
      std::memcpy(p, &h, sizeof(h));
      return;
    case DType::kF16:
      h = FloatToF16(f);
      std::memcpy(p, &h, sizeof(h));
      return;
  }
}

}  // namespace

float BF16ToFloat(uint16_t bits) { return BitsFloat(uint32_t{bits} << 16); }

uint16_t FloatToBF16(float f) {
  uint32_t b = FloatBits(f);
  if ((b & 0x7FFFFFFFu) > 0x7F800000u)
    return static_cast<uint16_t>((b >> 16) | 0x0040u);  // quiet NaN
  uint32_t rounding = 0x7FFFu + ((b >> 16) & 1u);
  return static_cast<uint16_t>((b + rounding) >> 16);
}

float F16ToFloat(uint16_t h) {
  uint32_t sign = uint32_t{h & 0x8000u} << 16;
  uint32_t exp = (h >> 10) & 0x1Fu;
  uint32_t mant = h & 0x3FFu;
  if (exp == 0x1F) return BitsFloat(sign | 0x7F800000u | (mant << 13));  // inf / NaN
  if (exp == 0) {
    // Zero or subnormal: mant * 2^-24.
    float v = static_cast<float>(mant) * 5.9604644775390625e-8f;
    return sign ? -v : v;
  }
  return BitsFloat(sign | ((exp + 112) << 23) | (mant << 13));
}

uint16_t FloatToF16(float f) {
  uint32_t b = FloatBits(f);
  uint16_t sign = static_cast<uint16_t>((b >> 16) & 0x8000u);
  uint32_t abs = b & 0x7FFFFFFFu;
  if (abs > 0x7F800000u) return sign | 0x7E00u;   // NaN
  if (abs >= 0x477FF000u) return sign | 0x7C00u;  // rounds to >= 65520: infinity
  if (abs < 0x38800000u) {
    // Below the smallest normal half (2^-14): a subnormal, in units of 2^-24. The float
    // mantissa with its implicit bit is shifted right with round-to-nearest-even.
    if (abs < 0x33000000u) return sign;  // below half of the smallest subnormal: zero
    uint32_t exp = abs >> 23;
    uint32_t mant = (abs & 0x7FFFFFu) | 0x800000u;
    uint32_t shift = 126 - exp;  // so that the result counts units of 2^-24
    uint32_t q = mant >> shift;
    uint32_t rem = mant & ((1u << shift) - 1);
    uint32_t half = 1u << (shift - 1);
    if (rem > half || (rem == half && (q & 1u))) ++q;
    return static_cast<uint16_t>(sign | q);
  }
  uint32_t rounded = abs + 0xFFFu + ((abs >> 13) & 1u);  // round to nearest even at bit 13
  return static_cast<uint16_t>(sign | ((rounded - (112u << 23)) >> 13));
}

void ConvertElements(DType from, const void* src, DType to, void* dst, size_t count) {
  const char* s = static_cast<const char*>(src);
  char* d = static_cast<char*>(dst);
  if (from == to) {
    std::memcpy(d, s, count * DTypeSize(from));
    return;
  }
  const size_t in = DTypeSize(from), out = DTypeSize(to);
  for (size_t i = 0; i < count; ++i) StoreAs(to, LoadAs(from, s + i * in), d + i * out);
}

}  // namespace skein::model
