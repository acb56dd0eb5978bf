#include "services/worker/model/rwkv_config.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "services/worker/model/testing/random_rwkv7.h"
#include "tests/support/test_data.h"

namespace skein::model {
namespace {

using ::testing::HasSubstr;

// Tensor names and shapes only; the config code never reads data.
class FakeArchive : public TensorArchive {
 public:
  explicit FakeArchive(const std::vector<TensorSpec>& specs) {
    for (const TensorSpec& s : specs) Add(s.name, s.shape, s.dtype);
  }
  void Add(const std::string& name, std::vector<int64_t> shape, DType dtype = DType::kBF16) {
    TensorView v{name, dtype, std::move(shape), nullptr, 0};
    v.nbytes = static_cast<size_t>(v.numel()) * DTypeSize(dtype);
    tensors_.push_back(std::move(v));
  }
  // A tensor whose bytes the config code reads (int8 matrices and their scales).
  void AddWithData(const std::string& name, std::vector<int64_t> shape, DType dtype,
                   std::string bytes) {
    Remove(name);
    data_.push_back(std::make_shared<const std::string>(std::move(bytes)));
    TensorView v{name, dtype, std::move(shape), data_.back()->data(), data_.back()->size()};
    tensors_.push_back(std::move(v));
  }
  void Remove(const std::string& name) {
    tensors_.erase(std::remove_if(tensors_.begin(), tensors_.end(),
                                  [&](const TensorView& t) { return t.name == name; }),
                   tensors_.end());
  }
  void Reshape(const std::string& name, std::vector<int64_t> shape) {
    for (TensorView& t : tensors_) {
      if (t.name == name) t.shape = std::move(shape);
    }
  }
  const std::vector<TensorView>& tensors() const override { return tensors_; }
  const TensorView* Find(std::string_view name) const override {
    for (const TensorView& t : tensors_) {
      if (t.name == name) return &t;
    }
    return nullptr;
  }
  const std::string& path() const override { return path_; }
  const std::map<std::string, std::string>& metadata() const override { return metadata_; }
  std::map<std::string, std::string> metadata_;

