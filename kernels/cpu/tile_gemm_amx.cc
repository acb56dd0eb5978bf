// The tile kernel (tile_gemm_impl.h) on Intel AMX. Compiled with -mamx-tile -mamx-bf16 only
// (no vector flags: the code around the tile instructions is plain C++); called only where
// AmxTilesAvailable(), which includes Linux's permission for the tile data.
#include "kernels/cpu/tile_products_internal.h"

#if defined(__AMX_TILE__) && defined(__AMX_BF16__)
#include <immintrin.h>

#include "kernels/cpu/tile_gemm_impl.h"

namespace skein::kernels {
namespace {

// The tile instructions name their registers in the instruction itself, so each tile number
// is spelled out.
class AmxTiles {
 public:
  AmxTiles() {
    static const TileConfig config = PanelTileConfig();
    _tile_loadconfig(&config);
  }
  ~AmxTiles() { _tile_release(); }
  AmxTiles(const AmxTiles&) = delete;
  AmxTiles& operator=(const AmxTiles&) = delete;

  void ZeroAccumulators() {
    _tile_zero(0);
    _tile_zero(1);
    _tile_zero(2);
  }
  void LoadWeights(const void* b0, const void* b1, const void* b2, int64_t stride) {
    // GCC 12's tile loads do not tell the compiler that they read memory: make sure the
    // stores before them (the copied last step of k) are done.
    asm volatile("" ::: "memory");
    _tile_loadd(4, b0, stride);
    _tile_loadd(5, b1, stride);
    _tile_loadd(6, b2, stride);
  }
  void MultiplyActivations(const void* a, int64_t stride) {
    asm volatile("" ::: "memory");  // as in LoadWeights
    _tile_loadd(3, a, stride);
    _tile_dpbf16ps(0, 3, 4);
    _tile_dpbf16ps(1, 3, 5);
    _tile_dpbf16ps(2, 3, 6);
  }
  void StoreAccumulator(int s, float* out) {
    switch (s) {
      case 0:
        _tile_stored(0, out, kTileRowBytes);
        break;
      case 1:
        _tile_stored(1, out, kTileRowBytes);
        break;
      default:
        _tile_stored(2, out, kTileRowBytes);
        break;
    }
  }
};

}  // namespace

bool HaveAmxTileKernel() { return true; }

void MatMulBf16PanelsAmx(const MatMulJob& job, const uint32_t* split, int parts, int64_t o_begin,
                         int64_t o_end) {
  TilePanelProduct<AmxTiles>(job, split, parts, o_begin, o_end);
}

}  // namespace skein::kernels

#else

namespace skein::kernels {
bool HaveAmxTileKernel() { return false; }
void MatMulBf16PanelsAmx(const MatMulJob&, const uint32_t*, int, int64_t, int64_t) {}
}  // namespace skein::kernels

#endif
