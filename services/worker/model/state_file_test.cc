// Initial-state files: what they must hold, their orientation against our state layout, and
// how a state for another model is refused.
#include "services/worker/model/state_file.h"

#include <cstring>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "base/dtype.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "kernels/cpu/thread_pool.h"
#include "services/worker/model/checkpoint/checkpoint_writer.h"
#include "services/worker/model/rwkv_model.h"
#include "services/worker/model/rwkv_weights.h"
#include "services/worker/model/testing/rwkv7_test_util.h"
#include "tests/support/test_data.h"

namespace skein::model {
namespace {

using ::testing::HasSubstr;

// Writes a state file of `layers` × [H, N, N] whose value at (l, h, i, j) is value(l, h, i, j),
// plus any extra tensors, and opens it.
std::unique_ptr<TensorArchive> WriteStateFile(
    const std::string& name, int64_t layers, int64_t H, int64_t N, DType dtype,
    const std::function<float(int64_t, int64_t, int64_t, int64_t)>& value,
    const std::vector<TensorSpec>& extra = {}) {
  const std::string path = ::testing::TempDir() + "/" + name;
  std::vector<TensorSpec> specs;
  for (int64_t l = 0; l < layers; ++l) {
    specs.push_back({"blocks." + std::to_string(l) + ".att.time_state", dtype, {H, N, N}});
  }
  for (const TensorSpec& e : extra) specs.push_back(e);
  auto writer = CreateCheckpointWriter(path, specs, {});
  EXPECT_TRUE(writer.ok()) << writer.status();
  if (!writer.ok()) return nullptr;
  for (const TensorSpec& s : specs) {
    int64_t n = 1;
    for (int64_t d : s.shape) n *= d;
    std::vector<float> f(static_cast<size_t>(n), 0.5f);
    const int64_t layer = s.name.find("time_state") != std::string::npos
                              ? std::stoll(s.name.substr(7, s.name.find('.', 7) - 7))
                              : -1;
    if (layer >= 0 && s.shape == std::vector<int64_t>{H, N, N}) {
      for (int64_t h = 0; h < H; ++h)
        for (int64_t i = 0; i < N; ++i)
          for (int64_t j = 0; j < N; ++j) f[(h * N + i) * N + j] = value(layer, h, i, j);
    }
    std::string bytes(static_cast<size_t>(n) * DTypeSize(s.dtype), '\0');
    if (s.dtype != DType::kI8) {  // int8 tensors stay 0: nothing narrows to int8
      base::ConvertElements(DType::kF32, f.data(), s.dtype, bytes.data(), f.size());
    }
    EXPECT_TRUE((*writer)->Append(bytes).ok());
  }
  EXPECT_TRUE((*writer)->Finish().ok());
  auto archive = OpenCheckpoint(path);
  EXPECT_TRUE(archive.ok()) << archive.status();
  return archive.ok() ? *std::move(archive) : nullptr;
}

// Distinct values that differ under a transpose.
float Pattern(int64_t l, int64_t h, int64_t i, int64_t j) {
  return static_cast<float>(l * 1000 + h * 100 + i) + 0.01f * static_cast<float>(j);
}

RwkvConfig Config(int64_t layers, int64_t H, int64_t N) {
  RwkvConfig c;
  c.version = RwkvVersion::kV6;
  c.n_layer = layers;
  c.n_head = H;
  c.head_size = N;
  c.n_embd = H * N;
  return c;
}

TEST(StateFile, InspectDescribesItAndTheDigestIgnoresTheContainer) {
  auto f32 = WriteStateFile("a.safetensors", 3, 2, 4, DType::kF32, Pattern);
  auto bf16 = WriteStateFile("b.pth", 3, 2, 4, DType::kBF16,
                             [](int64_t, int64_t, int64_t, int64_t) { return 0.25f; });
  auto bf16_again = WriteStateFile("c.safetensors", 3, 2, 4, DType::kBF16,
                                   [](int64_t, int64_t, int64_t, int64_t) { return 0.25f; });
  ASSERT_TRUE(f32 && bf16 && bf16_again);
  absl::StatusOr<StateFileInfo> a = InspectStateFile(*f32);
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_EQ(a->layers, 3);
  EXPECT_EQ(a->heads, 2);
  EXPECT_EQ(a->head_size, 4);
  EXPECT_EQ(a->dtype, "fp32");
  absl::StatusOr<StateFileInfo> b = InspectStateFile(*bf16);
  absl::StatusOr<StateFileInfo> c = InspectStateFile(*bf16_again);
  ASSERT_TRUE(b.ok() && c.ok());
  EXPECT_EQ(b->dtype, "bf16");
  EXPECT_EQ(b->digest, c->digest) << "the same values in .pth and .safetensors";
  EXPECT_NE(a->digest, b->digest);
}

// File element [h][i][j] (i = value, j = key) lands at att_kv[h·N·N + i·N + j]: no transpose.
TEST(StateFile, LoadsWithoutTransposeForTheLayerRange) {
  auto file = WriteStateFile("orient.safetensors", 3, 2, 4, DType::kF32, Pattern);
  ASSERT_TRUE(file);
  const StateShape shape{1, 3, 8, 2, 4};
  absl::StatusOr<RwkvState> s = LoadStateFile(*file, Config(3, 2, 4), shape);
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(s->position(), 0);
  for (int l = 1; l < 3; ++l) {
    for (int64_t h = 0; h < 2; ++h)
      for (int64_t i = 0; i < 4; ++i)
        for (int64_t j = 0; j < 4; ++j)
          ASSERT_EQ(s->att_kv(l)[(h * 4 + i) * 4 + j], Pattern(l, h, i, j));
    for (float x : s->att_x_prev(l)) ASSERT_EQ(x, 0.0f);
    for (float x : s->ffn_x_prev(l)) ASSERT_EQ(x, 0.0f);
  }
}

TEST(StateFile, MalformedFilesAreInvalid) {
  auto ones = [](int64_t, int64_t, int64_t, int64_t) { return 1.0f; };
  struct Case {
    std::unique_ptr<TensorArchive> file;
    const char* says;
  };
  std::vector<Case> cases;
  cases.push_back({WriteStateFile("extra.safetensors", 2, 2, 4, DType::kF32, ones,
                                  {{"blocks.0.att.time_decay", DType::kF32, {8}}}),
                   "unexpected tensor 'blocks.0.att.time_decay'"});
  cases.push_back({WriteStateFile("rect.safetensors", 0, 2, 4, DType::kF32, ones,
                                  {{"blocks.0.att.time_state", DType::kF32, {2, 4, 3}}}),
                   "expected [heads, head size, head size]"});
  cases.push_back({WriteStateFile("gap.safetensors", 1, 2, 4, DType::kF32, ones,
                                  {{"blocks.2.att.time_state", DType::kF32, {2, 4, 4}}}),
                   "blocks.1.att.time_state is missing"});
  cases.push_back({WriteStateFile("mixed.safetensors", 1, 2, 4, DType::kF32, ones,
                                  {{"blocks.1.att.time_state", DType::kF32, {4, 4, 4}}}),
                   "other layers are [2, 4, 4]"});
  cases.push_back(
      {WriteStateFile("empty.safetensors", 0, 2, 4, DType::kF32, ones), "holds no blocks"});
  cases.push_back({WriteStateFile("int8.safetensors", 2, 2, 4, DType::kI8, ones),
                   "'blocks.0.att.time_state' is int8"});
  for (const Case& c : cases) {
    ASSERT_TRUE(c.file);
    absl::StatusOr<StateFileInfo> info = InspectStateFile(*c.file);
    EXPECT_EQ(info.status().code(), absl::StatusCode::kInvalidArgument) << c.says;
    EXPECT_THAT(info.status().message(), HasSubstr(c.says));
    EXPECT_THAT(info.status().message(), HasSubstr(c.file->path()));
    EXPECT_EQ(LoadStateFile(*c.file, Config(2, 2, 4), {0, 2, 8, 2, 4}).status().code(),
              absl::StatusCode::kInvalidArgument);
  }
}

TEST(StateFile, AStateForAnotherModelIsAFailedPrecondition) {
  auto file = WriteStateFile("other.safetensors", 3, 2, 4, DType::kF32, Pattern);
  ASSERT_TRUE(file);
  for (const RwkvConfig& c : {Config(2, 2, 4), Config(3, 4, 2), Config(3, 1, 8)}) {
    absl::StatusOr<RwkvState> s =
        LoadStateFile(*file, c, {0, static_cast<int>(c.n_layer), c.n_embd, c.n_head, c.head_size});
    EXPECT_EQ(s.status().code(), absl::StatusCode::kFailedPrecondition) << s.status();
    EXPECT_THAT(s.status().message(), HasSubstr("this model has"));
  }
  RwkvConfig v4 = Config(3, 2, 4);
  v4.version = RwkvVersion::kV4;
  absl::StatusOr<RwkvState> s = LoadStateFile(*file, v4, {0, 3, 8, 0, 0});
  EXPECT_EQ(s.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(s.status().message(), HasSubstr("RWKV-4"));
}

// A real model started from a loaded state runs as it does from the same state reached by
// feeding tokens (with the token-shift parts, which a state file does not carry, cleared).
TEST(StateFile, TheModelRunsFromTheLoadedState) {
  SKEIN_REQUIRE_TEST_DATA(path, "golden/multiversion/tiny-v6.pth");
  absl::StatusOr<std::shared_ptr<const RwkvWeights>> w = testing::LoadWeights(path);
  ASSERT_TRUE(w.ok()) << w.status();
  kernels::ThreadPool pool(2);
  RwkvModel model(*w, &pool);
  RwkvState fed = model.NewState();
  const std::vector<int32_t> prefix = {5, 17, 250, 3};
  SequenceStep seq{&fed, prefix};
  ASSERT_TRUE(model.Step({&seq, 1}).ok());
  const StateShape& shape = fed.shape();
  auto file = WriteStateFile(
      "tuned.pth", 3, shape.heads, shape.head_size, DType::kF32,
      [&](int64_t l, int64_t h, int64_t i, int64_t j) {
        return fed.att_kv(static_cast<int>(l))[(h * shape.head_size + i) * shape.head_size + j];
      });
  ASSERT_TRUE(file);
  absl::StatusOr<RwkvState> loaded = LoadStateFile(*file, (*w)->config(), shape);
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  RwkvState expected = fed;
  expected.set_position(0);
  for (int l = 0; l < 3; ++l) {
    std::fill(expected.att_x_prev(l).begin(), expected.att_x_prev(l).end(), 0.0f);
    std::fill(expected.ffn_x_prev(l).begin(), expected.ffn_x_prev(l).end(), 0.0f);
  }
  const std::vector<int32_t> next = {99, 0, 42};
  SequenceStep a{&*loaded, next}, b{&expected, next};
  absl::StatusOr<StepResult> ra = model.Step({&a, 1});
  absl::StatusOr<StepResult> rb = model.Step({&b, 1});
  ASSERT_TRUE(ra.ok() && rb.ok());
  EXPECT_EQ(ra->logits, rb->logits);
  // And the tuned start differs from the zero start.
  RwkvState zero = model.NewState();
  SequenceStep c{&zero, next};
  absl::StatusOr<StepResult> rc = model.Step({&c, 1});
  ASSERT_TRUE(rc.ok());
  EXPECT_GT(testing::MaxAbsDiff(ra->logits, rc->logits), 1e-3f);
}

}  // namespace
}  // namespace skein::model
