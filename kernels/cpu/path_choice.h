// Choosing a product path by measurement rather than by assumption (issue: a path that is
// faster on one CPU can be slower on another). The engine times its candidates on the
// model's own matrices at load and keeps what pays off on this machine.
//
// The candidates: products on AMX tiles against the vector kernels (tile_products.h), and
// rounding activations to bf16 in the large products (MatMulJob::
// bf16_activations, asked for with --bf16-activations). On an AMD EPYC (Zen 5) it runs
// prefill and batches about 1.5× faster; on an Intel Xeon with AMX it measured slower in
// every cell. So the flag means "allowed": kept only where it measures faster here.
#ifndef SKEIN_KERNELS_CPU_PATH_CHOICE_H_
#define SKEIN_KERNELS_CPU_PATH_CHOICE_H_

#include <cstdint>
#include <vector>

#include "absl/types/span.h"
#include "kernels/cpu/kernels.h"
#include "kernels/cpu/thread_pool.h"
#include "kernels/cpu/tile_products.h"

namespace skein::kernels {

// One batch size's timing of a product with exact (fp32) and bf16-rounded activations.
struct Bf16ActivationTiming {
  int64_t batch = 0;
  double exact_seconds = 0;
  double bf16_seconds = 0;
};

// Times `w` (bf16 weights, packed or not) at each batch size with deterministic activations,
// both ways, best of `repeats` after one warm-up each. Uses `pool` (may be null) as the
// engine does. Takes about 2·repeats products per batch size.
std::vector<Bf16ActivationTiming> TimeBf16Activations(const WeightMatrix& w,
                                                      absl::Span<const int64_t> batches,
                                                      ThreadPool* pool, int repeats = 3);

// The rule: rounding pays off only if it is at least 5% faster at every batch size timed
// (a path that loses anywhere could make some workload slower than the default).
bool Bf16ActivationsPayOff(absl::Span<const Bf16ActivationTiming> timings);

// ---- Tiles (tile_products.h) ----

// One batch size's timing of a product over packed panels on the tiles and on the vector
// kernels, with fp32 (exact) or bf16-rounded activations.
struct TileTiming {
  int64_t batch = 0;
  bool bf16_activations = false;
  double vector_seconds = 0;
  double tile_seconds = 0;
};

// Times `w` (bf16 weights packed in panels) at each batch size on the tile unit (AMX, or the
// software model when the policy emulates it) and on the vector kernels, best of `repeats`
// after a warm-up, interleaved. Each timed product says which path it takes
// (MatMulJob::tiles): the process's policy, and the products others run meanwhile, are left
// alone.
std::vector<TileTiming> TimeTileProducts(const WeightMatrix& w, absl::Span<const int64_t> batches,
                                         bool bf16_activations, ThreadPool* pool, int repeats = 3);

// The rule: the smallest timed batch from which the tiles are faster at that batch and at
// every larger one timed; kNoTileBatch when there is none (batches between two timed sizes
// go with the larger one's side, so a product never runs on the path that lost there).
int64_t TileMinBatch(absl::Span<const TileTiming> timings);

// What ChooseTilePolicy decided and the timings behind it.
struct TileChoice {
  TilePolicy policy;
  std::vector<TileTiming> timings;  // empty: nothing timed (no AMX here)
};

// Once per process: where AMX tiles are available, times them against the vector kernels on
// `w` (bf16 panels: the first model's largest per-layer matrix) at batches 1 to 256, and sets
// the tile policy to the result; products with bf16_activations are timed too, by the first
// call that asks for them (until then they stay off the tiles). Without AMX the policy keeps
// the tiles off. Later calls time nothing already timed and return the choice in force.
// Thread-safe.
TileChoice ChooseTilePolicy(const WeightMatrix& w, bool bf16_activations, ThreadPool* pool);

}  // namespace skein::kernels

#endif  // SKEIN_KERNELS_CPU_PATH_CHOICE_H_
