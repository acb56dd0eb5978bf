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
#include <string_view>

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

// ---- Products with int8 activations (MatMulJob::int8_activations) ----
// Their SIMD versions need integer dot-product instructions that are extensions of the ISA
// levels rather than levels of their own (AVX-VNNI extends avx2, AVX512-VNNI extends avx512,
// and neither implies the other), so they have a table of their own.
enum class Int8DotIsa {
  kScalar = 0,
  kAvx2 = 1,        // vpsignb + vpmaddubsw + vpmaddwd (level avx2)
  kAvxVnni = 2,     // vpsignb + 256-bit vpdpbusd (level avx2 with AVX-VNNI)
  kAvx512Vnni = 3,  // masked negation + 512-bit vpdpbusd (level avx512 with AVX512-VNNI)
};

// Activations quantised by QuantizeActivationsInt8: row b's qx at q + b·ldq, its block scales
// at scales + b·(ldq / kInt8ActivationBlock); ldq = Int8ActivationRowBytes(cols).
// For products over packed int8 panels, `corrections` also holds row b's
// Int8PanelCorrections at corrections + b·(ldq / kInt8ActivationBlock); null when no product
// of the call over panels needs them (other kernels ignore them).
struct Int8ActivationRows {
  const int8_t* q = nullptr;
  const float* scales = nullptr;
  int64_t ldq = 0;
  const int32_t* corrections = nullptr;
};

struct Int8DotTable {
  Int8DotIsa isa;
  // Rows [b_begin, b_end) × columns [o_begin, o_end) of `job` (int8 weights, all of K), with
  // x read from `xq` (job.x is not read).
  void (*matmul)(const MatMulJob& job, const Int8ActivationRows& xq, int64_t b_begin, int64_t b_end,
                 int64_t o_begin, int64_t o_end);
  // QuantizeActivationsInt8 with the same result bit for bit, faster; null: use that.
  void (*quantize)(const float* x, int64_t ldx, int64_t batch, int64_t cols, int8_t* q,
                   float* scales);
};

// Null where this build has no such variant (the CPU must still be checked: Int8DotRuns).
const Int8DotTable* ScalarInt8Dot();
const Int8DotTable* Avx2Int8Dot();
const Int8DotTable* AvxVnniInt8Dot();
const Int8DotTable* Avx512VnniInt8Dot();
const Int8DotTable* Int8DotFor(Int8DotIsa isa);
// Whether this build has `isa` and this CPU can run it.
bool Int8DotRuns(Int8DotIsa isa);
// The best variant that runs within ActiveIsaLevel().
const Int8DotTable& ActiveInt8Dot();
// "scalar", "avx2", "avx_vnni", "avx512_vnni".
std::string_view Int8DotIsaName(Int8DotIsa isa);

}  // namespace skein::kernels

#endif  // SKEIN_KERNELS_CPU_KERNEL_TABLE_H_
