// The device path of a stage, run on the host engine (the GPU engine's launch sequence with the
// scalar reference kernels), against the CPU engine: checkpoint packing, mixed steps mapped
// onto uniform ones, pipeline stages, and the state slot pool (residency, fetch on read,
// eviction, hand-over between engines). On a GPU the same model runs with cuda:N; the kernels
// themselves are checked against the same references in kernels/cuda.
#include "services/worker/model/device/device_rwkv_model.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "gtest/gtest.h"
#include "kernels/cuda/check.h"
#include "kernels/cuda/rwkv7_golden_checks.h"
#include "kernels/cuda/rwkv7_packed_file.h"
#include "services/worker/model/checkpoint/tensor_archive.h"
#include "services/worker/model/device/device_engine.h"
#include "services/worker/model/device/rwkv7_device_weights.h"
#include "services/worker/model/rwkv_config.h"
#include "services/worker/model/rwkv_model.h"
#include "services/worker/model/rwkv_weights.h"
#include "services/worker/model/testing/random_rwkv7_archive.h"
#include "services/worker/model/testing/rwkv7_test_util.h"
#include "tests/support/prerequisite.h"
#include "tests/support/test_data.h"

namespace skein::model {
namespace {

using testing::MaxAbsDiff;
using testing::StdDev;

// fp32 on both engines: the same function summed in different orders.
constexpr float kLogitBound = 1e-4f;  // × the logits' standard deviation
constexpr float kStateBound = 1e-4f;  // relative to 1 + |value|

float RelativeDiff(absl::Span<const float> a, absl::Span<const float> b) {
  if (a.size() != b.size()) return INFINITY;
  float worst = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    worst = std::max(worst, std::fabs(a[i] - b[i]) / (1 + std::fabs(b[i])));
  }
  return worst;
}

class DeviceModelTest : public ::testing::Test {
 protected:
  void SetUp() override {
    RandomModelShape shape;
    shape.n_layer = 3;
    shape.n_embd = 128;
    shape.vocab = 97;
    absl::StatusOr<std::unique_ptr<TensorArchive>> archive =
        MakeRandomRwkv7Archive(shape, /*seed=*/7, DType::kF32);
    ASSERT_TRUE(archive.ok()) << archive.status();
    archive_ = std::shared_ptr<const TensorArchive>(*std::move(archive));
    absl::StatusOr<RwkvConfig> config = LoadRwkvConfig(*archive_);
    ASSERT_TRUE(config.ok()) << config.status();
    config_ = *config;
  }

  std::unique_ptr<DeviceRwkvModel> Device(int first = 0, int last = -1, int64_t slots = 8,
                                          DType dtype = DType::kF32,
                                          bool round_activations = false) {
    DeviceModelOptions o;
    o.device.kind = DeviceKind::kReference;
    o.run_dtype = dtype;
    o.round_activations = round_activations;
    o.first_layer = first;
    o.last_layer = last;
    o.slots = slots;
    absl::StatusOr<std::unique_ptr<DeviceRwkvModel>> m = CreateDeviceModel(*archive_, config_, o);
    EXPECT_TRUE(m.ok()) << m.status();
    return m.ok() ? *std::move(m) : nullptr;
  }

  std::unique_ptr<RwkvModel> Cpu(int first = 0, int last = -1) {
    RwkvLoadOptions o;
    o.first_layer = first;
    o.last_layer = last;
    absl::StatusOr<std::unique_ptr<RwkvWeights>> w = RwkvWeights::Load(archive_, o);
    EXPECT_TRUE(w.ok()) << w.status();
    return std::make_unique<RwkvModel>(std::shared_ptr<const RwkvWeights>(*std::move(w)), nullptr);
  }

  std::vector<int32_t> Tokens(int n, int seed) const {
    std::vector<int32_t> t(n);
    for (int i = 0; i < n; ++i) t[i] = (seed * 31 + i * 17) % config_.vocab;
    return t;
  }

