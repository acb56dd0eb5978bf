#include "kernels/cpu/path_choice.h"

#include <cstdint>
#include <vector>

#include "base/float16.h"
#include "gtest/gtest.h"

namespace skein::kernels {
namespace {

TEST(PathChoiceTest, RoundingIsKeptOnlyWhereItIsFasterAtEveryBatch) {
  EXPECT_FALSE(Bf16ActivationsPayOff({}));
  EXPECT_TRUE(Bf16ActivationsPayOff({{16, 1.0, 0.6}, {128, 2.0, 1.2}}));
  // Slower at one batch size: not kept, whatever it gains at the other.
  EXPECT_FALSE(Bf16ActivationsPayOff({{16, 1.0, 0.3}, {128, 2.0, 2.1}}));
  // Within noise (less than 5% faster): not worth the rounding.
  EXPECT_FALSE(Bf16ActivationsPayOff({{16, 1.0, 0.97}}));
}

TEST(PathChoiceTest, TimesBothPathsOnARealProduct) {
  const int64_t rows = 96, cols = 128;
  std::vector<uint16_t> w(rows * cols);
  for (size_t i = 0; i < w.size(); ++i) {
    w[i] = base::F32ToBf16(static_cast<float>(static_cast<int64_t>(i % 17) - 8) / 64.0f);
  }
  const WeightMatrix m{w.data(), base::DType::kBF16, rows, cols, cols};
  const std::vector<int64_t> batches = {1, 16};
  const std::vector<Bf16ActivationTiming> t = TimeBf16Activations(m, batches, nullptr, 2);
  ASSERT_EQ(t.size(), 2u);
  for (size_t i = 0; i < t.size(); ++i) {
    EXPECT_EQ(t[i].batch, batches[i]);
    EXPECT_GT(t[i].exact_seconds, 0);
    EXPECT_GT(t[i].bf16_seconds, 0);
  }
}

}  // namespace
}  // namespace skein::kernels
