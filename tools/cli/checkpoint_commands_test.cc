// Runs the real `skein` binary: inspect, convert and make-model, including failures.
#include <sys/wait.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>
#include <utility>
#include <vector>

#include "base/dtype.h"
#include "base/float16.h"
#include "kernels/cpu/kernels.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "services/worker/model/checkpoint/tensor_archive.h"
#include "services/worker/model/rwkv_config.h"
#include "tests/support/test_data.h"

namespace skein::cli {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;

struct CliRun {
  int exit_code = -1;
  std::string out;
  std::string err;
};

std::string Temp(const std::string& name) {
  const char* dir = std::getenv("TEST_TMPDIR");
  static int counter = 0;
  return std::string(dir ? dir : "/tmp") + "/cli-" + std::to_string(counter++) + "-" + name;
}

std::string Slurp(const std::string& path) {
  std::string s;
  if (FILE* f = std::fopen(path.c_str(), "rb")) {
    char buf[4096];
    size_t n;
    while ((n = std::fread(buf, 1, sizeof(buf), f)) > 0) s.append(buf, n);
    std::fclose(f);
  }
  return s;
}

CliRun Skein(const std::string& args) {
  // The binary is a data dependency, so it sits in the runfiles tree.
  const char* srcdir = std::getenv("TEST_SRCDIR");
  const char* workspace = std::getenv("TEST_WORKSPACE");
  const std::string binary =
      std::string(srcdir ? srcdir : ".") + "/" + (workspace ? workspace : "skein") + "/tools/skein";
  const std::string out = Temp("stdout"), err = Temp("stderr");
  const std::string cmd = "'" + binary + "' " + args + " >'" + out + "' 2>'" + err + "' </dev/null";
  int status = std::system(cmd.c_str());
  CliRun r;
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  r.out = Slurp(out);
  r.err = Slurp(err);
  return r;
}

// A failure is reported as exactly one line on stderr.
void ExpectOneLineError(const CliRun& r, const std::string& mentions) {
  EXPECT_NE(r.exit_code, 0);
  EXPECT_THAT(r.err, StartsWith("skein: "));
  EXPECT_THAT(r.err, HasSubstr(mentions));
  ASSERT_FALSE(r.err.empty());
  EXPECT_EQ(r.err.find('\n'), r.err.size() - 1) << r.err;
}

TEST(Inspect, DescribesThisCpu) {
  CliRun r = Skein("inspect --cpu");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.out, StartsWith("cpu: "));
  EXPECT_THAT(r.out, HasSubstr("\nfeatures: "));
  EXPECT_THAT(r.out, HasSubstr("\nisa: "));
  EXPECT_THAT(r.out, HasSubstr("\nbf16 products: "));
  // Which kernel runs int8 products with int8 activations: panels exactly where accelerated.
  EXPECT_THAT(r.out, HasSubstr(kernels::Int8PanelsAccelerated()
                                   ? "\nint8 products with --int8-activations: packed panels"
                                   : "\nint8 products with --int8-activations: row-major"));
  EXPECT_THAT(r.out, HasSubstr("\narithmetic peak, "));
  ExpectOneLineError(Skein("inspect"), "give --model PATH or --cpu");
}

TEST(Inspect, DescribesAnRwkv7Checkpoint) {
  SKEIN_REQUIRE_TEST_DATA(path, "golden/multiversion/tiny-v7.pth");
  CliRun r = Skein("inspect --model '" + path + "'");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("format: pth\n"));
  EXPECT_THAT(r.out, HasSubstr("version: x070 (RWKV-7)\n"));
  EXPECT_THAT(r.out, HasSubstr("supported: yes\n"));
  EXPECT_THAT(r.out, HasSubstr("layers: 3\n"));
  EXPECT_THAT(r.out, HasSubstr("n_embd: 128\n"));
  EXPECT_THAT(r.out, HasSubstr("heads: 2 x 64\n"));
  EXPECT_THAT(r.out, HasSubstr("vocab: 300\n"));
  EXPECT_THAT(r.out, HasSubstr("ffn: 512\n"));
  EXPECT_THAT(r.out, HasSubstr("lora (w/a/v/g): 16/16/8/32\n"));
  EXPECT_THAT(r.out, HasSubstr("dtype: bf16\n"));
  // Spec §10's formula (it counts the layer-0 v0/v1/v2 this file has).
  const int64_t C = 128, V = 300, L = 3;
  const int64_t params = 2 * V * C + 4 * C + L * (19 * C + 12 * C * C + 2 * C * (16 + 16 + 8 + 32));
  EXPECT_THAT(r.out, HasSubstr("parameters: " + std::to_string(params) + "\n"));
  const int64_t state_bytes = 4 * L * (2 * C + 2 * 64 * 64);
  EXPECT_THAT(r.out, HasSubstr("state: " + std::to_string(state_bytes) + " bytes"));
  EXPECT_THAT(r.out, HasSubstr("MiB"));
  EXPECT_TRUE(r.err.empty()) << r.err;
}

