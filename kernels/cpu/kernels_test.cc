// Every SIMD kernel against the scalar reference, on random inputs with sizes that leave
// tails, at each ISA level this CPU supports.
#include "kernels/cpu/kernels.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <limits>
#include <random>
#include <string>
#include <tuple>
#include <vector>

#include "base/float16.h"
#include "gtest/gtest.h"
#include "kernels/cpu/cpu_features.h"
#include "kernels/cpu/kernel_table.h"
#include "kernels/cpu/kernels_bf16.h"
#include "kernels/cpu/thread_pool.h"

namespace skein::kernels {
namespace {

std::vector<float> RandomVector(std::mt19937& rng, size_t n, float lo = -1.0f, float hi = 1.0f) {
  std::uniform_real_distribution<float> dist(lo, hi);
  std::vector<float> v(n);
  for (float& x : v) x = dist(rng);
  return v;
}

// Weights stored as `type`, plus the exact values they stand for (for int8, scale·q in
// double) for the error bound.
struct TestWeights {
  std::vector<float> f32;
  std::vector<uint16_t> half;
  std::vector<int8_t> q;
  std::vector<float> scales;
  std::vector<double> exact;
  WeightMatrix matrix;
};

// int8 weights: q uniform over [-127, 127] with both extremes in every row of two or more
// columns, scales of a realistic size, and row 2 (when there is one) with scale 0.
void MakeInt8Weights(std::mt19937& rng, int64_t rows, int64_t cols, int64_t stride,
                     TestWeights& t) {
  std::uniform_int_distribution<int> qdist(-127, 127);
  t.q.resize(rows * stride);
  for (int8_t& v : t.q) v = static_cast<int8_t>(qdist(rng));
  t.scales = RandomVector(rng, rows, 1e-3f, 2e-2f);
  for (int64_t o = 0; o < rows; ++o) {
    if (cols >= 2) {
      t.q[o * stride + (o % cols)] = 127;
      t.q[o * stride + ((o + 1) % cols)] = -127;
    }
  }
  if (rows > 2) t.scales[2] = 0.0f;
  t.exact.resize(t.q.size());
  for (size_t i = 0; i < t.q.size(); ++i) {
    t.exact[i] = static_cast<double>(t.scales[i / stride]) * t.q[i];
  }
  t.matrix.data = t.q.data();
  t.matrix.scales = t.scales.data();
}

TestWeights MakeWeights(std::mt19937& rng, DType type, int64_t rows, int64_t cols, int64_t stride) {
  TestWeights t;
  t.matrix.type = type;
  t.matrix.rows = rows;
  t.matrix.cols = cols;
  t.matrix.stride = stride;
  if (type == DType::kI8) {
    MakeInt8Weights(rng, rows, cols, stride, t);
    return t;
  }
  std::vector<float> values = RandomVector(rng, rows * stride);
  t.exact.resize(values.size());
  if (type == DType::kF32) {
    t.f32 = values;
    t.exact.assign(values.begin(), values.end());
  } else {
    t.half.resize(values.size());
    for (size_t i = 0; i < values.size(); ++i) {
      t.half[i] = type == DType::kBF16 ? base::F32ToBf16(values[i]) : base::F32ToF16(values[i]);
      t.exact[i] = type == DType::kBF16 ? base::Bf16ToF32(t.half[i]) : base::F16ToF32(t.half[i]);
    }
  }
  t.matrix.data = type == DType::kF32 ? static_cast<const void*>(t.f32.data())
                                      : static_cast<const void*>(t.half.data());
  return t;
}

// Tests run once per ISA level, each a test of its own: a level this CPU or build lacks is
// recorded as a skipped test, by name, rather than dropped silently.
class LevelTest : public ::testing::TestWithParam<IsaLevel> {
 protected:
  void SetUp() override {
    if (GetParam() > SupportedIsaLevel() || KernelsFor(GetParam()) == nullptr) {
      GTEST_SKIP() << "ISA level " << IsaLevelName(GetParam())
                   << " is not supported by this CPU or build";
    }
  }
};

std::string LevelName(const ::testing::TestParamInfo<IsaLevel>& info) {
  return std::string(IsaLevelName(info.param));
}

// Every level, the scalar reference included (checked against exact sums or known values).
class MatMulLevelTest : public LevelTest {};
class NormLevelTest : public LevelTest {};
INSTANTIATE_TEST_SUITE_P(Isa, MatMulLevelTest,
                         ::testing::Values(IsaLevel::kScalar, IsaLevel::kAvx2, IsaLevel::kAvx512),
                         LevelName);
INSTANTIATE_TEST_SUITE_P(Isa, NormLevelTest,
                         ::testing::Values(IsaLevel::kScalar, IsaLevel::kAvx2, IsaLevel::kAvx512),
                         LevelName);

// The SIMD levels, checked against the scalar reference.
class SimdMatMulTest : public LevelTest {};
class SimdNormTest : public LevelTest {};
class SimdWkv7Test : public LevelTest {};
class SimdWkv6Test : public LevelTest {};
class SimdMathTest : public LevelTest {};
INSTANTIATE_TEST_SUITE_P(Isa, SimdMatMulTest, ::testing::Values(IsaLevel::kAvx2, IsaLevel::kAvx512),
                         LevelName);
INSTANTIATE_TEST_SUITE_P(Isa, SimdNormTest, ::testing::Values(IsaLevel::kAvx2, IsaLevel::kAvx512),
                         LevelName);
INSTANTIATE_TEST_SUITE_P(Isa, SimdWkv7Test, ::testing::Values(IsaLevel::kAvx2, IsaLevel::kAvx512),
                         LevelName);
INSTANTIATE_TEST_SUITE_P(Isa, SimdWkv6Test, ::testing::Values(IsaLevel::kAvx2, IsaLevel::kAvx512),
                         LevelName);
INSTANTIATE_TEST_SUITE_P(Isa, SimdMathTest, ::testing::Values(IsaLevel::kAvx2, IsaLevel::kAvx512),
                         LevelName);

const char* TypeName(DType t) { return base::DTypeName(t).data(); }

// Runs the product with `table` over the whole job and checks it against exact fp64 sums
// with a bound proportional to Σ|x·w| (what fp32 reordering can change).
void CheckMatMul(const KernelTable& table, DType type, int64_t batch, int64_t rows, int64_t cols,
                 bool accumulate, std::mt19937& rng) {
  const int64_t stride = cols + (cols % 3);  // sometimes padded rows
  TestWeights w = MakeWeights(rng, type, rows, cols, stride);
  const int64_t ldx = cols + 2;
  const int64_t ldy = rows + 3;
  std::vector<float> x = RandomVector(rng, batch * ldx);
  std::vector<float> y_init = RandomVector(rng, batch * ldy);
  std::vector<float> y = y_init;
  MatMulJob job{x.data(), ldx, w.matrix, y.data(), ldy, batch, accumulate};
  table.matmul(job, 0, batch, 0, rows);
  for (int64_t b = 0; b < batch; ++b) {
    for (int64_t o = 0; o < ldy; ++o) {
      const float got = y[b * ldy + o];
      if (o >= rows) {
        ASSERT_EQ(got, y_init[b * ldy + o]) << "wrote outside the output";
        continue;
      }
      double sum = accumulate ? y_init[b * ldy + o] : 0.0;
      double magnitude = std::fabs(sum);
      for (int64_t i = 0; i < cols; ++i) {
        const double p = static_cast<double>(x[b * ldx + i]) * w.exact[o * stride + i];
        sum += p;
        magnitude += std::fabs(p);
      }
      ASSERT_NEAR(got, sum, 2e-6 * magnitude + 1e-30)
          << IsaLevelName(table.level) << " " << TypeName(type) << " batch " << batch << " rows "
          << rows << " cols " << cols << " at b=" << b << " o=" << o;
    }
  }
}

TEST_P(MatMulLevelTest, MatchesExactSums) {
  std::mt19937 rng(1);
  const IsaLevel level = GetParam();
  {
    const KernelTable& table = *KernelsFor(level);
    for (DType type : {DType::kF32, DType::kBF16, DType::kF16}) {
      for (int64_t batch : {1, 2, 3, 4, 5, 9}) {
        for (int64_t rows : {1, 5, 6, 7, 13, 100}) {
          for (int64_t cols : {1, 7, 16, 33, 129}) {
            CheckMatMul(table, type, batch, rows, cols, batch % 2 == 0, rng);
          }
        }
      }
    }
  }
}

TEST_P(MatMulLevelTest, LongRowsCrossContractionBlocks) {
  std::mt19937 rng(2);
  const IsaLevel level = GetParam();
  {
    for (DType type : {DType::kF32, DType::kBF16, DType::kF16, DType::kI8}) {
      CheckMatMul(*KernelsFor(level), type, 5, 37, 2500, false, rng);
      CheckMatMul(*KernelsFor(level), type, 2, 200, 1030, true, rng);
    }
  }
}

TEST_P(MatMulLevelTest, EmptyContractionGivesZeros) {
  const IsaLevel level = GetParam();
  {
    std::vector<float> y(6, 5.0f);
    float dummy = 0.0f;
    WeightMatrix w{&dummy, DType::kF32, 3, 0, 0};
    MatMulJob job{&dummy, 0, w, y.data(), 3, 2, false};
    KernelsFor(level)->matmul(job, 0, 2, 0, 3);
    for (float v : y) EXPECT_EQ(v, 0.0f) << IsaLevelName(level);
  }
}

// The public entry point splits work over threads; every split must give the single-thread
// result exactly (each output is computed by one thread with the same code).
TEST(MatMulTest, ThreadedManyEqualsSingleThread) {
  std::mt19937 rng(3);
  ThreadPool pool(3);
  const int64_t batch = 3;
  std::vector<TestWeights> weights;
  weights.push_back(MakeWeights(rng, DType::kBF16, 300, 64, 64));
  weights.push_back(MakeWeights(rng, DType::kF32, 17, 64, 64));
  weights.push_back(MakeWeights(rng, DType::kF16, 129, 64, 64));
  weights.push_back(MakeWeights(rng, DType::kF32, 1, 64, 64));
  weights.push_back(MakeWeights(rng, DType::kI8, 250, 64, 64));
  std::vector<float> x = RandomVector(rng, batch * 64);
  std::vector<std::vector<float>> threaded(weights.size()), single(weights.size());
  std::vector<MatMulJob> jobs;
  for (size_t j = 0; j < weights.size(); ++j) {
    threaded[j].assign(batch * weights[j].matrix.rows, 0.0f);
    single[j].assign(batch * weights[j].matrix.rows, 0.0f);
    jobs.push_back({x.data(), 64, weights[j].matrix, threaded[j].data(), weights[j].matrix.rows,
                    batch, false});
  }
  MatMulMany(jobs, &pool);
  for (size_t j = 0; j < weights.size(); ++j) {
    MatMulJob job = jobs[j];
    job.y = single[j].data();
    MatMul(job, nullptr);
    EXPECT_EQ(threaded[j], single[j]) << "job " << j;
  }
}

TEST_P(SimdNormTest, LayerNormMatchesReference) {
  std::mt19937 rng(4);
  const IsaLevel level = GetParam();
  {
    for (int64_t n : {1, 5, 16, 17, 64, 100, 768}) {
      std::vector<float> x = RandomVector(rng, n, -3.0f, 5.0f);
      std::vector<float> g = RandomVector(rng, n);
      std::vector<float> b = RandomVector(rng, n);
      std::vector<float> want(n), got(n);
      ScalarKernels()->layer_norm(x.data(), g.data(), b.data(), n, 1e-5f, want.data());
      KernelsFor(level)->layer_norm(x.data(), g.data(), b.data(), n, 1e-5f, got.data());
      for (int64_t i = 0; i < n; ++i) {
        ASSERT_NEAR(got[i], want[i], 2e-5f * (1.0f + std::fabs(want[i])))
            << IsaLevelName(level) << " n=" << n << " i=" << i;
      }
    }
  }
}

TEST_P(NormLevelTest, LayerNormIsCorrectOnKnownValues) {
  const float x[4] = {1, 2, 3, 4};
  const float g[4] = {1, 1, 2, 1};
  const float b[4] = {0, 0, 0, 1};
  float y[4];
  const IsaLevel level = GetParam();
  {
    ASSERT_TRUE(ForceIsaLevel(level).ok());
    LayerNorm(x, g, b, 4, 0.0f, y);
    const float s = 1.0f / std::sqrt(1.25f);  // biased variance of 1..4 is 1.25
    EXPECT_NEAR(y[0], -1.5f * s, 1e-6f);
    EXPECT_NEAR(y[1], -0.5f * s, 1e-6f);
    EXPECT_NEAR(y[2], 2 * 0.5f * s, 1e-6f);
    EXPECT_NEAR(y[3], 1.5f * s + 1, 1e-6f);
    // GroupNorm of two groups of two: each group is normalised on its own.
    GroupNorm(x, g, b, 2, 2, 0.0f, y);
    EXPECT_NEAR(y[0], -1.0f, 1e-6f);
    EXPECT_NEAR(y[1], 1.0f, 1e-6f);
    EXPECT_NEAR(y[2], -2.0f, 1e-6f);
    EXPECT_NEAR(y[3], 2.0f, 1e-6f);
  }
  ASSERT_TRUE(ForceIsaLevel(SupportedIsaLevel()).ok());
}

TEST_P(SimdNormTest, L2NormalizeMatchesReferenceAndClamps) {
  std::mt19937 rng(5);
  const IsaLevel level = GetParam();
  {
    for (int64_t n : {1, 7, 16, 31, 64, 65}) {
      std::vector<float> x = RandomVector(rng, n);
      std::vector<float> want(n), got(n);
      ScalarKernels()->l2_normalize(x.data(), n, 1e-12f, want.data());
      KernelsFor(level)->l2_normalize(x.data(), n, 1e-12f, got.data());
      for (int64_t i = 0; i < n; ++i) ASSERT_NEAR(got[i], want[i], 1e-6f);
    }
    // A tiny vector is divided by the clamp, not by its norm.
    std::vector<float> tiny(20, 1e-15f), out(20);
    KernelsFor(level)->l2_normalize(tiny.data(), 20, 1e-12f, out.data());
    EXPECT_NEAR(out[0], 1e-3f, 1e-9f);
  }
}

TEST_P(SimdWkv7Test, MatchesReferenceOverSeveralTokens) {
  std::mt19937 rng(6);
  const IsaLevel level = GetParam();
  {
    for (int64_t n : {1, 7, 20, 33, 64}) {
      for (int64_t tokens : {1, 4, 12}) {  // 12: the key-major path (n = 64)
        const int64_t stride = n * 3 + 1;
        auto make = [&](float lo, float hi) { return RandomVector(rng, tokens * stride, lo, hi); };
        std::vector<float> r = make(-1, 1), w = make(0.5f, 1.0f), k = make(-1, 1), v = make(-1, 1),
                           a = make(-0.3f, 0.3f), b = make(-0.3f, 0.3f);
        std::vector<float> state0 = RandomVector(rng, n * n);
        std::vector<float> want_state = state0, got_state = state0;
        const int64_t y_stride = n + 5;
        std::vector<float> want_y(tokens * y_stride, 0.0f), got_y = want_y;
        Wkv7HeadArgs args{nullptr,  n,        tokens,   stride,   r.data(), w.data(),
                          k.data(), v.data(), a.data(), b.data(), nullptr,  y_stride};
        args.state = want_state.data();
        args.y = want_y.data();
        ScalarKernels()->wkv7_head(args);
        args.state = got_state.data();
        args.y = got_y.data();
        KernelsFor(level)->wkv7_head(args);
        for (int64_t i = 0; i < n * n; ++i) {
          ASSERT_NEAR(got_state[i], want_state[i], 1e-5f * (1 + std::fabs(want_state[i])))
              << IsaLevelName(level) << " n=" << n << " T=" << tokens;
        }
        for (size_t i = 0; i < want_y.size(); ++i) {
          ASSERT_NEAR(got_y[i], want_y[i], 1e-5f * (1 + std::fabs(want_y[i])))
              << IsaLevelName(level) << " n=" << n << " T=" << tokens;
        }
      }
    }
  }
}

// The reference itself against the update written out by hand for a 2×2 head.
TEST(Wkv7Test, ReferenceFollowsTheSpecFormula) {
  float state[4] = {1, 2, 3, 4};
  const float r[2] = {1, -1}, w[2] = {0.5f, 0.25f}, k[2] = {2, 3}, v[2] = {-1, 1},
              a[2] = {0.1f, 0.2f}, b[2] = {1, 2};
  float y[2];
  Wkv7HeadArgs args{state, 2, 1, 2, r, w, k, v, a, b, y, 2};
  ScalarKernels()->wkv7_head(args);
  // Row 0: sa = 0.1·1 + 0.2·2 = 0.5; S = [1·0.5 + 2·(−1) + 0.5·1, 2·0.25 + 3·(−1) + 0.5·2]
  EXPECT_FLOAT_EQ(state[0], -1.0f);
  EXPECT_FLOAT_EQ(state[1], -1.5f);
  EXPECT_FLOAT_EQ(y[0], 0.5f);
  // Row 1: sa = 0.3 + 0.8 = 1.1; S = [1.5 + 2 + 1.1, 1 + 3 + 2.2]
  EXPECT_FLOAT_EQ(state[2], 4.6f);
  EXPECT_FLOAT_EQ(state[3], 6.2f);
  EXPECT_FLOAT_EQ(y[1], 4.6f - 6.2f);
}

TEST_P(SimdWkv6Test, MatchesReferenceOverSeveralTokens) {
  std::mt19937 rng(16);
  const IsaLevel level = GetParam();
  for (int64_t n : {1, 7, 20, 33, 64}) {
    for (int64_t tokens : {1, 4, 12}) {
      for (bool per_token_decay : {false, true}) {  // v5.2 (static decay) and v6
        const int64_t stride = n * 3 + 1;
        auto make = [&](float lo, float hi) { return RandomVector(rng, tokens * stride, lo, hi); };
        std::vector<float> r = make(-1, 1), w = make(0.5f, 1.0f), k = make(-1, 1), v = make(-1, 1),
                           u = RandomVector(rng, n);
        std::vector<float> state0 = RandomVector(rng, n * n);
        std::vector<float> want_state = state0, got_state = state0;
        const int64_t y_stride = n + 5;
        std::vector<float> want_y(tokens * y_stride, 0.0f), got_y = want_y;
        Wkv6HeadArgs args;
        args.n = n;
        args.tokens = tokens;
        args.stride = stride;
        args.r = r.data();
        args.w = w.data();
        args.w_stride = per_token_decay ? stride : 0;
        args.k = k.data();
        args.v = v.data();
        args.u = u.data();
        args.y_stride = y_stride;
        args.state = want_state.data();
        args.y = want_y.data();
        ScalarKernels()->wkv6_head(args);
        args.state = got_state.data();
        args.y = got_y.data();
        KernelsFor(level)->wkv6_head(args);
        for (int64_t i = 0; i < n * n; ++i) {
          ASSERT_NEAR(got_state[i], want_state[i], 1e-5f * (1 + std::fabs(want_state[i])))
              << IsaLevelName(level) << " n=" << n << " T=" << tokens;
        }
        for (size_t i = 0; i < want_y.size(); ++i) {
          ASSERT_NEAR(got_y[i], want_y[i], 1e-5f * (1 + std::fabs(want_y[i])))
              << IsaLevelName(level) << " n=" << n << " T=" << tokens;
        }
      }
    }
  }
}

// The reference against the v5/v6 update written out by hand for a 2×2 head: the output
// reads the old state plus the bonus, and a static decay (w_stride 0) serves every token.
TEST(Wkv6Test, ReferenceFollowsTheSpecFormula) {
  float state[4] = {1, 2, 3, 4};
  const float r[4] = {1, -1, 0.5f, 2}, w[2] = {0.5f, 0.25f}, k[4] = {2, 3, 1, -1},
              v[4] = {-1, 1, 2, 0.5f}, u[2] = {0.5f, 2};
  float y[4];
  Wkv6HeadArgs args;
  args.state = state;
  args.n = 2;
  args.tokens = 2;
  args.stride = 2;
  args.r = r;
  args.w = w;
  args.w_stride = 0;
  args.k = k;
  args.v = v;
  args.u = u;
  args.y = y;
  args.y_stride = 2;
  ScalarKernels()->wkv6_head(args);
  // Token 0, row 0 (v = −1): y = 1·(1 + 0.5·2·(−1)) − 1·(2 + 2·3·(−1)) = 0 + 4 = 4;
  // S = [1·0.5 − 2, 2·0.25 − 3] = [−1.5, −2.5].
  EXPECT_FLOAT_EQ(y[0], 4.0f);
  // Row 1 (v = 1): y = (3 + 1) − (4 + 6) = −6;  S = [1.5 + 2, 1 + 3] = [3.5, 4].
  EXPECT_FLOAT_EQ(y[1], -6.0f);
  // Token 1 (r = [0.5, 2], k = [1, −1], v = [2, 0.5]), row 0: y = 0.5·(−1.5 + 0.5·1·2) +
  // 2·(−2.5 + 2·(−1)·2) = −0.25 − 13 = −13.25;  S = [−0.75 + 2, −0.625 − 2].
  EXPECT_FLOAT_EQ(y[2], -13.25f);
  EXPECT_FLOAT_EQ(state[0], 1.25f);
  EXPECT_FLOAT_EQ(state[1], -2.625f);
  // Row 1: y = 0.5·(3.5 + 0.25) + 2·(4 − 1) = 1.875 + 6 = 7.875;  S = [1.75 + 0.5, 1 − 0.5].
  EXPECT_FLOAT_EQ(y[3], 7.875f);
  EXPECT_FLOAT_EQ(state[2], 2.25f);
  EXPECT_FLOAT_EQ(state[3], 0.5f);
}

}  // namespace
}  // namespace skein::kernels