 private:
  std::vector<TensorView> tensors_;
  std::vector<std::shared_ptr<const std::string>> data_;  // shared by copies
  std::string path_ = "fake.pth";
};

RandomModelShape TinyShape(bool layer0_v) {
  RandomModelShape s;
  s.n_layer = 3;
  s.n_embd = 128;
  s.vocab = 300;
  s.lora = {16, 16, 8, 32};
  s.ffn = 512;
  s.layer0_value_lora = layer0_v;
  return *ResolveRandomModelShape(s);
}

FakeArchive Tiny(bool layer0_v = false) {
  return FakeArchive(RandomModelTensorSpecs(TinyShape(layer0_v), DType::kBF16));
}

// Spec §10: 2VC + 4C + L(19C + 12C^2 + 2C(Dw + Da + Dv + Dg)), counting layer-0 v0/v1/v2.
int64_t SpecParameterFormula(const RwkvConfig& c) {
  const int64_t C = c.n_embd;
  return 2 * c.vocab * C + 4 * C +
         c.n_layer * (19 * C + 12 * C * C + 2 * C * (c.d_decay + c.d_iclr + c.d_value + c.d_gate));
}

void ExpectTinyV7(const RwkvConfig& c) {
  EXPECT_EQ(c.vocab, 300);
  EXPECT_EQ(c.n_embd, 128);
  EXPECT_EQ(c.n_layer, 3);
  EXPECT_EQ(c.n_head, 2);
  EXPECT_EQ(c.head_size, 64);
  EXPECT_EQ(c.ffn, 512);
  EXPECT_EQ(c.d_decay, 16);
  EXPECT_EQ(c.d_iclr, 16);
  EXPECT_EQ(c.d_value, 8);
  EXPECT_EQ(c.d_gate, 32);
  EXPECT_EQ(c.dtype, "bf16");
  EXPECT_EQ(c.state_floats(), 3 * (2 * 128 + 2 * 64 * 64));
  EXPECT_EQ(c.state_bytes(), 4 * c.state_floats());
}

TEST(RwkvConfig, GoldenTinyV7WithLayer0ValueLora) {
  SKEIN_REQUIRE_TEST_DATA(path, "golden/multiversion/tiny-v7.pth");
  auto archive = OpenPth(path);
  ASSERT_TRUE(archive.ok()) << archive.status();
  EXPECT_EQ(DetectRwkvVersion(**archive), RwkvVersion::kV7);
  auto c = LoadRwkvConfig(**archive);
  ASSERT_TRUE(c.ok()) << c.status();
  ExpectTinyV7(*c);
  EXPECT_TRUE(c->layer0_value_lora);
  EXPECT_EQ(c->parameters, SpecParameterFormula(*c));
}

TEST(RwkvConfig, GoldenTinyV7WithoutLayer0ValueLora) {
  SKEIN_REQUIRE_TEST_DATA(path, "golden/multiversion/tiny-v7-no-l0-v012.pth");
  auto archive = OpenPth(path);
  ASSERT_TRUE(archive.ok()) << archive.status();
  auto c = LoadRwkvConfig(**archive);
  ASSERT_TRUE(c.ok()) << c.status();
  ExpectTinyV7(*c);
  EXPECT_FALSE(c->layer0_value_lora);
  EXPECT_EQ(c->parameters, SpecParameterFormula(*c) - (128 + 2 * 128 * 8));
}

TEST(RwkvConfig, GoldenRwkv7Files) {
  struct Want {
    const char* path;
    int64_t layers, embd, vocab;
  };
  for (const Want& w : {Want{"golden/rwkv7/tiny-l2-c128-v256.pth", 2, 128, 256},
                        Want{"golden/rwkv7/small-l4-c256-v1024.pth", 4, 256, 1024}}) {
    SKEIN_REQUIRE_TEST_DATA(path, w.path);
    auto archive = OpenPth(path);
    ASSERT_TRUE(archive.ok()) << archive.status();
    auto c = LoadRwkvConfig(**archive);
    ASSERT_TRUE(c.ok()) << c.status();
    EXPECT_EQ(c->n_layer, w.layers) << w.path;
    EXPECT_EQ(c->n_embd, w.embd);
    EXPECT_EQ(c->vocab, w.vocab);
    EXPECT_EQ(c->head_size, 64);
    EXPECT_EQ(c->n_head, w.embd / 64);
    EXPECT_FALSE(c->layer0_value_lora);
    EXPECT_EQ(c->parameters, SpecParameterFormula(*c) - (w.embd + 2 * w.embd * c->d_value));
  }
}

TEST(RwkvConfig, OtherVersionsAreDetectedAndDescribed) {
  struct Want {
    const char* path;
    RwkvVersion version;
    int64_t heads, head_size, ffn, d_mix, d_decay;
  };
  for (const Want& w :
       {Want{"golden/multiversion/tiny-v6.pth", RwkvVersion::kV6, 2, 64, 448, 32, 64},
        Want{"golden/multiversion/tiny-v5.2.pth", RwkvVersion::kV5_2, 2, 64, 448, 0, 0},
        Want{"golden/multiversion/tiny-v4.pth", RwkvVersion::kV4, 0, 0, 512, 0, 0}}) {
    SKEIN_REQUIRE_TEST_DATA(path, w.path);
    auto archive = OpenPth(path);
    ASSERT_TRUE(archive.ok()) << archive.status();
    EXPECT_EQ(DetectRwkvVersion(**archive), w.version) << w.path;
    auto c = LoadRwkvConfig(**archive);
    ASSERT_TRUE(c.ok()) << c.status();
    EXPECT_EQ(c->version, w.version);
    EXPECT_EQ(c->n_layer, 3);
    EXPECT_EQ(c->n_embd, 128);
    EXPECT_EQ(c->vocab, 300);
    EXPECT_EQ(c->n_head, w.heads) << w.path;
    EXPECT_EQ(c->head_size, w.head_size) << w.path;
    EXPECT_EQ(c->ffn, w.ffn) << w.path;
    EXPECT_EQ(c->d_mix, w.d_mix) << w.path;
    EXPECT_EQ(c->d_decay, w.d_decay) << w.path;
    EXPECT_EQ(c->has_value_residual(), false);
    EXPECT_EQ(c->state_floats(),
              w.version == RwkvVersion::kV4 ? 3 * 5 * 128 : 3 * (2 * 128 + 2 * 64 * 64));
    EXPECT_EQ(c->dtype, "bf16");
    RwkvBasics b = DescribeRwkvBasics(**archive);
    EXPECT_EQ(b.n_layer, 3);
    EXPECT_EQ(b.parameters, c->parameters);
  }
}

void ExpectInvalid(const FakeArchive& a, absl::StatusCode code, const std::string& mentions);

// A damaged v4-v6 checkpoint is refused with the tensor named, as an x070 one is.
TEST(RwkvConfig, ClassicVersionsCheckEveryTensor) {
  for (const char* file : {"golden/multiversion/tiny-v6.pth", "golden/multiversion/tiny-v5.2.pth",
                           "golden/multiversion/tiny-v4.pth"}) {
    SKEIN_REQUIRE_TEST_DATA(path, file);
    auto archive = OpenPth(path);
    ASSERT_TRUE(archive.ok()) << archive.status();
    FakeArchive copy({});
    for (const TensorView& t : (*archive)->tensors()) copy.Add(t.name, t.shape, t.dtype);
    {
      FakeArchive a = copy;
      a.Remove("blocks.2.ffn.receptance.weight");
      ExpectInvalid(a, absl::StatusCode::kInvalidArgument, "blocks.2.ffn.receptance.weight");
    }
    {
      FakeArchive a = copy;
      a.Reshape("blocks.1.att.key.weight", {128, 64});
      ExpectInvalid(a, absl::StatusCode::kInvalidArgument, "blocks.1.att.key.weight");
    }
    {
      FakeArchive a = copy;
      a.Add("blocks.1.att.extra", {128});
      ExpectInvalid(a, absl::StatusCode::kInvalidArgument,
                    "unexpected tensor 'blocks.1.att.extra'");
    }
  }
}

TEST(RwkvConfig, SyntheticArchiveValidates) {
  for (bool layer0_v : {false, true}) {
    FakeArchive a = Tiny(layer0_v);
    auto c = LoadRwkvConfig(a);
    ASSERT_TRUE(c.ok()) << c.status();
    ExpectTinyV7(*c);
    EXPECT_EQ(c->layer0_value_lora, layer0_v);
  }
}

TEST(RwkvConfig, SqueezedVectorsAreAccepted) {
  FakeArchive a = Tiny();
  a.Reshape("blocks.1.att.x_r", {128});
  a.Reshape("blocks.2.ffn.x_k", {128});
  EXPECT_TRUE(LoadRwkvConfig(a).ok());
}

TEST(RwkvConfig, MixedDtypes) {
  FakeArchive a = Tiny();
  a.Remove("head.weight");
  a.Add("head.weight", {300, 128}, DType::kF32);
  auto c = LoadRwkvConfig(a);
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->dtype, "mixed");
}

void ExpectInvalid(const FakeArchive& a, absl::StatusCode code, const std::string& mentions);

// Stores `name` [rows, cols] as int8 (every q = 1) with fp32 row scales `scales`.
void MakeInt8(FakeArchive& a, const std::string& name, const std::vector<float>& scales) {
  const TensorView* t = a.Find(name);
  const std::vector<int64_t> shape = t->shape;
  a.AddWithData(name, shape, DType::kI8, std::string(shape[0] * shape[1], '\x01'));
  a.AddWithData(Int8ScaleName(name), {static_cast<int64_t>(scales.size())}, DType::kF32,
                std::string(reinterpret_cast<const char*>(scales.data()), scales.size() * 4));
}

// Every quantisable matrix of `a` stored int8 with scale 0.5.
FakeArchive AllInt8(FakeArchive a) {
  std::vector<std::string> names;
  for (const TensorView& t : a.tensors()) {
    if (IsQuantizableMatrix(t.name)) names.push_back(t.name);
  }
  for (const std::string& n : names) {
    MakeInt8(a, n, std::vector<float>(a.Find(n)->shape[0], 0.5f));
  }
  return a;
}

TEST(RwkvConfig, QuantizableMatricesAreTheLargeProducts) {
  for (const char* yes :
       {"head.weight", "blocks.0.att.receptance.weight", "blocks.11.att.key.weight",
        "blocks.2.att.value.weight", "blocks.3.att.output.weight", "blocks.0.att.gate.weight",
        "blocks.4.ffn.key.weight", "blocks.5.ffn.value.weight", "blocks.6.ffn.receptance.weight"}) {
    EXPECT_TRUE(IsQuantizableMatrix(yes)) << yes;
  }
  for (const char* no : {"emb.weight", "blocks.0.att.w1", "blocks.0.ln1.weight", "ln_out.weight",
                         "blocks.0.att.key.weight_scale", "blocks.x.att.key.weight",
                         "att.key.weight", "blocks.0.att.time_decay"}) {
    EXPECT_FALSE(IsQuantizableMatrix(no)) << no;
  }
  EXPECT_EQ(Int8ScaleName("head.weight"), "head.weight_scale");
}

TEST(RwkvConfig, Int8MatricesWithScalesValidate) {
  FakeArchive a = AllInt8(Tiny());
  auto c = LoadRwkvConfig(a);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->dtype, "int8");
  EXPECT_EQ(c->n_layer, 3);
  // Some matrices int8 and others not: a mixed file, still valid.
  FakeArchive b = Tiny();
  MakeInt8(b, "head.weight", std::vector<float>(300, 0.25f));
  c = LoadRwkvConfig(b);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->dtype, "mixed");
}

