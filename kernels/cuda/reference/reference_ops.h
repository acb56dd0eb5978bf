// Scalar CPU references for the kernels of kernels/cuda (rwkv7_ops.h, gemm.h): the same
// argument structs and contracts, with HOST pointers in place of device pointers. Written
// from spec §2.4-§2.7 (the math of kernels/cpu/kernels_scalar.cc), for clarity rather than
// speed; sums in double where the result is a reduction. Plain C++, no CUDA, no Abseil.
// Thread-compatible: calls on different memory may run concurrently.
#ifndef SKEIN_KERNELS_CUDA_REFERENCE_REFERENCE_OPS_H_
#define SKEIN_KERNELS_CUDA_REFERENCE_REFERENCE_OPS_H_

#include <cstdint>

#include "kernels/cuda/gemm.h"
#include "kernels/cuda/rwkv7_ops.h"

namespace skein::cuda::reference {

// Element i of a `type` array, widened to fp32 (exact).
float LoadAs(const void* p, DType type, int64_t i);
// Stores v into element i of a `type` array, rounding to nearest even.
void StoreAs(void* p, DType type, int64_t i, float v);
// v rounded to `type` and widened back.
float RoundTo(DType type, float v);

void FillUniform(void* dst, DType type, int64_t count, uint64_t seed, float offset, float scale);
void EmbedLayerNorm(const EmbedArgs& a);
void ShiftMix(const ShiftMixArgs& a);
void CommitShift(const float* saved, float* shift_state, int64_t slot_stride, const int32_t* slots,
                 int64_t sessions, int64_t C);
void Unary(UnaryOp op, const float* x, void* y, DType y_type, int64_t n);
// The same, writing y[y_offset + i].
void Unary(UnaryOp op, const float* x, void* y, DType y_type, int64_t n, int64_t y_offset);
void Rwkv7Prepare(const PrepareArgs& p);
// Sequential over tokens: the ground truth for both WKV-7 kernels.
void Wkv7(const Wkv7Args& p);
// The chunked algorithm of the GPU's Wkv7Chunked step by step (transfers from zero and
// identity, the sequential chain of start states, the rerun of each chunk), in fp32: checks
// the algorithm itself against Wkv7 on the CPU. `scratch` as for the GPU.
void Wkv7Chunked(const Wkv7Args& p, int64_t chunk, float* scratch);
void GroupNormBonusGate(const GroupNormBonusGateArgs& a);
// Rwkv7Prepare, Wkv7 and GroupNormBonusGate in sequence (on copies of the read-only inputs).
void Rwkv7TimeMixCore(const TimeMixCoreArgs& a);
void LayerNormLastRows(const float* x, const float* ln_w, const float* ln_b, int64_t sessions,
                       int64_t tokens, int64_t C, void* out, DType out_type);
// Ignores force_cublas. fp32 x (x_type kF32) is used as it is with weights of any type:
// the GPU's cuBLASLt path carries it as hi + lo halves in the weights' type (gemm.h), which
// differ from it by at most 2⁻¹⁶ relative (bf16), an fp32-level difference the GPU test bounds.
void Gemm(const GemmArgs& g);
void GemmGroup(const GemmArgs* jobs, int count);

}  // namespace skein::cuda::reference

#endif  // SKEIN_KERNELS_CUDA_REFERENCE_REFERENCE_OPS_H_
