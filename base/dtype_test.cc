// Exact scalar conversions between fp32, bf16 and fp16 (float16.h), and the bulk ones over
// DType (dtype.h).
#include "base/dtype.h"

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>

#include "base/float16.h"
#include "gtest/gtest.h"

namespace skein::base {
namespace {

bool IsNanBits16(uint16_t h, bool bf16) {
  return bf16 ? ((h & 0x7f80) == 0x7f80 && (h & 0x7f)) : ((h & 0x7c00) == 0x7c00 && (h & 0x3ff));
}

TEST(Float16Test, EveryBf16RoundTrips) {
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

TEST(Float16Test, EveryF16RoundTrips) {
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

TEST(Float16Test, F16DecodesKnownValues) {
  EXPECT_EQ(F16ToF32(0x3c00), 1.0f);
  EXPECT_EQ(F16ToF32(0xc000), -2.0f);
  EXPECT_EQ(F16ToF32(0x7bff), 65504.0f);
  EXPECT_EQ(F16ToF32(0x0001), std::ldexp(1.0f, -24));
  EXPECT_EQ(F16ToF32(0x0400), std::ldexp(1.0f, -14));
  EXPECT_TRUE(std::isinf(F16ToF32(0x7c00)));
}

TEST(Float16Test, RoundsToNearestEven) {
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

float FromBits(uint32_t b) {
  float f;
  std::memcpy(&f, &b, 4);
  return f;
}

TEST(DTypeTest, Bf16RoundsToNearestEven) {
  EXPECT_EQ(F32ToBf16(1.0f), 0x3f80);
  EXPECT_EQ(F32ToBf16(FromBits(0x3f808000)), 0x3f80);  // halfway, even below: down
  EXPECT_EQ(F32ToBf16(FromBits(0x3f818000)), 0x3f82);  // halfway, odd below: up
  EXPECT_EQ(F32ToBf16(FromBits(0x3f808001)), 0x3f81);  // above halfway: up
  EXPECT_EQ(F32ToBf16(FromBits(0x3f807fff)), 0x3f80);  // below halfway: down
  EXPECT_EQ(F32ToBf16(-2.0f), 0xc000);
  EXPECT_EQ(F32ToBf16(std::numeric_limits<float>::infinity()), 0x7f80);
  EXPECT_EQ(F32ToBf16(FromBits(0x7f7fffff)), 0x7f80);  // max float rounds to infinity
  EXPECT_TRUE(std::isnan(Bf16ToF32(F32ToBf16(std::nanf("")))));
  EXPECT_TRUE(std::isnan(Bf16ToF32(F32ToBf16(FromBits(0x7f800001)))));  // NaN stays NaN
  for (uint32_t h = 0; h < 0x10000; ++h) {
    float f = Bf16ToF32(static_cast<uint16_t>(h));
    if (!std::isnan(f)) {
      ASSERT_EQ(F32ToBf16(f), h);
    }
  }
}

TEST(DTypeTest, F16ExactForEveryHalf) {
  for (uint32_t h = 0; h < 0x10000; ++h) {
    float f = F16ToF32(static_cast<uint16_t>(h));
    if (std::isnan(f)) {
      EXPECT_EQ((h >> 10) & 0x1f, 0x1fu);
      continue;
    }
    ASSERT_EQ(F32ToF16(f), h) << std::hex << h;
  }
  EXPECT_EQ(F16ToF32(0x3c00), 1.0f);
  EXPECT_EQ(F16ToF32(0x0001), std::ldexp(1.0f, -24));
  EXPECT_EQ(F16ToF32(0x7bff), 65504.0f);
}

TEST(DTypeTest, F16RoundsToNearestEven) {
  EXPECT_EQ(F32ToF16(65519.0f), 0x7bff);
  EXPECT_EQ(F32ToF16(65520.0f), 0x7c00);  // halfway to the next binade: infinity
  EXPECT_EQ(F32ToF16(1e10f), 0x7c00);
  EXPECT_EQ(F32ToF16(-1e10f), 0xfc00);
  EXPECT_EQ(F32ToF16(1.0f + std::ldexp(1.0f, -11)), 0x3c00);      // tie, even: down
  EXPECT_EQ(F32ToF16(1.0f + 3 * std::ldexp(1.0f, -11)), 0x3c02);  // tie, odd: up
  EXPECT_EQ(F32ToF16(std::ldexp(1.0f, -25)), 0x0000);             // tie with zero: even
  EXPECT_EQ(F32ToF16(std::ldexp(1.5f, -25)), 0x0001);
  EXPECT_EQ(F32ToF16(std::ldexp(3.0f, -25)), 0x0002);  // 1.5 units: tie to 2
  EXPECT_EQ(F32ToF16(std::ldexp(1.0f, -30)), 0x0000);
  EXPECT_EQ(F32ToF16(-0.0f), 0x8000);
  EXPECT_EQ(F32ToF16(std::ldexp(1023.5f, -24)), 0x0400);  // rounds up into the normals
  // Every midpoint between adjacent positive halves rounds to the even one.
  for (uint32_t h = 0; h < 0x7bff; ++h) {
    double lo = F16ToF32(static_cast<uint16_t>(h)), hi = F16ToF32(static_cast<uint16_t>(h + 1));
    float mid = static_cast<float>((lo + hi) / 2);
    ASSERT_EQ(F32ToF16(mid), (h % 2 == 0) ? h : h + 1) << std::hex << h;
  }
}

TEST(DTypeTest, ConvertElementsBetweenAllPairs) {
  const float values[4] = {1.0f, -0.5f, 3.0f, 0.0f};
  for (DType from : {DType::kF32, DType::kBF16, DType::kF16}) {
    char src[16], mid[16];
    ConvertElements(DType::kF32, values, from, src, 4);
    for (DType to : {DType::kF32, DType::kBF16, DType::kF16}) {
      ConvertElements(from, src, to, mid, 4);
      float back[4];
      ConvertElements(to, mid, DType::kF32, back, 4);
      for (int i = 0; i < 4; ++i) EXPECT_EQ(back[i], values[i]);
    }
  }
}

TEST(DTypeTest, NamesAndSizes) {
  EXPECT_EQ(DTypeName(DType::kF32), "fp32");
  EXPECT_EQ(DTypeName(DType::kBF16), "bf16");
  EXPECT_EQ(DTypeName(DType::kF16), "fp16");
  EXPECT_EQ(DTypeSize(DType::kF32), 4u);
  EXPECT_EQ(DTypeSize(DType::kBF16), 2u);
  EXPECT_EQ(DTypeSize(DType::kF16), 2u);
  EXPECT_EQ(DTypeName(DType::kI8), "int8");
  EXPECT_EQ(DTypeSize(DType::kI8), 1u);
}

TEST(DTypeTest, Int8WidensToF32WithoutScale) {
  const int8_t q[5] = {-128, -127, 0, 1, 127};
  float out[5] = {9, 9, 9, 9, 9};
  ConvertElements(DType::kI8, q, DType::kF32, out, 5);
  EXPECT_EQ(out[0], -128.0f);
  EXPECT_EQ(out[1], -127.0f);
  EXPECT_EQ(out[2], 0.0f);
  EXPECT_EQ(out[3], 1.0f);
  EXPECT_EQ(out[4], 127.0f);
}

// Every other conversion touching int8 is a programming error and must not pass silently.
TEST(DTypeDeathTest, OtherInt8ConversionsAbort) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  int8_t q[2] = {1, 2};
  char out[8] = {};
  const float f[2] = {1.0f, 2.0f};
  EXPECT_DEATH(ConvertElements(DType::kI8, q, DType::kBF16, out, 2), "int8 -> bf16");
  EXPECT_DEATH(ConvertElements(DType::kI8, q, DType::kF16, out, 2), "int8 -> fp16");
  EXPECT_DEATH(ConvertElements(DType::kI8, q, DType::kI8, out, 2), "int8 -> int8");
  EXPECT_DEATH(ConvertElements(DType::kF32, f, DType::kI8, out, 2), "fp32 -> int8");
  EXPECT_DEATH(ConvertElements(DType::kBF16, out, DType::kI8, q, 1), "bf16 -> int8");
}

}  // namespace
}  // namespace skein::base