TEST(RwkvConfig, BadInt8TensorsAreRefusedByName) {
  const std::string m = "blocks.1.att.key.weight", scale = Int8ScaleName(m);
  {  // the scale is missing
    FakeArchive a = AllInt8(Tiny());
    a.Remove(scale);
    ExpectInvalid(a, absl::StatusCode::kInvalidArgument, scale);
  }
  {  // the scale has the wrong length
    FakeArchive a = AllInt8(Tiny());
    a.AddWithData(scale, {127}, DType::kF32, std::string(127 * 4, '\0'));
    ExpectInvalid(a, absl::StatusCode::kInvalidArgument, scale);
  }
  {  // the scale is itself int8
    FakeArchive a = AllInt8(Tiny());
    a.AddWithData(scale, {128}, DType::kI8, std::string(128, '\x01'));
    ExpectInvalid(a, absl::StatusCode::kInvalidArgument, scale);
  }
  for (float bad : {-1.0f, std::nanf(""), INFINITY}) {  // a scale that is no scale
    FakeArchive a = AllInt8(Tiny());
    std::vector<float> scales(128, 0.5f);
    scales[77] = bad;
    MakeInt8(a, m, scales);
    ExpectInvalid(a, absl::StatusCode::kInvalidArgument, "row 77");
  }
  {  // -128 has no place in a symmetric matrix
    FakeArchive a = AllInt8(Tiny());
    std::string q(128 * 128, '\x01');
    q[5000] = '\x80';
    a.AddWithData(m, {128, 128}, DType::kI8, q);
    ExpectInvalid(a, absl::StatusCode::kInvalidArgument, "-128");
  }
  {  // int8 where the layout has no quantisable matrix
    FakeArchive a = Tiny();
    a.AddWithData("blocks.0.ln1.weight", {128}, DType::kI8, std::string(128, '\x01'));
    ExpectInvalid(a, absl::StatusCode::kInvalidArgument, "blocks.0.ln1.weight");
    FakeArchive e = Tiny();
    e.AddWithData("emb.weight", {300, 128}, DType::kI8, std::string(300 * 128, '\x01'));
    ExpectInvalid(e, absl::StatusCode::kInvalidArgument, "emb.weight");
  }
  {  // a scale beside a matrix that is not int8
    FakeArchive a = Tiny();
    a.AddWithData(scale, {128}, DType::kF32, std::string(128 * 4, '\0'));
    ExpectInvalid(a, absl::StatusCode::kInvalidArgument, scale);
  }
}