  std::shared_ptr<const TensorArchive> archive_;
  RwkvConfig config_;
};

void ExpectLogitsClose(absl::Span<const float> got, absl::Span<const float> want,
                       const std::string& what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  EXPECT_LE(MaxAbsDiff(got, want), kLogitBound * StdDev(want)) << what;
}

TEST_F(DeviceModelTest, PackedLayoutHoldsTheCheckpointTensorsWithLorasTransposed) {
  absl::StatusOr<PackedRwkv7Weights> p = PackRwkv7Weights(*archive_, config_, DType::kF32, 0, 3);
  ASSERT_TRUE(p.ok()) << p.status();
  const cuda::TensorSpec& w1 = p->layout.get(1, cuda::kW1);  // [D_w][C], checkpoint [C][D_w]
  const TensorView* stored = archive_->Find("blocks.1.att.w1");
  ASSERT_NE(stored, nullptr);
  ASSERT_EQ(stored->dtype, DType::kF32);
  const auto* src = static_cast<const float*>(stored->data);
  const auto* dst = reinterpret_cast<const float*>(p->bytes.data() + w1.offset);
  ASSERT_EQ(w1.rows, config_.d_decay);
  for (int64_t o = 0; o < w1.rows; o += 7) {
    for (int64_t i = 0; i < w1.cols; i += 5) {
      ASSERT_EQ(dst[o * w1.cols + i], src[i * w1.rows + o]) << o << "," << i;
    }
  }
  const cuda::TensorSpec& head = p->layout.get(cuda::kHead);
  EXPECT_EQ(0, std::memcmp(p->bytes.data() + head.offset, archive_->Find("head.weight")->data,
                           head.bytes));
  // Layer 0 has no value-residual LoRA in the checkpoint: zeros.
  const cuda::TensorSpec& v0 = p->layout.get(0, cuda::kV0);
  EXPECT_TRUE(std::all_of(p->bytes.data() + v0.offset, p->bytes.data() + v0.offset + v0.bytes,
                          [](uint8_t b) { return b == 0; }));
}

TEST_F(DeviceModelTest, MixedStepEqualsTheCpuEngineSequenceBySequence) {
  std::unique_ptr<DeviceRwkvModel> device = Device();
  std::unique_ptr<RwkvModel> cpu = Cpu();
  ASSERT_TRUE(device && cpu);
  // Five sessions with different histories, then one step that mixes decode tokens, prefill
  // chunks of two lengths (one of them twice, so a group has two sessions), every-token logits
  // and no logits: the device runs it as four uniform steps.
  std::vector<RwkvState> dev_states, cpu_states;
  for (int s = 0; s < 5; ++s) {
    dev_states.push_back(device->NewState());
    cpu_states.push_back(cpu->NewState());
    const std::vector<int32_t> history = Tokens(3 + s, s);
    SequenceStep d{&dev_states[s], history};
    SequenceStep c{&cpu_states[s], history};
    ASSERT_TRUE(device->Step({&d, 1}).ok());
    ASSERT_TRUE(cpu->Step({&c, 1}).ok());
  }
  const std::vector<std::vector<int32_t>> tokens = {Tokens(1, 10), Tokens(6, 11), Tokens(1, 12),
                                                    Tokens(6, 13), Tokens(4, 14)};
  std::vector<SequenceStep> dev_steps, cpu_steps;
  for (int s = 0; s < 5; ++s) {
    SequenceStep d{&dev_states[s], tokens[s]};
    d.all_logits = s == 3;
    d.no_logits = s == 4;
    dev_steps.push_back(d);
    SequenceStep c = d;
    c.state = &cpu_states[s];
    cpu_steps.push_back(c);
  }
  absl::StatusOr<StepResult> got = device->Step(dev_steps);
  absl::StatusOr<StepResult> want = cpu->Step(cpu_steps);
  ASSERT_TRUE(got.ok()) << got.status();
  ASSERT_TRUE(want.ok()) << want.status();
  EXPECT_EQ(got->logits_rows, want->logits_rows);
  ExpectLogitsClose(got->logits, want->logits, "mixed step");
  for (int s = 0; s < 5; ++s) {
    EXPECT_EQ(dev_states[s].position(), cpu_states[s].position());
    // Reading the state on the host fetches the device's floats.
    EXPECT_LE(RelativeDiff(dev_states[s].data(), cpu_states[s].data()), kStateBound) << s;
  }
  EXPECT_GT(device->stats().fetches, 0u);
}

// A checkpoint stored in bf16, run in bf16 with exact activations (the default), computes its
// fp32 run (the CPU engine in fp32 here): the weights widen without loss and the product
// inputs stay fp32. With round_activations the device rounds its product inputs to bf16: off
// by more, within a few 1e-3σ.
TEST_F(DeviceModelTest, Bf16ActivationsAreExactUnlessRounded) {
  RandomModelShape shape;
  shape.n_layer = 2;
  shape.n_embd = 128;
  shape.vocab = 97;
  absl::StatusOr<std::unique_ptr<TensorArchive>> made =
      MakeRandomRwkv7Archive(shape, /*seed=*/11, DType::kBF16);
  ASSERT_TRUE(made.ok()) << made.status();
  const std::shared_ptr<const TensorArchive> archive(*std::move(made));
  absl::StatusOr<RwkvConfig> config = LoadRwkvConfig(*archive);
  ASSERT_TRUE(config.ok()) << config.status();
  // Runs a prompt, then one token, on `model`; the last step's logits.
  auto run = [&](StageModel& model) {
    RwkvState state = model.NewState();
    const std::vector<int32_t> prompt = Tokens(6, 40), next = Tokens(1, 41);
    SequenceStep a{&state, prompt};
    EXPECT_TRUE(model.Step({&a, 1}).ok());
    SequenceStep b{&state, next};
    absl::StatusOr<StepResult> r = model.Step({&b, 1});
    EXPECT_TRUE(r.ok()) << r.status();
    return r.ok() ? r->logits : std::vector<float>();
  };
  absl::StatusOr<std::unique_ptr<RwkvWeights>> weights = RwkvWeights::Load(archive, {});
  ASSERT_TRUE(weights.ok()) << weights.status();
  RwkvModel cpu(std::shared_ptr<const RwkvWeights>(*std::move(weights)), nullptr);
  const std::vector<float> want = run(cpu);
  ASSERT_FALSE(want.empty());
  float deviation[2] = {0, 0};
  for (bool round : {false, true}) {
    DeviceModelOptions o;
    o.device.kind = DeviceKind::kReference;
    o.run_dtype = DType::kBF16;
    o.slots = 2;
    o.round_activations = round;
    absl::StatusOr<std::unique_ptr<DeviceRwkvModel>> device =
        CreateDeviceModel(*archive, *config, o);
    ASSERT_TRUE(device.ok()) << device.status();
    const std::vector<float> got = run(**device);
    ASSERT_EQ(got.size(), want.size());
    deviation[round ? 1 : 0] = MaxAbsDiff(got, want) / StdDev(want);
  }
  EXPECT_LE(deviation[0], kLogitBound) << "exact";
  EXPECT_LE(deviation[1], 1e-2f) << "rounded";
  EXPECT_GT(deviation[1], 10 * deviation[0]) << "round_activations changes nothing";
}

TEST_F(DeviceModelTest, StagesEqualTheWholeModel) {
  std::unique_ptr<DeviceRwkvModel> whole = Device();
  std::unique_ptr<DeviceRwkvModel> a = Device(0, 1), b = Device(1, 3);
  ASSERT_TRUE(whole && a && b);
  RwkvState sw = whole->NewState(), sa = a->NewState(), sb = b->NewState();
  const std::vector<int32_t> prompt = Tokens(7, 3);
  for (int round = 0; round < 3; ++round) {
    const std::vector<int32_t> t = round == 0 ? prompt : Tokens(1, 20 + round);
    SequenceStep w{&sw, t};
    absl::StatusOr<StepResult> want = whole->Step({&w, 1});
    ASSERT_TRUE(want.ok()) << want.status();
    SequenceStep first{&sa, t};
    absl::StatusOr<StepResult> mid = a->Step({&first, 1});
    ASSERT_TRUE(mid.ok()) << mid.status();
    ASSERT_EQ(mid->activations.rows, static_cast<int64_t>(t.size()));
    ASSERT_EQ(mid->activations.v_first.size(), t.size() * config_.n_embd);
    SequenceStep second{&sb, {}, static_cast<int64_t>(t.size())};
    absl::StatusOr<StepResult> got = b->Step({&second, 1}, &mid->activations);
    ASSERT_TRUE(got.ok()) << got.status();
    ExpectLogitsClose(got->logits, want->logits, "round " + std::to_string(round));
  }
  // The stage states together are the whole state.
  const int64_t per_layer = sw.shape().floats_per_layer();
  std::vector<float> joined(sa.data().begin(), sa.data().end());
  joined.insert(joined.end(), sb.data().begin(), sb.data().end());
  ASSERT_EQ(static_cast<int64_t>(joined.size()), 3 * per_layer);
  EXPECT_LE(RelativeDiff(joined, sw.data()), kStateBound);
}

TEST_F(DeviceModelTest, EvictionAndHandOverKeepEveryStateExact) {
  // Two slots for four sessions: every round evicts, each eviction copies the state back.
  std::unique_ptr<DeviceRwkvModel> device = Device(0, -1, /*slots=*/2);
  std::unique_ptr<RwkvModel> cpu = Cpu();
  ASSERT_TRUE(device && cpu);
  std::vector<RwkvState> dev(4, device->NewState()), ref(4, cpu->NewState());
  for (int round = 0; round < 4; ++round) {
    for (int s = 0; s < 4; ++s) {
      const std::vector<int32_t> t = Tokens(round == 0 ? 2 + s : 1, round * 4 + s);
      SequenceStep c{&ref[s], t};
      absl::StatusOr<StepResult> want = cpu->Step({&c, 1});
      ASSERT_TRUE(want.ok());
      // Session 3 alternates engines: the CPU engine's write access ends the device
      // residency (fetching first), and the device uploads the CPU's result next time.
      StageModel& engine = (s == 3 && round % 2 == 1) ? static_cast<StageModel&>(*cpu)
                                                      : static_cast<StageModel&>(*device);
      SequenceStep d{&dev[s], t};
      absl::StatusOr<StepResult> got = engine.Step({&d, 1});
      ASSERT_TRUE(got.ok()) << got.status();
      ExpectLogitsClose(got->logits, want->logits,
                        "round " + std::to_string(round) + " session " + std::to_string(s));
    }
  }
  const DeviceModelStats stats = device->stats();
  EXPECT_GT(stats.evictions, 0u);
  EXPECT_LE(stats.resident, 2);
  // A copy (a fork) holds the current floats and is not resident; the original still is.
  RwkvState fork = dev[2];
  EXPECT_EQ(fork.residency(), nullptr);
  EXPECT_LE(RelativeDiff(fork.data(), ref[2].data()), kStateBound);
  // A host change (reset) ends the residency; the next step starts from the reset state.
  dev[1].Reset();
  ref[1].Reset();
  EXPECT_EQ(dev[1].residency(), nullptr);
  const std::vector<int32_t> after = Tokens(3, 99);
  for (int s : {0, 1}) {
    SequenceStep c{&ref[s], after};
    SequenceStep d{&dev[s], after};
    absl::StatusOr<StepResult> want = cpu->Step({&c, 1});
    absl::StatusOr<StepResult> got = device->Step({&d, 1});
    ASSERT_TRUE(want.ok()) << want.status();
    ASSERT_TRUE(got.ok()) << got.status();
    ExpectLogitsClose(got->logits, want->logits, "after reset, session " + std::to_string(s));
  }
  // Destroying the model leaves every state with its newest floats on the host.
  device.reset();
  for (int s = 0; s < 4; ++s) {
    EXPECT_EQ(dev[s].residency(), nullptr);
    EXPECT_LE(RelativeDiff(dev[s].data(), ref[s].data()), kStateBound) << s;
  }
}

TEST_F(DeviceModelTest, BadStepsChangeNothing) {
  std::unique_ptr<DeviceRwkvModel> device = Device(0, -1, /*slots=*/2);
  ASSERT_TRUE(device);
  RwkvState a = device->NewState(), b = device->NewState(), c = device->NewState();
  const std::vector<int32_t> ok = Tokens(2, 1);
  SequenceStep first{&a, ok};
  ASSERT_TRUE(device->Step({&first, 1}).ok());
  const std::vector<float> before(a.data().begin(), a.data().end());

  const std::vector<int32_t> bad = {1, static_cast<int32_t>(config_.vocab)};
  SequenceStep out_of_vocab{&a, bad};
  EXPECT_EQ(device->Step({&out_of_vocab, 1}).status().code(), absl::StatusCode::kInvalidArgument);
  SequenceStep twice[2] = {{&a, ok}, {&a, ok}};
  EXPECT_EQ(device->Step(twice).status().code(), absl::StatusCode::kInvalidArgument);
  SequenceStep three[3] = {{&a, ok}, {&b, ok}, {&c, ok}};
  EXPECT_EQ(device->Step(three).status().code(), absl::StatusCode::kResourceExhausted);
  StageActivations stray;
  EXPECT_EQ(device->Step({&first, 1}, &stray).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(a.position(), 2);
  EXPECT_EQ(std::vector<float>(a.data().begin(), a.data().end()), before);
}

TEST_F(DeviceModelTest, UnsupportedModelsAndOptionsAreRefused) {
  DeviceModelOptions o;
  o.device.kind = DeviceKind::kReference;
  o.run_dtype = DType::kI8;
  EXPECT_EQ(CreateDeviceModel(*archive_, config_, o).status().code(),
            absl::StatusCode::kUnimplemented);
  o.run_dtype = DType::kBF16;
  o.first_layer = 2;
  o.last_layer = 1;
  EXPECT_EQ(CreateDeviceModel(*archive_, config_, o).status().code(),
            absl::StatusCode::kInvalidArgument);
  o.first_layer = 0;
  o.last_layer = -1;
  o.slots = 0;
  EXPECT_EQ(CreateDeviceModel(*archive_, config_, o).status().code(),
            absl::StatusCode::kInvalidArgument);
  RandomModelShape v6;
  v6.version = RwkvVersion::kV6;
  v6.n_layer = 1;
  v6.n_embd = 128;
  v6.vocab = 50;
  absl::StatusOr<std::unique_ptr<TensorArchive>> x060 = MakeRandomRwkv7Archive(v6, 1, DType::kF32);
  ASSERT_TRUE(x060.ok()) << x060.status();
  absl::StatusOr<RwkvConfig> c6 = LoadRwkvConfig(**x060);
  ASSERT_TRUE(c6.ok());
  o.slots = 4;
  EXPECT_EQ(CreateDeviceModel(**x060, *c6, o).status().code(), absl::StatusCode::kUnimplemented);
}

// cuda:0 where there is a GPU: the same mixed steps, stages and evictions as on the reference
// engine, through the worker's model. Without a GPU (or a CUDA build) the device is refused
// with UNAVAILABLE, which is checked, and the comparison is skipped.
TEST_F(DeviceModelTest, GpuEngineEqualsTheReferenceEngine) {
  for (auto [dtype, round] : {std::pair(DType::kF32, false), std::pair(DType::kBF16, false),
                              std::pair(DType::kBF16, true)}) {
    DeviceModelOptions o;
    o.device.kind = DeviceKind::kCuda;
    o.run_dtype = dtype;
    o.round_activations = round;
    o.slots = 3;
    absl::StatusOr<std::unique_ptr<DeviceRwkvModel>> gpu = CreateDeviceModel(*archive_, config_, o);
    if (!gpu.ok()) {
      ASSERT_EQ(gpu.status().code(), absl::StatusCode::kUnavailable) << gpu.status();
      GTEST_SKIP() << "no GPU: " << gpu.status().message();
    }
    std::unique_ptr<DeviceRwkvModel> ref = Device(0, -1, 3, dtype, round);
    ASSERT_TRUE(ref);
    // The reference and the GPU engines sum in different orders. Exact bf16: the GPU also
    // carries fp32 product inputs of large steps as bf16 hi + lo (2⁻¹⁶, kernels/cuda/gemm.h).
    // Rounded bf16: a different order can flip a rounding of a product input, a few 1e-3σ of
    // the logits each (kernels/cuda).
    const bool rounded = dtype != DType::kF32 && round;
    const float bound = dtype == DType::kF32 ? kLogitBound : rounded ? 1e-2f : 2e-4f;
    std::vector<RwkvState> g(4, (*gpu)->NewState()), r(4, ref->NewState());
    for (int step = 0; step < 4; ++step) {
      std::vector<std::vector<int32_t>> tokens;
      for (int s = 0; s < 4; ++s) tokens.push_back(Tokens(step == 0 ? 2 + s : 1, step * 4 + s));
      // Three sessions per step over three slots, rotating: every step evicts one.
      std::vector<SequenceStep> gs, rs;
      for (int k = 0; k < 3; ++k) {
        const int s = (step + k) % 4;
        gs.push_back({&g[s], tokens[s]});
        rs.push_back({&r[s], tokens[s]});
        gs.back().all_logits = rs.back().all_logits = k == 1;
      }
      absl::StatusOr<StepResult> got = (*gpu)->Step(gs);
      absl::StatusOr<StepResult> want = ref->Step(rs);
      ASSERT_TRUE(got.ok()) << got.status();
      ASSERT_TRUE(want.ok()) << want.status();
      ASSERT_EQ(got->logits.size(), want->logits.size());
      EXPECT_LE(MaxAbsDiff(got->logits, want->logits), bound * StdDev(want->logits))
          << DTypeName(dtype) << (rounded ? " rounded" : "") << " round " << step;
    }
    for (int s = 0; s < 4; ++s) {
      EXPECT_LE(RelativeDiff(g[s].data(), r[s].data()), dtype == DType::kF32 ? kStateBound
                                                        : rounded            ? 2e-2f
                                                                             : 2e-4f)
          << DTypeName(dtype) << (rounded ? " rounded" : "") << " session " << s;
    }
  }
}

TEST(DeviceSpecTest, ParsesTheDeviceFlag) {
  EXPECT_EQ(ParseDevice("cpu")->kind, DeviceKind::kCpu);
  EXPECT_EQ(ParseDevice("reference")->kind, DeviceKind::kReference);
  EXPECT_EQ(ParseDevice("cuda")->ToString(), "cuda:0");
  EXPECT_EQ(ParseDevice("cuda:3")->index, 3);
  for (const char* bad : {"", "gpu", "cuda:", "cuda:-1", "cuda:x", "CPU"}) {
    EXPECT_EQ(ParseDevice(bad).status().code(), absl::StatusCode::kInvalidArgument) << bad;
  }
}

// The small official golden model and its reference run (../shared/golden/rwkv7).
class DeviceGoldenTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string why;
    const std::string json =
        skein::testing::FindTestData("golden/rwkv7/small-l4-c256-v1024.golden.json", &why);
    const std::string pth =
        skein::testing::FindTestData("golden/rwkv7/small-l4-c256-v1024.pth", &why);
    if (json.empty() || pth.empty()) {
      SKEIN_MISSING_PREREQUISITE() << "test data not found: " << why;
    }
    absl::StatusOr<testing::Golden> golden = testing::ReadRwkv7Golden(json);
    ASSERT_TRUE(golden.ok()) << golden.status();
    golden_ = *std::move(golden);
    absl::StatusOr<std::unique_ptr<TensorArchive>> archive = OpenCheckpoint(pth);
    ASSERT_TRUE(archive.ok()) << archive.status();
    archive_ = *std::move(archive);
    absl::StatusOr<RwkvConfig> config = LoadRwkvConfig(*archive_);
    ASSERT_TRUE(config.ok()) << config.status();
    config_ = *config;
  }
  testing::Golden golden_;
  std::unique_ptr<TensorArchive> archive_;
  RwkvConfig config_;
};

