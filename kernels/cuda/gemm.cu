// Products: a GEMV kernel for decode-sized batches, cuBLASLt for the rest (gemm.h).
#include <cublasLt.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <type_traits>

#include "kernels/cuda/context_internal.h"
#include "kernels/cuda/device_math.cuh"
#include "kernels/cuda/gemm.h"
#include "kernels/cuda/rwkv7_ops.h"

namespace skein::cuda {
namespace {

// ---- GEMV: one warp per output row, every weight read once as 16-byte vectors ----

template <typename T>
struct Vec;  // kSize elements of T in one 16-byte load, widened to fp32

template <>
struct Vec<float> {
  static constexpr int kSize = 4;
  __device__ static void Widen(const uint4& v, float (&f)[kSize]) {
    f[0] = __uint_as_float(v.x);
    f[1] = __uint_as_float(v.y);
    f[2] = __uint_as_float(v.z);
    f[3] = __uint_as_float(v.w);
  }
};

template <>
struct Vec<__nv_bfloat16> {
  static constexpr int kSize = 8;
  __device__ static void Widen(const uint4& v, float (&f)[kSize]) {
    const uint32_t words[4] = {v.x, v.y, v.z, v.w};
#pragma unroll
    for (int q = 0; q < 4; ++q) {
      // bf16 is the top half of an fp32: widening is a shift, exact.
      f[2 * q] = __uint_as_float(words[q] << 16);
      f[2 * q + 1] = __uint_as_float(words[q] & 0xffff0000u);
    }
  }
};

template <>
struct Vec<__half> {
  static constexpr int kSize = 8;
  __device__ static void Widen(const uint4& v, float (&f)[kSize]) {
    const uint32_t words[4] = {v.x, v.y, v.z, v.w};
#pragma unroll
    for (int q = 0; q < 4; ++q) {
      __half2 h2;
      memcpy(&h2, &words[q], sizeof(h2));
      const float2 f2 = __half22float2(h2);
      f[2 * q] = f2.x;
      f[2 * q + 1] = f2.y;
    }
  }
};

// kV elements of x at p (16-byte aligned) widened to fp32, for kV weights widened by
// Vec<T>: one 16-byte load when x is in the weights' type, kV/4 when it is fp32 (exact
// activations; the weights, not x, bound the kernel).
template <typename X, int kV>
__device__ __forceinline__ void LoadX(const X* p, float (&f)[kV]) {
  if constexpr (std::is_same_v<X, float>) {
#pragma unroll
    for (int q = 0; q < kV / 4; ++q) {
      const float4 v = reinterpret_cast<const float4*>(p)[q];
      f[4 * q] = v.x;
      f[4 * q + 1] = v.y;
      f[4 * q + 2] = v.z;
      f[4 * q + 3] = v.w;
    }
  } else {
    static_assert(Vec<X>::kSize == kV, "x in the weights' type");
    Vec<X>::Widen(*reinterpret_cast<const uint4*>(p), f);
  }
}

constexpr int kGemvWarps = 8;

// The jobs of one grouped launch: job j owns blocks [first_block[j], first_block[j + 1]).
struct GemvGroup {
  int count = 0;
  DType type = DType::kBF16;
  DType x_type = DType::kF32;
  int first_block[kMaxGemmGroup + 1] = {};
  const void* x[kMaxGemmGroup] = {};
  const void* w[kMaxGemmGroup] = {};
  float* y[kMaxGemmGroup] = {};
  void* y_act[kMaxGemmGroup] = {};
  int n[kMaxGemmGroup] = {};
  int k[kMaxGemmGroup] = {};
  bool accumulate[kMaxGemmGroup] = {};
  UnaryOp act[kMaxGemmGroup] = {};
};

// Lane L of the warp for output o accumulates the elements L·V, L·V + 32·V, … of the row in
// this fixed order for every row of x, then the warp sums lanes in a fixed tree: the result for
// one row of x is the same whatever M is and whichever group the job is in.
template <typename T, typename X, int M>
__global__ void __launch_bounds__(kGemvWarps * 32) GemvGroupKernel(GemvGroup g) {
  using V = Vec<T>;
  constexpr int kV = V::kSize;
  constexpr int kStep = 32 * kV;
  int j = 0;
  while (j + 1 < g.count && static_cast<int>(blockIdx.x) >= g.first_block[j + 1]) ++j;
  const int n = g.n[j], k = g.k[j];
  const int lane = threadIdx.x & 31;
  const int o = (blockIdx.x - g.first_block[j]) * kGemvWarps + (threadIdx.x >> 5);
  AllowNextLaunch();
  const T* wrow = static_cast<const T*>(g.w[j]) + static_cast<int64_t>(o) * k;
  // The weights are never written by the stream: start pulling this lane's first lines into
  // L2 while the previous kernel (the producer of x) finishes.
  if (o < n) {
#pragma unroll
    for (int q = 0; q < 4; ++q) {
      if (lane * kV + q * kStep < k) PrefetchL2(wrow + lane * kV + q * kStep);
    }
  }
  WaitForPrevious();
  if (o >= n) return;
  const X* x = static_cast<const X*>(g.x[j]);
  float acc[M];
#pragma unroll
  for (int r = 0; r < M; ++r) acc[r] = 0.0f;

  auto accumulate_at = [&](int i, const uint4& wv) {
    float wf[kV];
    V::Widen(wv, wf);
#pragma unroll
    for (int r = 0; r < M; ++r) {
      float xf[kV];
      LoadX<X, kV>(x + static_cast<int64_t>(r) * k + i, xf);
#pragma unroll
      for (int e = 0; e < kV; ++e) acc[r] = fmaf(xf[e], wf[e], acc[r]);
    }
  };

  int i = lane * kV;
  // Four loads in flight per lane before any arithmetic: decode is bound by how many bytes
  // are in flight, not by the multiply-adds. Weights are read once per step: streaming loads.
  for (; i + 3 * kStep < k; i += 4 * kStep) {
    const uint4 w0 = __ldcs(reinterpret_cast<const uint4*>(wrow + i));
    const uint4 w1 = __ldcs(reinterpret_cast<const uint4*>(wrow + i + kStep));
    const uint4 w2 = __ldcs(reinterpret_cast<const uint4*>(wrow + i + 2 * kStep));
    const uint4 w3 = __ldcs(reinterpret_cast<const uint4*>(wrow + i + 3 * kStep));
    accumulate_at(i, w0);
    accumulate_at(i + kStep, w1);
    accumulate_at(i + 2 * kStep, w2);
    accumulate_at(i + 3 * kStep, w3);
  }
  for (; i < k; i += kStep) {
    accumulate_at(i, __ldcs(reinterpret_cast<const uint4*>(wrow + i)));
  }
  float* y = g.y[j];
  void* y_act = g.y_act[j];
#pragma unroll
  for (int r = 0; r < M; ++r) {
    const float s = WarpSum(acc[r]);
    if (lane == 0) {
      const int64_t at = static_cast<int64_t>(r) * n + o;
      const float value = g.accumulate[j] ? y[at] + s : s;
      y[at] = value;
      if (y_act != nullptr) StoreAs(y_act, g.x_type, at, ApplyUnary(g.act[j], value));
    }
  }
}

template <typename T, typename X>
Status LaunchGemv(Context& ctx, const GemvGroup& g, int64_t m) {
  const dim3 grid(static_cast<unsigned>(g.first_block[g.count]));
  const dim3 block(kGemvWarps * 32);
  switch (m) {
#define SKEIN_GEMV_CASE(M) \
  case M:                  \
    return Launch(ctx, "GemvGroupKernel", GemvGroupKernel<T, X, M>, grid, block, g);
    SKEIN_GEMV_CASE(1)
    SKEIN_GEMV_CASE(2)
    SKEIN_GEMV_CASE(3)
    SKEIN_GEMV_CASE(4)
    SKEIN_GEMV_CASE(5)
    SKEIN_GEMV_CASE(6)
    SKEIN_GEMV_CASE(7)
    SKEIN_GEMV_CASE(8)
#undef SKEIN_GEMV_CASE
    default:
      return Status::Error("GEMV: bad row count");
  }
}

// ---- cuBLASLt ----

// hi[i] = x[i] rounded to `type`, lo[i] = (x[i] − hi[i]) rounded to `type` (the subtraction
// is exact in fp32: hi is x with fewer significant bits).
__global__ void SplitKernel(const float* x, void* hi, void* lo, DType type, int64_t n) {
  AllowNextLaunch();
  WaitForPrevious();
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const float v = x[i];
    StoreAs(hi, type, i, v);
    StoreAs(lo, type, i, v - LoadAs(hi, type, i));
  }
}

// Bytes of one half of the split of g's x, rounded up to keep the second half aligned.
size_t SplitHalfBytes(const GemmArgs& g) {
  const size_t bytes = static_cast<size_t>(g.m * g.k) * base::DTypeSize(g.type);
  return (bytes + 255) / 256 * 256;
}

bool NeedsSplit(const GemmArgs& g) { return g.x_type == DType::kF32 && g.type != DType::kF32; }

// Makes the context's split scratch hold g's halves. Allocating is not allowed while the
// stream is being captured: PlanGemm must have done it.
Status EnsureSplit(Context& ctx, const GemmArgs& g) {
  Context::Impl& impl = *ctx.impl();
  const size_t need = 2 * SplitHalfBytes(g);
  if (impl.split_bytes >= need) return Status();
  cudaStreamCaptureStatus capture = cudaStreamCaptureStatusNone;
  SKEIN_CUDA_RETURN_IF_ERROR(
      CudaStatus(cudaStreamIsCapturing(impl.stream, &capture), "cudaStreamIsCapturing"));
  if (capture != cudaStreamCaptureStatusNone) {
    return Status::Error("Gemm: split scratch not prepared before the capture (PlanGemm)");
  }
  const size_t bytes = std::max(need, 2 * impl.split_bytes);
  void* p = nullptr;
  SKEIN_CUDA_RETURN_IF_ERROR(CudaStatus(cudaMalloc(&p, bytes), "cudaMalloc(split scratch)"));
  if (impl.split != nullptr) impl.retired_splits.push_back(impl.split);
  impl.split = p;
  impl.split_bytes = bytes;
  return Status();
}

cudaDataType_t CudaType(DType t) {
  switch (t) {
    case DType::kBF16:
      return CUDA_R_16BF;
    case DType::kF16:
      return CUDA_R_16F;
    default:
      return CUDA_R_32F;
  }
}

// cuBLASLt is column-major: a row-major [m][n] y is a column-major n×m matrix, so we compute
// yᵀ = op(W)·xᵀ with xᵀ the column-major k×m view of row-major x.
Status MakePlan(Context& ctx, const GemmArgs& g, GemmPlan* plan) {
  const cudaDataType_t type = CudaType(g.type);
  SKEIN_CUDA_RETURN_IF_ERROR(BlasStatus(
      cublasLtMatmulDescCreate(&plan->desc, CUBLAS_COMPUTE_32F, CUDA_R_32F), "MatmulDescCreate"));
  const cublasOperation_t trans_a = g.layout == WeightLayout::kOutIn ? CUBLAS_OP_T : CUBLAS_OP_N;
  const cublasOperation_t trans_b = CUBLAS_OP_N;
  SKEIN_CUDA_RETURN_IF_ERROR(
      BlasStatus(cublasLtMatmulDescSetAttribute(plan->desc, CUBLASLT_MATMUL_DESC_TRANSA, &trans_a,
                                                sizeof(trans_a)),
                 "MatmulDescSetAttribute(TRANSA)"));
  SKEIN_CUDA_RETURN_IF_ERROR(
      BlasStatus(cublasLtMatmulDescSetAttribute(plan->desc, CUBLASLT_MATMUL_DESC_TRANSB, &trans_b,
                                                sizeof(trans_b)),
                 "MatmulDescSetAttribute(TRANSB)"));
  const uint64_t m = g.m, n = g.n, k = g.k;
  // kOutIn: row-major [n][k] is column-major k×n (ld k), transposed. kInOut: row-major [k][n]
  // is column-major n×k (ld n), as is.
  if (g.layout == WeightLayout::kOutIn) {
    SKEIN_CUDA_RETURN_IF_ERROR(
        BlasStatus(cublasLtMatrixLayoutCreate(&plan->a, type, k, n, k), "MatrixLayoutCreate(A)"));
  } else {
    SKEIN_CUDA_RETURN_IF_ERROR(
        BlasStatus(cublasLtMatrixLayoutCreate(&plan->a, type, n, k, n), "MatrixLayoutCreate(A)"));
  }
  SKEIN_CUDA_RETURN_IF_ERROR(
      BlasStatus(cublasLtMatrixLayoutCreate(&plan->b, type, k, m, k), "MatrixLayoutCreate(B)"));
  SKEIN_CUDA_RETURN_IF_ERROR(BlasStatus(cublasLtMatrixLayoutCreate(&plan->c, CUDA_R_32F, n, m, n),
                                        "MatrixLayoutCreate(C)"));

  cublasLtMatmulPreference_t pref = nullptr;
  SKEIN_CUDA_RETURN_IF_ERROR(
      BlasStatus(cublasLtMatmulPreferenceCreate(&pref), "MatmulPreferenceCreate"));
  const uint64_t workspace = ctx.impl()->workspace_bytes;
  cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &workspace,
                                       sizeof(workspace));
  cublasLtMatmulHeuristicResult_t result{};
  int found = 0;
  const cublasStatus_t rc = cublasLtMatmulAlgoGetHeuristic(
      ctx.impl()->lt, plan->desc, plan->a, plan->b, plan->c, plan->c, pref, 1, &result, &found);
  cublasLtMatmulPreferenceDestroy(pref);
  SKEIN_CUDA_RETURN_IF_ERROR(BlasStatus(rc, "MatmulAlgoGetHeuristic"));
  if (found == 0) {
    return Status::Error("cuBLASLt has no algorithm for m=" + std::to_string(g.m) +
                         " n=" + std::to_string(g.n) + " k=" + std::to_string(g.k));
  }
  plan->algo = result.algo;
  return Status();
}

