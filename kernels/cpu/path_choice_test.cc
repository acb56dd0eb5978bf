#include "kernels/cpu/path_choice.h"

#include <cstdint>
#include <cstdio>
#include <vector>

#include "base/float16.h"
#include "gtest/gtest.h"
#include "kernels/cpu/thread_pool.h"

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

TEST(PathChoiceTest, TilesRunFromTheBatchWhereTheyWinForGood) {
  EXPECT_EQ(TileMinBatch({}), kNoTileBatch);
  // Tiles lose at 1 and 4, win from 16 on: from 16.
  EXPECT_EQ(TileMinBatch({{1, false, 1.0, 2.0},
                          {4, false, 1.0, 1.5},
                          {16, false, 2.0, 1.0},
                          {64, false, 8.0, 2.0}}),
            16);
  // A win at a small batch below a loss does not count; order of the timings does not matter.
  EXPECT_EQ(TileMinBatch({{64, false, 8.0, 2.0}, {16, false, 1.0, 1.1}, {4, false, 1.0, 0.5}}), 64);
  // Losing at the largest batch: never.
  EXPECT_EQ(TileMinBatch({{16, false, 1.0, 0.5}, {64, false, 1.0, 1.5}}), kNoTileBatch);
}

// Timing on the software model of the tiles (any CPU): both paths run and are timed, and the
// policy in force is left as it was.
TEST(PathChoiceTest, TimesTilesAndVectorsAndLeavesThePolicyAlone) {
  const int64_t rows = 96, cols = 128;
  std::vector<uint16_t> w(rows * cols);
  for (size_t i = 0; i < w.size(); ++i) {
    w[i] = base::F32ToBf16(static_cast<float>(static_cast<int64_t>(i % 17) - 8) / 64.0f);
  }
  WeightMatrix m{w.data(), base::DType::kBF16, rows, cols, cols};
  std::vector<uint32_t> panels(Bf16PanelWords(rows, cols));
  PackBf16Panels(m, panels.data());
  m.panels = panels.data();
  const TilePolicy before{.min_batch_exact = 7, .min_batch_rounded = 9, .emulate = true};
  SetTilePolicy(before);
  const std::vector<int64_t> batches = {1, 20};
  const std::vector<TileTiming> t = TimeTileProducts(m, batches, true, nullptr, 1);
  ASSERT_EQ(t.size(), 2u);
  for (size_t i = 0; i < t.size(); ++i) {
    EXPECT_EQ(t[i].batch, batches[i]);
    EXPECT_TRUE(t[i].bf16_activations);
    EXPECT_GT(t[i].vector_seconds, 0);
    EXPECT_GT(t[i].tile_seconds, 0);
  }
  const TilePolicy after = GetTilePolicy();
  EXPECT_EQ(after.min_batch_exact, 7);
  EXPECT_EQ(after.min_batch_rounded, 9);
  EXPECT_TRUE(after.emulate);
  SetTilePolicy(TilePolicy{});
}

// Without AMX nothing is timed and the tiles stay off; with it, the policy in force is the
// one chosen, and the timings (on a 0.1B model's FFN shape) are printed: on an AMX machine
// this test is also the tiles' benchmark (tools/gpu-check.sh runs it on the GPU host).
TEST(PathChoiceTest, ChoosingTheTilePolicyFollowsTheHardware) {
  const int64_t rows = 3072, cols = 768;
  std::vector<uint16_t> w(rows * cols);
  for (size_t i = 0; i < w.size(); ++i) {
    w[i] =
        base::F32ToBf16(static_cast<float>(static_cast<int64_t>(i * 40503u % 255) - 127) / 2048.0f);
  }
  WeightMatrix m{w.data(), base::DType::kBF16, rows, cols, cols};
  std::vector<uint32_t> panels(Bf16PanelWords(rows, cols));
  PackBf16Panels(m, panels.data());
  m.panels = panels.data();
  ThreadPool pool(2);
  const TileChoice choice = ChooseTilePolicy(m, true, &pool);
  const TilePolicy now = GetTilePolicy();
  EXPECT_EQ(now.min_batch_exact, choice.policy.min_batch_exact);
  EXPECT_EQ(now.min_batch_rounded, choice.policy.min_batch_rounded);
  if (!AmxTilesAvailable()) {
    EXPECT_TRUE(choice.timings.empty());
    EXPECT_EQ(choice.policy.min_batch_exact, kNoTileBatch);
    EXPECT_EQ(choice.policy.min_batch_rounded, kNoTileBatch);
  } else {
    EXPECT_EQ(choice.timings.size(), 18u);  // 9 batches, exact and rounded
    for (const TileTiming& t : choice.timings) {
      std::printf("TILES %s batch %4lld: vector %8.3f ms, tiles %8.3f ms (%.2fx)\n",
                  t.bf16_activations ? "bf16 " : "exact", static_cast<long long>(t.batch),
                  t.vector_seconds * 1e3, t.tile_seconds * 1e3, t.vector_seconds / t.tile_seconds);
    }
    std::printf("TILES chosen: exact from batch %lld, bf16 activations from batch %lld\n",
                static_cast<long long>(choice.policy.min_batch_exact),
                static_cast<long long>(choice.policy.min_batch_rounded));
  }
  SetTilePolicy(TilePolicy{});
}

}  // namespace
}  // namespace skein::kernels