namespace skein::kernels {
namespace {

TEST_P(SimdMathTest, ExpSigmoidTanhMatchTheLibrary) {
  // A spread of magnitudes, both signs, plus the ends of the range.
  std::vector<float> x;
  for (float v = -90.0f; v <= 90.0f; v += 0.0173f) x.push_back(v);
  for (float v : {0.0f, -0.0f, 1e-8f, -1e-8f, 1e-3f, 87.0f, -87.0f}) x.push_back(v);
  const int64_t n = static_cast<int64_t>(x.size());  // not a multiple of 16: a tail
  const IsaLevel level = GetParam();
  {
    const KernelTable& t = *KernelsFor(level);
    std::vector<float> y(n);
    t.exp(x.data(), y.data(), n);
    for (int64_t i = 0; i < n; ++i) {
      const double want = std::exp(static_cast<double>(x[i]));
      if (std::fabs(x[i]) > 86.0f) continue;  // AVX2 saturates beyond ±87 by design
      ASSERT_NEAR(y[i], want, 4e-7 * want) << IsaLevelName(level) << " exp(" << x[i] << ")";
    }
    t.sigmoid(x.data(), y.data(), n);
    for (int64_t i = 0; i < n; ++i) {
      const double want = 1.0 / (1.0 + std::exp(-static_cast<double>(x[i])));
      ASSERT_NEAR(y[i], want, 4e-7 * want + 1e-37)
          << IsaLevelName(level) << " sigmoid(" << x[i] << ")";
    }
    t.tanh(x.data(), y.data(), n);
    for (int64_t i = 0; i < n; ++i) {
      ASSERT_NEAR(y[i], std::tanh(static_cast<double>(x[i])), 2e-7)
          << IsaLevelName(level) << " tanh(" << x[i] << ")";
    }
    // In place, as the model uses them.
    std::vector<float> z = x;
    t.sigmoid(z.data(), z.data(), n);
    t.sigmoid(x.data(), y.data(), n);
    EXPECT_EQ(z, y);
  }
}

}  // namespace
}  // namespace skein::kernels