// The cached plan for g's shape, made on first use.
Status FindPlan(Context& ctx, const GemmArgs& g, const GemmPlan** out) {
  Context::Impl& impl = *ctx.impl();
  const GemmKey key{static_cast<int>(g.type), static_cast<int>(g.layout), g.m, g.n, g.k};
  auto it = impl.gemm_plans.find(key);
  if (it == impl.gemm_plans.end()) {
    GemmPlan plan;
    const Status made = MakePlan(ctx, g, &plan);
    if (!made.ok()) {
      if (plan.a != nullptr) cublasLtMatrixLayoutDestroy(plan.a);
      if (plan.b != nullptr) cublasLtMatrixLayoutDestroy(plan.b);
      if (plan.c != nullptr) cublasLtMatrixLayoutDestroy(plan.c);
      if (plan.desc != nullptr) cublasLtMatmulDescDestroy(plan.desc);
      return made;
    }
    it = impl.gemm_plans.emplace(key, plan).first;
  }
  *out = &it->second;
  return Status();
}

Status RunCublasLt(Context& ctx, const GemmArgs& g) {
  Context::Impl& impl = *ctx.impl();
  const GemmPlan* found = nullptr;
  SKEIN_CUDA_RETURN_IF_ERROR(FindPlan(ctx, g, &found));
  const GemmPlan& plan = *found;
  const float alpha = 1.0f, beta = g.accumulate ? 1.0f : 0.0f;
  auto matmul = [&](const void* x, const float* b) {
    return BlasStatus(
        cublasLtMatmul(impl.lt, plan.desc, &alpha, g.w, plan.a, x, plan.b, b, g.y, plan.c, g.y,
                       plan.c, &plan.algo, impl.workspace, impl.workspace_bytes, impl.stream),
        "cublasLtMatmul");
  };
  if (!NeedsSplit(g)) return matmul(g.x, &beta);
  // fp32 x, 16-bit weights: y = W·hi + W·lo on the plan of the weights' type (gemm.h).
  SKEIN_CUDA_RETURN_IF_ERROR(EnsureSplit(ctx, g));
  void* hi = impl.split;
  void* lo = static_cast<uint8_t*>(impl.split) + SplitHalfBytes(g);
  const int64_t n = g.m * g.k;
  const unsigned blocks = static_cast<unsigned>(std::min<int64_t>((n + 255) / 256, 4096));
  SKEIN_CUDA_RETURN_IF_ERROR(Launch(ctx, "SplitKernel", SplitKernel, dim3(blocks), dim3(256),
                                    static_cast<const float*>(g.x), hi, lo, g.type, n));
  const float one = 1.0f;
  SKEIN_CUDA_RETURN_IF_ERROR(matmul(hi, &beta));
  return matmul(lo, &one);
}

