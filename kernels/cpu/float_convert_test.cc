#include "kernels/cpu/float_convert.h"

#include <cmath>
#include <cstdint>
#include <limits>

#include "gtest/gtest.h"

namespace skein::kernels {
namespace {

bool IsNanBits16(uint16_t h, bool bf16) {
  return bf16 ? ((h & 0x7f80) == 0x7f80 && (h & 0x7f)) : ((h & 0x7c00) == 0x7c00 && (h & 0x3ff));
}

TEST(FloatConvertTest, EveryBf16RoundTrips) {
  for (uint32_t h = 0; h < 65536; ++h) {
    const uint16_t bits = static_cast<uint16_t>(h);
    const float f = Bf16ToF32(bits);
    if (IsNanBits16(bits, true)) {
      EXPECT_TRUE(std::isnan(f));
      EXPECT_TRUE(IsNanBits16(F32ToBf16(f), true));
    } else {
      ASSERT_EQ(F32ToBf16(f), bits) << h;
    }
  }
}

TEST(FloatConvertTest, EveryF16RoundTrips) {
  for (uint32_t h = 0; h < 65536; ++h) {
    const uint16_t bits = static_cast<uint16_t>(h);
    const float f = F16ToF32(bits);
    if (IsNanBits16(bits, false)) {
      EXPECT_TRUE(std::isnan(f));
      EXPECT_TRUE(IsNanBits16(F32ToF16(f), false));
    } else {
      ASSERT_EQ(F32ToF16(f), bits) << h;
    }
  }
}

TEST(FloatConvertTest, F16DecodesKnownValues) {
  EXPECT_EQ(F16ToF32(0x3c00), 1.0f);
  EXPECT_EQ(F16ToF32(0xc000), -2.0f);
  EXPECT_EQ(F16ToF32(0x7bff), 65504.0f);
  EXPECT_EQ(F16ToF32(0x0001), std::ldexp(1.0f, -24));
  EXPECT_EQ(F16ToF32(0x0400), std::ldexp(1.0f, -14));
  EXPECT_TRUE(std::isinf(F16ToF32(0x7c00)));
}

TEST(FloatConvertTest, RoundsToNearestEven) {
  // Halfway between bf16 1.0 (0x3f80) and the next value (0x3f81) rounds to even 0x3f80;
  // halfway between 0x3f81 and 0x3f82 rounds to 0x3f82.
  EXPECT_EQ(F32ToBf16(1.0f + std::ldexp(1.0f, -8)), 0x3f80);
  EXPECT_EQ(F32ToBf16(1.0f + 3 * std::ldexp(1.0f, -8)), 0x3f82);
  EXPECT_EQ(F32ToBf16(1.0f + std::ldexp(1.0f, -8) + std::ldexp(1.0f, -20)), 0x3f81);
  // fp16: 1 + 2^-11 is halfway between 1 and 1 + 2^-10.
  EXPECT_EQ(F32ToF16(1.0f + std::ldexp(1.0f, -11)), 0x3c00);
  EXPECT_EQ(F32ToF16(1.0f + 3 * std::ldexp(1.0f, -11)), 0x3c02);
  // Overflow and underflow.
  EXPECT_EQ(F32ToF16(65519.0f), 0x7bff);
  EXPECT_EQ(F32ToF16(65520.0f), 0x7c00);
  EXPECT_EQ(F32ToF16(-1e10f), 0xfc00);
  EXPECT_EQ(F32ToF16(std::ldexp(1.0f, -25)), 0x0000);
  EXPECT_EQ(F32ToF16(std::ldexp(1.5f, -25)), 0x0001);
  EXPECT_EQ(F32ToF16(std::ldexp(3.0f, -25)), 0x0002);  // 1.5 ulps: halfway, to even
  EXPECT_EQ(F32ToBf16(std::numeric_limits<float>::infinity()), 0x7f80);
  EXPECT_EQ(F32ToBf16(std::numeric_limits<float>::max()), 0x7f80);
}

}  // namespace
}  // namespace skein::kernels