TEST(Inspect, DescribesEverySupportedVersion) {
  struct Want {
    const char* file;
    const char* version;
    const char* heads;
    const char* state;
  };
  // State: 3 layers of 2·128 + 2·64·64 floats, or 5·128 for RWKV-4, at 4 bytes each.
  for (const Want& w :
       {Want{"tiny-v6.pth", "version: x060 (RWKV-6)\n", "heads: 2 x 64\n", "state: 101376 bytes"},
        Want{"tiny-v5.2.pth", "version: x052 (RWKV-5)\n", "heads: 2 x 64\n", "state: 101376 bytes"},
        Want{"tiny-v4.pth", "version: v4 (RWKV-4)\n", "heads: none", "state: 7680 bytes"}}) {
    SKEIN_REQUIRE_TEST_DATA(path, std::string("golden/multiversion/") + w.file);
    CliRun r = Skein("inspect --model '" + path + "'");
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_THAT(r.out, HasSubstr(w.version));
    EXPECT_THAT(r.out, HasSubstr("supported: yes\n"));
    EXPECT_THAT(r.out, HasSubstr(w.heads));
    EXPECT_THAT(r.out, HasSubstr("layers: 3\n"));
    EXPECT_THAT(r.out, HasSubstr(w.state));
  }
}

// A minimal safetensors file: an 8-byte header length, the JSON header, the data.
void WriteSafetensors(const std::string& path,
                      const std::vector<std::pair<std::string, std::vector<int64_t>>>& tensors) {
  std::string header = "{";
  size_t offset = 0;
  for (const auto& [name, shape] : tensors) {
    size_t n = 1;
    std::string dims;
    for (int64_t d : shape) {
      n *= static_cast<size_t>(d);
      dims += (dims.empty() ? "" : ",") + std::to_string(d);
    }
    if (header.size() > 1) header += ",";
    header += "\"" + name + "\":{\"dtype\":\"F32\",\"shape\":[" + dims + "],\"data_offsets\":[" +
              std::to_string(offset) + "," + std::to_string(offset + 4 * n) + "]}";
    offset += 4 * n;
  }
  header += "}";
  std::string file(8, '\0');
  for (int i = 0; i < 8; ++i) file[i] = static_cast<char>(header.size() >> (8 * i));
  file += header;
  file += std::string(offset, '\0');
  FILE* f = std::fopen(path.c_str(), "wb");
  ASSERT_NE(f, nullptr);
  ASSERT_EQ(std::fwrite(file.data(), 1, file.size(), f), file.size());
  std::fclose(f);
}

TEST(Inspect, ExplainsUnsupportedVersions) {
  // ChatRWKV's "v5.0" preview: ln_x but no gate.
  const std::string path = ::testing::TempDir() + "/preview-v5.0.safetensors";
  WriteSafetensors(path, {{"emb.weight", {10, 8}},
                          {"blocks.0.att.ln_x.weight", {8}},
                          {"blocks.0.att.time_decay", {2}},
                          {"blocks.1.att.ln_x.weight", {8}}});
  CliRun r = Skein("inspect --model '" + path + "'");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("version: v5.0 (RWKV-5)\n"));
  EXPECT_THAT(r.out, HasSubstr("supported: no (RWKV-5 preview (v5.0) is not supported"));
  EXPECT_THAT(r.out, HasSubstr("layers: 2\n"));
  EXPECT_THAT(r.out, HasSubstr("parameters: 98\n"));
}

TEST(Inspect, BadPathsFailWithOneLine) {
  const std::string missing = Temp("missing.pth");
  ExpectOneLineError(Skein("inspect --model '" + missing + "'"), missing);
  const std::string junk = Temp("junk.pth");
  FILE* f = std::fopen(junk.c_str(), "wb");
  std::fputs("not a model", f);
  std::fclose(f);
  ExpectOneLineError(Skein("inspect --model '" + junk + "'"), junk);
}

std::unique_ptr<model::TensorArchive> Open(const std::string& path) {
  auto a = model::OpenCheckpoint(path);
  EXPECT_TRUE(a.ok()) << a.status();
  return a.ok() ? *std::move(a) : nullptr;
}