// The official golden run on the device path: packing a real bf16 .pth checkpoint (no
// value-residual LoRA in layer 0) and the step, one token at a time, in fp32.
TEST_F(DeviceGoldenTest, MatchesTheOfficialLogits) {
  DeviceModelOptions o;
  o.device.kind = DeviceKind::kReference;
  o.run_dtype = DType::kF32;
  absl::StatusOr<std::unique_ptr<DeviceRwkvModel>> m = CreateDeviceModel(*archive_, config_, o);
  ASSERT_TRUE(m.ok()) << m.status();
  RwkvState state = (*m)->NewState();
  for (size_t t = 0; t < golden_.tokens.size(); ++t) {
    SequenceStep seq{&state, {&golden_.tokens[t], 1}};
    absl::StatusOr<StepResult> r = (*m)->Step({&seq, 1});
    ASSERT_TRUE(r.ok()) << r.status();
    // The golden is itself fp32 and off the float64 answer by up to 1.9e-4σ at its first step
    // (rwkv7_model_test); 3e-4σ covers both.
    EXPECT_LE(MaxAbsDiff(r->logits, golden_.logits[t]), 3e-4f * StdDev(golden_.logits[t]))
        << "step " << t;
  }
  EXPECT_LE(testing::MaxStateDiff(state, golden_), 5e-5f);
}

