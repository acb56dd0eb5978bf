// Internal to kernels/cuda's .cu files: what a Context holds, and error conversions. Needs
// the CUDA headers, so no public header includes it.
#ifndef SKEIN_KERNELS_CUDA_CONTEXT_INTERNAL_H_
#define SKEIN_KERNELS_CUDA_CONTEXT_INTERNAL_H_

#include <cublasLt.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <map>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "kernels/cuda/context.h"

namespace skein::cuda {

// A cuBLASLt product prepared once per shape: descriptors and the chosen algorithm.
struct GemmPlan {
  cublasLtMatmulDesc_t desc = nullptr;
  cublasLtMatrixLayout_t a = nullptr, b = nullptr, c = nullptr;
  cublasLtMatmulAlgo_t algo{};
};

// (type, weight layout, m, n, k).
using GemmKey = std::tuple<int, int, int64_t, int64_t, int64_t>;

struct Context::Impl {
  int device = 0;
  int compute_major = 0;
  // Launch kernels with programmatic stream serialization (set_overlapped_launches).
  bool overlapped = false;
  std::string name;
  cudaStream_t stream = nullptr;
  cublasLtHandle_t lt = nullptr;
  void* workspace = nullptr;
  size_t workspace_bytes = 0;
  std::map<GemmKey, GemmPlan> gemm_plans;
  // Device scratch for the hi and lo halves of fp32 x on cuBLASLt (gemm.h). A larger one
  // replaces it when a product needs more; the replaced ones stay allocated until the context
  // goes, because a captured graph may still point at them (growth doubles: they add up to
  // less than the current one).
  void* split = nullptr;
  size_t split_bytes = 0;
  std::vector<void*> retired_splits;
};

inline Status CudaStatus(cudaError_t rc, const char* what) {
  if (rc == cudaSuccess) return Status();
  return Status::Error(std::string(what) + ": " + cudaGetErrorString(rc));
}

inline Status BlasStatus(cublasStatus_t rc, const char* what) {
  if (rc == CUBLAS_STATUS_SUCCESS) return Status();
  return Status::Error(std::string(what) + ": cuBLAS status " +
                       std::to_string(static_cast<int>(rc)));
}

inline cudaStream_t StreamOf(Context& ctx) { return ctx.impl()->stream; }

// Launches `kernel` on the context's stream; with overlapped launches on, as a programmatic
// dependent launch. Every kernel launched here must call WaitForPrevious()
// (device_math.cuh) before touching memory an earlier kernel of the stream writes or reads,
// and call it even if it needs nothing from before (so that its completion still implies its
// predecessors').
template <typename... KernelArgs, typename... Args>
Status Launch(Context& ctx, const char* name, void (*kernel)(KernelArgs...), dim3 grid, dim3 block,
              Args&&... args) {
  cudaLaunchConfig_t config = {};
  config.gridDim = grid;
  config.blockDim = block;
  config.dynamicSmemBytes = 0;
  config.stream = StreamOf(ctx);
  cudaLaunchAttribute attribute[1];
  attribute[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
  attribute[0].val.programmaticStreamSerializationAllowed = ctx.impl()->overlapped ? 1 : 0;
  config.attrs = attribute;
  config.numAttrs = 1;
  return CudaStatus(cudaLaunchKernelEx(&config, kernel, std::forward<Args>(args)...), name);
}

}  // namespace skein::cuda

#endif  // SKEIN_KERNELS_CUDA_CONTEXT_INTERNAL_H_
