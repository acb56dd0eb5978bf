// The tile products (tile_products.h): the activation splitter, the tile kernel on the
// software model of the tile unit (any CPU) and on AMX (where the CPU has it), and the
// dispatch from MatMul, all against exact fp64 sums.
#include "kernels/cpu/tile_products.h"

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <limits>
#include <random>
#include <tuple>
#include <vector>

#include "base/float16.h"
#include "gtest/gtest.h"
#include "kernels/cpu/bf16_panels_internal.h"
#include "kernels/cpu/cpu_features.h"
#include "kernels/cpu/kernels.h"
#include "kernels/cpu/thread_pool.h"
#include "kernels/cpu/tile_products_internal.h"

namespace skein::kernels {
namespace {

float Bf16Round(float v) { return base::Bf16ToF32(base::F32ToBf16(v)); }

// A bf16 matrix (rows × cols, row stride cols + 3) packed into panels, with its exact values.
struct PackedWeights {
  std::vector<uint16_t> bf16;
  std::vector<double> exact;
  std::vector<uint32_t> panels;
  WeightMatrix matrix;
};

PackedWeights MakePacked(std::mt19937& rng, int64_t rows, int64_t cols) {
  std::normal_distribution<float> dist(0.0f, 1.0f);
  PackedWeights w;
  const int64_t stride = cols + 3;
  w.bf16.resize(rows * stride);
  w.exact.resize(rows * stride);
  for (size_t i = 0; i < w.bf16.size(); ++i) {
    w.bf16[i] = base::F32ToBf16(dist(rng));
    w.exact[i] = base::Bf16ToF32(w.bf16[i]);
  }
  WeightMatrix m{w.bf16.data(), DType::kBF16, rows, cols, stride};
  w.panels.resize(Bf16PanelWords(rows, cols));
  PackBf16Panels(m, w.panels.data());
  w.matrix = m;
  w.matrix.data = nullptr;  // products must read the panels only
  w.matrix.panels = w.panels.data();
  return w;
}

std::vector<float> RandomValues(std::mt19937& rng, int64_t n) {
  std::normal_distribution<float> dist(0.0f, 1.0f);
  std::vector<float> v(n);
  for (float& x : v) x = dist(rng);
  return v;
}

// Runs `product` over the whole job and checks every output against the fp64 sum of x·w
// (x rounded to bf16 when `rounded`) within 2e-6 of Σ|x·w| (what reordering fp32 sums can
// change; the bound of every other exact product path), and that nothing past the outputs
// changed.
template <class Product>
void CheckAgainstExactSums(std::mt19937& rng, int64_t batch, int64_t rows, int64_t cols,
                           bool rounded, bool accumulate, Product product) {
  SCOPED_TRACE(::testing::Message() << "batch " << batch << " rows " << rows << " cols " << cols
                                    << " rounded " << rounded << " accumulate " << accumulate);
  PackedWeights w = MakePacked(rng, rows, cols);
  const int64_t ldx = cols + 1, ldy = rows + 2, stride = cols + 3;
  const std::vector<float> x = RandomValues(rng, batch * ldx);
  const std::vector<float> y_init = RandomValues(rng, batch * ldy);
  std::vector<float> y = y_init;
  MatMulJob job{x.data(), ldx, w.matrix, y.data(), ldy, batch, accumulate, rounded};
  product(job);
  for (int64_t b = 0; b < batch; ++b) {
    for (int64_t o = 0; o < ldy; ++o) {
      const float got = y[b * ldy + o];
      if (o >= rows) {
        ASSERT_EQ(got, y_init[b * ldy + o]) << "wrote outside the output at " << b << "," << o;
        continue;
      }
      double sum = accumulate ? y_init[b * ldy + o] : 0.0;
      double magnitude = std::fabs(sum);
      for (int64_t i = 0; i < cols; ++i) {
        const float xi = rounded ? Bf16Round(x[b * ldx + i]) : x[b * ldx + i];
        const double p = static_cast<double>(xi) * w.exact[o * stride + i];
        sum += p;
        magnitude += std::fabs(p);
      }
      ASSERT_NEAR(got, sum, 2e-6 * magnitude + 1e-30) << "at " << b << "," << o;
    }
  }
}

// Shapes on both sides of every edge of the kernel: batches around the 16-row tile, outputs
// around the 16-row slice and 48-row panel, k around the 32-value step (odd k included).
const std::tuple<int64_t, int64_t, int64_t> kShapes[] = {
    {1, 48, 32},  {1, 100, 70},  {2, 97, 1},   {15, 16, 31}, {16, 48, 64},
    {17, 49, 33}, {5, 144, 257}, {33, 50, 77}, {3, 5, 600},  {40, 96, 1030},
};

TEST(SplitToBf16Parts, ThreePartsCarryEveryFp32Value) {
  std::mt19937 rng(1);
  const int64_t batch = 19, cols = 37, ldx = 40;
  std::vector<float> x = RandomValues(rng, batch * ldx);
  x[0] = 3.4e38f;  // rounds to infinity in bf16: the leading part must truncate instead
  x[1] = -std::numeric_limits<float>::infinity();
  x[2] = std::numeric_limits<float>::quiet_NaN();
  x[3] = 1.0f + 0x1p-23f;  // the last bit lands in the third part
  x[4] = 0.0f;
  WeightMatrix w{nullptr, DType::kBF16, 1, cols, cols};
  MatMulJob job{x.data(), ldx, w, nullptr, 1, batch};
  const int parts = kExactBf16Parts;
  const int64_t words = Bf16PartsWords(batch, cols, parts);
  const int64_t stride = Bf16PairStride(cols), padded = 32;
  ASSERT_EQ(words, parts * padded * stride);
  std::vector<uint32_t> out(words, 0xDEADBEEF);
  // In two pieces, as threads do; the second one zeroes the padding rows.
  SplitToBf16Parts(job, parts, 0, 16, out.data());
  SplitToBf16Parts(job, parts, 16, batch, out.data());
  auto part = [&](int p, int64_t b, int64_t i) {
    const uint32_t word = out[(p * padded + b) * stride + i / 2];
    return base::Bf16ToF32(static_cast<uint16_t>(i % 2 == 0 ? word : word >> 16));
  };
  for (int64_t b = 0; b < padded; ++b) {
    for (int64_t i = 0; i < 2 * stride; ++i) {
      if (b >= batch || i >= cols) {
        for (int p = 0; p < parts; ++p) ASSERT_EQ(part(p, b, i), 0.0f) << b << "," << i;
        continue;
      }
      const float v = x[b * ldx + i];
      if (std::isnan(v)) {
        EXPECT_TRUE(std::isnan(part(0, b, i)));
        continue;
      }
      if (std::isinf(v)) {
        EXPECT_EQ(part(0, b, i), v);
        EXPECT_EQ(part(1, b, i), 0.0f);
        continue;
      }
      const double sum = static_cast<double>(part(0, b, i)) + part(1, b, i) + part(2, b, i);
      ASSERT_LE(std::fabs(sum - v), std::ldexp(std::fabs(v), -24)) << b << "," << i;
      // Each part is the bf16 of what the ones before it left.
      EXPECT_EQ(part(1, b, i), Bf16Round(v - part(0, b, i))) << b << "," << i;
    }
  }
  // One part is plain rounding to bf16.
  std::vector<uint32_t> one(Bf16PartsWords(batch, cols, 1));
  SplitToBf16Parts(job, 1, 0, batch, one.data());
  for (int64_t i = 5; i < cols; ++i) {
    const uint32_t word = one[3 * stride + i / 2];
    EXPECT_EQ(static_cast<uint16_t>(i % 2 == 0 ? word : word >> 16),
              base::F32ToBf16(x[3 * ldx + i]));
  }
}

TEST(TileModel, ExactAndRoundedProductsMatchExactSums) {
  std::mt19937 rng(2);
  for (auto [batch, rows, cols] : kShapes) {
    for (bool rounded : {false, true}) {
      for (bool accumulate : {false, true}) {
        CheckAgainstExactSums(rng, batch, rows, cols, rounded, accumulate, [](const MatMulJob& j) {
          // In two pieces of whole panels, the way threads split a product.
          const int64_t half =
              (j.w.rows / 2 + kBf16PanelRows - 1) / kBf16PanelRows * kBf16PanelRows;
          const int parts = j.bf16_activations ? 1 : kExactBf16Parts;
          MatMulBf16PanelsTileModel(j, nullptr, parts, 0, std::min(half, j.w.rows));
          if (half < j.w.rows) MatMulBf16PanelsTileModel(j, nullptr, parts, half, j.w.rows);
        });
      }
    }
  }
}

// Restores the default policy when a test ends.
class TilePolicyTest : public ::testing::Test {
 protected:
  void TearDown() override { SetTilePolicy(TilePolicy{}); }
};

// MatMul with the tiles in the policy: the threaded call splits the activations once, over
// the pool, and hands them to the kernel's pieces.
TEST_F(TilePolicyTest, MatMulOnTheModelMatchesExactSums) {
  SetTilePolicy({.min_batch_exact = 1, .min_batch_rounded = 1, .emulate = true});
  std::mt19937 rng(3);
  ThreadPool pool(2);
  for (auto [batch, rows, cols] : kShapes) {
    for (bool rounded : {false, true}) {
      CheckAgainstExactSums(rng, batch, rows, cols, rounded, batch % 2 == 1,
                            [&](const MatMulJob& j) { MatMul(j, &pool); });
    }
  }
}

// The policy's thresholds decide, per product, between the tiles and the other kernels. Told
// apart by subnormal activations: the tile unit reads them as zero (so its products are 0),
// while the fp32 kernels (and the portable bf16 loop) keep them.
TEST_F(TilePolicyTest, ThresholdsChooseTheKernel) {
  std::mt19937 rng(4);
  PackedWeights w = MakePacked(rng, 96, 200);
  const int64_t batch = 20;
  std::vector<float> x = RandomValues(rng, batch * 200);
  for (float& v : x) v *= 1e-39f;
  auto run = [&](bool rounded, const TilePolicy& policy,
                 MatMulJob::Tiles tiles = MatMulJob::Tiles::kPolicy) {
    SetTilePolicy(policy);
    std::vector<float> y(batch * 96, 1.0f);
    MatMulJob job{x.data(), 200, w.matrix, y.data(), 96, batch, false, rounded};
    job.tiles = tiles;
    MatMul(job, nullptr);
    int64_t zeros = 0;
    for (float v : y) zeros += v == 0.0f;
    return zeros;
  };
  const int64_t all = batch * 96, at = batch, above = batch + 1;
  for (bool rounded : {false, true}) {
    SCOPED_TRACE(rounded ? "bf16 activations" : "exact");
    EXPECT_EQ(run(rounded, {.min_batch_exact = at, .min_batch_rounded = at, .emulate = true}), all);
    // The vector bf16 kernel (vdpbf16ps) reads subnormals as zero too: no telling it apart.
    if (rounded && Bf16PanelsAccelerated()) continue;
    const TilePolicy off =
        rounded ? TilePolicy{.min_batch_exact = 1, .min_batch_rounded = above, .emulate = true}
                : TilePolicy{.min_batch_exact = above, .min_batch_rounded = 1, .emulate = true};
    EXPECT_LT(run(rounded, off), all / 10);
    // A product's own choice overrides the policy both ways.
    EXPECT_EQ(run(rounded, off, MatMulJob::Tiles::kUse), all);
    EXPECT_LT(run(rounded, {.min_batch_exact = 1, .min_batch_rounded = 1, .emulate = true},
                  MatMulJob::Tiles::kAvoid),
              all / 10);
    EXPECT_LT(
        run(rounded,
            {.min_batch_exact = kNoTileBatch, .min_batch_rounded = kNoTileBatch, .emulate = true}),
        all / 10);
  }
}

TEST_F(TilePolicyTest, AmxMatchesExactSums) {
  const CpuFeatures& f = DetectCpuFeatures();
  std::printf("amx_tile=%d amx_bf16=%d, tile data permitted=%d\n", f.amx_tile, f.amx_bf16,
              f.amx_tile ? RequestAmxTileData() : 0);
  if (!AmxTilesAvailable()) GTEST_SKIP() << "no AMX-BF16 tiles on this CPU, build or kernel";
  if (ActiveIsaLevel() != IsaLevel::kAvx512) GTEST_SKIP() << "ISA level forced below avx512";
  SetTilePolicy({.min_batch_exact = 1, .min_batch_rounded = 1, .emulate = false});
  std::mt19937 rng(5);
  ThreadPool pool(2);
  for (auto [batch, rows, cols] : kShapes) {
    for (bool rounded : {false, true}) {
      CheckAgainstExactSums(rng, batch, rows, cols, rounded, batch % 2 == 0,
                            [&](const MatMulJob& j) { MatMul(j, &pool); });
      CheckAgainstExactSums(rng, batch, rows, cols, rounded, false,
                            [&](const MatMulJob& j) { MatMul(j, nullptr); });
    }
  }
}

}  // namespace
}  // namespace skein::kernels