namespace skein::kernels {
namespace {

// Batches large enough for the packed GEMM, with every kind of edge: batch not a multiple of
// the register tile, outputs not a multiple of the panel, K not a multiple of the block.
TEST_P(SimdMatMulTest, PackedGemmMatchesExactSums) {
  std::mt19937 rng(12);
  const IsaLevel level = GetParam();
  {
    for (DType type : {DType::kF32, DType::kBF16, DType::kF16, DType::kI8}) {
      for (int64_t batch : {16, 29, 64}) {
        for (auto [rows, cols] : {std::pair<int64_t, int64_t>{50, 77}, {97, 300}, {16, 129}}) {
          CheckMatMul(*KernelsFor(level), type, batch, rows, cols, batch == 29, rng);
        }
      }
    }
  }
}

TEST(MatMulTest, ThreadedPackedEqualsSingleThread) {
  std::mt19937 rng(13);
  ThreadPool pool(2);
  TestWeights w = MakeWeights(rng, DType::kBF16, 200, 140, 140);
  const int64_t batch = 40;
  std::vector<float> x = RandomVector(rng, batch * 140), a(batch * 200), b(batch * 200);
  MatMul({x.data(), 140, w.matrix, a.data(), 200, batch, false}, &pool);
  MatMul({x.data(), 140, w.matrix, b.data(), 200, batch, false}, nullptr);
  EXPECT_EQ(a, b);
}

}  // namespace
}  // namespace skein::kernels

