// The tile products behind tile_products.h, internal to the kernels library: the layout of
// split activations, the portable splitter, and the tile kernel over packed bf16 panels on
// AMX (tile_gemm_amx.cc) and on a software model of the tile unit (tile_gemm_model.cc).
#ifndef SKEIN_KERNELS_CPU_TILE_PRODUCTS_INTERNAL_H_
#define SKEIN_KERNELS_CPU_TILE_PRODUCTS_INTERNAL_H_

#include <cstdint>

#include "kernels/cpu/kernels.h"

namespace skein::kernels {

// Rows of activations per tile (and the unit the split buffer pads batches to).
constexpr int64_t kTileRows = 16;

// Words of split activations for `batch` rows of `cols` inputs in `parts` parts. Part p of
// row b is a row of bf16 pairs (low half = even k) at
//   (p · RoundUp(batch, kTileRows) + b) · Bf16PairStride(cols)
// words; pairs past the row's end and rows past the batch hold zeros.
int64_t Bf16PartsWords(int64_t batch, int64_t cols, int parts);

// Writes rows [b_begin, b_end) of job.x split into `parts` bf16 parts (tile_products.h; one
// part = bf16_activations rounding) into `out` (Bf16PartsWords(job.batch, job.w.cols, parts)
// words), padding included; the call whose b_end is job.batch also zeroes the padding rows.
// Portable code; pieces of the batch may be split on different threads.
void SplitToBf16Parts(const MatMulJob& job, int parts, int64_t b_begin, int64_t b_end,
                      uint32_t* out);

// Whether this build has the AMX kernel (the CPU must still be checked: AmxTilesAvailable).
bool HaveAmxTileKernel();

// Output rows [o_begin, o_end) of `job` (packed bf16 panels; o_begin a multiple of
// kBf16PanelRows) for every batch row, reading the activations from `split`
// (SplitToBf16Parts of the whole batch in `parts` parts) or splitting them here when it is
// null. The AMX version needs AmxTilesAvailable(); the model version runs anywhere, slowly.
void MatMulBf16PanelsAmx(const MatMulJob& job, const uint32_t* split, int parts, int64_t o_begin,
                         int64_t o_end);
void MatMulBf16PanelsTileModel(const MatMulJob& job, const uint32_t* split, int parts,
                               int64_t o_begin, int64_t o_end);

}  // namespace skein::kernels

#endif  // SKEIN_KERNELS_CPU_TILE_PRODUCTS_INTERNAL_H_