std::vector<float> Floats(const model::TensorView& t) {
  std::vector<float> v(static_cast<size_t>(t.numel()));
  base::ConvertElements(t.dtype, t.data, model::DType::kF32, v.data(), v.size());
  return v;
}

TEST(Convert, PthToSafetensorsKeepsEverything) {
  SKEIN_REQUIRE_TEST_DATA(path, "golden/rwkv7/tiny-l2-c128-v256.pth");
  const std::string out = Temp("tiny.safetensors");
  CliRun r = Skein("convert --in '" + path + "' --out '" + out + "'");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(r.err.empty()) << r.err;  // no progress output when stderr is not a terminal
  auto src = Open(path);
  auto dst = Open(out);
  ASSERT_TRUE(src && dst);
  ASSERT_EQ(src->tensors().size(), dst->tensors().size());
  for (size_t i = 0; i < src->tensors().size(); ++i) {
    const model::TensorView& a = src->tensors()[i];
    const model::TensorView& b = dst->tensors()[i];
    ASSERT_EQ(a.name, b.name);
    EXPECT_EQ(a.shape, b.shape);
    EXPECT_EQ(b.dtype, model::DType::kBF16);
    ASSERT_EQ(a.nbytes, b.nbytes);
    EXPECT_EQ(std::memcmp(a.data, b.data, a.nbytes), 0) << a.name;
  }
  EXPECT_EQ(dst->metadata().at("source_format"), "pth");
  EXPECT_EQ(dst->metadata().at("rwkv_version"), "x070");
  EXPECT_EQ(dst->metadata().at("format"), "pt");
  EXPECT_TRUE(model::LoadRwkvConfig(*dst).ok());
}

// Random models of every supported version load, and the engine generates from them.
TEST(MakeModel, WritesEveryVersionAndTheEngineRunsIt) {
  for (const char* version : {"x070", "x060", "x052", "v4"}) {
    SCOPED_TRACE(version);
    const std::string out = Temp(std::string("random-") + version + ".safetensors");
    CliRun made = Skein(std::string("make-model --version ") + version +
                        " --layers 2 --embd 128 --vocab 50 --dtype fp32 --out '" + out + "'");
    ASSERT_EQ(made.exit_code, 0) << made.err;
    EXPECT_THAT(made.out, HasSubstr(std::string(": ") + version + ", layers 2"));
    CliRun inspect = Skein("inspect --model '" + out + "'");
    ASSERT_EQ(inspect.exit_code, 0) << inspect.err;
    EXPECT_THAT(inspect.out, HasSubstr(std::string("version: ") + version));
    EXPECT_THAT(inspect.out, HasSubstr("supported: yes"));
    CliRun gen = Skein("generate --model '" + out + "' --prompt-tokens 1,2,3 --max-tokens 4");
    ASSERT_EQ(gen.exit_code, 0) << gen.err;
    EXPECT_FALSE(gen.out.empty());
  }
  CliRun bad = Skein("make-model --version x052-preview --layers 1 --embd 64 --vocab 8 --out '" +
                     Temp("bad.pth") + "'");
  EXPECT_NE(bad.exit_code, 0);
  EXPECT_THAT(bad.err, HasSubstr("--version"));
}

TEST(Convert, DtypeChangesRoundTrip) {
  SKEIN_REQUIRE_TEST_DATA(path, "golden/multiversion/tiny-v7-no-l0-v012.pth");
  const std::string f32 = Temp("f32.safetensors"), back = Temp("back.pth"),
                    f16 = Temp("f16.safetensors");
  ASSERT_EQ(Skein("convert --in '" + path + "' --out '" + f32 + "' --dtype fp32").exit_code, 0);
  ASSERT_EQ(Skein("convert --in '" + f32 + "' --out '" + back + "' --dtype bf16").exit_code, 0);
  ASSERT_EQ(Skein("convert --in '" + path + "' --out '" + f16 + "' --dtype fp16").exit_code, 0);
  auto src = Open(path);
  auto a = Open(f32);
  auto b = Open(back);
  auto c = Open(f16);
  ASSERT_TRUE(src && a && b && c);
  EXPECT_EQ(a->metadata().at("source_format"), "pth");
  for (const model::TensorView& t : src->tensors()) {
    SCOPED_TRACE(t.name);
    const model::TensorView* x = a->Find(t.name);
    const model::TensorView* y = b->Find(t.name);
    const model::TensorView* z = c->Find(t.name);
    ASSERT_TRUE(x && y && z);
    EXPECT_EQ(x->dtype, model::DType::kF32);
    EXPECT_EQ(z->dtype, model::DType::kF16);
    EXPECT_EQ(Floats(*x), Floats(t));  // widening is exact
    ASSERT_EQ(y->nbytes, t.nbytes);
    EXPECT_EQ(std::memcmp(y->data, t.data, t.nbytes), 0);  // and narrowing back is too
    std::vector<float> want = Floats(t);
    const auto* h = static_cast<const uint16_t*>(z->data);
    for (size_t i = 0; i < want.size(); ++i) ASSERT_EQ(h[i], base::F32ToF16(want[i]));
  }
}

