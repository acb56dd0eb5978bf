#include "services/worker/link/activation_frames.h"

#include <cmath>

#include "gtest/gtest.h"

namespace skein::link {
namespace {

model::StageActivations Rows(int64_t rows, int64_t width) {
  model::StageActivations a;
  a.rows = rows;
  a.width = width;
  for (int64_t i = 0; i < rows * width; ++i) {
    a.hidden.push_back(std::sin(0.37f * i) * 3.0f);
    a.v_first.push_back(std::cos(0.11f * i) - 0.5f);
  }
  return a;
}

v1::StepRequest Step(uint64_t id) {
  v1::StepRequest s;
  s.set_step_id(id);
  s.add_sequences()->set_session_id("s");
  return s;
}

absl::StatusOr<FrameAssembler::Step> RoundTrip(std::vector<v1::ActivationFrame> frames) {
  FrameAssembler assembler;
  for (size_t i = 0; i < frames.size(); ++i) {
    absl::StatusOr<std::optional<FrameAssembler::Step>> r = assembler.Add(std::move(frames[i]));
    if (!r.ok()) return r.status();
    if (r->has_value() != (i + 1 == frames.size())) {
      return absl::InternalError("a step completed at the wrong frame");
    }
    if (r->has_value()) return **std::move(r);
  }
  return absl::InternalError("no frames");
}

TEST(ActivationFramesTest, Fp32IsExactAcrossManyParts) {
  const model::StageActivations a = Rows(37, 64);
  // 64 floats × 2 arrays × 4 bytes = 512 bytes a row; 2000 bytes hold 3 rows: 13 parts.
  std::vector<v1::ActivationFrame> frames =
      EncodeFrames(Step(7), a, v1::ACTIVATION_DTYPE_FP32, 2000);
  ASSERT_EQ(frames.size(), 13u);
  EXPECT_TRUE(frames[0].has_step());
  EXPECT_FALSE(frames[1].has_step());
  for (const auto& f : frames) EXPECT_LE(f.hidden().size() + f.v_first().size(), 2000u);
  absl::StatusOr<FrameAssembler::Step> back = RoundTrip(std::move(frames));
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->request.step_id(), 7u);
  EXPECT_EQ(back->activations.rows, 37);
  EXPECT_EQ(back->activations.width, 64);
  EXPECT_EQ(back->activations.hidden, a.hidden);
  EXPECT_EQ(back->activations.v_first, a.v_first);
}

TEST(ActivationFramesTest, Bf16HalvesTheBytesAndRoundsToNearest) {
  const model::StageActivations a = Rows(5, 32);
  std::vector<v1::ActivationFrame> frames = EncodeFrames(Step(1), a, v1::ACTIVATION_DTYPE_BF16);
  ASSERT_EQ(frames.size(), 1u);
  EXPECT_EQ(frames[0].hidden().size(), 5u * 32 * 2);
  absl::StatusOr<FrameAssembler::Step> back = RoundTrip(std::move(frames));
  ASSERT_TRUE(back.ok());
  for (size_t i = 0; i < a.hidden.size(); ++i) {
    // bf16 keeps 8 significant bits: rounding to nearest errs by at most 2^-8 relative.
    EXPECT_LE(std::fabs(back->activations.hidden[i] - a.hidden[i]),
              std::fabs(a.hidden[i]) * (1.0f / 256));
  }
}

TEST(ActivationFramesTest, MalformedFramesAreRejected) {
  std::vector<v1::ActivationFrame> frames =
      EncodeFrames(Step(1), Rows(8, 16), v1::ACTIVATION_DTYPE_FP32, 300);
  ASSERT_GT(frames.size(), 2u);
  {
    FrameAssembler assembler;  // a part skipped
    ASSERT_TRUE(assembler.Add(v1::ActivationFrame(frames[0])).ok());
    EXPECT_EQ(assembler.Add(v1::ActivationFrame(frames[2])).status().code(),
              absl::StatusCode::kInvalidArgument);
  }
  {
    FrameAssembler assembler;  // bytes that do not match rows × width
    v1::ActivationFrame bad = frames[0];
    bad.mutable_hidden()->pop_back();
    EXPECT_EQ(assembler.Add(std::move(bad)).status().code(), absl::StatusCode::kInvalidArgument);
    // After an error the assembler starts over cleanly.
    std::vector<v1::ActivationFrame> copy = frames;
    for (size_t i = 0; i + 1 < copy.size(); ++i) {
      ASSERT_TRUE(assembler.Add(std::move(copy[i])).ok());
    }
    absl::StatusOr<std::optional<FrameAssembler::Step>> last =
        assembler.Add(std::move(copy.back()));
    ASSERT_TRUE(last.ok());
    EXPECT_TRUE(last->has_value());
  }
}

TEST(ActivationFramesTest, AStepWithoutRowsIsOneFrame) {
  model::StageActivations none;
  none.width = 16;
  std::vector<v1::ActivationFrame> frames = EncodeFrames(Step(3), none, v1::ACTIVATION_DTYPE_BF16);
  ASSERT_EQ(frames.size(), 1u);
  absl::StatusOr<FrameAssembler::Step> back = RoundTrip(std::move(frames));
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(back->activations.rows, 0);
}

// A step whose rows travel over NCCL is one frame with the step and the shape but no row
// bytes, through the wire format and the assembler; the rows go as one payload, hidden then
// v_first.
TEST(NcclFrames, FrameCarriesNoRowsAndRoundTrips) {
  const model::StageActivations a = Rows(300, 64);
  v1::ActivationFrame sent = EncodeNcclFrame(Step(5), a, v1::ACTIVATION_DTYPE_BF16, 42);
  EXPECT_TRUE(sent.hidden().empty());
  EXPECT_TRUE(sent.v_first().empty());
  EXPECT_LT(sent.ByteSizeLong(), 100u);
  v1::ActivationFrame wire;
  ASSERT_TRUE(wire.ParseFromString(sent.SerializeAsString()));
  FrameAssembler assembler;
  absl::StatusOr<std::optional<FrameAssembler::Step>> got = assembler.Add(std::move(wire));
  ASSERT_TRUE(got.ok()) << got.status();
  ASSERT_TRUE(got->has_value());
  const FrameAssembler::Step& step = **got;
  EXPECT_EQ(step.request.step_id(), 5u);
  ASSERT_TRUE(step.nccl.has_value());
  EXPECT_EQ(step.nccl->link_id(), 42u);
  EXPECT_TRUE(step.nccl->v_first());
  EXPECT_EQ(step.dtype, v1::ACTIVATION_DTYPE_BF16);
  EXPECT_EQ(step.activations.rows, 300);
  EXPECT_EQ(step.activations.width, 64);
  EXPECT_TRUE(step.activations.hidden.empty());

  for (v1::ActivationDType dtype : {v1::ACTIVATION_DTYPE_FP32, v1::ACTIVATION_DTYPE_BF16}) {
    std::string payload;
    EncodeNcclPayload(a, dtype, &payload);
    ASSERT_EQ(payload.size(), NcclPayloadBytes(300, 64, true, dtype));
    model::StageActivations back;
    ASSERT_TRUE(
        DecodeNcclPayload(payload.data(), payload.size(), 300, 64, true, dtype, &back).ok());
    ASSERT_EQ(back.hidden.size(), a.hidden.size());
    ASSERT_EQ(back.v_first.size(), a.v_first.size());
    const float tolerance = dtype == v1::ACTIVATION_DTYPE_FP32 ? 0.0f : 0.02f;
    for (size_t i = 0; i < a.hidden.size(); ++i) {
      ASSERT_NEAR(back.hidden[i], a.hidden[i], tolerance * std::abs(a.hidden[i])) << i;
      ASSERT_NEAR(back.v_first[i], a.v_first[i], tolerance * std::abs(a.v_first[i])) << i;
    }
    EXPECT_EQ(
        DecodeNcclPayload(payload.data(), payload.size() - 2, 300, 64, true, dtype, &back).code(),
        absl::StatusCode::kInvalidArgument);
  }
}

TEST(NcclFrames, MalformedNcclFramesAreRejected) {
  const model::StageActivations a = Rows(2, 8);
  v1::ActivationFrame with_rows = EncodeNcclFrame(Step(1), a, v1::ACTIVATION_DTYPE_FP32, 3);
  with_rows.set_hidden(std::string(64, '\0'));
  v1::ActivationFrame split = EncodeNcclFrame(Step(1), a, v1::ACTIVATION_DTYPE_FP32, 3);
  split.set_part_count(2);
  v1::ActivationFrame link_zero = EncodeNcclFrame(Step(1), a, v1::ACTIVATION_DTYPE_FP32, 0);
  for (v1::ActivationFrame* f : {&with_rows, &split, &link_zero}) {
    FrameAssembler assembler;
    EXPECT_EQ(assembler.Add(std::move(*f)).status().code(), absl::StatusCode::kInvalidArgument);
  }
}

}  // namespace
}  // namespace skein::link
