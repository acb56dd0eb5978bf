// Exactness of the RWKV-4, RWKV-5 (x052) and RWKV-6 (x060) forward passes against the
// official goldens (../shared/golden/multiversion, made with ChatRWKV's rwkv package in fp32),
// and the equivalences serving relies on, as rwkv7_model_test checks them for x070: sequence
// mode = step mode, a batch = each sequence alone, a state saved and restored mid-sequence =
// an uninterrupted run, a 2-way layer split = the whole model.
//
// Tolerances are those of rwkv7_model_test: logits within 1e-4 × their standard deviation of
// the golden, the state within 5e-5 (relative to 1 + |value|, for RWKV-4's running sums and
// exponent, which are not of unit scale).
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "kernels/cpu/thread_pool.h"
#include "services/worker/model/rwkv_config.h"
#include "services/worker/model/rwkv_model.h"
#include "services/worker/model/rwkv_weights.h"
#include "services/worker/model/state.h"
#include "services/worker/model/state_blob.h"
#include "services/worker/model/testing/rwkv7_test_util.h"
#include "tests/support/test_data.h"

namespace skein::model {
namespace {

using testing::Golden;
using testing::MaxAbsDiff;
using testing::StdDev;

constexpr float kLogitTolerance = 1e-4f;  // × std of the logits
constexpr float kGoldenStateBound = 5e-5f;
// Two fp32 evaluations of the same function in different orders.
constexpr float kReorderTolerance = 1e-5f;
// int8 weights against fp32, × std of the logits (measured up to 0.03 on these models).
constexpr float kInt8Tolerance = 0.1f;
// int8 weights and activations against fp32, × std of the logits (measured below; see the
// printout and docs/benchmarks.md).
constexpr float kInt8ActivationsTolerance = 0.2f;

kernels::ThreadPool& Pool() {
  static kernels::ThreadPool* pool = new kernels::ThreadPool(2);
  return *pool;
}

struct VersionCase {
  const char* name;
  const char* file;  // in golden/multiversion
  RwkvVersion version;
};

std::string CaseName(const ::testing::TestParamInfo<VersionCase>& info) { return info.param.name; }

// Largest |a − b| / (1 + |b|) over every layer's state.
float RelativeStateDiff(const RwkvState& state, const Golden& golden) {
  float worst = 0;
  auto cmp = [&](absl::Span<const float> got, const std::vector<float>& want) {
    if (got.size() != want.size()) {
      worst = INFINITY;
      return;
    }
    for (size_t i = 0; i < got.size(); ++i) {
      worst = std::max(worst, std::fabs(got[i] - want[i]) / (1 + std::fabs(want[i])));
    }
  };
  for (int l = state.shape().first_layer; l < state.shape().last_layer; ++l) {
    const Golden::Layer& g = golden.final_state[l];
    cmp(state.att_x_prev(l), g.att_x_prev);
    cmp(state.att_kv(l), g.att_kv);
    cmp(state.ffn_x_prev(l), g.ffn_x_prev);
  }
  return worst;
}

absl::StatusOr<StepResult> StepOne(RwkvModel& model, RwkvState& state,
                                   absl::Span<const int32_t> tokens, bool all_logits = false) {
  SequenceStep seq{&state, tokens, 0, all_logits};
  return model.Step({&seq, 1});
}

class MultiversionTest : public ::testing::TestWithParam<VersionCase> {
 protected:
  void SetUp() override {
    SKEIN_REQUIRE_TEST_DATA(json, "golden/multiversion/expected.json");
    SKEIN_REQUIRE_TEST_DATA(path, std::string("golden/multiversion/") + GetParam().file);
    absl::StatusOr<Golden> g = testing::ReadMultiversionGolden(json, GetParam().file);
    ASSERT_TRUE(g.ok()) << g.status();
    golden_ = *std::move(g);
    path_ = path;
  }

  std::shared_ptr<const RwkvWeights> Weights(DType dtype = DType::kF32, int first = 0,
                                             int last = -1, bool int8_panels = true,
                                             bool bf16_panels = true) {
    absl::StatusOr<std::shared_ptr<const RwkvWeights>> w =
        testing::LoadWeights(path_, dtype, first, last, int8_panels, bf16_panels);
    EXPECT_TRUE(w.ok()) << w.status();
    return w.ok() ? *w : nullptr;
  }