TEST(Convert, Failures) {
  SKEIN_REQUIRE_TEST_DATA(path, "golden/rwkv7/tiny-l2-c128-v256.pth");
  ExpectOneLineError(Skein("convert --in '" + path + "' --out '" + Temp("x.txt") + "'"), ".txt");
  const std::string missing = Temp("missing.pth");
  ExpectOneLineError(Skein("convert --in '" + missing + "' --out '" + Temp("y.safetensors") + "'"),
                     missing);
  ExpectOneLineError(Skein("convert --in '" + path + "' --out /nonexistent-dir/z.safetensors"),
                     "/nonexistent-dir/z.safetensors");
  EXPECT_NE(Skein("convert --in '" + path + "' --out a.safetensors --dtype int4").exit_code, 0);
}

// `convert --dtype int8` stores exactly what `--dtype int8` quantises at load: the converted
// file runs bit for bit like the float file quantised at load, in either container. Widened
// back (`--dtype fp32`), it runs like the int8 file widened at load.
TEST(Convert, Int8FilesRunLikeQuantisingAtLoad) {
  SKEIN_REQUIRE_TEST_DATA(path, "golden/rwkv7/tiny-l2-c128-v256.pth");
  const std::string st = Temp("q.safetensors"), pth = Temp("q.pth"), back = Temp("back.pth");
  CliRun r = Skein("convert --in '" + path + "' --out '" + st + "' --dtype int8");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  ASSERT_EQ(Skein("convert --in '" + st + "' --out '" + pth + "'").exit_code, 0);
  ASSERT_EQ(Skein("convert --in '" + pth + "' --out '" + back + "' --dtype fp32").exit_code, 0);

  auto source = model::OpenCheckpoint(path);
  auto q = model::OpenCheckpoint(pth);
  ASSERT_TRUE(source.ok() && q.ok());
  int matrices = 0;
  for (const model::TensorView& t : (*source)->tensors()) {
    const model::TensorView* c = (*q)->Find(t.name);
    ASSERT_NE(c, nullptr) << t.name;
    if (model::IsQuantizableMatrix(t.name)) {
      ++matrices;
      EXPECT_EQ(c->dtype, model::DType::kI8) << t.name;
      const model::TensorView* scale = (*q)->Find(model::Int8ScaleName(t.name));
      ASSERT_NE(scale, nullptr) << t.name;
      EXPECT_EQ(scale->dtype, model::DType::kF32);
      EXPECT_EQ(scale->shape, std::vector<int64_t>{t.shape[0]});
    } else {
      EXPECT_EQ(c->dtype, t.dtype) << t.name << " keeps its dtype";
    }
  }
  EXPECT_EQ(matrices, 2 * 6 + 1);  // per layer att r/k/v/o and ffn k/v (x070), and the head
  auto config = model::LoadRwkvConfig(**q);
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->dtype, "int8");
  EXPECT_THAT(Skein("inspect --model '" + st + "'").out, HasSubstr("dtype: int8"));

  const std::string tokens = " --tokens 0,17,255,3,99 --final-state";
  const CliRun at_load = Skein("logits --model '" + path + "' --dtype int8" + tokens);
  ASSERT_EQ(at_load.exit_code, 0) << at_load.err;
  EXPECT_EQ(Skein("logits --model '" + st + "' --dtype int8" + tokens).out, at_load.out);
  EXPECT_EQ(Skein("logits --model '" + pth + "' --dtype int8" + tokens).out, at_load.out);
  const CliRun widened = Skein("logits --model '" + pth + "' --dtype fp32" + tokens);
  ASSERT_EQ(widened.exit_code, 0) << widened.err;
  EXPECT_NE(widened.out, at_load.out);
  EXPECT_EQ(Skein("logits --model '" + back + "' --dtype fp32" + tokens).out, widened.out);
  auto b = model::OpenCheckpoint(back);
  ASSERT_TRUE(b.ok());
  EXPECT_EQ((*b)->tensors().size(), (*source)->tensors().size()) << "the scales are gone";

  // int8 needs a valid RWKV checkpoint (its matrices are known by name and shape).
  const std::string other = Temp("other.safetensors");
  const std::string header = R"({"x.weight":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]}})";
  std::string file(8, '\0');
  for (int i = 0; i < 8; ++i) file[i] = static_cast<char>((header.size() >> (8 * i)) & 0xff);
  file += header + std::string(16, '\0');
  FILE* f = std::fopen(other.c_str(), "wb");
  ASSERT_NE(f, nullptr);
  ASSERT_EQ(std::fwrite(file.data(), 1, file.size(), f), file.size());
  std::fclose(f);
  ExpectOneLineError(
      Skein("convert --in '" + other + "' --out '" + Temp("o.safetensors") + "' --dtype int8"),
      "int8 conversion needs a valid RWKV checkpoint");
  EXPECT_EQ(Skein("convert --in '" + other + "' --out '" + Temp("o.pth") + "'").exit_code, 0);
}

