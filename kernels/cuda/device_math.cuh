// Internal to kernels/cuda's .cu files: element access by dtype, activations and warp sums,
// shared so that a fused epilogue computes bit for bit what the stand-alone kernel does.
#ifndef SKEIN_KERNELS_CUDA_DEVICE_MATH_CUH_
#define SKEIN_KERNELS_CUDA_DEVICE_MATH_CUH_

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>

#include "kernels/cuda/gemm.h"

namespace skein::cuda {

__device__ __forceinline__ float LoadAs(const void* p, DType t, int64_t i) {
  switch (t) {
    case DType::kBF16:
      return __bfloat162float(static_cast<const __nv_bfloat16*>(p)[i]);
    case DType::kF16:
      return __half2float(static_cast<const __half*>(p)[i]);
    default:
      return static_cast<const float*>(p)[i];
  }
}

// Rounds to nearest even, as base/float16.h does on the host.
__device__ __forceinline__ void StoreAs(void* p, DType t, int64_t i, float v) {
  switch (t) {
    case DType::kBF16:
      static_cast<__nv_bfloat16*>(p)[i] = __float2bfloat16_rn(v);
      break;
    case DType::kF16:
      static_cast<__half*>(p)[i] = __float2half_rn(v);
      break;
    default:
      static_cast<float*>(p)[i] = v;
  }
}

// Accurate library functions (no fast-math intrinsics): spec §2.8 wants the decay exact.
__device__ __forceinline__ float Sigmoid(float x) { return 1.0f / (1.0f + expf(-x)); }

__device__ __forceinline__ float ApplyUnary(UnaryOp op, float v) {
  switch (op) {
    case UnaryOp::kTanh:
      return tanhf(v);
    case UnaryOp::kSigmoid:
      return Sigmoid(v);
    case UnaryOp::kSquaredRelu: {
      const float relu = fmaxf(v, 0.0f);
      return relu * relu;
    }
    default:
      return v;
  }
}

// Programmatic dependent launch (context.h: set_overlapped_launches). AllowNextLaunch lets the
// next kernel of the stream be scheduled once every block of this one has called it (so it can
// never take the place of a block of this kernel still waiting to run); WaitForPrevious blocks
// until the previous kernel has finished and its writes are visible. No-ops before sm_90, and
// when the launch was not a programmatic one.
__device__ __forceinline__ void AllowNextLaunch() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  cudaTriggerProgrammaticLaunchCompletion();
#endif
}

__device__ __forceinline__ void WaitForPrevious() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  cudaGridDependencySynchronize();
#endif
}

// Starts pulling the 128-byte line at p into L2 (weights, before WaitForPrevious).
__device__ __forceinline__ void PrefetchL2(const void* p) {
  asm volatile("prefetch.global.L2 [%0];" ::"l"(p));
}

__device__ __forceinline__ float WarpSum(float v) {
#pragma unroll
  for (int offset = 16; offset > 0; offset >>= 1) v += __shfl_xor_sync(0xffffffffu, v, offset);
  return v;
}

}  // namespace skein::cuda

#endif  // SKEIN_KERNELS_CUDA_DEVICE_MATH_CUH_
