// The per-ISA implementations behind kernels.h, as a table of function pointers.
//
// Each ISA variant lives in its own translation unit compiled with its own -m flags, so the
// binary runs on CPUs without them; the table for the active level is chosen at run time.
// Those translation units must not call inline functions shared with other units (the
// linker could keep the copy compiled with wider instructions), so they use intrinsics and
// their own file-local helpers only.
#ifndef SKEIN_KERNELS_CPU_KERNEL_TABLE_H_
#define SKEIN_KERNELS_CPU_KERNEL_TABLE_H_

#include <cstdint>

#include "kernels/cpu/cpu_features.h"
#include "kernels/cpu/kernels.h"

namespace skein::kernels {

struct KernelTable {
  IsaLevel level;
  // Computes the rows [b_begin, b_end) × columns [o_begin, o_end) of `job` (all of K).
  void (*matmul)(const MatMulJob& job, int64_t b_begin, int64_t b_end, int64_t o_begin,
                 int64_t o_end);
  void (*layer_norm)(const float* x, const float* gamma, const float* beta, int64_t n, float eps,
                     float* y);
  void (*l2_normalize)(const float* x, int64_t n, float min_norm, float* y);
  void (*wkv7_head)(const Wkv7HeadArgs& args);
  void (*wkv6_head)(const Wkv6HeadArgs& args);
  void (*exp)(const float* x, float* y, int64_t n);
  void (*sigmoid)(const float* x, float* y, int64_t n);
  void (*tanh)(const float* x, float* y, int64_t n);
};

// Null where this build or CPU has no such variant.
const KernelTable* ScalarKernels();
const KernelTable* Avx2Kernels();
const KernelTable* Avx512Kernels();

// The table for `level`, or null if the build has none.
const KernelTable* KernelsFor(IsaLevel level);

// The table for ActiveIsaLevel().
const KernelTable& ActiveKernels();

}  // namespace skein::kernels

#endif  // SKEIN_KERNELS_CPU_KERNEL_TABLE_H_