namespace skein::kernels {
namespace {

// The bf16-activation product against exact sums of bf16(x)·w, wherever the CPU has it.
TEST(MatMulTest, Bf16ActivationsRoundXAndAccumulateExactly) {
  if (!HaveBf16DotKernels() || !DetectCpuFeatures().avx512_bf16 ||
      SupportedIsaLevel() < IsaLevel::kAvx512) {
    GTEST_SKIP() << "no AVX512_BF16 on this CPU or build";
  }
  std::mt19937 rng(14);
  ThreadPool pool(2);
  for (auto [batch, rows, cols] : {std::tuple<int64_t, int64_t, int64_t>{5, 100, 70},
                                   {7, 30, 2101},
                                   {70, 50, 1500},
                                   {16, 48, 256},
                                   {33, 50, 77},
                                   {20, 97, 600},
                                   {64, 16, 31},
                                   // Last panels of 16, 32 and 40 rows (one, two and three
                                   // vectors).
                                   {66, 64, 200},
                                   {66, 80, 200},
                                   {65, 40, 130}}) {
    TestWeights w = MakeWeights(rng, DType::kBF16, rows, cols, cols + 1);
    std::vector<float> x = RandomVector(rng, batch * cols);
    std::vector<float> y(batch * rows, 1.0f);
    MatMulJob job{x.data(), cols, w.matrix, y.data(), rows, batch, /*accumulate=*/true, true};
    MatMul(job, &pool);
    for (int64_t b = 0; b < batch; ++b) {
      for (int64_t o = 0; o < rows; ++o) {
        double sum = 1.0, magnitude = 1.0;
        for (int64_t i = 0; i < cols; ++i) {
          const double p = static_cast<double>(base::Bf16ToF32(base::F32ToBf16(x[b * cols + i]))) *
                           w.exact[o * (cols + 1) + i];
          sum += p;
          magnitude += std::fabs(p);
        }
        ASSERT_NEAR(y[b * rows + o], sum, 2e-6 * magnitude)
            << "batch " << batch << " rows " << rows << " cols " << cols << " at " << b << "," << o;
      }
    }
  }
}

}  // namespace
}  // namespace skein::kernels

