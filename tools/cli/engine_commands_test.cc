// The `skein logits` and `skein generate` interface, run as a user would: the binary, its
// exit codes, and its JSON, checked against the official goldens.
#include <sys/wait.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "kernels/cpu/kernels.h"
#include "kernels/cpu/tile_products.h"
#include "nlohmann/json.hpp"
#include "tests/support/test_data.h"

namespace {

struct RunResult {
  int exit_code = -1;
  std::string out, err;
};

std::string ReadAll(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

RunResult RunSkein(const std::string& args) {
  const char* srcdir = std::getenv("TEST_SRCDIR");
  const std::string binary =
      srcdir != nullptr ? std::string(srcdir) + "/skein/tools/skein" : "tools/skein";
  const char* tmp = std::getenv("TEST_TMPDIR");
  const std::string base = std::string(tmp != nullptr ? tmp : "/tmp") + "/skein_cli";
  const std::string command = binary + " " + args + " >" + base + ".out 2>" + base + ".err";
  const int status = std::system(command.c_str());
  RunResult r;
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  r.out = ReadAll(base + ".out");
  r.err = ReadAll(base + ".err");
  return r;
}

std::string Join(const std::vector<int>& v) {
  std::string s;
  for (size_t i = 0; i < v.size(); ++i) s += (i ? "," : "") + std::to_string(v[i]);
  return s;
}

float StdDev(const std::vector<float>& v) {
  double sum = 0, sq = 0;
  for (float x : v) sum += x;
  for (float x : v) sq += (x - sum / v.size()) * (x - sum / v.size());
  return static_cast<float>(std::sqrt(sq / v.size()));
}

float MaxAbsDiff(const std::vector<float>& a, const std::vector<float>& b) {
  float m = 0;
  for (size_t i = 0; i < a.size() && i < b.size(); ++i) m = std::max(m, std::fabs(a[i] - b[i]));
  return a.size() == b.size() ? m : INFINITY;
}

TEST(LogitsCommandTest, PrintsOneRowPerTokenMatchingTheGolden) {
  SKEIN_REQUIRE_TEST_DATA(json_path, "golden/rwkv7/tiny-l2-c128-v256.golden.json");
  SKEIN_REQUIRE_TEST_DATA(model, "golden/rwkv7/tiny-l2-c128-v256.pth");
  const nlohmann::json golden = nlohmann::json::parse(ReadAll(json_path));
  const std::vector<int> tokens = golden["tokens"].get<std::vector<int>>();
  for (const char* mode : {"step", "seq"}) {
    RunResult r = RunSkein("logits --model " + model + " --tokens " + Join(tokens) +
                           " --threads 2 --final-state --mode " + mode);
    ASSERT_EQ(r.exit_code, 0) << r.err;
    const nlohmann::json out = nlohmann::json::parse(r.out);
    EXPECT_EQ(out["tokens"].get<std::vector<int>>(), tokens);
    ASSERT_EQ(out["logits"].size(), tokens.size());
    for (size_t t = 0; t < tokens.size(); ++t) {
      const std::vector<float> want = golden["logits_per_step"][t].get<std::vector<float>>();
      const std::vector<float> got = out["logits"][t].get<std::vector<float>>();
      EXPECT_LE(MaxAbsDiff(got, want), 1e-4f * StdDev(want)) << mode << " step " << t;
    }
    ASSERT_EQ(out["final_state"].size(), golden["final_state"].size());
    for (size_t l = 0; l < golden["final_state"].size(); ++l) {
      for (const char* slot : {"att_x_prev", "att_kv", "ffn_x_prev"}) {
        EXPECT_LE(MaxAbsDiff(out["final_state"][l][slot].get<std::vector<float>>(),
                             golden["final_state"][l][slot].get<std::vector<float>>()),
                  2e-5f)
            << mode << " layer " << l << " " << slot;
      }
    }
  }
}

TEST(LogitsCommandTest, HalfPrecisionRunsAndNoStateByDefault) {
  SKEIN_REQUIRE_TEST_DATA(model, "golden/rwkv7/tiny-l2-c128-v256.pth");
  RunResult r = RunSkein("logits --model " + model + " --tokens 5,6 --dtype bf16");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const nlohmann::json out = nlohmann::json::parse(r.out);
  EXPECT_FALSE(out.contains("final_state"));
  EXPECT_EQ(out["logits"].size(), 2u);
  EXPECT_EQ(out["logits"][0].size(), 256u);
}

TEST(GenerateCommandTest, GreedyReproducesTheReference) {
  SKEIN_REQUIRE_TEST_DATA(json_path, "golden/rwkv7/small-l4-c256-v1024.greedy.json");
  SKEIN_REQUIRE_TEST_DATA(model, "golden/rwkv7/small-l4-c256-v1024.pth");
  const nlohmann::json golden = nlohmann::json::parse(ReadAll(json_path));
  const std::vector<int> greedy = golden["greedy"].get<std::vector<int>>();
  RunResult r = RunSkein("generate --model " + model + " --prompt-tokens " +
                         Join(golden["prompt"].get<std::vector<int>>()) + " --max-tokens " +
                         std::to_string(greedy.size()));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(nlohmann::json::parse(r.out)["tokens"].get<std::vector<int>>(), greedy);
}

TEST(GenerateCommandTest, SeededSamplingIsReproducible) {
  SKEIN_REQUIRE_TEST_DATA(model, "golden/rwkv7/tiny-l2-c128-v256.pth");
  const std::string args = "generate --model " + model +
                           " --prompt-tokens 1,2,3 --max-tokens 12 --temperature 1.5 "
                           "--top-p 0.95 --top-k 50 --seed ";
  RunResult a = RunSkein(args + "7"), b = RunSkein(args + "7"), c = RunSkein(args + "8");
  ASSERT_EQ(a.exit_code, 0) << a.err;
  const std::vector<int> ta = nlohmann::json::parse(a.out)["tokens"].get<std::vector<int>>();
  EXPECT_EQ(ta.size(), 12u);
  EXPECT_EQ(ta, nlohmann::json::parse(b.out)["tokens"].get<std::vector<int>>());
  EXPECT_NE(ta, nlohmann::json::parse(c.out)["tokens"].get<std::vector<int>>());
}

// The device path from the command line: greedy on the GPU engine's launch sequence (on the
// CPU, `--device reference`) reproduces the official continuation, and bench reports the
// device (and no CPU roofline for it).
TEST(DeviceCommandsTest, ReferenceDeviceGeneratesTheGoldenAndBenchSaysWhere) {
  SKEIN_REQUIRE_TEST_DATA(json_path, "golden/rwkv7/small-l4-c256-v1024.greedy.json");
  SKEIN_REQUIRE_TEST_DATA(model, "golden/rwkv7/small-l4-c256-v1024.pth");
  const nlohmann::json golden = nlohmann::json::parse(ReadAll(json_path));
  const std::vector<int> greedy = golden["greedy"].get<std::vector<int>>();
  RunResult r = RunSkein("generate --device reference --dtype fp32 --model " + model +
                         " --prompt-tokens " + Join(golden["prompt"].get<std::vector<int>>()) +
                         " --max-tokens " + std::to_string(greedy.size()));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(nlohmann::json::parse(r.out)["tokens"].get<std::vector<int>>(), greedy);
  RunResult b = RunSkein("bench --json --device reference --dtype fp32 --model " + model +
                         " --batch 2 --prompt 8 --decode-steps 1 --repeats 1 --bandwidth-mib 8");
  ASSERT_EQ(b.exit_code, 0) << b.err;
  const nlohmann::json out = nlohmann::json::parse(b.out);
  EXPECT_EQ(out["device"], "reference");
  ASSERT_EQ(out["decode"].size(), 1u);
  EXPECT_GT(out["decode"][0]["tokens_per_s"].get<double>(), 0);
  EXPECT_FALSE(out["decode"][0].contains("roofline_fraction"));
  EXPECT_FALSE(out["decode"][0].contains("peak_fraction"));
  EXPECT_FALSE(out.contains("peak_fp32_fma_gflop_per_s"));
}

// --tiles picks the AMX path for a comparison in one run: off works everywhere, on only where
// the CPU has the tiles, and either is reported.
TEST(EngineCommandsTest, BenchTilesSwitch) {
  SKEIN_REQUIRE_TEST_DATA(model, "golden/rwkv7/tiny-l2-c128-v256.pth");
  const std::string base = "bench --json --dtype bf16 --model " + model +
                           " --batch 2 --prompt 8 --decode-steps 1 --repeats 1 --bandwidth-mib 8";
  RunResult off = RunSkein(base + " --tiles off");
  ASSERT_EQ(off.exit_code, 0) << off.err;
  EXPECT_EQ(nlohmann::json::parse(off.out)["tiles"], "off");
  RunResult on = RunSkein(base + " --tiles on");
  if (skein::kernels::AmxTilesAvailable()) {
    ASSERT_EQ(on.exit_code, 0) << on.err;
    EXPECT_EQ(nlohmann::json::parse(on.out)["tiles"], "on");
  } else {
    EXPECT_NE(on.exit_code, 0);
    EXPECT_NE(on.err.find("no AMX tiles"), std::string::npos) << on.err;
  }
  RunResult bad = RunSkein(base + " --tiles maybe");
  EXPECT_NE(bad.exit_code, 0);
  EXPECT_NE(bad.err.find("maybe"), std::string::npos) << bad.err;
}

// The compute columns: FLOPs counted from the model's matrices (the head once per decode row,
// once per prompt), divided by the same times as tokens/s, and the fraction of the fp32 FMA
// peak measured in the same run.
TEST(EngineCommandsTest, BenchCountsProductFlopsAgainstTheMeasuredPeak) {
  SKEIN_REQUIRE_TEST_DATA(model, "golden/rwkv7/tiny-l2-c128-v256.pth");
  RunResult r = RunSkein("bench --json --dtype fp32 --model " + model +
                         " --batch 1,3 --prompt 9 --decode-steps 2 --repeats 1 --bandwidth-mib 8");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const nlohmann::json out = nlohmann::json::parse(r.out);
  const double peak = out["peak_fp32_fma_gflop_per_s"].get<double>();
  ASSERT_GT(peak, 0);
  // FLOPs of one step, from the reported rate and time.
  auto step_flops = [](const nlohmann::json& row, const char* seconds_key, double scale) {
    return row["gflop_per_s"].get<double>() * 1e9 * row[seconds_key].get<double>() * scale;
  };
  ASSERT_EQ(out["decode"].size(), 2u);
  const double one = step_flops(out["decode"][0], "ms_per_step", 1e-3);
  const double three = step_flops(out["decode"][1], "ms_per_step", 1e-3);
  EXPECT_NEAR(three, 3 * one, 1e-3 * three);  // every session of a step costs the same
  const double prompt = step_flops(out["prefill"][0], "seconds", 1.0);
  // Prefill: 9 tokens through the layers, the head on the last one only.
  const double layer = (prompt - one) / 8, head = one - layer;
  EXPECT_NEAR(head, 2.0 * 256 * 128, 1e-2 * head);  // the head: vocab 256 × C 128
  // The layers: at least the projections and FFN (4C² + 2·C·4C per layer, two layers), plus
  // the LoRAs.
  EXPECT_GT(layer, 2.0 * 2 * (4 * 128 * 128 + 2 * 128 * 512));
  EXPECT_LT(layer, 2.0 * 2 * (4 * 128 * 128 + 2 * 128 * 512 + 8 * 128 * 128));
  for (const nlohmann::json* row : {&out["decode"][0], &out["decode"][1], &out["prefill"][0]}) {
    EXPECT_NEAR((*row)["peak_fraction"].get<double>(), (*row)["gflop_per_s"].get<double>() / peak,
                1e-3 * (*row)["peak_fraction"].get<double>());
  }
  // Rounding activations to bf16 does nothing for fp32 weights: not reported as used, and the
  // products are still held to the fp32 peak.
  RunResult rounded = RunSkein("bench --json --dtype fp32 --bf16-activations --model " + model +
                               " --batch 1 --prompt 9 --decode-steps 1 --repeats 1 "
                               "--bandwidth-mib 8");
  ASSERT_EQ(rounded.exit_code, 0) << rounded.err;
  const nlohmann::json bf16 = nlohmann::json::parse(rounded.out);
  EXPECT_TRUE(bf16["bf16_activations"].get<bool>());
  EXPECT_FALSE(bf16["bf16_activations_used"].get<bool>());
  const nlohmann::json& row = bf16["prefill"][0];
  EXPECT_NEAR(row["peak_fraction"].get<double>(),
              row["gflop_per_s"].get<double>() / bf16["peak_fp32_fma_gflop_per_s"].get<double>(),
              1e-3 * row["peak_fraction"].get<double>());
  // int8 weights with int8 activations: on AVX512-VNNI, panels packed and the products held to
  // the vpdpbusd peak; elsewhere no panels and no peak column.
  RunResult int8 = RunSkein("bench --json --dtype int8 --int8-activations --model " + model +
                            " --batch 1 --prompt 9 --decode-steps 1 --repeats 1 "
                            "--bandwidth-mib 8");
  ASSERT_EQ(int8.exit_code, 0) << int8.err;
  const nlohmann::json i8 = nlohmann::json::parse(int8.out);
  const nlohmann::json& i8_row = i8["prefill"][0];
  if (skein::kernels::Int8PanelsAccelerated()) {
    EXPECT_TRUE(i8["int8_panels"].get<bool>());
    EXPECT_FALSE(i8["bf16_panels"].get<bool>());
    EXPECT_NEAR(i8_row["peak_fraction"].get<double>(),
                i8_row["gflop_per_s"].get<double>() / i8["peak_int8_dot_gop_per_s"].get<double>(),
                1e-3 * i8_row["peak_fraction"].get<double>());
  } else {
    EXPECT_FALSE(i8["int8_panels"].get<bool>());
    EXPECT_FALSE(i8_row.contains("peak_fraction"));
  }
}

// Bad input: a non-zero exit and one line on stderr that says what is wrong.
void ExpectError(const RunResult& r, const std::string& needle) {
  EXPECT_NE(r.exit_code, 0);
  EXPECT_TRUE(r.out.empty()) << r.out;
  EXPECT_NE(r.err.find(needle), std::string::npos) << r.err;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
}

TEST(EngineCommandsTest, BadInputFailsWithOneLine) {
  SKEIN_REQUIRE_TEST_DATA(model, "golden/rwkv7/tiny-l2-c128-v256.pth");
  ExpectError(RunSkein("logits --model /nonexistent/model.pth --tokens 1"), "/nonexistent");
  ExpectError(RunSkein("logits --model " + model + " --tokens 1,x,3"), "'x'");
  ExpectError(RunSkein("logits --model " + model + " --tokens 1,256"), "256");
  ExpectError(RunSkein("logits --model " + model + " --tokens 1 --dtype int4"), "int4");
  ExpectError(RunSkein("logits --model " + model + " --tokens 1 --device gpu"), "gpu");
  ExpectError(RunSkein("logits --model " + model + " --tokens 1 --device reference --dtype int8"),
              "int8");
  ExpectError(RunSkein("generate --model " + model +
                       " --prompt-tokens 1 --max-tokens 2 "
                       "--temperature -1"),
              "temperature");
  ExpectError(RunSkein("generate --model " + model +
                       " --prompt-tokens 1 --max-tokens 2 "
                       "--temperature 1 --top-p 0"),
              "top_p");
}

}  // namespace