// What tools/gpu-check.sh carries to a GPU machine: the golden model packed in the engine's
// layout and its official run, written and read back, give the official logits on the host
// engine through the same checks the GPU runs (kernels/cuda/rwkv7_golden_checks.h); damaged
// files are refused.
TEST_F(DeviceGoldenTest, PackedFileCarriesTheModelToTheEngine) {
  absl::StatusOr<PackedRwkv7Weights> packed =
      PackRwkv7Weights(*archive_, config_, DType::kF32, 0, static_cast<int>(config_.n_layer));
  ASSERT_TRUE(packed.ok()) << packed.status();

  const std::string dir = ::testing::TempDir();
  const std::string weights = dir + "/small.pack", run = dir + "/small.golden";
  ASSERT_TRUE(cuda::WriteRwkv7Packed(weights, packed->layout, packed->bytes).ok());
  cuda::Rwkv7GoldenRun written;
  written.tokens = golden_.tokens;
  written.vocab = config_.vocab;
  for (const auto& row : golden_.logits) {
    written.logits.insert(written.logits.end(), row.begin(), row.end());
  }
  ASSERT_TRUE(cuda::WriteRwkv7Golden(run, written).ok());

  cuda::Rwkv7Packed read;
  cuda::Rwkv7GoldenRun read_run;
  ASSERT_TRUE(cuda::ReadRwkv7Packed(weights, &read).ok());
  ASSERT_TRUE(cuda::ReadRwkv7Golden(run, &read_run).ok());
  EXPECT_EQ(read.bytes, packed->bytes);
  EXPECT_EQ(read_run.tokens, written.tokens);
  EXPECT_EQ(read_run.logits, written.logits);
  std::unique_ptr<cuda::Rwkv7Engine> engine;
  ASSERT_TRUE(cuda::CreateHostRwkv7Engine(*read.layout, read.bytes, 3, &engine).ok());
  cuda::testing::Checks checks;
  // The golden is off the float64 answer by up to 1.9e-4σ itself (rwkv7_model_test).
  const double worst = cuda::CheckGoldenRun("host", *engine, read_run, 5e-4, checks);
  EXPECT_EQ(checks.failed(), 0);
  EXPECT_EQ(checks.passed(), 3);
  EXPECT_LT(worst, 5e-4);

  // A truncated file, and a golden file given as weights, are refused by name.
  std::string bytes(read.bytes.begin(), read.bytes.end());
  {
    std::FILE* f = std::fopen((dir + "/cut.pack").c_str(), "wb");
    ASSERT_NE(f, nullptr);
    std::fwrite("SKNPACK1", 1, 8, f);
    std::fwrite(bytes.data(), 1, 100, f);
    std::fclose(f);
  }
  cuda::Rwkv7Packed bad;
  cuda::Status cut = cuda::ReadRwkv7Packed(dir + "/cut.pack", &bad);
  EXPECT_FALSE(cut.ok());
  EXPECT_NE(cut.message().find("cut.pack"), std::string::npos) << cut.message();
  EXPECT_FALSE(cuda::ReadRwkv7Packed(run, &bad).ok());
  EXPECT_FALSE(cuda::ReadRwkv7Golden(weights, &read_run).ok());
}

}  // namespace
}  // namespace skein::model
