// Products with int8 activations (MatMulJob::int8_activations): the activation quantiser
// against its definition, every dot-product variant this CPU runs against the exact formula
// (in double) and the scalar reference, the public entry points (sharing, threads), the
// accuracy against the fp32-activation int8 product, and products over packed int8 panels.
#include <algorithm>
#include <cfenv>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "kernels/cpu/cpu_features.h"
#include "kernels/cpu/int8_panels_internal.h"
#include "kernels/cpu/kernel_table.h"
#include "kernels/cpu/kernels.h"
#include "kernels/cpu/thread_pool.h"

namespace skein::kernels {
namespace {

constexpr int64_t kBlock = kInt8ActivationBlock;
constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();
constexpr float kInf = std::numeric_limits<float>::infinity();

std::vector<float> RandomVector(std::mt19937& rng, size_t n, float lo = -1.0f, float hi = 1.0f) {
  std::uniform_real_distribution<float> dist(lo, hi);
  std::vector<float> v(n);
  for (float& x : v) x = dist(rng);
  return v;
}

int64_t Blocks(int64_t cols) { return (cols + kBlock - 1) / kBlock; }

// int8 weights: q uniform over [-127, 127] with both extremes in every row of two or more
// columns, scales of a realistic size, and row 2 (when there is one) with scale 0.
struct Int8Weights {
  std::vector<int8_t> q;
  std::vector<float> scales;
  WeightMatrix matrix;
};

Int8Weights RandomWeights(std::mt19937& rng, int64_t rows, int64_t cols, int64_t stride) {
  Int8Weights w;
  std::uniform_int_distribution<int> qdist(-127, 127);
  w.q.resize(rows * stride);
  for (int8_t& v : w.q) v = static_cast<int8_t>(qdist(rng));
  w.scales = RandomVector(rng, rows, 1e-3f, 2e-2f);
  for (int64_t o = 0; o < rows; ++o) {
    if (cols >= 2) {
      w.q[o * stride + (o % cols)] = 127;
      w.q[o * stride + ((o + 1) % cols)] = -127;
    }
  }
  if (rows > 2) w.scales[2] = 0.0f;
  w.matrix = {w.q.data(), DType::kI8, rows, cols, stride};
  w.matrix.scales = w.scales.data();
  return w;
}

// QuantizeActivationsInt8's output, owned.
struct Quantized {
  std::vector<int8_t> q;
  std::vector<float> scales;
  Int8ActivationRows rows;
};

Quantized Quantize(const std::vector<float>& x, int64_t ldx, int64_t batch, int64_t cols) {
  Quantized out;
  const int64_t ldq = Int8ActivationRowBytes(cols);
  out.q.assign(batch * ldq, 99);  // not a value the quantiser writes: all must be written
  out.scales.assign(batch * ldq / kBlock, -1.0f);
  QuantizeActivationsInt8(x.data(), ldx, batch, cols, out.q.data(), out.scales.data());
  out.rows = {out.q.data(), out.scales.data(), ldq};
  return out;
}

// The formula of kernels.h in double (exact but for the last rounding of each term), and the
// magnitude Σ_j sx·Σ_i |qx·qw| that bounds fp32 rounding.
struct Exact {
  double value;
  double magnitude;
};

Exact ExactProduct(const Quantized& xq, int64_t b, const Int8Weights& w, int64_t o) {
  const int64_t cols = w.matrix.cols;
  const int8_t* x = xq.rows.q + b * xq.rows.ldq;
  const float* sx = xq.rows.scales + b * (xq.rows.ldq / kBlock);
  const int8_t* row = w.q.data() + o * w.matrix.stride;
  double sum = 0.0, magnitude = 0.0;
  for (int64_t j = 0; j < Blocks(cols); ++j) {
    int64_t dot = 0, abs_dot = 0;
    for (int64_t i = j * kBlock; i < std::min(cols, (j + 1) * kBlock); ++i) {
      dot += int64_t{x[i]} * row[i];
      abs_dot += std::abs(int64_t{x[i]} * row[i]);
    }
    sum += static_cast<double>(sx[j]) * static_cast<double>(dot);
    magnitude += std::fabs(static_cast<double>(sx[j])) * static_cast<double>(abs_dot);
  }
  const double scale = w.scales[o];
  return {scale * sum, std::fabs(scale) * magnitude};
}

// The error bound of kernels.h: (2·blocks + 20) roundings of an fp32 sum, relative to the
// magnitude of its terms, plus the rounding of adding to y.
double Bound(int64_t cols, double magnitude, double y_init) {
  return (2.0 * static_cast<double>(Blocks(cols)) + 20.0) * std::ldexp(1.0, -24) *
             (magnitude + std::fabs(y_init)) +
         1e-37;
}

// ---- QuantizeActivationsInt8 ----

// The definition, written the plain way: nearbyint in the default rounding mode (to nearest,
// ties to even) of x / scale.
void CheckQuantizedRow(const float* x, int64_t cols, const int8_t* q, const float* scales) {
  const int64_t ldq = Int8ActivationRowBytes(cols);
  ASSERT_EQ(ldq % 64, 0);
  ASSERT_GE(ldq, cols);
  ASSERT_LT(ldq, cols + 64);
  ASSERT_EQ(std::fegetround(), FE_TONEAREST);
  for (int64_t j = 0; j < ldq / kBlock; ++j) {
    float amax = 0.0f;
    bool finite = true;
    for (int64_t i = j * kBlock; i < std::min(cols, (j + 1) * kBlock); ++i) {
      finite = finite && std::isfinite(x[i]);
      amax = std::max(amax, std::fabs(x[i]));
    }
    const float scale = finite ? amax / 127.0f : kNaN;
    if (finite) {
      ASSERT_EQ(scales[j], scale) << "block " << j;
    } else {
      ASSERT_TRUE(std::isnan(scales[j])) << "block " << j;
    }
    for (int64_t i = j * kBlock; i < (j + 1) * kBlock; ++i) {
      int want = 0;
      if (i < cols && scale > 0.0f) {
        want = static_cast<int>(std::nearbyint(std::clamp(x[i] / scale, -127.0f, 127.0f)));
      }
      ASSERT_EQ(q[i], want) << "i=" << i << " x=" << (i < cols ? x[i] : 0.0f) << " scale=" << scale;
    }
  }
}

TEST(QuantizeActivationsInt8Test, RandomRowsFollowTheDefinition) {
  std::mt19937 rng(31);
  for (int64_t cols : {1, 5, 31, 32, 33, 64, 65, 100, 768, 1000}) {
    const int64_t batch = 3, ldx = cols + 7;
    std::vector<float> x = RandomVector(rng, batch * ldx, -3.0f, 3.0f);
    // Rows of different sizes: each row (and block) has its own scale.
    for (int64_t i = 0; i < cols; ++i) x[ldx + i] *= 1e-3f;
    const Quantized xq = Quantize(x, ldx, batch, cols);
    for (int64_t b = 0; b < batch; ++b) {
      CheckQuantizedRow(x.data() + b * ldx, cols, xq.q.data() + b * xq.rows.ldq,
                        xq.scales.data() + b * (xq.rows.ldq / kBlock));
    }
  }
}

TEST(QuantizeActivationsInt8Test, KnownValuesTiesZerosAndTails) {
  // Block 0: amax 127, so scale 1 and q = round_half_even(x): ties go to even.
  // Block 1: all zeros. Block 2 (the tail, 3 values): amax 2.54, scale 0.02.
  std::vector<float> x(67, 0.0f);
  const float block0[] = {127.0f, -127.0f, 0.5f, 1.5f, 2.5f, -0.5f, -1.5f, -2.5f, 3.49f, -3.51f};
  std::copy(std::begin(block0), std::end(block0), x.begin());
  x[64] = 2.54f;
  x[65] = -1.27f;
  x[66] = 0.01f;
  const Quantized xq = Quantize(x, 67, 1, 67);
  ASSERT_EQ(xq.rows.ldq, 128);
  EXPECT_EQ(xq.scales[0], 1.0f);
  EXPECT_EQ(xq.scales[1], 0.0f);
  EXPECT_EQ(xq.scales[2], 2.54f / 127.0f);
  EXPECT_EQ(xq.scales[3], 0.0f);  // padding
  const int want0[] = {127, -127, 0, 2, 2, 0, -2, -2, 3, -4};
  for (int i = 0; i < 10; ++i) EXPECT_EQ(xq.q[i], want0[i]) << i;
  for (int i = 10; i < 64; ++i) EXPECT_EQ(xq.q[i], 0) << i;
  EXPECT_EQ(xq.q[64], 127);
  EXPECT_EQ(xq.q[65], -64);  // -63.5 rounds to even
  EXPECT_EQ(xq.q[66], 0);    // 0.5 rounds to even
  for (int i = 67; i < 128; ++i) EXPECT_EQ(xq.q[i], 0) << i;
}

// NaN or ±inf anywhere in a block: scale NaN, q 0; the other blocks are unaffected. A block
// whose scale underflows to 0 is all zeros; a subnormal scale still gives q in range.
TEST(QuantizeActivationsInt8Test, NonFiniteAndTinyBlocks) {
  std::vector<float> x(160, 1.0f);
  x[3] = kNaN;
  x[40] = kInf;
  x[70] = -kInf;
  for (int i = 96; i < 128; ++i) x[i] = 1e-44f;                       // amax / 127 underflows to 0
  for (int i = 128; i < 160; ++i) x[i] = (i % 2 ? 1e-37f : -3e-38f);  // subnormal scale
  const Quantized xq = Quantize(x, 160, 1, 160);
  EXPECT_TRUE(std::isnan(xq.scales[0]));
  EXPECT_TRUE(std::isnan(xq.scales[1]));
  EXPECT_TRUE(std::isnan(xq.scales[2]));
  EXPECT_EQ(xq.scales[3], 0.0f);
  for (int i = 0; i < 128; ++i) EXPECT_EQ(xq.q[i], 0) << i;
  EXPECT_GT(xq.scales[4], 0.0f);
  for (int i = 128; i < 160; ++i) {
    EXPECT_EQ(xq.q[i], i % 2 ? 127 : -static_cast<int>(std::nearbyint(3e-38f / xq.scales[4]))) << i;
  }
  CheckQuantizedRow(x.data() + 128, 32, xq.q.data() + 128, xq.scales.data() + 4);
}

// ---- The dot-product variants ----

// Each variant is a test of its own: one this CPU or build lacks is recorded as skipped, by
// name.
class Int8DotTest : public ::testing::TestWithParam<Int8DotIsa> {
 protected:
  void SetUp() override {
    if (!Int8DotRuns(GetParam())) {
      GTEST_SKIP() << "int8 dot-product variant " << Int8DotIsaName(GetParam())
                   << " is not supported by this CPU or build";
    }
  }
  const Int8DotTable& table() const { return *Int8DotFor(GetParam()); }
};

INSTANTIATE_TEST_SUITE_P(Isa, Int8DotTest,
                         ::testing::Values(Int8DotIsa::kScalar, Int8DotIsa::kAvx2,
                                           Int8DotIsa::kAvxVnni, Int8DotIsa::kAvx512Vnni),
                         [](const ::testing::TestParamInfo<Int8DotIsa>& info) {
                           return std::string(Int8DotIsaName(info.param));
                         });

// A variant's own quantiser (where it has one) gives QuantizeActivationsInt8's result bit for
// bit: random rows of every tail length, ties, values that clamp, subnormal and underflowing
// scales, NaN, ±inf, -0.
TEST_P(Int8DotTest, QuantizerMatchesThePortableOne) {
  if (table().quantize == nullptr) GTEST_SKIP() << "uses QuantizeActivationsInt8 itself";
  std::mt19937 rng(38);
  for (int64_t cols = 1; cols <= 200; cols += (cols < 70 ? 1 : 29)) {
    const int64_t batch = 3, ldx = cols + 1;
    std::vector<float> x = RandomVector(rng, batch * ldx, -5.0f, 5.0f);
    std::uniform_int_distribution<int64_t> at(0, batch * ldx - 1);
    // Ties: amax 127 in a block makes the scale 1, so halves are ties.
    for (int k = 0; k < 8; ++k) x[at(rng)] = static_cast<float>(at(rng) % 20) - 9.5f;
    x[at(rng)] = 127.0f;
    x[at(rng)] = -0.0f;
    x[at(rng)] = 3e38f;
    x[at(rng)] = 1e-40f;
    if (cols % 5 == 0) x[at(rng)] = kNaN;
    if (cols % 7 == 0) x[at(rng)] = -kInf;
    if (cols % 3 == 0) {
      for (int64_t i = 0; i < std::min<int64_t>(cols, 32); ++i) x[i] = 1e-44f * (i % 3);
    }
    const Quantized want = Quantize(x, ldx, batch, cols);
    std::vector<int8_t> q(want.q.size(), 99);
    std::vector<float> scales(want.scales.size(), -1.0f);
    table().quantize(x.data(), ldx, batch, cols, q.data(), scales.data());
    ASSERT_EQ(q, want.q) << Int8DotIsaName(GetParam()) << " cols " << cols;
    for (size_t j = 0; j < scales.size(); ++j) {
      ASSERT_EQ(std::memcmp(&scales[j], &want.scales[j], sizeof(float)), 0)
          << Int8DotIsaName(GetParam()) << " cols " << cols << " scale " << j << ": " << scales[j]
          << " vs " << want.scales[j];
    }
  }
}

// Random activations, `batch` rows of `cols` at stride ldx, scaled per row to very different
// sizes, every fourth row zero.
std::vector<float> RowsOfMixedSizes(std::mt19937& rng, int64_t batch, int64_t ldx, int64_t cols) {
  std::vector<float> x = RandomVector(rng, batch * ldx);
  for (int64_t b = 0; b < batch; ++b) {
    const float size = b % 4 == 1 ? 0.0f : std::ldexp(1.0f, static_cast<int>(b % 7) * 3 - 9);
    for (int64_t i = 0; i < cols; ++i) x[b * ldx + i] *= size;
  }
  return x;
}

// Runs `table` over a random product and checks every output against the exact formula and
// the scalar reference, and that nothing outside the output was written.
void CheckProduct(const Int8DotTable& table, int64_t batch, int64_t rows, int64_t cols,
                  bool accumulate, std::mt19937& rng) {
  const int64_t stride = cols + (cols % 3);  // sometimes padded rows
  const int64_t ldx = cols + 2, ldy = rows + 3;
  Int8Weights w = RandomWeights(rng, rows, cols, stride);
  std::vector<float> x = RowsOfMixedSizes(rng, batch, ldx, cols);
  const std::vector<float> y_init = RandomVector(rng, batch * ldy);
  std::vector<float> got = y_init, want = y_init;
  const Quantized xq = Quantize(x, ldx, batch, cols);
  MatMulJob job{x.data(), ldx, w.matrix, got.data(), ldy, batch, accumulate};
  job.int8_activations = true;
  table.matmul(job, xq.rows, 0, batch, 0, rows);
  job.y = want.data();
  ScalarInt8Dot()->matmul(job, xq.rows, 0, batch, 0, rows);
  for (int64_t b = 0; b < batch; ++b) {
    for (int64_t o = 0; o < ldy; ++o) {
      const int64_t at = b * ldy + o;
      if (o >= rows) {
        ASSERT_EQ(got[at], y_init[at]) << "wrote outside the output";
        continue;
      }
      const Exact exact = ExactProduct(xq, b, w, o);
      const double y0 = accumulate ? y_init[at] : 0.0;
      const double bound = Bound(cols, exact.magnitude, y0);
      ASSERT_NEAR(got[at], y0 + exact.value, bound)
          << Int8DotIsaName(table.isa) << " batch " << batch << " rows " << rows << " cols " << cols
          << " at b=" << b << " o=" << o;
      ASSERT_NEAR(got[at], want[at], 2.0 * bound)
          << Int8DotIsaName(table.isa) << " against the scalar reference, batch " << batch
          << " rows " << rows << " cols " << cols << " at b=" << b << " o=" << o;
    }
  }
}

// Batch sizes of decode, of the register tiles' edges and of prefill; rows that end mid-tile;
// K that ends mid-block, on a block, mid-step; y added to and overwritten.
TEST_P(Int8DotTest, MatchesExactFormulaAndReference) {
  std::mt19937 rng(32);
  for (int64_t batch : {1, 2, 3, 5, 8}) {
    for (int64_t rows : {1, 3, 8, 13, 67}) {
      for (int64_t cols : {1, 31, 32, 33, 64, 95, 129, 300}) {
        CheckProduct(table(), batch, rows, cols, (batch + rows) % 2 == 0, rng);
      }
    }
  }
  for (int64_t batch : {17, 64, 130}) {
    CheckProduct(table(), batch, 70, 200, batch == 64, rng);
  }
  CheckProduct(table(), 2, 150, 3072, true, rng);
}

// All of a block at ±127 against weights at ±127: the largest partial sums there are (a pair
// of products is 2·127² = 32258, vpmaddubsw's int16 limit is 32767). Integer-valued x with
// block scale 1 and power-of-two weight scales make every step exact, so the result must be
// the integer dot product times the scale exactly.
TEST_P(Int8DotTest, ExtremesAreExact) {
  const int64_t cols = 96, rows = 6;
  std::vector<int8_t> q(rows * cols);
  std::vector<float> scales(rows);
  for (int64_t o = 0; o < rows; ++o) {
    scales[o] = std::ldexp(1.0f, static_cast<int>(o) - 3);
    for (int64_t i = 0; i < cols; ++i) {
      // Rows 0-1: all +127 / all -127; the rest: sign patterns of different periods.
      const bool negative = o == 1 || (o >= 2 && (i % (o + 1)) == 0);
      q[o * cols + i] = negative ? -127 : 127;
    }
  }
  WeightMatrix w{q.data(), DType::kI8, rows, cols, cols};
  w.scales = scales.data();
  const int64_t batch = 3;
  std::vector<float> x(batch * cols);
  for (int64_t i = 0; i < cols; ++i) {
    x[i] = 127.0f;
    x[cols + i] = -127.0f;
    x[2 * cols + i] = i % 3 == 0 ? -127.0f : 127.0f;
  }
  const Quantized xq = Quantize(x, cols, batch, cols);
  for (float s : xq.scales) ASSERT_TRUE(s == 1.0f || s == 0.0f);
  std::vector<float> y(batch * rows, 0.5f);
  table().matmul({x.data(), cols, w, y.data(), rows, batch, true}, xq.rows, 0, batch, 0, rows);
  for (int64_t b = 0; b < batch; ++b) {
    for (int64_t o = 0; o < rows; ++o) {
      int64_t dot = 0;
      for (int64_t i = 0; i < cols; ++i) {
        dot += static_cast<int64_t>(x[b * cols + i]) * q[o * cols + i];
      }
      EXPECT_EQ(y[b * rows + o], 0.5f + static_cast<float>(dot) * scales[o])
          << Int8DotIsaName(GetParam()) << " b=" << b << " o=" << o;
    }
  }
}

// A non-finite activation makes every output of its row NaN, and only of its row; a row of
// weights with scale NaN (QuantizeRowsInt8's non-finite rows) makes its outputs NaN.
TEST_P(Int8DotTest, NonFiniteInputsGiveNaN) {
  std::mt19937 rng(33);
  const int64_t batch = 4, rows = 11, cols = 100;
  Int8Weights w = RandomWeights(rng, rows, cols, cols);
  w.scales[5] = kNaN;
  std::vector<float> x = RandomVector(rng, batch * cols);
  x[1 * cols + 7] = kNaN;
  x[2 * cols + 99] = kInf;  // in the tail block
  x[3 * cols + 40] = -kInf;
  const Quantized xq = Quantize(x, cols, batch, cols);
  for (bool accumulate : {false, true}) {
    std::vector<float> y(batch * rows, 1.0f);
    table().matmul({x.data(), cols, w.matrix, y.data(), rows, batch, accumulate}, xq.rows, 0, batch,
                   0, rows);
    for (int64_t b = 0; b < batch; ++b) {
      for (int64_t o = 0; o < rows; ++o) {
        const float v = y[b * rows + o];
        if (b > 0 || o == 5) {
          EXPECT_TRUE(std::isnan(v)) << Int8DotIsaName(GetParam()) << " b=" << b << " o=" << o;
        } else {
          EXPECT_TRUE(std::isfinite(v)) << Int8DotIsaName(GetParam()) << " o=" << o;
        }
      }
    }
  }
}

// Zero activations and zero weight scales give exact zeros (y unchanged when adding); an
// empty K gives zeros or leaves y.
TEST_P(Int8DotTest, ZerosAndEmptyContraction) {
  std::mt19937 rng(34);
  const int64_t batch = 3, rows = 9, cols = 77;
  Int8Weights w = RandomWeights(rng, rows, cols, cols);  // row 2 has scale 0
  std::vector<float> x = RandomVector(rng, batch * cols);
  std::fill(x.begin() + cols, x.begin() + 2 * cols, 0.0f);
  const Quantized xq = Quantize(x, cols, batch, cols);
  std::vector<float> y = RandomVector(rng, batch * rows);
  const std::vector<float> y_init = y;
  table().matmul({x.data(), cols, w.matrix, y.data(), rows, batch, true}, xq.rows, 0, batch, 0,
                 rows);
  for (int64_t b = 0; b < batch; ++b) {
    for (int64_t o = 0; o < rows; ++o) {
      if (b == 1 || o == 2) {
        EXPECT_EQ(y[b * rows + o], y_init[b * rows + o]) << "b=" << b << " o=" << o;
      }
    }
  }
  std::fill(y.begin(), y.end(), 5.0f);
  table().matmul({x.data(), cols, w.matrix, y.data(), rows, batch, false}, xq.rows, 0, batch, 0,
                 rows);
  for (int64_t o = 0; o < rows; ++o) EXPECT_EQ(y[rows + o], 0.0f) << o;
  EXPECT_EQ(y[2], 0.0f);

  WeightMatrix empty = w.matrix;
  empty.cols = 0;
  const Quantized none = Quantize(x, cols, batch, 0);
  std::fill(y.begin(), y.end(), 5.0f);
  table().matmul({x.data(), cols, empty, y.data(), rows, batch, true}, none.rows, 0, batch, 0,
                 rows);
  for (float v : y) EXPECT_EQ(v, 5.0f);
  table().matmul({x.data(), cols, empty, y.data(), rows, batch, false}, none.rows, 0, batch, 0,
                 rows);
  for (float v : y) EXPECT_EQ(v, 0.0f);
}

// ---- The public entry points ----

// MatMul with int8_activations is QuantizeActivationsInt8 followed by the active variant,
// bit for bit, on one thread or several; MatMulMany quantises shared and separate x alike.
TEST(Int8ActivationsMatMulTest, ThreadedManyEqualsTheActiveVariant) {
  std::mt19937 rng(35);
  ThreadPool pool(3);
  const Int8DotTable& active = ActiveInt8Dot();
  std::printf("active int8 dot-product variant: %s\n", Int8DotIsaName(active.isa).data());
  for (int64_t batch : {1, 5, 70}) {
    const int64_t cols = 200;
    std::vector<Int8Weights> weights;
    for (int64_t rows : {300, 17, 130}) weights.push_back(RandomWeights(rng, rows, cols, cols));
    std::vector<float> x1 = RandomVector(rng, batch * cols), x2 = RandomVector(rng, batch * cols);
    // Jobs 0 and 1 share x1; job 2 reads x2.
    const std::vector<const std::vector<float>*> xs = {&x1, &x1, &x2};
    std::vector<std::vector<float>> threaded(3), single(3), direct(3);
    std::vector<MatMulJob> jobs;
    for (size_t j = 0; j < 3; ++j) {
      const int64_t rows = weights[j].matrix.rows;
      threaded[j].assign(batch * rows, 0.0f);
      single[j].assign(batch * rows, 0.0f);
      direct[j].assign(batch * rows, 0.0f);
      MatMulJob job{xs[j]->data(), cols, weights[j].matrix, threaded[j].data(), rows, batch, false};
      job.int8_activations = true;
      jobs.push_back(job);
    }
    MatMulMany(jobs, &pool);
    for (size_t j = 0; j < 3; ++j) {
      MatMulJob job = jobs[j];
      job.y = single[j].data();
      MatMul(job, nullptr);
      EXPECT_EQ(threaded[j], single[j]) << "batch " << batch << " job " << j;
      const Quantized xq = Quantize(*xs[j], cols, batch, cols);
      job.y = direct[j].data();
      active.matmul(job, xq.rows, 0, batch, 0, job.w.rows);
      EXPECT_EQ(single[j], direct[j]) << "batch " << batch << " job " << j;
    }
  }
}

// The flag means nothing for weights that are not int8; forcing the scalar level makes the
// scalar variant active.
TEST(Int8ActivationsMatMulTest, FlagIgnoredForFloatWeightsAndFollowsTheLevel) {
  std::mt19937 rng(36);
  const int64_t rows = 40, cols = 64;
  std::vector<float> w = RandomVector(rng, rows * cols), x = RandomVector(rng, 2 * cols);
  std::vector<float> a(2 * rows), b(2 * rows);
  MatMulJob job{x.data(), cols, {w.data(), DType::kF32, rows, cols, cols}, a.data(), rows,
                2,        false};
  MatMul(job, nullptr);
  job.int8_activations = true;
  job.y = b.data();
  MatMul(job, nullptr);
  EXPECT_EQ(a, b);

  ASSERT_TRUE(ForceIsaLevel(IsaLevel::kScalar).ok());
  EXPECT_EQ(ActiveInt8Dot().isa, Int8DotIsa::kScalar);
  ASSERT_TRUE(ForceIsaLevel(SupportedIsaLevel()).ok());
  if (SupportedIsaLevel() >= IsaLevel::kAvx2) {
    EXPECT_NE(ActiveInt8Dot().isa, Int8DotIsa::kScalar);
  }
}

// How far quantising the activations moves the product from the fp32-activation int8
// product (the same weights): relative L2 error over random data of two shapes, uniform and
// Gaussian with a few outlier channels (as in RWKV's residual stream). Per-block scales keep
// it near the rounding of 8-bit values: about (amax/127)/√12 / rms of the output's norm, with
// amax and rms those of a block.
TEST(Int8ActivationsMatMulTest, AccuracyAgainstFp32Activations) {
  std::mt19937 rng(37);
  for (int64_t cols : {768, 3072}) {
    for (int kind = 0; kind < 2; ++kind) {
      const int64_t rows = 256, batch = 4;
      Int8Weights w = RandomWeights(rng, rows, cols, cols);
      std::vector<float> x(batch * cols);
      if (kind == 0) {
        x = RandomVector(rng, batch * cols);
      } else {
        std::normal_distribution<float> normal(0.0f, 1.0f);
        for (float& v : x) v = normal(rng);
        for (int64_t b = 0; b < batch; ++b) {
          for (int64_t i = 5; i < cols; i += 200) x[b * cols + i] *= 20.0f;
        }
      }
      std::vector<float> exact(batch * rows), approx(batch * rows);
      MatMulJob job{x.data(), cols, w.matrix, exact.data(), rows, batch, false};
      MatMul(job, nullptr);
      job.int8_activations = true;
      job.y = approx.data();
      MatMul(job, nullptr);
      double err = 0.0, norm = 0.0;
      for (size_t i = 0; i < exact.size(); ++i) {
        err += (static_cast<double>(approx[i]) - exact[i]) * (approx[i] - exact[i]);
        norm += static_cast<double>(exact[i]) * exact[i];
      }
      const double relative = std::sqrt(err / norm);
      std::printf("K=%lld %s activations: relative L2 error %.5f\n", static_cast<long long>(cols),
                  kind == 0 ? "uniform" : "gaussian+outliers", relative);
      // Measured here: about 0.004 (uniform) and 0.010-0.011 (Gaussian with outliers, whose
      // blocks round the other 31 values on the outlier's coarser grid).
      EXPECT_LT(relative, kind == 0 ? 6e-3 : 2e-2) << "K=" << cols << " kind " << kind;
      EXPECT_GT(relative, 0.0);
    }
  }
}

// ---- Packed int8 panels ----

// Int8Weights packed into panels (the row-major copy kept for the references).
struct PackedInt8 {
  std::vector<uint32_t> words;
  WeightMatrix matrix;  // panels set, data null
};

PackedInt8 Pack(const Int8Weights& w) {
  PackedInt8 p;
  // Not a word PackInt8Panels writes for a q of 0 (0x80808080): all must be written.
  p.words.assign(Int8PanelWords(w.matrix.rows, w.matrix.cols), 0x5a5a5a5au);
  PackInt8Panels(w.matrix, p.words.data());
  p.matrix = w.matrix;
  p.matrix.data = nullptr;
  p.matrix.stride = w.matrix.cols;
  p.matrix.panels = p.words.data();
  return p;
}

// Every byte of every panel: q + 128, and 128 (q = 0) past the matrix's rows and columns;
// packing on a pool gives the same words.
TEST(Int8PanelsTest, PackingLayout) {
  std::mt19937 rng(40);
  ThreadPool pool(3);
  for (int64_t rows : {1, 47, 48, 49, 100, 1000}) {
    for (int64_t cols : {1, 3, 4, 5, 33}) {
      const Int8Weights w = RandomWeights(rng, rows, cols, cols + 2);
      const PackedInt8 p = Pack(w);
      const int64_t groups = (cols + 3) / 4;
      ASSERT_EQ(p.words.size(), static_cast<size_t>((rows + 47) / 48 * 48 * groups));
      for (int64_t o = 0; o < (rows + 47) / 48 * 48; ++o) {
        for (int64_t k = 0; k < groups * 4; ++k) {
          const uint32_t word = p.words[(o / 48) * groups * 48 + (k / 4) * 48 + o % 48];
          const int byte = static_cast<int>((word >> (8 * (k % 4))) & 0xff);
          const int q = o < rows && k < cols ? w.q[o * (cols + 2) + k] : 0;
          ASSERT_EQ(byte, q + 128)
              << "rows " << rows << " cols " << cols << " o=" << o << " k=" << k;
        }
      }
      std::vector<uint32_t> threaded(p.words.size(), 0);
      PackInt8Panels(w.matrix, threaded.data(), &pool);
      EXPECT_EQ(threaded, p.words) << "rows " << rows << " cols " << cols;
    }
  }
}

// The corrections are −128 times each block's sum of qx, padding blocks included (0).
TEST(Int8PanelsTest, CorrectionsAreTheBlockSums) {
  std::mt19937 rng(41);
  const int64_t batch = 3, cols = 100;
  std::vector<float> x = RandomVector(rng, batch * cols);
  const Quantized xq = Quantize(x, cols, batch, cols);
  const int64_t blocks = xq.rows.ldq / kBlock;
  std::vector<int32_t> c(batch * blocks, 7);
  Int8PanelCorrections(xq.rows.q, xq.rows.ldq, batch, c.data());
  for (int64_t b = 0; b < batch; ++b) {
    for (int64_t j = 0; j < blocks; ++j) {
      int32_t sum = 0;
      for (int64_t i = 0; i < kBlock; ++i) sum += xq.q[b * xq.rows.ldq + j * kBlock + i];
      EXPECT_EQ(c[b * blocks + j], -128 * sum) << "b=" << b << " j=" << j;
    }
  }
}

// The panel kernels this machine runs (the VNNI kernel where accelerated, the portable loop
// always), over output ranges that start on a panel and may end inside one, against the
// exact formula and the row-major scalar reference; nothing outside the range is written.
void CheckPanelProduct(bool vnni, int64_t batch, int64_t rows, int64_t cols, int64_t o_begin,
                       int64_t o_end, bool accumulate, std::mt19937& rng) {
  const int64_t ldx = cols + 2, ldy = rows + 3;
  const Int8Weights w = RandomWeights(rng, rows, cols, cols);
  const PackedInt8 packed = Pack(w);
  std::vector<float> x = RowsOfMixedSizes(rng, batch, ldx, cols);
  const std::vector<float> y_init = RandomVector(rng, batch * ldy);
  std::vector<float> got = y_init, want = y_init;
  Quantized xq = Quantize(x, ldx, batch, cols);
  std::vector<int32_t> corrections(batch * xq.rows.ldq / kBlock);
  Int8PanelCorrections(xq.rows.q, xq.rows.ldq, batch, corrections.data());
  xq.rows.corrections = corrections.data();
  MatMulJob job{x.data(), ldx, packed.matrix, got.data(), ldy, batch, accumulate};
  job.int8_activations = true;
  if (vnni) {
    MatMulInt8PanelsAvx512Vnni(job, xq.rows, o_begin, o_end);
  } else {
    MatMulInt8PanelsPortable(job, &xq.rows, o_begin, o_end);
  }
  MatMulJob reference = job;
  reference.w = w.matrix;
  reference.y = want.data();
  ScalarInt8Dot()->matmul(reference, xq.rows, 0, batch, o_begin, o_end);
  const char* name = vnni ? "avx512_vnni panels" : "portable panels";
  for (int64_t b = 0; b < batch; ++b) {
    for (int64_t o = 0; o < ldy; ++o) {
      const int64_t at = b * ldy + o;
      if (o < o_begin || o >= o_end) {
        ASSERT_EQ(got[at], y_init[at]) << name << " wrote outside the output at o=" << o;
        continue;
      }
      const Exact exact = ExactProduct(xq, b, w, o);
      const double y0 = accumulate ? y_init[at] : 0.0;
      const double bound = Bound(cols, exact.magnitude, y0);
      ASSERT_NEAR(got[at], y0 + exact.value, bound)
          << name << " batch " << batch << " rows " << rows << " cols " << cols << " at b=" << b
          << " o=" << o;
      ASSERT_NEAR(got[at], want[at], 2.0 * bound)
          << name << " against the scalar reference, batch " << batch << " rows " << rows
          << " cols " << cols << " at b=" << b << " o=" << o;
    }
  }
}

std::vector<bool> PanelKernelsHere() {
  std::vector<bool> kernels = {false};
  if (Int8PanelsAccelerated()) {
    kernels.push_back(true);
  } else {
    std::printf("no AVX512-VNNI panel kernel here (CPU or level): only the portable loop runs\n");
  }
  return kernels;
}

// Batches of decode and of every register-tile edge (4 rows), several passes of K (8 blocks
// each) for batches above a tile, several blocks of rows for long batches; last panels of 1,
// 16, 17, 32 and 47 rows; K that ends mid-group, mid-block and on a block; ranges that start
// on a later panel.
TEST(Int8PanelsTest, MatchesExactFormulaAndReference) {
  std::mt19937 rng(42);
  for (bool vnni : PanelKernelsHere()) {
    for (int64_t batch : {1, 2, 3, 4, 5, 9}) {
      for (int64_t rows : {1, 16, 17, 32, 47, 48, 95}) {
        for (int64_t cols : {1, 3, 31, 32, 33, 95, 300}) {
          CheckPanelProduct(vnni, batch, rows, cols, 0, rows, (batch + rows) % 2 == 0, rng);
        }
      }
    }
    CheckPanelProduct(vnni, 6, 150, 600, 48, 130, true, rng);
    CheckPanelProduct(vnni, 70, 100, 1000, 0, 100, false, rng);
    CheckPanelProduct(vnni, 2, 64, 3072, 48, 64, true, rng);
    // Long batches go in blocks of rows (256 KiB of activations): 64-row blocks at K = 4096
    // and the 16-row minimum with a last block of 5 rows at K = 20000.
    CheckPanelProduct(vnni, 150, 96, 4096, 0, 96, false, rng);
    CheckPanelProduct(vnni, 37, 50, 20000, 0, 50, true, rng);
  }
}

// The fp32-activation kernel over panels (where accelerated) against the exact product in
// double and the row-major scalar kernel: batches of decode and of the 6-row tile's edges,
// last panels of every width, K of 0 and ending mid-group (x past K must not be read: the
// rows carry NaN there), ranges starting on a later panel, y added to and overwritten.
TEST(Int8PanelsTest, Fp32ActivationsMatchExactProductAndReference) {
  if (!Int8PanelsAccelerated()) GTEST_SKIP() << "no AVX512-VNNI panel kernels here";
  std::mt19937 rng(44);
  auto check = [&](int64_t batch, int64_t rows, int64_t cols, int64_t o_begin, int64_t o_end,
                   bool accumulate) {
    const int64_t ldy = rows + 3;
    const Int8Weights w = RandomWeights(rng, rows, cols, cols);
    const PackedInt8 packed = Pack(w);
    // Three NaN after each row's K: a read past K would turn its outputs into NaN.
    const int64_t ldx = cols + 3;
    std::vector<float> x = RandomVector(rng, batch * ldx);
    for (int64_t b = 0; b < batch; ++b) {
      for (int64_t k = cols; k < ldx; ++k) x[b * ldx + k] = kNaN;
    }
    const std::vector<float> y_init = RandomVector(rng, batch * ldy);
    std::vector<float> got = y_init, want = y_init;
    MatMulJob job{x.data(), ldx, packed.matrix, got.data(), ldy, batch, accumulate};
    MatMulInt8PanelsFp32Avx512(job, o_begin, o_end);
    MatMulJob reference = job;
    reference.w = w.matrix;
    reference.y = want.data();
    ScalarKernels()->matmul(reference, 0, batch, o_begin, o_end);
    for (int64_t b = 0; b < batch; ++b) {
      for (int64_t o = 0; o < ldy; ++o) {
        const int64_t at = b * ldy + o;
        if (o < o_begin || o >= o_end) {
          ASSERT_EQ(got[at], y_init[at]) << "wrote outside the output at o=" << o;
          continue;
        }
        double exact = 0, magnitude = 0;
        for (int64_t k = 0; k < cols; ++k) {
          const double term = static_cast<double>(x[b * ldx + k]) * w.q[o * cols + k];
          exact += term;
          magnitude += std::fabs(term);
        }
        const double y0 = accumulate ? y_init[at] : 0.0;
        const double scale = w.scales[o];
        const double bound =
            (cols + 4) * std::ldexp(std::fabs(scale) * magnitude + std::fabs(y0), -24) + 1e-37;
        ASSERT_NEAR(got[at], y0 + scale * exact, bound)
            << "batch " << batch << " rows " << rows << " cols " << cols << " b=" << b
            << " o=" << o;
        ASSERT_NEAR(got[at], want[at], 2 * bound) << "against the scalar kernel, b=" << b;
      }
    }
  };
  for (int64_t batch : {1, 2, 3, 5, 6, 7, 13}) {
    for (int64_t rows : {1, 16, 17, 32, 47, 48, 95}) {
      for (int64_t cols : {0, 1, 2, 3, 4, 5, 33, 130}) {
        check(batch, rows, cols, 0, rows, (batch + cols) % 2 == 0);
      }
    }
  }
  check(4, 150, 300, 48, 130, true);
  check(1, 64, 3072, 0, 64, false);
}

// Weights and activations at ±127 everywhere (the largest sums the offset form reaches:
// 255·127 per product): integer-valued x with block scale 1 and power-of-two weight scales
// make every step exact, so the result must be the integer product times the scale exactly.
TEST(Int8PanelsTest, ExtremesAreExact) {
  const int64_t cols = 96, rows = 6, batch = 3;
  Int8Weights w;
  w.q.resize(rows * cols);
  w.scales.resize(rows);
  for (int64_t o = 0; o < rows; ++o) {
    w.scales[o] = std::ldexp(1.0f, static_cast<int>(o) - 3);
    for (int64_t i = 0; i < cols; ++i) {
      const bool negative = o == 1 || (o >= 2 && (i % (o + 1)) == 0);
      w.q[o * cols + i] = negative ? -127 : 127;
    }
  }
  w.matrix = {w.q.data(), DType::kI8, rows, cols, cols};
  w.matrix.scales = w.scales.data();
  const PackedInt8 packed = Pack(w);
  std::vector<float> x(batch * cols);
  for (int64_t i = 0; i < cols; ++i) {
    x[i] = 127.0f;
    x[cols + i] = -127.0f;
    x[2 * cols + i] = i % 3 == 0 ? -127.0f : 127.0f;
  }
  std::vector<float> y(batch * rows, 0.5f);
  MatMulJob job{x.data(), cols, packed.matrix, y.data(), rows, batch, true};
  job.int8_activations = true;
  MatMul(job, nullptr);
  for (int64_t b = 0; b < batch; ++b) {
    for (int64_t o = 0; o < rows; ++o) {
      int64_t dot = 0;
      for (int64_t i = 0; i < cols; ++i)
        dot += static_cast<int64_t>(x[b * cols + i]) * w.q[o * cols + i];
      EXPECT_EQ(y[b * rows + o], 0.5f + static_cast<float>(dot) * w.scales[o])
          << "b=" << b << " o=" << o;
    }
  }
}

// Through MatMul / MatMulMany: packed panels give the row-major int8 product (within the
// bound of each), on one thread and several alike bit for bit; a non-finite activation makes
// its row NaN and a NaN scale its output; fp32 activations over panels give the row-major
// fp32-activation product; and at a forced avx2 level the portable loop gives the same.
TEST(Int8PanelsTest, PublicEntryPoints) {
  std::mt19937 rng(43);
  ThreadPool pool(3);
  const int64_t rows = 300, cols = 520;
  Int8Weights w = RandomWeights(rng, rows, cols, cols);
  w.scales[7] = kNaN;
  const PackedInt8 packed = Pack(w);
  for (int64_t batch : {1, 5, 40}) {
    std::vector<float> x = RandomVector(rng, batch * cols);
    if (batch > 1) x[cols + 3] = kInf;
    std::vector<float> row_major(batch * rows), single(batch * rows), threaded(batch * rows);
    MatMulJob job{x.data(), cols, w.matrix, row_major.data(), rows, batch, false};
    job.int8_activations = true;
    MatMul(job, nullptr);
    job.w = packed.matrix;
    job.y = single.data();
    MatMul(job, nullptr);
    job.y = threaded.data();
    MatMulMany({&job, 1}, &pool);
    EXPECT_EQ(std::memcmp(single.data(), threaded.data(), single.size() * sizeof(float)), 0)
        << "batch " << batch;
    const Quantized xq = Quantize(x, cols, batch, cols);
    for (int64_t b = 0; b < batch; ++b) {
      for (int64_t o = 0; o < rows; ++o) {
        const float got = single[b * rows + o];
        if (o == 7 || b == 1) {
          EXPECT_TRUE(std::isnan(got)) << "batch " << batch << " b=" << b << " o=" << o;
          continue;
        }
        const Exact exact = ExactProduct(xq, b, w, o);
        const double bound = Bound(cols, exact.magnitude, 0.0);
        ASSERT_NEAR(got, exact.value, bound) << "batch " << batch << " b=" << b << " o=" << o;
        ASSERT_NEAR(got, row_major[b * rows + o], 2.0 * bound) << "b=" << b << " o=" << o;
      }
    }
    // One MatMulMany call in which a panel job and a row-major job share x (one quantised
    // copy, with the panels' corrections): each equals its own call, bit for bit.
    {
      std::vector<float> shared_panels(batch * rows), shared_rows(batch * rows);
      MatMulJob panel_job = job, row_job = job;
      panel_job.y = shared_panels.data();
      row_job.w = w.matrix;
      row_job.y = shared_rows.data();
      const MatMulJob both[] = {row_job, panel_job};
      MatMulMany(both, &pool);
      EXPECT_EQ(std::memcmp(shared_panels.data(), single.data(), single.size() * sizeof(float)), 0)
          << "batch " << batch;
      EXPECT_EQ(std::memcmp(shared_rows.data(), row_major.data(), row_major.size() * sizeof(float)),
                0)
          << "batch " << batch;
    }
    // fp32 activations over the panels (their own kernel, or the portable loop) and over the
    // rows.
    std::vector<float> fp32_rows(batch * rows), fp32_panels(batch * rows);
    job.int8_activations = false;
    job.y = fp32_panels.data();
    MatMul(job, &pool);
    job.w = w.matrix;
    job.y = fp32_rows.data();
    MatMul(job, &pool);
    for (size_t i = 0; i < fp32_rows.size(); ++i) {
      if (std::isnan(fp32_rows[i])) {
        EXPECT_TRUE(std::isnan(fp32_panels[i])) << i;
      } else if (std::isinf(fp32_rows[i])) {
        EXPECT_EQ(fp32_panels[i], fp32_rows[i]) << i;
      } else {
        // Two fp32 sums of the same terms in different orders: within K roundings each of the
        // magnitude of the terms.
        const int64_t b = static_cast<int64_t>(i) / rows, o = static_cast<int64_t>(i) % rows;
        double magnitude = 0.0;
        for (int64_t k = 0; k < cols; ++k) {
          magnitude += std::fabs(static_cast<double>(x[b * cols + k]) * w.q[o * cols + k]);
        }
        magnitude *= std::fabs(w.scales[o]);
        EXPECT_NEAR(fp32_panels[i], fp32_rows[i], 2.0 * cols * std::ldexp(magnitude, -24)) << i;
      }
    }
    // A forced avx2 level: no panel kernel, the same product from the portable loop.
    if (SupportedIsaLevel() >= IsaLevel::kAvx2) {
      ASSERT_TRUE(ForceIsaLevel(IsaLevel::kAvx2).ok());
      EXPECT_FALSE(Int8PanelsAccelerated());
      std::vector<float> portable(batch * rows);
      job.w = packed.matrix;
      job.int8_activations = true;
      job.y = portable.data();
      MatMul(job, &pool);
      ASSERT_TRUE(ForceIsaLevel(SupportedIsaLevel()).ok());
      for (size_t i = 0; i < portable.size(); ++i) {
        if (std::isnan(single[i])) {
          EXPECT_TRUE(std::isnan(portable[i])) << i;
        } else {
          const Exact exact =
              ExactProduct(xq, static_cast<int64_t>(i) / rows, w, static_cast<int64_t>(i) % rows);
          EXPECT_NEAR(portable[i], single[i], 2.0 * Bound(cols, exact.magnitude, 0.0)) << i;
        }
      }
    }
  }
}

}  // namespace
}  // namespace skein::kernels
