#include "services/worker/engine/stage_engine.h"

#include "gtest/gtest.h"

namespace skein::engine {
namespace {

struct Range {
  int first, last;
};

Range Resolve(const std::string& layers, int stage, int stages, int num_layers) {
  Range r{-1, -1};
  absl::Status s = ResolveLayerRange(layers, stage, stages, num_layers, &r.first, &r.last);
  EXPECT_TRUE(s.ok()) << s;
  return r;
}

TEST(LayerRangeTest, StagesSplitEvenlyWithEarlierStagesTakingTheRest) {
  // 10 layers over 3 stages: 4, 3, 3; the ranges tile [0, 10).
  int next = 0;
  for (int stage = 0; stage < 3; ++stage) {
    Range r = Resolve("", stage, 3, 10);
    EXPECT_EQ(r.first, next);
    EXPECT_EQ(r.last - r.first, stage == 0 ? 4 : 3);
    next = r.last;
  }
  EXPECT_EQ(next, 10);
  Range whole = Resolve("", 0, 1, 12);
  EXPECT_EQ(whole.first, 0);
  EXPECT_EQ(whole.last, 12);
}

TEST(LayerRangeTest, ExplicitRangeWinsAndIsChecked) {
  Range r = Resolve("2:5", 0, 1, 8);
  EXPECT_EQ(r.first, 2);
  EXPECT_EQ(r.last, 5);
  int a, b;
  for (const char* bad : {"5:2", "0:9", "x:3", "3", "1:2:3", "-1:2", "4:4"}) {
    EXPECT_EQ(ResolveLayerRange(bad, 0, 1, 8, &a, &b).code(), absl::StatusCode::kInvalidArgument)
        << bad;
  }
  EXPECT_EQ(ResolveLayerRange("", 3, 3, 8, &a, &b).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ResolveLayerRange("", 0, 9, 8, &a, &b).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ResolveLayerRange("", 0, 0, 8, &a, &b).code(), absl::StatusCode::kInvalidArgument);
}

TEST(RunDTypeTest, ParsesAndNamesEachDType) {
  for (const char* name : {"fp32", "bf16", "fp16"}) {
    absl::StatusOr<model::DType> d = ParseRunDType(name);
    ASSERT_TRUE(d.ok());
    EXPECT_EQ(model::DTypeName(*d), name);
  }
  EXPECT_EQ(ParseRunDType("int4").status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace skein::engine
