#include "services/worker/model/testing/random_rwkv7.h"

#include <cmath>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "base/dtype.h"
#include "base/float16.h"
#include "gtest/gtest.h"
#include "services/worker/model/checkpoint/tensor_archive.h"
#include "services/worker/model/rwkv_config.h"
#include "services/worker/model/testing/test_zip.h"

namespace skein::model {
namespace {

RandomModelShape Small() {
  RandomModelShape s;
  s.n_layer = 2;
  s.n_embd = 128;
  s.vocab = 97;
  s.lora = {16, 16, 8, 32};
  return s;
}

std::vector<float> Values(const TensorView& t) {
  std::vector<float> v(static_cast<size_t>(t.numel()));
  base::ConvertElements(t.dtype, t.data, DType::kF32, v.data(), v.size());
  return v;
}

TEST(RandomRwkv7, WritesValidCheckpointsInBothFormats) {
  for (const char* ext : {".pth", ".safetensors"}) {
    for (bool layer0_v : {false, true}) {
      RandomModelShape s = Small();
      s.layer0_value_lora = layer0_v;
      const std::string path = testing::TempPath(std::string("m") + ext);
      ASSERT_TRUE(WriteRandomModel(path, s, DType::kBF16, 7).ok());
      auto archive = OpenCheckpoint(path);
      ASSERT_TRUE(archive.ok()) << archive.status();
      auto c = LoadRwkvConfig(**archive);
      ASSERT_TRUE(c.ok()) << c.status();
      EXPECT_EQ(c->n_layer, 2);
      EXPECT_EQ(c->n_embd, 128);
      EXPECT_EQ(c->vocab, 97);
      EXPECT_EQ(c->n_head, 2);
      EXPECT_EQ(c->ffn, 512);
      EXPECT_EQ(c->d_decay, 16);
      EXPECT_EQ(c->d_value, 8);
      EXPECT_EQ(c->d_gate, 32);
      EXPECT_EQ(c->layer0_value_lora, layer0_v);
      EXPECT_EQ(c->dtype, "bf16");
      // Official key order: emb first, layer 0's ln1/ln2 before ln0, head last.
      const auto& t = (*archive)->tensors();
      EXPECT_EQ(t[0].name, "emb.weight");
      EXPECT_EQ(t[1].name, "blocks.0.ln1.weight");
      EXPECT_EQ(t[5].name, "blocks.0.ln0.weight");
      EXPECT_EQ(t.back().name, "head.weight");
    }
  }
}

TEST(RandomRwkv7, BothFormatsHoldTheSameValues) {
  const std::string pth = testing::TempPath("same.pth");
  const std::string st = testing::TempPath("same.safetensors");
  ASSERT_TRUE(WriteRandomModel(pth, Small(), DType::kF16, 3).ok());
  ASSERT_TRUE(WriteRandomModel(st, Small(), DType::kF16, 3).ok());
  auto a = OpenCheckpoint(pth);
  auto b = OpenCheckpoint(st);
  ASSERT_TRUE(a.ok() && b.ok());
  ASSERT_EQ((*a)->tensors().size(), (*b)->tensors().size());
  for (size_t i = 0; i < (*a)->tensors().size(); ++i) {
    const TensorView& x = (*a)->tensors()[i];
    const TensorView& y = (*b)->tensors()[i];
    ASSERT_EQ(x.name, y.name);
    ASSERT_EQ(x.nbytes, y.nbytes);
    EXPECT_EQ(std::memcmp(x.data, y.data, x.nbytes), 0) << x.name;
  }
}

TEST(RandomRwkv7, DeterministicForASeed) {
  // Same file name in three folders, so the archive prefix (the file stem) is the same too.
  std::vector<std::string> paths;
  for (const char* dir : {"seed-a", "seed-b", "seed-c"}) {
    const std::string d = testing::TempPath(dir);
    std::filesystem::create_directories(d);
    paths.push_back(d + "/model.pth");
  }
  ASSERT_TRUE(WriteRandomModel(paths[0], Small(), DType::kBF16, 42).ok());
  ASSERT_TRUE(WriteRandomModel(paths[1], Small(), DType::kBF16, 42).ok());
  ASSERT_TRUE(WriteRandomModel(paths[2], Small(), DType::kBF16, 43).ok());
  EXPECT_TRUE(testing::ReadFile(paths[0]) == testing::ReadFile(paths[1]));
  EXPECT_FALSE(testing::ReadFile(paths[0]) == testing::ReadFile(paths[2]));
}

TEST(RandomRwkv7, ValuesDoNotDependOnChunking) {
  TensorSpec spec{"blocks.0.att.key.weight", DType::kF32, {64, 64}};
  std::vector<float> whole(4096), parts(4096);
  FillRandomModelValues(spec, 5, 0, 4096, whole.data());
  FillRandomModelValues(spec, 5, 0, 1000, parts.data());
  FillRandomModelValues(spec, 5, 1000, 3096, parts.data() + 1000);
  EXPECT_EQ(whole, parts);
}

TEST(RandomRwkv7, ScalesKeepTheForwardPassSane) {
  const std::string path = testing::TempPath("f32.safetensors");
  ASSERT_TRUE(WriteRandomModel(path, Small(), DType::kF32, 11).ok());
  auto archive = OpenCheckpoint(path);
  ASSERT_TRUE(archive.ok());
  auto range = [&](const std::string& name) {
    std::vector<float> v = Values(*(*archive)->Find(name));
    return std::make_pair(*std::min_element(v.begin(), v.end()),
                          *std::max_element(v.begin(), v.end()));
  };
  auto [ln_lo, ln_hi] = range("blocks.1.ln1.weight");
  EXPECT_GE(ln_lo, 0.9f);
  EXPECT_LE(ln_hi, 1.1f);
  auto [w0_lo, w0_hi] = range("blocks.1.att.w0");
  EXPECT_GE(w0_lo, -5.0f);
  EXPECT_LE(w0_hi, -0.5f);
  auto [x_lo, x_hi] = range("blocks.0.att.x_k");
  EXPECT_GE(x_lo, 0.0f);
  EXPECT_LE(x_hi, 1.0f);
  const float bound = 1.0f / std::sqrt(128.0f);
  auto [k_lo, k_hi] = range("blocks.1.att.key.weight");
  EXPECT_GE(k_lo, -bound);
  EXPECT_LE(k_hi, bound);
  EXPECT_GT(k_hi - k_lo, bound);                           // actually spread out, not constant
  auto [f_lo, f_hi] = range("blocks.1.ffn.value.weight");  // [C, F]: in = F = 512
  EXPECT_GE(f_lo, -1.0f / std::sqrt(512.0f));
  EXPECT_LE(f_hi, 1.0f / std::sqrt(512.0f));
}

TEST(RandomRwkv7, Bf16IsTheRoundedFp32Model) {
  const std::string f32 = testing::TempPath("r.safetensors");
  const std::string bf16 = testing::TempPath("r.pth");
  ASSERT_TRUE(WriteRandomModel(f32, Small(), DType::kF32, 9).ok());
  ASSERT_TRUE(WriteRandomModel(bf16, Small(), DType::kBF16, 9).ok());
  auto a = OpenCheckpoint(f32);
  auto b = OpenCheckpoint(bf16);
  ASSERT_TRUE(a.ok() && b.ok());
  const TensorView* x = (*a)->Find("head.weight");
  const TensorView* y = (*b)->Find("head.weight");
  const float* xf = static_cast<const float*>(x->data);
  const uint16_t* yh = static_cast<const uint16_t*>(y->data);
  for (int64_t i = 0; i < x->numel(); ++i) ASSERT_EQ(base::F32ToBf16(xf[i]), yh[i]);
}

TEST(RandomRwkv7, DefaultsAndValidation) {
  RandomModelShape s;
  s.n_layer = 1;
  s.n_embd = 2048;
  s.vocab = 10;
  auto r = ResolveRandomModelShape(s);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->ffn, 8192);
  EXPECT_EQ(r->lora.decay, 96);
  EXPECT_EQ(r->lora.value, 64);
  EXPECT_EQ(r->lora.gate, 256);
  s.n_embd = 100;  // not a multiple of 64
  EXPECT_EQ(ResolveRandomModelShape(s).status().code(), absl::StatusCode::kInvalidArgument);
  s.n_embd = 128;
  s.n_layer = 0;
  EXPECT_EQ(ResolveRandomModelShape(s).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(WriteRandomModel(testing::TempPath("x.bin"), Small(), DType::kF32, 1).code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace skein::model