void ExpectInvalid(const FakeArchive& a, absl::StatusCode code, const std::string& mentions) {
  auto c = LoadRwkvConfig(a);
  EXPECT_EQ(c.status().code(), code) << c.status();
  EXPECT_THAT(c.status().message(), HasSubstr("fake.pth"));
  EXPECT_THAT(c.status().message(), HasSubstr(mentions));
}

TEST(RwkvConfig, MissingTensor) {
  for (const std::string name : {"blocks.1.att.k_k", "head.weight", "blocks.0.ln0.weight",
                                 "blocks.2.att.v1", "emb.weight", "blocks.0.att.r_k"}) {
    FakeArchive a = Tiny();
    a.Remove(name);
    ExpectInvalid(a, absl::StatusCode::kInvalidArgument, name);
  }
}

TEST(RwkvConfig, UnexpectedTensor) {
  for (const std::string name :
       {"blocks.1.ln0.weight", "blocks.1.ffn.receptance.weight", "blocks.0.att.gate.weight",
        "lm_head.weight", "blocks.01.ln1.weight", "blocks.x.ln1.weight"}) {
    FakeArchive a = Tiny();
    a.Add(name, {128});
    ExpectInvalid(a, absl::StatusCode::kInvalidArgument, name);
  }
}

TEST(RwkvConfig, WrongShape) {
  const std::vector<std::pair<std::string, std::vector<int64_t>>> cases = {
      {"blocks.1.att.w1", {128, 17}},       {"blocks.2.att.w2", {16, 127}},
      {"blocks.1.att.x_r", {1, 128}},       {"blocks.0.ln1.weight", {1, 1, 128}},
      {"head.weight", {301, 128}},          {"blocks.2.ffn.value.weight", {128, 511}},
      {"blocks.1.att.r_k", {4, 32}},        {"blocks.0.att.v1", {128, 8}},
      {"blocks.1.att.value.weight", {128}},
  };
  for (const auto& [name, shape] : cases) {
    FakeArchive a = Tiny(name == "blocks.0.att.v1" ? false : true);
    if (name == "blocks.0.att.v1") {
      a.Add(name, {128, 8});
      a.Add("blocks.0.att.v2", {9, 128});  // inconsistent with v1
      ExpectInvalid(a, absl::StatusCode::kInvalidArgument, "blocks.0.att.v2");
      continue;
    }
    a.Reshape(name, shape);
    ExpectInvalid(a, absl::StatusCode::kInvalidArgument, name);
  }
}