namespace skein::kernels {
namespace {

// Products over pre-packed panels against exact fp64 sums (of bf16(x)·w with bf16
// activations), at `level` (the portable loop at kScalar, the AVX512_BF16 kernel at kAvx512),
// for batch sizes on both sides of every tile and block, partial panels and odd K.
void CheckPackedPanels(IsaLevel level) {
  std::mt19937 rng(15);
  ThreadPool pool(2);
  {
    ASSERT_TRUE(ForceIsaLevel(level).ok());
    for (auto [batch, rows, cols] : {std::tuple<int64_t, int64_t, int64_t>{1, 100, 70},
                                     {1, 48, 257},
                                     {2, 97, 1},
                                     {3, 5, 600},
                                     {7, 49, 31},
                                     {8, 96, 256},
                                     {9, 50, 300},
                                     {17, 144, 513},
                                     {33, 50, 77},
                                     {130, 61, 129},
                                     // Last panels of 16 (C = 1024, 4096, the head), 32, 40
                                     // and 29 rows: one, two and three 16-row vectors used.
                                     {2, 64, 70},
                                     {130, 112, 129},
                                     {1, 80, 70},
                                     {2, 88, 65},
                                     {12, 40, 100},
                                     {9, 29, 65},
                                     {130, 88, 129}}) {
      for (bool bf16_activations : {false, true}) {
        for (bool accumulate : {false, true}) {
          const int64_t stride = cols + 3;
          TestWeights w = MakeWeights(rng, DType::kBF16, rows, cols, stride);
          std::vector<uint32_t> panels(Bf16PanelWords(rows, cols));
          PackBf16Panels(w.matrix, panels.data());
          WeightMatrix packed = w.matrix;
          packed.data = nullptr;  // products must read the panels only
          packed.panels = panels.data();
          const int64_t ldx = cols + 1, ldy = rows + 2;
          std::vector<float> x = RandomVector(rng, batch * ldx);
          std::vector<float> y_init = RandomVector(rng, batch * ldy);
          std::vector<float> y = y_init;
          MatMul({x.data(), ldx, packed, y.data(), ldy, batch, accumulate, bf16_activations},
                 level == IsaLevel::kScalar ? nullptr : &pool);
          for (int64_t b = 0; b < batch; ++b) {
            for (int64_t o = 0; o < ldy; ++o) {
              const float got = y[b * ldy + o];
              if (o >= rows) {
                ASSERT_EQ(got, y_init[b * ldy + o]) << "wrote outside the output";
                continue;
              }
              double sum = accumulate ? y_init[b * ldy + o] : 0.0;
              double magnitude = std::fabs(sum);
              for (int64_t i = 0; i < cols; ++i) {
                const float xi = x[b * ldx + i];
                const double p = static_cast<double>(
                                     bf16_activations ? base::Bf16ToF32(base::F32ToBf16(xi)) : xi) *
                                 w.exact[o * stride + i];
                sum += p;
                magnitude += std::fabs(p);
              }
              ASSERT_NEAR(got, sum, 2e-6 * magnitude + 1e-30)
                  << IsaLevelName(level) << " batch " << batch << " rows " << rows << " cols "
                  << cols << " bf16 activations " << bf16_activations << " at " << b << "," << o;
            }
          }
        }
      }
    }
  }
  ASSERT_TRUE(ForceIsaLevel(SupportedIsaLevel()).ok());
}

TEST(MatMulTest, PackedPanelsOnThePortableLoopMatchExactSums) {
  CheckPackedPanels(IsaLevel::kScalar);
}

TEST(MatMulTest, PackedPanelsOnAvx512Bf16MatchExactSums) {
  if (!Bf16PanelsAccelerated() || SupportedIsaLevel() < IsaLevel::kAvx512) {
    GTEST_SKIP() << "no AVX512_BF16 on this CPU or build";
  }
  CheckPackedPanels(IsaLevel::kAvx512);
}

TEST(MatMulTest, PackBf16PanelsPlacesPairsAndZeroPads) {
  // 50 rows × 5 columns: two panels, the second with 2 real rows; 3 pairs, the last half
  // empty.
  std::vector<uint16_t> w(50 * 5);
  for (size_t i = 0; i < w.size(); ++i) w[i] = static_cast<uint16_t>(i + 1);
  WeightMatrix m{w.data(), DType::kBF16, 50, 5, 5};
  ASSERT_EQ(Bf16PanelWords(50, 5), 2 * 3 * 48);
  std::vector<uint32_t> panels(Bf16PanelWords(50, 5), 0xDEADBEEF);
  PackBf16Panels(m, panels.data());
  auto word = [&](int64_t panel, int64_t pair, int64_t lane) {
    return panels[(panel * 3 + pair) * 48 + lane];
  };
  EXPECT_EQ(word(0, 0, 0), 1u | 2u << 16);      // row 0, k 0 and 1
  EXPECT_EQ(word(0, 1, 7), 38u | 39u << 16);    // row 7, k 2 and 3
  EXPECT_EQ(word(0, 2, 7), 40u);                // row 7, k 4; no k 5
  EXPECT_EQ(word(1, 0, 1), 246u | 247u << 16);  // row 49, k 0 and 1
  EXPECT_EQ(word(1, 1, 2), 0u);                 // row 50 does not exist

  // Packing on a pool's threads writes the same words.
  std::mt19937 rng(16);
  TestWeights big = MakeWeights(rng, DType::kBF16, 48 * 40 + 7, 301, 305);
  std::vector<uint32_t> serial(Bf16PanelWords(big.matrix.rows, big.matrix.cols));
  std::vector<uint32_t> threaded(serial.size(), 0xDEADBEEF);
  PackBf16Panels(big.matrix, serial.data());
  ThreadPool pool(3);
  PackBf16Panels(big.matrix, threaded.data(), &pool);
  EXPECT_EQ(serial, threaded);
}

}  // namespace
}  // namespace skein::kernels

