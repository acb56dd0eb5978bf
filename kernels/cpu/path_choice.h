// Choosing a product path by measurement rather than by assumption (issue: a path that is
// faster on one CPU can be slower on another). The engine times its candidates on the
// model's own matrices at load and keeps what pays off on this machine.
//
// Today's candidate: rounding activations to bf16 in the large products (MatMulJob::
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

}  // namespace skein::kernels

#endif  // SKEIN_KERNELS_CPU_PATH_CHOICE_H_
