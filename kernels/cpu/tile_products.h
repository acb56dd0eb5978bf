// Large products on matrix tile units: Intel AMX (TDPBF16PS, 16×16 fp32 accumulators fed by
// 16×32 bf16 tiles), run on the packed bf16 panels (kernels.h) where the CPU has AMX.
//
// Tiles multiply bf16 by bf16. With MatMulJob::bf16_activations the activations are rounded
// to bf16 once (one tile pass, as the vector bf16 kernel does). Without it the product stays
// exact: each fp32 activation is split into kExactBf16Parts bf16 parts,
//   x = p0 + p1 + p2 + r,  p_i = bf16(x - p0 - … - p_{i-1}),  |r| <= 2⁻²⁴·|x|,
// and every part runs through the tiles against the same weights (bf16 weights times bf16
// parts are exact in fp32), so the product differs from an fp32 one only by the order of its
// fp32 additions. Parts the tiles would flush as subnormal (|x| below about 1e-31) are lost.
//
// Which batches use the tiles is a policy, chosen by timing the tile and vector kernels on the
// model's matrices (path_choice.h), not assumed: on some shapes the vector kernels win at
// small batches, where a product is bound by reading the weights.
#ifndef SKEIN_KERNELS_CPU_TILE_PRODUCTS_H_
#define SKEIN_KERNELS_CPU_TILE_PRODUCTS_H_

#include <cstdint>
#include <limits>

namespace skein::kernels {

// bf16 parts per fp32 activation in exact tile products (see above).
constexpr int kExactBf16Parts = 3;

// A min_batch that no product reaches: the tiles are never used.
constexpr int64_t kNoTileBatch = std::numeric_limits<int64_t>::max();

struct TilePolicy {
  // Products over packed bf16 panels with at least this many rows (batch) run on the tiles:
  // exact ones (fp32 activations, kExactBf16Parts passes) and ones with bf16_activations.
  int64_t min_batch_exact = 16;
  int64_t min_batch_rounded = 16;
  // Tests only: run the tile kernel on a software model of the tile unit instead of AMX, on
  // any CPU (with panels), so that the code around it can be tested where there is no AMX.
  bool emulate = false;
};

// Whether this build has the AMX kernel, the CPU has AMX-TILE and AMX-BF16, the OS saves the
// tile state and Linux granted this process the tile data (RequestAmxTileData).
bool AmxTilesAvailable();

// The policy products follow from now on (process-wide; by default the values above). Not to
// be changed while products run.
void SetTilePolicy(const TilePolicy& policy);
TilePolicy GetTilePolicy();

}  // namespace skein::kernels

#endif  // SKEIN_KERNELS_CPU_TILE_PRODUCTS_H_