namespace skein::kernels {
namespace {

// ---- int8 weights ----

// Product at every level against exact sums of x·scale·q: batch sizes of decode, of the
// dot-product tiles' edges and of the packed GEMM; rows that end mid-tile and mid-panel; K
// that ends mid-vector; y added to and overwritten; strided x, y and W (CheckMatMul).
TEST_P(MatMulLevelTest, Int8MatchesExactSums) {
  std::mt19937 rng(21);
  const KernelTable& table = *KernelsFor(GetParam());
  for (int64_t batch : {1, 3, 17}) {
    for (int64_t rows : {1, 5, 7, 13, 100}) {
      for (int64_t cols : {1, 7, 16, 33, 129}) {
        for (bool accumulate : {false, true}) {
          CheckMatMul(table, DType::kI8, batch, rows, cols, accumulate, rng);
        }
      }
    }
  }
  // Large batches (the packed GEMM on SIMD levels), K over several of its blocks.
  for (int64_t batch : {64, 70, 130}) {
    CheckMatMul(table, DType::kI8, batch, 53, 300, batch == 70, rng);
  }
}

TEST_P(MatMulLevelTest, Int8EmptyContractionGivesZeros) {
  std::vector<float> y(6, 5.0f);
  const int8_t dummy = 0;
  const float scales[3] = {1.0f, 2.0f, 3.0f};
  float x = 0.0f;
  WeightMatrix w{&dummy, DType::kI8, 3, 0, 0};
  w.scales = scales;
  MatMulJob job{&x, 0, w, y.data(), 3, 2, false};
  KernelsFor(GetParam())->matmul(job, 0, 2, 0, 3);
  for (float v : y) EXPECT_EQ(v, 0.0f) << IsaLevelName(GetParam());
}

// The scale multiplies the finished sum: a scale that is a power of two and integer-valued x
// make every step exact, so the result must equal the integer dot product times the scale
// exactly (a kernel that scaled partial sums or dropped the scale could not).
TEST_P(MatMulLevelTest, Int8ScaleMultipliesTheSumExactly) {
  const int64_t rows = 9, cols = 37;
  std::vector<int8_t> q(rows * cols);
  std::vector<float> scales(rows);
  for (int64_t o = 0; o < rows; ++o) {
    scales[o] = std::ldexp(1.0f, static_cast<int>(o) - 4);
    for (int64_t i = 0; i < cols; ++i)
      q[o * cols + i] = static_cast<int8_t>((o * 31 + i * 7) % 255 - 127);
  }
  std::vector<float> x(2 * cols);
  for (int64_t i = 0; i < 2 * cols; ++i) x[i] = static_cast<float>(i % 11 - 5);
  WeightMatrix w{q.data(), DType::kI8, rows, cols, cols};
  w.scales = scales.data();
  std::vector<float> y(2 * rows, 1.0f);
  KernelsFor(GetParam())->matmul({x.data(), cols, w, y.data(), rows, 2, true}, 0, 2, 0, rows);
  for (int64_t b = 0; b < 2; ++b) {
    for (int64_t o = 0; o < rows; ++o) {
      int64_t dot = 0;
      for (int64_t i = 0; i < cols; ++i)
        dot += static_cast<int64_t>(x[b * cols + i]) * q[o * cols + i];
      EXPECT_EQ(y[b * rows + o], 1.0f + static_cast<float>(dot) * scales[o])
          << IsaLevelName(GetParam()) << " b=" << b << " o=" << o;
    }
  }
}

// The SIMD products against the scalar reference on the same inputs, within the reordering
// bound of fp32 sums.
TEST_P(SimdMatMulTest, Int8MatchesScalarReference) {
  std::mt19937 rng(22);
  const KernelTable& table = *KernelsFor(GetParam());
  for (int64_t batch : {1, 3, 17, 64, 97}) {
    for (auto [rows, cols] :
         {std::pair<int64_t, int64_t>{1, 5}, {49, 77}, {100, 300}, {13, 1030}}) {
      const bool accumulate = batch % 2 == 1;
      const int64_t ldx = cols + 5, ldy = rows + 1;
      TestWeights w = MakeWeights(rng, DType::kI8, rows, cols, cols + 3);
      std::vector<float> x = RandomVector(rng, batch * ldx);
      std::vector<float> want = RandomVector(rng, batch * ldy);
      std::vector<float> got = want;
      const std::vector<float> y_init = want;
      ScalarKernels()->matmul({x.data(), ldx, w.matrix, want.data(), ldy, batch, accumulate}, 0,
                              batch, 0, rows);
      table.matmul({x.data(), ldx, w.matrix, got.data(), ldy, batch, accumulate}, 0, batch, 0,
                   rows);
      for (int64_t b = 0; b < batch; ++b) {
        for (int64_t o = 0; o < ldy; ++o) {
          if (o >= rows) {
            ASSERT_EQ(got[b * ldy + o], y_init[b * ldy + o]) << "wrote outside the output";
            continue;
          }
          double magnitude = accumulate ? std::fabs(y_init[b * ldy + o]) : 0.0;
          for (int64_t i = 0; i < cols; ++i) {
            magnitude += std::fabs(x[b * ldx + i] * w.exact[o * (cols + 3) + i]);
          }
          ASSERT_NEAR(got[b * ldy + o], want[b * ldy + o], 4e-6 * magnitude + 1e-30)
              << IsaLevelName(GetParam()) << " batch " << batch << " rows " << rows << " cols "
              << cols << " at " << b << "," << o;
        }
      }
    }
  }
}

TEST(MatMulTest, ThreadedInt8EqualsSingleThread) {
  std::mt19937 rng(23);
  ThreadPool pool(3);
  for (int64_t batch : {1, 5, 70}) {
    TestWeights w = MakeWeights(rng, DType::kI8, 300, 140, 141);
    std::vector<float> x = RandomVector(rng, batch * 140), a(batch * 300), b(batch * 300);
    MatMul({x.data(), 140, w.matrix, a.data(), 300, batch, false}, &pool);
    MatMul({x.data(), 140, w.matrix, b.data(), 300, batch, false}, nullptr);
    EXPECT_EQ(a, b) << "batch " << batch;
  }
}

TEST(MatMulDeathTest, Int8WithoutScalesAborts) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  const int8_t q[4] = {1, 2, 3, 4};
  const float x[2] = {1.0f, 1.0f};
  float y[2];
  WeightMatrix w{q, DType::kI8, 2, 2, 2};
  EXPECT_DEATH(MatMul({x, 2, w, y, 2, 1, false}, nullptr), "needs scales");
}

TEST(WeightMatrixTest, Int8BytesCountScales) {
  WeightMatrix w{nullptr, DType::kI8, 10, 30, 32};
  EXPECT_EQ(w.bytes(), 10u * 32u + 10u * sizeof(float));
  w.type = DType::kBF16;
  EXPECT_EQ(w.bytes(), 10u * 32u * 2u);
}

TEST(WeightMatrixTest, PanelBytesCountWhatTheKernelsRead) {
  const uint32_t panel_words[1] = {0};  // only its presence matters here
  // 50 rows: a whole panel and 2 rows of the next, read as one vector of 16; 30 columns.
  WeightMatrix w{nullptr, DType::kBF16, 50, 30, 30};
  w.panels = panel_words;
  EXPECT_EQ(w.bytes(), 64u * 30u * 2u);
  w.cols = w.stride = 31;  // odd K: the last pair is half padding
  EXPECT_EQ(w.bytes(), 64u * 32u * 2u);
  w.type = DType::kI8;  // groups of 4, plus the 50 scales
  EXPECT_EQ(w.bytes(), 64u * 32u + 50u * sizeof(float));
  w.cols = w.stride = 33;
  EXPECT_EQ(w.bytes(), 64u * 36u + 50u * sizeof(float));
}

// ---- QuantizeRowsInt8 ----

// Rows of known values (written as fp32; every one is exact in bf16 and fp16 too, or rounds
// there to a value that quantises the same), in a matrix whose row padding holds a value
// larger than any row's maximum (it must not count).
struct KnownRows {
  static constexpr int64_t kRows = 7, kCols = 8, kStride = 10;
  std::vector<float> values = std::vector<float>(kRows * kStride, 1000.0f);
  KnownRows() {
    const float nan = std::numeric_limits<float>::quiet_NaN();
    const float inf = std::numeric_limits<float>::infinity();
    const float rows[kRows][kCols] = {
        // scale 1: ties go to even (0.5 → 0, 1.5 → 2, 2.5 → 2, −2.5 → −2).
        {127, 0.5f, 1.5f, 2.5f, -0.5f, -2.5f, -127, 3.25f},
        // all zeros: scale 0, q 0.
        {0, 0, 0, 0, 0, 0, 0, 0},
        // the maximum is negative: −254 → −127 (never −128); scale 2, 63.5 → 64, 0.5 → 0.
        {-254, 127, 1, 3, -1, -5, 253, 0},
        // scale 1/127 (inexact): −1 still maps to −127, 0.25 → 31.75 → 32.
        {0.25f, -1, 0, 0, 0, 0, 0, 0},
        // a NaN: scale NaN, q 0.
        {1, nan, 0, 0, 0, 0, 0, 0},
        // an infinity: the same.
        {-inf, 1, 0, 0, 0, 0, 0, 0},
        // scale 0.5: ties ±0.25 → ±0.5 → 0, 0.75 → 1.5 → 2, −1.25 → −2.5 → −2, 1.75 → 3.5 → 4.
        {-63.5f, 0.25f, -0.25f, 0.75f, -1.25f, 1.75f, 0, 0},
    };
    for (int64_t o = 0; o < kRows; ++o)
      for (int64_t i = 0; i < kCols; ++i) values[o * kStride + i] = rows[o][i];
  }
};

void ExpectKnownQuantisation(const std::vector<int8_t>& q, const std::vector<float>& scales,
                             const char* source) {
  constexpr int64_t kCols = KnownRows::kCols;
  const int8_t want[KnownRows::kRows][kCols] = {
      {127, 0, 2, 2, 0, -2, -127, 3}, {0, 0, 0, 0, 0, 0, 0, 0}, {-127, 64, 0, 2, 0, -2, 126, 0},
      {32, -127, 0, 0, 0, 0, 0, 0},   {0, 0, 0, 0, 0, 0, 0, 0}, {0, 0, 0, 0, 0, 0, 0, 0},
      {-127, 0, 0, 2, -2, 4, 0, 0},
  };
  EXPECT_EQ(scales[0], 1.0f) << source;
  EXPECT_EQ(scales[1], 0.0f) << source;
  EXPECT_EQ(scales[2], 2.0f) << source;
  EXPECT_EQ(scales[3], 1.0f / 127.0f) << source;
  EXPECT_TRUE(std::isnan(scales[4])) << source;
  EXPECT_TRUE(std::isnan(scales[5])) << source;
  EXPECT_EQ(scales[6], 0.5f) << source;
  for (int64_t o = 0; o < KnownRows::kRows; ++o) {
    for (int64_t i = 0; i < kCols; ++i) {
      EXPECT_EQ(q[o * kCols + i], want[o][i]) << source << " row " << o << " col " << i;
    }
  }
}

TEST(QuantizeRowsInt8Test, KnownValuesFromEverySourceType) {
  KnownRows known;
  for (DType type : {DType::kF32, DType::kBF16, DType::kF16}) {
    std::vector<float> f32 = known.values;
    std::vector<uint16_t> half(f32.size());
    WeightMatrix src{f32.data(), type, KnownRows::kRows, KnownRows::kCols, KnownRows::kStride};
    if (type != DType::kF32) {
      base::ConvertElements(DType::kF32, f32.data(), type, half.data(), f32.size());
      src.data = half.data();
    }
    std::vector<int8_t> q(KnownRows::kRows * KnownRows::kCols, 99);
    std::vector<float> scales(KnownRows::kRows, -1.0f);
    QuantizeRowsInt8(src, q.data(), scales.data());
    ExpectKnownQuantisation(q, scales, TypeName(type));
  }
}

// A maximum so small that max / 127 underflows to 0: scale 0, q 0 (not a division by zero).
TEST(QuantizeRowsInt8Test, UnderflowingScaleGivesZeros) {
  const float tiny = std::numeric_limits<float>::denorm_min();
  const float row[3] = {tiny, -tiny, 0.0f};
  int8_t q[3] = {5, 5, 5};
  float scale = -1.0f;
  QuantizeRowsInt8({row, DType::kF32, 1, 3, 3}, q, &scale);
  EXPECT_EQ(scale, 0.0f);
  EXPECT_EQ(q[0], 0);
  EXPECT_EQ(q[1], 0);
  EXPECT_EQ(q[2], 0);
}

// Random rows: every value is within half a step of scale·q, the extremes map to ±127, and
// the result on a pool's threads is the same bytes.
TEST(QuantizeRowsInt8Test, RandomRowsRoundTripWithinHalfAStepOnAnyThreads) {
  std::mt19937 rng(24);
  const int64_t rows = 1500, cols = 301, stride = 305;
  std::vector<float> w = RandomVector(rng, rows * stride, -3.0f, 3.0f);
  for (int64_t o = 0; o < rows; ++o) w[o * stride + o % cols] *= 10.0f;  // vary the scales
  WeightMatrix src{w.data(), DType::kF32, rows, cols, stride};
  std::vector<int8_t> q(rows * cols), q_threaded(rows * cols);
  std::vector<float> scales(rows), scales_threaded(rows);
  QuantizeRowsInt8(src, q.data(), scales.data());
  ThreadPool pool(3);
  QuantizeRowsInt8(src, q_threaded.data(), scales_threaded.data(), &pool);
  EXPECT_EQ(q, q_threaded);
  EXPECT_EQ(scales, scales_threaded);
  for (int64_t o = 0; o < rows; ++o) {
    float amax = 0.0f;
    for (int64_t i = 0; i < cols; ++i) amax = std::max(amax, std::fabs(w[o * stride + i]));
    ASSERT_EQ(scales[o], amax / 127.0f) << "row " << o;
    bool saw_extreme = false;
    for (int64_t i = 0; i < cols; ++i) {
      const int8_t v = q[o * cols + i];
      ASSERT_GE(v, -127);
      saw_extreme = saw_extreme || v == 127 || v == -127;
      ASSERT_LE(std::fabs(static_cast<double>(w[o * stride + i]) - double{scales[o]} * v),
                0.5001 * scales[o])
          << "row " << o << " col " << i;
    }
    EXPECT_TRUE(saw_extreme) << "row " << o;
  }
}

// Quantising then multiplying through the public entry point, at each level: the product is
// that of the dequantised matrix.
TEST_P(MatMulLevelTest, QuantizedMatMulMatchesDequantizedSums) {
  std::mt19937 rng(25);
  ThreadPool pool(2);
  ASSERT_TRUE(ForceIsaLevel(GetParam()).ok());
  for (DType type : {DType::kF32, DType::kBF16, DType::kF16}) {
    const int64_t rows = 150, cols = 70, batch = 3;
    TestWeights src = MakeWeights(rng, type, rows, cols, cols + 2);
    std::vector<int8_t> q(rows * cols);
    std::vector<float> scales(rows);
    QuantizeRowsInt8(src.matrix, q.data(), scales.data(), &pool);
    WeightMatrix w{q.data(), DType::kI8, rows, cols, cols};
    w.scales = scales.data();
    std::vector<float> x = RandomVector(rng, batch * cols), y(batch * rows);
    MatMul({x.data(), cols, w, y.data(), rows, batch, false}, &pool);
    for (int64_t b = 0; b < batch; ++b) {
      for (int64_t o = 0; o < rows; ++o) {
        double sum = 0.0, magnitude = 0.0, quantisation = 0.0;
        for (int64_t i = 0; i < cols; ++i) {
          const double xi = x[b * cols + i];
          const double p = xi * scales[o] * q[o * cols + i];
          sum += p;
          magnitude += std::fabs(p);
          // And the dequantised weight is close to the original.
          quantisation += std::fabs(xi) * std::fabs(src.exact[o * (cols + 2) + i] -
                                                    double{scales[o]} * q[o * cols + i]);
        }
        ASSERT_NEAR(y[b * rows + o], sum, 2e-6 * magnitude + 1e-30)
            << TypeName(type) << " " << IsaLevelName(GetParam()) << " at " << b << "," << o;
        ASSERT_LE(quantisation, 0.5001 * scales[o] * cols);
      }
    }
  }
  ASSERT_TRUE(ForceIsaLevel(SupportedIsaLevel()).ok());
}

}  // namespace
}  // namespace skein::kernels