Status CheckArgs(const GemmArgs& g) {
  if (g.type != DType::kF32 && g.type != DType::kBF16 && g.type != DType::kF16) {
    return Status::Error("Gemm: weights must be fp32, bf16 or fp16");
  }
  if (g.x_type != DType::kF32 && g.x_type != g.type) {
    return Status::Error("Gemm: activations must be fp32 or in the weights' type");
  }
  if (g.m <= 0 || g.n <= 0 || g.k <= 0) return Status::Error("Gemm: empty shape");
  if (g.n > INT32_MAX || g.k > INT32_MAX) return Status::Error("Gemm: shape too large");
  return Status();
}

bool TakesGemv(const GemmArgs& g) {
  return !g.force_cublas && g.m <= kGemvMaxRows && g.layout == WeightLayout::kOutIn &&
         g.k % 8 == 0 && reinterpret_cast<uintptr_t>(g.x) % 16 == 0 &&
         reinterpret_cast<uintptr_t>(g.w) % 16 == 0;
}

}  // namespace

Status GemmGroup(Context& ctx, const GemmArgs* jobs, int count) {
  if (count <= 0) return Status();
  if (count > kMaxGemmGroup) return Status::Error("GemmGroup: too many jobs");
  bool one_launch = true;
  for (int j = 0; j < count; ++j) {
    SKEIN_CUDA_RETURN_IF_ERROR(CheckArgs(jobs[j]));
    one_launch = one_launch && TakesGemv(jobs[j]) && jobs[j].type == jobs[0].type &&
                 jobs[j].x_type == jobs[0].x_type && jobs[j].m == jobs[0].m;
  }
  if (!one_launch) {
    for (int j = 0; j < count; ++j) {
      const GemmArgs& g = jobs[j];
      if (TakesGemv(g)) {
        SKEIN_CUDA_RETURN_IF_ERROR(GemmGroup(ctx, &g, 1));
      } else {
        SKEIN_CUDA_RETURN_IF_ERROR(RunCublasLt(ctx, g));
        if (g.y_act != nullptr) {
          SKEIN_CUDA_RETURN_IF_ERROR(Unary(ctx, g.act, g.y, g.y_act, g.x_type, g.m * g.n));
        }
      }
    }
    return Status();
  }
  GemvGroup group;
  group.count = count;
  group.type = jobs[0].type;
  group.x_type = jobs[0].x_type;
  for (int j = 0; j < count; ++j) {
    const GemmArgs& g = jobs[j];
    group.x[j] = g.x;
    group.w[j] = g.w;
    group.y[j] = g.y;
    group.y_act[j] = g.y_act;
    group.n[j] = static_cast<int>(g.n);
    group.k[j] = static_cast<int>(g.k);
    group.accumulate[j] = g.accumulate;
    group.act[j] = g.act;
    group.first_block[j + 1] =
        group.first_block[j] + static_cast<int>((g.n + kGemvWarps - 1) / kGemvWarps);
  }
  const bool exact = group.x_type == DType::kF32;
  switch (group.type) {
    case DType::kBF16:
      return exact ? LaunchGemv<__nv_bfloat16, float>(ctx, group, jobs[0].m)
                   : LaunchGemv<__nv_bfloat16, __nv_bfloat16>(ctx, group, jobs[0].m);
    case DType::kF16:
      return exact ? LaunchGemv<__half, float>(ctx, group, jobs[0].m)
                   : LaunchGemv<__half, __half>(ctx, group, jobs[0].m);
    default:
      return LaunchGemv<float, float>(ctx, group, jobs[0].m);
  }
}

Status Gemm(Context& ctx, const GemmArgs& g) { return GemmGroup(ctx, &g, 1); }

Status PlanGemm(Context& ctx, const GemmArgs& g) {
  SKEIN_CUDA_RETURN_IF_ERROR(CheckArgs(g));
  if (TakesGemv(g)) return Status();
  const GemmPlan* plan = nullptr;
  SKEIN_CUDA_RETURN_IF_ERROR(FindPlan(ctx, g, &plan));
  return NeedsSplit(g) ? EnsureSplit(ctx, g) : Status();
}

}  // namespace skein::cuda