  void ExpectLogits(absl::Span<const float> got, size_t step, const std::string& what) {
    const std::vector<float>& want = golden_.logits[step];
    ASSERT_EQ(got.size(), want.size()) << what;
    EXPECT_LE(MaxAbsDiff(got, want), kLogitTolerance * StdDev(want)) << what << ", step " << step;
  }

  Golden golden_;
  std::string path_;
};

TEST_P(MultiversionTest, LoadsAsItsVersion) {
  std::shared_ptr<const RwkvWeights> w = Weights();
  ASSERT_NE(w, nullptr);
  EXPECT_EQ(w->version(), GetParam().version);
  const StateShape shape = w->state_shape();
  EXPECT_EQ(shape.per_channel(), GetParam().version == RwkvVersion::kV4);
  EXPECT_EQ(shape.total_floats(), w->config().state_floats());
  // A fresh RWKV-4 state starts its exponent at −1e30; every other value at zero.
  RwkvState state(shape);
  for (int l = 0; l < 3; ++l) {
    absl::Span<const float> att = state.att_kv(l);
    for (size_t i = 0; i < att.size(); ++i) {
      const bool exponent = shape.per_channel() && i >= 2 * static_cast<size_t>(shape.embd);
      ASSERT_EQ(att[i], exponent ? RwkvState::kV4InitialExponent : 0.0f) << i;
    }
  }
}

TEST_P(MultiversionTest, StepByStepMatchesGolden) {
  RwkvModel model(Weights(), &Pool());
  RwkvState state = model.NewState();
  for (size_t t = 0; t < golden_.tokens.size(); ++t) {
    absl::StatusOr<StepResult> r = StepOne(model, state, {&golden_.tokens[t], 1});
    ASSERT_TRUE(r.ok()) << r.status();
    ExpectLogits(r->logits, t, "step mode");
  }
  EXPECT_EQ(state.position(), static_cast<int64_t>(golden_.tokens.size()));
  EXPECT_LE(RelativeStateDiff(state, golden_), kGoldenStateBound);
}

// The same in passes of 3 rows (RwkvModelOptions::max_rows_per_pass): each version's token
// shift and recurrence carry over from one pass to the next.
TEST_P(MultiversionTest, SequenceModeMatchesGolden) {
  std::shared_ptr<const RwkvWeights> weights = Weights();
  for (int64_t rows_per_pass : {0, 3}) {
    RwkvModel model(weights, &Pool(), {.max_rows_per_pass = rows_per_pass});
    RwkvState state = model.NewState();
    absl::StatusOr<StepResult> r = StepOne(model, state, golden_.tokens, /*all_logits=*/true);
    ASSERT_TRUE(r.ok()) << r.status();
    const size_t V = golden_.logits[0].size();
    ASSERT_EQ(r->logits.size(), golden_.tokens.size() * V);
    const std::string what = absl::StrCat("sequence mode, passes of ", rows_per_pass);
    for (size_t t = 0; t < golden_.tokens.size(); ++t) {
      ExpectLogits(absl::MakeConstSpan(r->logits).subspan(t * V, V), t, what);
    }
    EXPECT_LE(RelativeStateDiff(state, golden_), kGoldenStateBound) << what;
    EXPECT_EQ(state.position(), static_cast<int64_t>(golden_.tokens.size()));
  }
}

// A bf16 checkpoint run with bf16 weights computes what its fp32 run computes: the weights
// are the same numbers and activations stay fp32.
TEST_P(MultiversionTest, Bf16RunMatchesGolden) {
  RwkvModel model(Weights(DType::kBF16), &Pool());
  RwkvState state = model.NewState();
  absl::StatusOr<StepResult> r = StepOne(model, state, golden_.tokens, /*all_logits=*/true);
  ASSERT_TRUE(r.ok()) << r.status();
  const size_t V = golden_.logits[0].size();
  for (size_t t = 0; t < golden_.tokens.size(); ++t) {
    ExpectLogits(absl::MakeConstSpan(r->logits).subspan(t * V, V), t, "bf16 weights");
  }
}

// int8 weights (per-row symmetric, quantised at load) against the fp32 run: the largest
// logit deviation per step relative to the logits' standard deviation, and how often the
// most likely token agrees. Measured values are printed for docs/benchmarks.md.
// With int8 activations as well (RwkvModelOptions::int8_activations) the products run on
// integers, at a further cost in accuracy, measured and bounded the same way.
TEST_P(MultiversionTest, Int8WeightsStayClose) {
  RwkvModel exact(Weights(), &Pool());
  RwkvState a = exact.NewState();
  absl::StatusOr<StepResult> ra = StepOne(exact, a, golden_.tokens, true);
  ASSERT_TRUE(ra.ok());
  const size_t V = golden_.logits[0].size();
  std::vector<float> weights_only;
  for (bool int8_activations : {false, true}) {
    RwkvModel int8(Weights(DType::kI8), &Pool(),
                   RwkvModelOptions{.int8_activations = int8_activations});
    RwkvState b = int8.NewState();
    absl::StatusOr<StepResult> rb = StepOne(int8, b, golden_.tokens, true);
    ASSERT_TRUE(rb.ok());
    float worst = 0;
    int agree = 0;
    for (size_t t = 0; t < golden_.tokens.size(); ++t) {
      const absl::Span<const float> x = absl::MakeConstSpan(ra->logits).subspan(t * V, V);
      const absl::Span<const float> y = absl::MakeConstSpan(rb->logits).subspan(t * V, V);
      worst = std::max(worst, MaxAbsDiff(x, y) / StdDev(x));
      agree += std::max_element(x.begin(), x.end()) - x.begin() ==
               std::max_element(y.begin(), y.end()) - y.begin();
    }
    std::printf("%s int8%s: max logit deviation %.4f std, argmax agreement %d/%zu\n",
                GetParam().name, int8_activations ? " + int8 activations" : "", worst, agree,
                golden_.tokens.size());
    EXPECT_GT(worst, 0.0f) << "int8 must not silently run in fp32";
    EXPECT_LT(worst, int8_activations ? kInt8ActivationsTolerance : kInt8Tolerance);
    if (!int8_activations) {
      weights_only = rb->logits;
    } else {
      EXPECT_NE(rb->logits, weights_only) << "int8 activations must not silently stay fp32";
    }
  }
}

// int8 weights packed into panels (RwkvLoadOptions::int8_panels, the default; packed where the
// CPU has AVX512-VNNI) compute what the row-major int8 run computes, with fp32 and with int8
// activations: the same integers and scales, summed in another order (a prompt, then one
// decode step).
TEST_P(MultiversionTest, Int8PanelsMatchRowMajorInt8) {
  std::shared_ptr<const RwkvWeights> packed_weights = Weights(DType::kI8);
  std::shared_ptr<const RwkvWeights> row_weights =
      Weights(DType::kI8, 0, -1, /*int8_panels=*/false);
  ASSERT_NE(packed_weights, nullptr);
  ASSERT_NE(row_weights, nullptr);
  const kernels::WeightMatrix& probe = packed_weights->layer(packed_weights->first_layer()).output;
  EXPECT_EQ(row_weights->layer(row_weights->first_layer()).output.panels, nullptr);
  // The LoRAs (x060 and x070) go on bf16 panels beside int8 panels where the CPU has both;
  // the row-major int8 run keeps them fp32. The checkpoints are bf16: nothing is rounded.
  const RwkvVersion version = packed_weights->version();
  if (version == RwkvVersion::kV6 || version == RwkvVersion::kV7) {
    auto lora = [&](const RwkvWeights& w) -> const kernels::WeightMatrix& {
      return version == RwkvVersion::kV6 ? w.layer(0).decay_w1 : w.layer(0).w1;
    };
    const bool both = kernels::Int8PanelsAccelerated() && kernels::Bf16PanelsAccelerated();
    EXPECT_EQ(lora(*row_weights).type, DType::kF32);
    EXPECT_EQ(lora(*packed_weights).type, both ? DType::kBF16 : DType::kF32);
    EXPECT_EQ(lora(*packed_weights).panels != nullptr, both);
  }
  if (kernels::Int8PanelsAccelerated()) {
    EXPECT_NE(probe.panels, nullptr) << "int8 panels on an AVX512-VNNI CPU";
  } else {
    std::printf("no AVX512-VNNI here: int8 weights stay row-major (nothing packed)\n");
    EXPECT_EQ(probe.panels, nullptr);
  }
  // With int8 activations a last-bit difference before a quantisation can move a value across
  // a rounding boundary (x060's mixes come out of a LoRA): that comparison keeps the LoRAs as
  // the row-major run has them (fp32 rows, bf16_panels off), so that only the int8 panels differ.
  std::shared_ptr<const RwkvWeights> packed_fp32_loras =
      Weights(DType::kI8, 0, -1, /*int8_panels=*/true, /*bf16_panels=*/false);
  ASSERT_NE(packed_fp32_loras, nullptr);
  EXPECT_EQ(packed_fp32_loras->layer(0).output.panels != nullptr, probe.panels != nullptr);
  const RwkvLayerWeights& layer0 = packed_fp32_loras->layer(0);
  EXPECT_EQ((version == RwkvVersion::kV6 ? layer0.decay_w1 : layer0.w1).panels, nullptr);
  for (bool int8_activations : {false, true}) {
    const RwkvModelOptions options{.int8_activations = int8_activations};
    RwkvModel rows(row_weights, &Pool(), options);
    RwkvModel panels(int8_activations ? packed_fp32_loras : packed_weights, &Pool(), options);
    RwkvState a = rows.NewState(), b = panels.NewState();
    absl::StatusOr<StepResult> ra = StepOne(rows, a, golden_.tokens, true);
    absl::StatusOr<StepResult> rb = StepOne(panels, b, golden_.tokens, true);
    ASSERT_TRUE(ra.ok() && rb.ok());
    const size_t V = golden_.logits[0].size();
    float worst = 0;
    for (size_t t = 0; t < golden_.tokens.size(); ++t) {
      const absl::Span<const float> x = absl::MakeConstSpan(ra->logits).subspan(t * V, V);
      const absl::Span<const float> y = absl::MakeConstSpan(rb->logits).subspan(t * V, V);
      worst = std::max(worst, MaxAbsDiff(x, y) / StdDev(x));
    }
    std::printf("%s int8 panels vs rows%s: max logit deviation %.2e std\n", GetParam().name,
                int8_activations ? " (int8 activations)" : "", worst);
    // Only the order of fp32 sums differs; measured 0.5-2.2·10⁻⁶ of a standard deviation.
    EXPECT_LT(worst, 1e-3f);
    // Then one decode step of both states, from where the prompt left them.
    const int32_t next = golden_.tokens.back();
    ra = StepOne(rows, a, {&next, 1});
    rb = StepOne(panels, b, {&next, 1});
    ASSERT_TRUE(ra.ok() && rb.ok());
    EXPECT_LT(MaxAbsDiff(ra->logits, rb->logits) / StdDev(ra->logits), 1e-3f);
  }
}

// Two sequences of different lengths and a third at another position, in one step, each equal
// to its own run.
TEST_P(MultiversionTest, BatchEqualsEachSequenceAlone) {
  RwkvModel model(Weights(), &Pool());
  const std::vector<int32_t>& tokens = golden_.tokens;
  const absl::Span<const int32_t> all(tokens);
  // The third sequence has already consumed the first four tokens.
  RwkvState a = model.NewState(), b = model.NewState(), c = model.NewState();
  ASSERT_TRUE(StepOne(model, c, all.subspan(0, 4)).ok());
  RwkvState c_alone = c;
  SequenceStep steps[3] = {
      {&a, all, 0, true}, {&b, all.subspan(0, 3), 0, false}, {&c, all.subspan(4, 5), 0, false}};
  absl::StatusOr<StepResult> batch = model.Step(steps);
  ASSERT_TRUE(batch.ok()) << batch.status();
  const size_t V = golden_.logits[0].size();
  ASSERT_EQ(batch->logits_rows, (std::vector<int64_t>{static_cast<int64_t>(tokens.size()), 1, 1}));

  RwkvState b_alone = model.NewState();
  absl::StatusOr<StepResult> rb = StepOne(model, b_alone, all.subspan(0, 3));
  absl::StatusOr<StepResult> rc = StepOne(model, c_alone, all.subspan(4, 5));
  ASSERT_TRUE(rb.ok() && rc.ok());
  const float scale = StdDev(golden_.logits.back());
  const absl::Span<const float> logits(batch->logits);
  EXPECT_LE(MaxAbsDiff(logits.subspan(tokens.size() * V, V), rb->logits),
            kReorderTolerance * scale);
  EXPECT_LE(MaxAbsDiff(logits.subspan((tokens.size() + 1) * V, V), rc->logits),
            kReorderTolerance * scale);
  for (size_t t = 0; t < tokens.size(); ++t) {
    ExpectLogits(logits.subspan(t * V, V), t, "in a batch");
  }
  EXPECT_LE(MaxAbsDiff(b.data(), b_alone.data()), kReorderTolerance);
  EXPECT_LE(MaxAbsDiff(c.data(), c_alone.data()), kReorderTolerance);
}

// A state saved as a blob mid-sequence and restored continues as if never interrupted.
TEST_P(MultiversionTest, RestoredStateContinuesTheRun) {
  std::shared_ptr<const RwkvWeights> weights = Weights();
  RwkvModel model(weights, &Pool());
  const absl::Span<const int32_t> tokens(golden_.tokens);
  RwkvState first = model.NewState();
  ASSERT_TRUE(StepOne(model, first, tokens.subspan(0, 6)).ok());
  const std::string blob = EncodeStateBlob(first, weights->fingerprint());
  absl::StatusOr<RwkvState> restored =
      DecodeStateBlob(blob, weights->fingerprint(), weights->state_shape());
  ASSERT_TRUE(restored.ok()) << restored.status();
  EXPECT_EQ(restored->position(), 6);
  absl::StatusOr<StepResult> r = StepOne(model, *restored, tokens.subspan(6), true);
  ASSERT_TRUE(r.ok()) << r.status();
  const size_t V = golden_.logits[0].size();
  for (size_t t = 6; t < tokens.size(); ++t) {
    ExpectLogits(absl::MakeConstSpan(r->logits).subspan((t - 6) * V, V), t, "after restore");
  }
  EXPECT_LE(RelativeStateDiff(*restored, golden_), kGoldenStateBound);
}

// Layers [0, 1) and [1, 3) as two stages, activations passed between them, equal the whole
// model; each stage's state covers its own layers.
TEST_P(MultiversionTest, TwoStagesEqualTheWholeModel) {
  RwkvModel front(Weights(DType::kF32, 0, 1), &Pool());
  RwkvModel back(Weights(DType::kF32, 1, 3), &Pool());
  RwkvState s0 = front.NewState(), s1 = back.NewState();
  EXPECT_EQ(s0.shape().layers(), 1);
  EXPECT_EQ(s1.shape().first_layer, 1);
  const absl::Span<const int32_t> tokens(golden_.tokens);
  SequenceStep first{&s0, tokens, 0, false};
  absl::StatusOr<StepResult> mid = front.Step({&first, 1});
  ASSERT_TRUE(mid.ok()) << mid.status();
  EXPECT_EQ(mid->activations.v_first.empty(), GetParam().version != RwkvVersion::kV7)
      << "only x070 passes v_first";
  EXPECT_EQ(mid->activations.rows, static_cast<int64_t>(tokens.size()));
  SequenceStep second{&s1, {}, static_cast<int64_t>(tokens.size()), true};
  absl::StatusOr<StepResult> out = back.Step({&second, 1}, &mid->activations);
  ASSERT_TRUE(out.ok()) << out.status();
  const size_t V = golden_.logits[0].size();
  for (size_t t = 0; t < tokens.size(); ++t) {
    ExpectLogits(absl::MakeConstSpan(out->logits).subspan(t * V, V), t, "two stages");
  }
  EXPECT_LE(RelativeStateDiff(s0, golden_), kGoldenStateBound);
  EXPECT_LE(RelativeStateDiff(s1, golden_), kGoldenStateBound);

  // Activations with a v_first where the model has none (or none where it has one) do not
  // fit.
  StageActivations wrong = mid->activations;
  if (wrong.v_first.empty()) {
    wrong.v_first = wrong.hidden;
  } else {
    wrong.v_first.clear();
  }
  RwkvState s2 = back.NewState();
  SequenceStep again{&s2, {}, static_cast<int64_t>(tokens.size()), false};
  EXPECT_EQ(back.Step({&again, 1}, &wrong).status().code(), absl::StatusCode::kInvalidArgument);
}

INSTANTIATE_TEST_SUITE_P(Versions, MultiversionTest,
                         ::testing::Values(VersionCase{"v7", "tiny-v7.pth", RwkvVersion::kV7},
                                           VersionCase{"v6", "tiny-v6.pth", RwkvVersion::kV6},
                                           VersionCase{"v5_2", "tiny-v5.2.pth", RwkvVersion::kV5_2},
                                           VersionCase{"v4", "tiny-v4.pth", RwkvVersion::kV4}),
                         CaseName);

}  // namespace
}  // namespace skein::model