TEST(RwkvConfig, HeadsMustTileTheWidth) {
  FakeArchive a = Tiny();
  for (int l = 0; l < 3; ++l) a.Reshape("blocks." + std::to_string(l) + ".att.r_k", {3, 64});
  ExpectInvalid(a, absl::StatusCode::kInvalidArgument, "blocks.0.att.r_k");
}

TEST(RwkvConfig, BlocksMustBeContiguous) {
  FakeArchive a = Tiny();
  for (const TensorSpec& s : RandomModelTensorSpecs(TinyShape(false), DType::kBF16)) {
    if (s.name.rfind("blocks.1.", 0) == 0) a.Remove(s.name);
  }
  ExpectInvalid(a, absl::StatusCode::kInvalidArgument, "block 1");
}

TEST(RwkvConfig, UnsupportedVariants) {
  {
    FakeArchive a = Tiny();
    a.Add("blocks.0.ffn.s_emb.weight", {300, 32});
    EXPECT_EQ(DetectRwkvVersion(a), RwkvVersion::kV7DeepEmbed);
    ExpectInvalid(a, absl::StatusCode::kUnimplemented, "blocks.0.ffn.s_emb.weight");
  }
  {
    FakeArchive a = Tiny();
    a.Add("blocks.1.ffn.s1", {128, 32});
    EXPECT_EQ(DetectRwkvVersion(a), RwkvVersion::kV7DeepEmbed);
    ExpectInvalid(a, absl::StatusCode::kUnimplemented, "DeepEmbed");
  }
  {
    FakeArchive a = Tiny();
    a.Add("blocks.2.ffn.enn.weight", {300, 128});
    EXPECT_EQ(DetectRwkvVersion(a), RwkvVersion::kV8);
    ExpectInvalid(a, absl::StatusCode::kUnimplemented, "blocks.2.ffn.enn.weight");
  }
  {
    FakeArchive a = Tiny();
    a.metadata_["_strategy"] = "cuda fp16";
    a.metadata_["_version"] = "0.7";
    EXPECT_EQ(DetectRwkvVersion(a), RwkvVersion::kChatRwkvConverted);
    ExpectInvalid(a, absl::StatusCode::kFailedPrecondition, "ChatRWKV");
  }
  {
    FakeArchive a({});
    a.Add("weight", {3, 3});
    EXPECT_EQ(DetectRwkvVersion(a), RwkvVersion::kUnknown);
    ExpectInvalid(a, absl::StatusCode::kInvalidArgument, "not an RWKV checkpoint");
  }
}

