// The peak loops compute what they count (so a peak is FLOPs really done), and
// MeasureComputePeak reports a rate for each form the active ISA level has, and none for a
// form it lacks. (Rates are measured by `skein bench`, not asserted.)
#include "kernels/cpu/compute_peak.h"

#include <cmath>
#include <cstdint>

#include "gtest/gtest.h"
#include "kernels/cpu/compute_peak_loops.h"
#include "kernels/cpu/cpu_features.h"
#include "kernels/cpu/thread_pool.h"

namespace skein::kernels {
namespace {

// Σ over the chains of c₀·a + b applied `rounds` times, in double, chain c starting at
// 0.01·(c + 1) (the loops' starting values).
double FmaChains(int64_t rounds) {
  double sum = 0;
  for (int c = 0; c < peak::kPeakChains; ++c) {
    double v = static_cast<float>(0.01f * static_cast<float>(c + 1));
    for (int64_t i = 0; i < rounds; ++i) v = v * static_cast<double>(0.999f) + 0.001f;
    sum += v;
  }
  return sum;
}

TEST(ComputePeakTest, ScalarLoopRunsEveryRound) {
  for (int64_t rounds : {0, 1, 10, 1000}) {
    EXPECT_NEAR(peak::ScalarFmaLoop(rounds), FmaChains(rounds), 1e-4) << rounds;
  }
}

TEST(ComputePeakTest, Avx2LoopRunsEveryRound) {
  if (SupportedIsaLevel() < IsaLevel::kAvx2) GTEST_SKIP() << "no AVX2 on this CPU";
  for (int64_t rounds : {0, 1, 10, 1000}) {
    EXPECT_NEAR(peak::Avx2FmaLoop(rounds), 8 * FmaChains(rounds), 1e-3) << rounds;
  }
}

TEST(ComputePeakTest, Avx512LoopsRunEveryRound) {
  if (SupportedIsaLevel() < IsaLevel::kAvx512) GTEST_SKIP() << "no AVX-512 on this CPU";
  for (int64_t rounds : {0, 1, 10, 1000}) {
    EXPECT_NEAR(peak::Avx512FmaLoop(rounds), 16 * FmaChains(rounds), 2e-3) << rounds;
  }
  if (!DetectCpuFeatures().avx512_bf16) GTEST_SKIP() << "no AVX512-BF16 on this CPU";
  // Each round adds 1·2⁻¹⁰ + 0.5·2⁻¹⁰ to every lane of every chain.
  for (int64_t rounds : {0, 1, 10, 1000}) {
    double start = 0;
    for (int c = 0; c < peak::kPeakChains; ++c) start += 0.01f * static_cast<float>(c + 1);
    const double expected = 16 * (start + peak::kPeakChains * rounds * 1.5 / 1024);
    EXPECT_NEAR(peak::Avx512Bf16DotLoop(rounds), expected, 1e-3 * expected) << rounds;
  }
}

TEST(ComputePeakTest, Avx512VnniLoopRunsEveryRound) {
  if (SupportedIsaLevel() < IsaLevel::kAvx512 || !DetectCpuFeatures().avx512_vnni) {
    GTEST_SKIP() << "no AVX512-VNNI on this CPU";
  }
  // Chain c starts at c + 1 in every lane and gains 8 per round: exact integers.
  for (int64_t rounds : {0, 1, 10, 1000}) {
    double expected = 0;
    for (int c = 0; c < peak::kPeakChains; ++c) expected += 16.0 * (c + 1 + 8.0 * rounds);
    EXPECT_EQ(peak::Avx512VnniDotLoop(rounds), expected) << rounds;
  }
}

TEST(ComputePeakTest, ReportsARateForEachFormOfTheActiveLevel) {
  ThreadPool pool(2);
  for (IsaLevel level : {IsaLevel::kScalar, IsaLevel::kAvx2, IsaLevel::kAvx512}) {
    if (level > SupportedIsaLevel()) continue;
    ASSERT_TRUE(ForceIsaLevel(level).ok());
    const ComputePeak peak = MeasureComputePeak(&pool);
    // Positive and below 10 TFLOP/s per thread, far above any CPU core: a miscount by the
    // lane width or the chain count would still pass, a loop optimised away would not.
    EXPECT_GT(peak.fp32_fma, 0) << IsaLevelName(level);
    EXPECT_LT(peak.fp32_fma, 2 * 1e13) << IsaLevelName(level);
    const bool bf16 = level == IsaLevel::kAvx512 && DetectCpuFeatures().avx512_bf16;
    if (bf16) {
      EXPECT_GT(peak.bf16_dot, 0);
      EXPECT_LT(peak.bf16_dot, 2 * 1e13);
    } else {
      EXPECT_EQ(peak.bf16_dot, 0) << IsaLevelName(level);
    }
    if (level == IsaLevel::kAvx512 && DetectCpuFeatures().avx512_vnni) {
      EXPECT_GT(peak.int8_dot, 0);
      EXPECT_LT(peak.int8_dot, 4 * 1e13);
    } else {
      EXPECT_EQ(peak.int8_dot, 0) << IsaLevelName(level);
    }
  }
  ASSERT_TRUE(ForceIsaLevel(SupportedIsaLevel()).ok());
  // Without a pool: one thread.
  EXPECT_GT(MeasureComputePeak(nullptr).fp32_fma, 0);
}

}  // namespace
}  // namespace skein::kernels
