// The tile kernel (tile_gemm_impl.h) on a software model of an AMX tile unit, so that the
// kernel's indexing (panels read as tiles, partial steps of k, batch and panel edges) and the
// code that feeds it are tested on CPUs without AMX. Portable and slow: tests only.
//
// The model follows the architectural definition of the instructions it stands for in what
// the kernel relies on: LDTILECFG (zeroes every tile), TILELOADD (rows past the configured
// ones, and bytes past a row's configured width, read as zero), TILESTORED, TILEZERO and
// TDPBF16PS, whose products of bf16 pairs are summed into fp32 accumulators with subnormal
// inputs read as zero and subnormal results flushed to zero. The order of the fp32 additions
// within one TDPBF16PS is not something the kernel relies on, and hardware generations
// describe it differently: the model adds a[m][2k]·b[k][2n], then a[m][2k+1]·b[k][2n+1], to
// c[m][n] for k in order. So tests hold the model and the hardware to the bounds of exact
// sums, never to each other's bits.
#include <cmath>
#include <cstring>

#include "kernels/cpu/tile_gemm_impl.h"
#include "kernels/cpu/tile_products_internal.h"

namespace skein::kernels {
namespace {

constexpr int kTiles = 8;

float FlushSubnormal(float v) { return std::fpclassify(v) == FP_SUBNORMAL ? 0.0f * v : v; }

float Bf16Value(uint16_t h) {
  const uint32_t bits = static_cast<uint32_t>(h) << 16;
  float f;
  std::memcpy(&f, &bits, sizeof(f));
  return FlushSubnormal(f);
}

class ModelTiles {
 public:
  ModelTiles() : config_(PanelTileConfig()) { std::memset(data_, 0, sizeof(data_)); }

  void ZeroAccumulators() {
    for (int t = 0; t < 3; ++t) std::memset(data_[t], 0, sizeof(data_[t]));
  }
  void LoadWeights(const void* b0, const void* b1, const void* b2, int64_t stride) {
    Load(4, b0, stride);
    Load(5, b1, stride);
    Load(6, b2, stride);
  }
  void MultiplyActivations(const void* a, int64_t stride) {
    Load(3, a, stride);
    DotBf16(0, 3, 4);
    DotBf16(1, 3, 5);
    DotBf16(2, 3, 6);
  }
  void StoreAccumulator(int s, float* out) {
    for (int r = 0; r < config_.rows[s]; ++r) {
      std::memcpy(reinterpret_cast<unsigned char*>(out) + r * kTileRowBytes, data_[s] + r * 64,
                  config_.colsb[s]);
    }
  }

 private:
  void Load(int t, const void* base, int64_t stride) {
    std::memset(data_[t], 0, sizeof(data_[t]));
    for (int r = 0; r < config_.rows[t]; ++r) {
      std::memcpy(data_[t] + r * 64, static_cast<const unsigned char*>(base) + r * stride,
                  config_.colsb[t]);
    }
  }
  void DotBf16(int c, int a, int b) {
    for (int m = 0; m < config_.rows[c]; ++m) {
      float* acc = reinterpret_cast<float*>(data_[c] + m * 64);
      const uint16_t* arow = reinterpret_cast<const uint16_t*>(data_[a] + m * 64);
      for (int k = 0; k < config_.colsb[a] / 4; ++k) {
        const uint16_t* brow = reinterpret_cast<const uint16_t*>(data_[b] + k * 64);
        for (int n = 0; n < config_.colsb[c] / 4; ++n) {
          float v = acc[n];
          v = FlushSubnormal(v + Bf16Value(arow[2 * k]) * Bf16Value(brow[2 * n]));
          v = FlushSubnormal(v + Bf16Value(arow[2 * k + 1]) * Bf16Value(brow[2 * n + 1]));
          acc[n] = v;
        }
      }
    }
  }

  TileConfig config_;
  alignas(64) unsigned char data_[kTiles][1024];
};

}  // namespace

void MatMulBf16PanelsTileModel(const MatMulJob& job, const uint32_t* split, int parts,
                               int64_t o_begin, int64_t o_end) {
  TilePanelProduct<ModelTiles>(job, split, parts, o_begin, o_end);
}

}  // namespace skein::kernels
