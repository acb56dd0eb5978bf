// Matrix products for the RWKV layers: activations times a weight matrix, fp32 accumulation,
// fp32 output. Plain C++ interface; device pointers; enqueued on the Context's stream.
#ifndef SKEIN_KERNELS_CUDA_GEMM_H_
#define SKEIN_KERNELS_CUDA_GEMM_H_

#include <cstdint>

#include "kernels/cuda/context.h"

namespace skein::cuda {

// How a weight matrix of n outputs and k inputs is stored (row-major either way).
enum class WeightLayout {
  kOutIn,  // nn.Linear: [n][k], y = W·x (receptance, key, value, output, ffn, head)
  kInOut,  // LoRA factors: [k][n], y = x·W (w1 w2 a1 a2 v1 v2 g1 g2, spec §1)
};

// Activations: tanh, σ(x) = 1/(1 + e^{−x}), relu(x)², computed in fp32 with the accurate
// library functions.
enum class UnaryOp { kIdentity, kTanh, kSigmoid, kSquaredRelu };

// For r < m and o < n:
//   y[r·n + o] = (accumulate ? y[r·n + o] : 0) + Σ_{i<k} x[r·k + i] · W(o, i)
// with W in `type` (fp32, bf16 or fp16) and x in `x_type` (fp32, or `type`), products
// accumulated in fp32 (fp32 inputs use true fp32 arithmetic, never TF32), y fp32 [m][n]. When
// y_act is set, also
//   y_act[r·n + o] = act(y[r·n + o])   rounded to `x_type`
// (the input of the next product, e.g. tanh of the decay LoRA). x, w, y and y_act must not
// overlap.
//
// Small batches (m ≤ kGemvMaxRows) of kOutIn weights with k a multiple of 8 run on a GEMV
// kernel that streams each weight row once at full memory bandwidth, and whose result for one
// row of x does not depend on the other rows (batched decode equals per-session decode
// bit for bit); everything else runs on cuBLASLt (tensor cores for bf16/fp16) plus an
// activation kernel that computes y_act exactly as the GEMV epilogue does.
//
// fp32 x with 16-bit weights (exact activations): the GEMV kernel reads x as it is, which
// costs nothing there (the weights bound it). cuBLASLt multiplies like types only, so x is
// split into hi = x rounded to `type` and lo = (x − hi) rounded to `type`, and
// y = W·hi + W·lo (two products on the same plan, the second accumulating): x enters with
// 16 (bf16) or 22 (fp16) significant bits, an fp32-level error (≤ 2⁻¹⁶·|x| per element for
// bf16, where rounding x to bf16 costs up to 2⁻⁸·|x|; fp16's lo loses bits below 2⁻¹⁴, an
// absolute 2⁻²⁵, and fp16's hi overflows beyond 65504 as rounded fp16 activations do). The
// split needs device scratch of 4·m·k bytes, held by the context (PlanGemm sizes it).
inline constexpr int64_t kGemvMaxRows = 8;
struct GemmArgs {
  const void* x = nullptr;
  const void* w = nullptr;
  DType type = DType::kBF16;   // the weights'
  DType x_type = DType::kF32;  // x's and y_act's: kF32 or `type`
  WeightLayout layout = WeightLayout::kOutIn;
  int64_t m = 0;
  int64_t n = 0;
  int64_t k = 0;
  float* y = nullptr;
  bool accumulate = false;
  void* y_act = nullptr;
  UnaryOp act = UnaryOp::kIdentity;
  // Tests: force cuBLASLt even where the GEMV kernel would run.
  bool force_cublas = false;
};
Status Gemm(Context& ctx, const GemmArgs& g);

// Several independent products (outputs must not overlap any input or each other), in one
// launch when all of them take the GEMV path with the same types and m: at decode batch sizes
// a layer's products are many small reads, and launches rather than bytes would bound them.
// Same results as Gemm on each, bit for bit. At most kMaxGemmGroup jobs.
inline constexpr int kMaxGemmGroup = 8;
Status GemmGroup(Context& ctx, const GemmArgs* jobs, int count);

// Prepares and caches whatever Gemm needs for this job's shape (a cuBLASLt plan, the split
// scratch of fp32 x) without enqueuing anything: call it before capturing a stream into a
// CUDA graph, so that capture records launches only. Pointers in `g` are not read.
Status PlanGemm(Context& ctx, const GemmArgs& g);

}  // namespace skein::cuda

#endif  // SKEIN_KERNELS_CUDA_GEMM_H_