TEST(RwkvConfig, FiveVariantsFollowChatRwkvRules) {
  FakeArchive v50({});
  v50.Add("emb.weight", {10, 128});
  v50.Add("blocks.0.att.ln_x.weight", {128});
  v50.Add("blocks.0.att.time_decay", {2});
  EXPECT_EQ(DetectRwkvVersion(v50), RwkvVersion::kV5_0);
  ExpectInvalid(v50, absl::StatusCode::kUnimplemented, "RWKV-5 preview (v5.0)");
  v50.Add("blocks.0.att.gate.weight", {128, 128});
  EXPECT_EQ(DetectRwkvVersion(v50), RwkvVersion::kV5_1);
  ExpectInvalid(v50, absl::StatusCode::kUnimplemented, "RWKV-5 preview (v5.1)");
  v50.Reshape("blocks.0.att.time_decay", {2, 64});
  EXPECT_EQ(DetectRwkvVersion(v50), RwkvVersion::kV5_2);
  // Now a supported version, but far from complete.
  ExpectInvalid(v50, absl::StatusCode::kInvalidArgument, "RWKV-5 (x052)");
}

TEST(RwkvConfig, SingleLayerModel) {
  RandomModelShape s = TinyShape(false);
  s.n_layer = 1;
  FakeArchive a(RandomModelTensorSpecs(s, DType::kF32));
  auto c = LoadRwkvConfig(a);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->n_layer, 1);
  EXPECT_EQ(c->d_value, 0);  // no layer >= 1 to read it from
  EXPECT_EQ(c->dtype, "fp32");
}

TEST(RwkvConfig, DefaultLoraRanksMatchTheSpecTable) {
  // Spec §10 / RWKV-LM: 0.1B (C 768), 1.5B (C 2048), 2.9B (C 2560), 7.2B (C 4096).
  auto r = DefaultRwkv7LoraRanks(768);
  EXPECT_EQ((std::vector<int64_t>{r.decay, r.iclr, r.value, r.gate}),
            (std::vector<int64_t>{64, 64, 32, 128}));
  r = DefaultRwkv7LoraRanks(2048);
  EXPECT_EQ((std::vector<int64_t>{r.decay, r.iclr, r.value, r.gate}),
            (std::vector<int64_t>{96, 96, 64, 256}));
  r = DefaultRwkv7LoraRanks(2560);
  EXPECT_EQ((std::vector<int64_t>{r.decay, r.iclr, r.value, r.gate}),
            (std::vector<int64_t>{96, 96, 64, 320}));
  r = DefaultRwkv7LoraRanks(4096);
  EXPECT_EQ((std::vector<int64_t>{r.decay, r.iclr, r.value, r.gate}),
            (std::vector<int64_t>{128, 128, 96, 480}));
  r = DefaultRwkv7LoraRanks(64);
  EXPECT_EQ(r.decay, 32);  // never below 32
}

TEST(RwkvConfig, SpecExampleStateSizes) {
  // Spec §2.6: 0.1B has 608,256 state floats, 1.5B 3,244,032, 7.2B 8,650,752.
  RwkvConfig c;
  c.head_size = 64;
  c.n_layer = 12, c.n_embd = 768, c.n_head = 12;
  EXPECT_EQ(c.state_floats(), 608256);
  c.n_layer = 24, c.n_embd = 2048, c.n_head = 32;
  EXPECT_EQ(c.state_floats(), 3244032);
  c.n_layer = 32, c.n_embd = 4096, c.n_head = 64;
  EXPECT_EQ(c.state_floats(), 8650752);
}

}  // namespace
}  // namespace skein::model
