#include "services/worker/model/checkpoint/dtype_convert.h"

#include <cmath>
#include <cstring>
#include <limits>

#include "gtest/gtest.h"

namespace skein::model {
namespace {

float FromBits(uint32_t b) {
  float f;
  std::memcpy(&f, &b, 4);
  return f;
}

TEST(DTypeConvert, Bf16RoundsToNearestEven) {
  EXPECT_EQ(FloatToBF16(1.0f), 0x3f80);
  EXPECT_EQ(FloatToBF16(FromBits(0x3f808000)), 0x3f80);  // halfway, even below: down
  EXPECT_EQ(FloatToBF16(FromBits(0x3f818000)), 0x3f82);  // halfway, odd below: up
  EXPECT_EQ(FloatToBF16(FromBits(0x3f808001)), 0x3f81);  // above halfway: up
  EXPECT_EQ(FloatToBF16(FromBits(0x3f807fff)), 0x3f80);  // below halfway: down
  EXPECT_EQ(FloatToBF16(-2.0f), 0xc000);
  EXPECT_EQ(FloatToBF16(std::numeric_limits<float>::infinity()), 0x7f80);
  EXPECT_EQ(FloatToBF16(FromBits(0x7f7fffff)), 0x7f80);  // max float rounds to infinity
  EXPECT_TRUE(std::isnan(BF16ToFloat(FloatToBF16(std::nanf("")))));
  EXPECT_TRUE(std::isnan(BF16ToFloat(FloatToBF16(FromBits(0x7f800001)))));  // NaN stays NaN
  for (uint32_t h = 0; h < 0x10000; ++h) {
    float f = BF16ToFloat(static_cast<uint16_t>(h));
    if (!std::isnan(f)) {
      ASSERT_EQ(FloatToBF16(f), h);
    }
  }
}

TEST(DTypeConvert, F16ExactForEveryHalf) {
  for (uint32_t h = 0; h < 0x10000; ++h) {
    float f = F16ToFloat(static_cast<uint16_t>(h));
    if (std::isnan(f)) {
      EXPECT_EQ((h >> 10) & 0x1f, 0x1fu);
      continue;
    }
    ASSERT_EQ(FloatToF16(f), h) << std::hex << h;
  }
  EXPECT_EQ(F16ToFloat(0x3c00), 1.0f);
  EXPECT_EQ(F16ToFloat(0x0001), std::ldexp(1.0f, -24));
  EXPECT_EQ(F16ToFloat(0x7bff), 65504.0f);
}

TEST(DTypeConvert, F16RoundsToNearestEven) {
  EXPECT_EQ(FloatToF16(65519.0f), 0x7bff);
  EXPECT_EQ(FloatToF16(65520.0f), 0x7c00);  // halfway to the next binade: infinity
  EXPECT_EQ(FloatToF16(1e10f), 0x7c00);
  EXPECT_EQ(FloatToF16(-1e10f), 0xfc00);
  EXPECT_EQ(FloatToF16(1.0f + std::ldexp(1.0f, -11)), 0x3c00);      // tie, even: down
  EXPECT_EQ(FloatToF16(1.0f + 3 * std::ldexp(1.0f, -11)), 0x3c02);  // tie, odd: up
  EXPECT_EQ(FloatToF16(std::ldexp(1.0f, -25)), 0x0000);             // tie with zero: even
  EXPECT_EQ(FloatToF16(std::ldexp(1.5f, -25)), 0x0001);
  EXPECT_EQ(FloatToF16(std::ldexp(3.0f, -25)), 0x0002);  // 1.5 units: tie to 2
  EXPECT_EQ(FloatToF16(std::ldexp(1.0f, -30)), 0x0000);
  EXPECT_EQ(FloatToF16(-0.0f), 0x8000);
  EXPECT_EQ(FloatToF16(std::ldexp(1023.5f, -24)), 0x0400);  // rounds up into the normals
  // Every midpoint between adjacent positive halves rounds to the even one.
  for (uint32_t h = 0; h < 0x7bff; ++h) {
    double lo = F16ToFloat(static_cast<uint16_t>(h)), hi = F16ToFloat(static_cast<uint16_t>(h + 1));
    float mid = static_cast<float>((lo + hi) / 2);
    ASSERT_EQ(FloatToF16(mid), (h % 2 == 0) ? h : h + 1) << std::hex << h;
  }
}

TEST(DTypeConvert, ConvertElementsBetweenAllPairs) {
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

}  // namespace
}  // namespace skein::model
