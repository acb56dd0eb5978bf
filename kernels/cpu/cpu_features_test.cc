#include "kernels/cpu/cpu_features.h"

#include <cstdio>

#include "gtest/gtest.h"

namespace skein::kernels {
namespace {

TEST(CpuFeaturesTest, LevelsAreConsistentWithFeatures) {
  const CpuFeatures& f = DetectCpuFeatures();
  std::printf(
      "avx2=%d fma=%d f16c=%d avx512f=%d avx512bw=%d avx512vl=%d avx512_bf16=%d avx_vnni=%d "
      "avx512_vnni=%d\n",
      f.avx2, f.fma, f.f16c, f.avx512f, f.avx512bw, f.avx512vl, f.avx512_bf16, f.avx_vnni,
      f.avx512_vnni);
  const IsaLevel best = SupportedIsaLevel();
  if (best >= IsaLevel::kAvx2) {
    EXPECT_TRUE(f.avx2 && f.fma && f.f16c);
  }
  if (best >= IsaLevel::kAvx512) {
    EXPECT_TRUE(f.avx512f && f.avx512bw && f.avx512vl);
  }
  if (f.avx512_bf16 || f.avx512_vnni) {
    EXPECT_TRUE(f.avx512f);
  }
  // Both VNNI forms need the OS to save the registers they use.
  if (f.avx_vnni) {
    EXPECT_TRUE(f.os_saves_ymm);
  }
  if (f.avx512_vnni) {
    EXPECT_TRUE(f.os_saves_zmm);
  }
}

TEST(CpuFeaturesTest, ForceLevelLowersAndRestores) {
  const IsaLevel best = SupportedIsaLevel();
  ASSERT_TRUE(ForceIsaLevel(IsaLevel::kScalar).ok());
  EXPECT_EQ(ActiveIsaLevel(), IsaLevel::kScalar);
  ASSERT_TRUE(ForceIsaLevel(best).ok());
  EXPECT_EQ(ActiveIsaLevel(), best);
}

TEST(CpuFeaturesTest, ForcingAnUnsupportedLevelFails) {
  if (SupportedIsaLevel() == IsaLevel::kAvx512) GTEST_SKIP() << "every level is supported";
  absl::Status status = ForceIsaLevel(IsaLevel::kAvx512);
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition);
}

TEST(CpuFeaturesTest, ParsesNames) {
  for (IsaLevel l : {IsaLevel::kScalar, IsaLevel::kAvx2, IsaLevel::kAvx512}) {
    absl::StatusOr<IsaLevel> parsed = ParseIsaLevel(IsaLevelName(l));
    ASSERT_TRUE(parsed.ok());
    EXPECT_EQ(*parsed, l);
  }
  EXPECT_EQ(ParseIsaLevel("sse9").status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace skein::kernels
