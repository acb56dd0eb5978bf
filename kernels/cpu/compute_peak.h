// The arithmetic peak of this CPU as the engine's product kernels can use it: the compute
// roofline of prefill and batched decode (bound by multiply-adds), as the read bandwidth
// (memory_bandwidth.h) is decode's. Each thread of the pool runs a loop of independent
// multiply-adds on registers only, long enough to reach full clock; the best of a few runs.
// Thread-safe.
#ifndef SKEIN_KERNELS_CPU_COMPUTE_PEAK_H_
#define SKEIN_KERNELS_CPU_COMPUTE_PEAK_H_

#include "kernels/cpu/thread_pool.h"

namespace skein::kernels {

struct ComputePeak {
  // FLOP/s (2 per multiply-add lane) of fp32 fused multiply-adds at the active ISA level
  // (ActiveIsaLevel: zmm or ymm), what products with fp32 activations run on; at the scalar
  // level, of a multiply and an add as the portable build compiles them (possibly SSE).
  double fp32_fma = 0;
  // FLOP/s of vdpbf16ps (2 per bf16 product), what products with bf16-rounded activations run
  // on; 0 where the active level has no AVX512-BF16.
  double bf16_dot = 0;
  // OP/s of vpdpbusd (2 per int8 product, a multiply and an add), what products with int8
  // activations run on at the avx512 level; 0 where the CPU has no AVX512-VNNI or the active
  // level is lower.
  double int8_dot = 0;
};

// Takes about 10 ms per kind on a current CPU. `pool` may be null (one thread).
ComputePeak MeasureComputePeak(ThreadPool* pool);

}  // namespace skein::kernels

#endif  // SKEIN_KERNELS_CPU_COMPUTE_PEAK_H_