TEST(MakeModel, WritesLoadableModelsInBothFormats) {
  const std::string pth = Temp("made.pth"), st = Temp("made.safetensors");
  CliRun r = Skein("make-model --layers 2 --embd 128 --vocab 50 --seed 4 --out '" + pth +
                   "' --lora 16,16,8,32 --ffn 256 --layer0-v");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(r.err.empty()) << r.err;
  EXPECT_THAT(r.out, HasSubstr(pth));
  r = Skein("make-model --layers 1 --embd 64 --vocab 10 --head-size 32 --dtype fp32 --out '" + st +
            "'");
  ASSERT_EQ(r.exit_code, 0) << r.err;

  auto a = Open(pth);
  ASSERT_TRUE(a);
  auto ca = model::LoadRwkvConfig(*a);
  ASSERT_TRUE(ca.ok()) << ca.status();
  EXPECT_EQ(ca->n_layer, 2);
  EXPECT_EQ(ca->n_embd, 128);
  EXPECT_EQ(ca->vocab, 50);
  EXPECT_EQ(ca->ffn, 256);
  EXPECT_EQ(ca->d_decay, 16);
  EXPECT_EQ(ca->d_value, 8);
  EXPECT_EQ(ca->d_gate, 32);
  EXPECT_TRUE(ca->layer0_value_lora);
  EXPECT_EQ(ca->dtype, "bf16");

  auto b = Open(st);
  ASSERT_TRUE(b);
  auto cb = model::LoadRwkvConfig(*b);
  ASSERT_TRUE(cb.ok()) << cb.status();
  EXPECT_EQ(cb->n_head, 2);
  EXPECT_EQ(cb->head_size, 32);
  EXPECT_EQ(cb->ffn, 256);
  EXPECT_EQ(cb->dtype, "fp32");
  model::Rwkv7LoraRanks d = model::DefaultRwkv7LoraRanks(64);
  EXPECT_EQ(cb->d_decay, d.decay);
  EXPECT_EQ(cb->d_gate, d.gate);

  CliRun inspect = Skein("inspect --model '" + pth + "'");
  ASSERT_EQ(inspect.exit_code, 0);
  EXPECT_THAT(inspect.out, HasSubstr("parameters: " + std::to_string(ca->parameters) + "\n"));
  EXPECT_THAT(inspect.out, HasSubstr("layer-0 v0/v1/v2: present"));
}

TEST(MakeModel, SameSeedSameFile) {
  const std::string d1 = Temp("d1"), d2 = Temp("d2");
  std::filesystem::create_directories(d1);
  std::filesystem::create_directories(d2);
  for (const std::string& d : {d1, d2}) {
    ASSERT_EQ(Skein("make-model --layers 1 --embd 64 --vocab 16 --seed 9 --out '" + d + "/m.pth'")
                  .exit_code,
              0);
  }
  EXPECT_TRUE(Slurp(d1 + "/m.pth") == Slurp(d2 + "/m.pth"));
}

TEST(MakeModel, BadArgumentsFailWithOneLine) {
  ExpectOneLineError(Skein("make-model --layers 1 --embd 100 --vocab 8 --out " + Temp("a.pth")),
                     "head size");
  ExpectOneLineError(
      Skein("make-model --layers 1 --embd 64 --vocab 8 --lora 1,2 --out " + Temp("b.pth")), "lora");
  ExpectOneLineError(Skein("make-model --layers 1 --embd 64 --vocab 8 --out " + Temp("c.bin")),
                     ".bin");
  ExpectOneLineError(
      Skein("make-model --layers 1 --embd 64 --vocab 8 --out /nonexistent-dir/m.pth"),
      "/nonexistent-dir/m.pth");
}

}  // namespace
}  // namespace skein::cli
