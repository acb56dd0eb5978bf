// The RWKV-7 kernels of rwkv7_ops.h. Accuracy first: fp32 everywhere except the stored
// inputs of products, accurate expf/tanhf (no fast-math), two-pass variances.
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>

#include "kernels/cuda/context_internal.h"
#include "kernels/cuda/device_math.cuh"
#include "kernels/cuda/hash_uniform.h"
#include "kernels/cuda/rwkv7_ops.h"

namespace skein::cuda {
namespace {

constexpr int kRowThreads = 256;  // threads of the per-row kernels
constexpr int kN = kWkvHeadSize;

// The sum of v over the block (kRowThreads threads). Every thread adds the warps' partial sums
// in the same order, so all get the same value. `shared` holds kRowThreads/32 floats.
__device__ float BlockSum(float v, float* shared) {
  v = WarpSum(v);
  __syncthreads();  // earlier readers of `shared` are done
  if ((threadIdx.x & 31) == 0) shared[threadIdx.x >> 5] = v;
  __syncthreads();
  float total = 0.0f;
#pragma unroll
  for (int w = 0; w < kRowThreads / 32; ++w) total += shared[w];
  return total;
}

// Mean and 1/√(var + eps) of n values at x (two passes; var biased).
__device__ void RowStats(const float* x, int64_t n, float eps, float* shared, float* mean,
                         float* rstd) {
  float s = 0.0f;
  for (int64_t i = threadIdx.x; i < n; i += kRowThreads) s += x[i];
  const float m = BlockSum(s, shared) / static_cast<float>(n);
  float q = 0.0f;
  for (int64_t i = threadIdx.x; i < n; i += kRowThreads) {
    const float d = x[i] - m;
    q += d * d;
  }
  const float var = BlockSum(q, shared) / static_cast<float>(n);
  *mean = m;
  *rstd = 1.0f / sqrtf(var + eps);
}

unsigned Blocks(int64_t n, int threads) {
  return static_cast<unsigned>(std::min<int64_t>((n + threads - 1) / threads, 65535 * 16));
}

// ---- init ----

__global__ void FillUniformKernel(void* dst, DType type, int64_t count, uint64_t seed, float offset,
                                  float scale) {
  AllowNextLaunch();
  WaitForPrevious();
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < count;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    StoreAs(dst, type, i, HashUniform(seed, static_cast<uint64_t>(i), offset, scale));
  }
}

// ---- embedding ----

__global__ void __launch_bounds__(kRowThreads) EmbedKernel(EmbedArgs a) {
  AllowNextLaunch();
  WaitForPrevious();
  __shared__ float shared[kRowThreads / 32];
  const int64_t r = blockIdx.x;
  const int64_t base = static_cast<int64_t>(a.tokens[r]) * a.C;
  float s = 0.0f;
  for (int64_t i = threadIdx.x; i < a.C; i += kRowThreads) s += LoadAs(a.emb, a.emb_type, base + i);
  const float mean = BlockSum(s, shared) / static_cast<float>(a.C);
  float q = 0.0f;
  for (int64_t i = threadIdx.x; i < a.C; i += kRowThreads) {
    const float d = LoadAs(a.emb, a.emb_type, base + i) - mean;
    q += d * d;
  }
  const float rstd = 1.0f / sqrtf(BlockSum(q, shared) / static_cast<float>(a.C) + kLayerNormEps);
  for (int64_t i = threadIdx.x; i < a.C; i += kRowThreads) {
    const float e = LoadAs(a.emb, a.emb_type, base + i);
    a.x[r * a.C + i] = (e - mean) * rstd * a.ln_w[i] + a.ln_b[i];
  }
}

// ---- token shift ----

__global__ void __launch_bounds__(kRowThreads) ShiftMixKernel(ShiftMixArgs a) {
  AllowNextLaunch();
  WaitForPrevious();
  __shared__ float shared[kRowThreads / 32];
  const int64_t row = blockIdx.x;
  const int64_t s = row / a.tokens, t = row % a.tokens;
  const int64_t C = a.C;
  const float* x = a.x + row * C;
  float mean = 0.0f, rstd = 0.0f, prev_mean = 0.0f, prev_rstd = 0.0f;
  RowStats(x, C, kLayerNormEps, shared, &mean, &rstd);
  // The previous token's LN output: recomputed from its residual row (the block of that row
  // computes the very same values), or the state's saved one for a session's first token.
  if (t > 0) RowStats(x - C, C, kLayerNormEps, shared, &prev_mean, &prev_rstd);
  float* state = a.shift_state + static_cast<int64_t>(a.slots[s]) * a.slot_stride;
  for (int64_t i = threadIdx.x; i < C; i += kRowThreads) {
    const float cur = (x[i] - mean) * rstd * a.ln_w[i] + a.ln_b[i];
    const float prev =
        t > 0 ? (x[i - C] - prev_mean) * prev_rstd * a.ln_w[i] + a.ln_b[i] : state[i];
    const float d = prev - cur;
    for (int m = 0; m < a.mixes; ++m)
      StoreAs(a.out[m], a.out_type, row * C + i, cur + d * a.mix[m][i]);
    if (a.tokens == 1) {
      state[i] = cur;  // this thread alone read state[i], just above
    } else if (t == a.tokens - 1) {
      a.saved[s * C + i] = cur;
    }
  }
}

__global__ void CommitShiftKernel(const float* saved, float* shift_state, int64_t slot_stride,
                                  const int32_t* slots, int64_t C) {
  AllowNextLaunch();
  WaitForPrevious();
  const int64_t s = blockIdx.x;
  float* dst = shift_state + static_cast<int64_t>(slots[s]) * slot_stride;
  for (int64_t i = threadIdx.x; i < C; i += blockDim.x) dst[i] = saved[s * C + i];
}

// ---- element-wise ----

__global__ void UnaryKernel(UnaryOp op, const float* x, void* y, DType y_type, int64_t n) {
  AllowNextLaunch();
  WaitForPrevious();
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const float out = ApplyUnary(op, x[i]);
    StoreAs(y, y_type, i, out);
  }
}

// One warp per head (heads spread over the block's warps), each lane holding up to 8 of the
// head's channels: per-head reductions are warp shuffles.
constexpr int kMaxPerLane = 8;

__global__ void __launch_bounds__(kRowThreads) PrepareKernel(PrepareArgs p) {
  AllowNextLaunch();
  WaitForPrevious();
  const int64_t row = blockIdx.x;
  const int lane = threadIdx.x & 31;
  const int64_t heads = p.C / p.head_size;
  const int per_lane = static_cast<int>(p.head_size / 32);
  for (int64_t h = threadIdx.x >> 5; h < heads; h += kRowThreads / 32) {
    float kappa[kMaxPerLane];
    float squares = 0.0f;
    for (int q = 0; q < per_lane; ++q) {
      const int64_t c = h * p.head_size + q * 32 + lane;
      kappa[q] = p.k[row * p.C + c] * p.k_k[c];
      squares += kappa[q] * kappa[q];
    }
    const float norm = fmaxf(sqrtf(WarpSum(squares)), kL2MinNorm);
    const float inv = 1.0f / norm;
    for (int q = 0; q < per_lane; ++q) {
      const int64_t c = h * p.head_size + q * 32 + lane;
      const int64_t i = row * p.C + c;
      const float kh = kappa[q] * inv;
      const float alpha = Sigmoid(p.a0[c] + p.alpha[i]);
      p.decay[i] = expf(-kDecayScale * Sigmoid(p.w0[c] + p.decay[i]));
      p.a[i] = -kh;
      p.b[i] = kh * alpha;
      p.k[i] = p.k[i] * (1.0f + (alpha - 1.0f) * p.k_a[c]);
      if (p.first_layer) {
        p.v_first[i] = p.v[i];
      } else {
        const float v = p.v[i];
        p.v[i] = v + (p.v_first[i] - v) * Sigmoid(p.v0[c] + p.v_gate[i]);
      }
    }
  }
}

__global__ void __launch_bounds__(kRowThreads) GroupNormBonusGateKernel(GroupNormBonusGateArgs a) {
  AllowNextLaunch();
  WaitForPrevious();
  const int64_t row = blockIdx.x;
  const int lane = threadIdx.x & 31;
  const int64_t heads = a.C / a.head_size;
  const int per_lane = static_cast<int>(a.head_size / 32);
  const float n = static_cast<float>(a.head_size);
  for (int64_t h = threadIdx.x >> 5; h < heads; h += kRowThreads / 32) {
    float y[kMaxPerLane];
    float sum = 0.0f, bonus = 0.0f;
    for (int q = 0; q < per_lane; ++q) {
      const int64_t c = h * a.head_size + q * 32 + lane;
      const int64_t i = row * a.C + c;
      y[q] = a.y[i];
      sum += y[q];
      bonus += a.r[i] * a.k[i] * a.r_k[c];
    }
    const float mean = WarpSum(sum) / n;
    bonus = WarpSum(bonus);
    float squares = 0.0f;
    for (int q = 0; q < per_lane; ++q) squares += (y[q] - mean) * (y[q] - mean);
    const float rstd = 1.0f / sqrtf(WarpSum(squares) / n + kGroupNormEps);
    for (int q = 0; q < per_lane; ++q) {
      const int64_t c = h * a.head_size + q * 32 + lane;
      const int64_t i = row * a.C + c;
      const float o = (y[q] - mean) * rstd * a.ln_w[c] + a.ln_b[c] + bonus * a.v[i];
      StoreAs(a.out, a.out_type, i, o * a.g[i]);
    }
  }
}

__global__ void __launch_bounds__(kRowThreads)
    LayerNormLastRowsKernel(const float* x, const float* ln_w, const float* ln_b, int64_t tokens,
                            int64_t C, void* out, DType out_type) {
  AllowNextLaunch();
  WaitForPrevious();
  __shared__ float shared[kRowThreads / 32];
  const int64_t s = blockIdx.x;
  const float* row = x + (s * tokens + tokens - 1) * C;
  float mean = 0.0f, rstd = 0.0f;
  RowStats(row, C, kLayerNormEps, shared, &mean, &rstd);
  for (int64_t i = threadIdx.x; i < C; i += kRowThreads) {
    StoreAs(out, out_type, s * C + i, (row[i] - mean) * rstd * ln_w[i] + ln_b[i]);
  }
}

// ---- WKV-7 ----
//
// Thread i of a block owns row i (value channel i) of one head's N×N state, in registers. A
// token's r, w, k, a, b go through shared memory (every thread reads all N of them); v[i] stays
// in the thread. The next token's inputs are loaded before this token's arithmetic, so the
// global-memory latency hides behind it.

struct TokenInputs {
  float r, w, k, v, a, b;
};

__device__ __forceinline__ TokenInputs LoadToken(const Wkv7Args& p, int64_t offset) {
  return {p.r[offset], p.w[offset], p.k[offset], p.v[offset], p.a[offset], p.b[offset]};
}

// Runs tokens [t0, t1) of session s, head h over `row`; writes y when kEmit.
template <bool kEmit>
__device__ void RunTokens(const Wkv7Args& p, int64_t s, int64_t h, int64_t t0, int64_t t1,
                          float (&row)[kN]) {
  __shared__ __align__(16) float sh_r[kN], sh_w[kN], sh_k[kN], sh_a[kN], sh_b[kN];
  const int i = threadIdx.x;
  const int64_t col = h * kN + i;
  TokenInputs next{};
  if (t0 < t1) next = LoadToken(p, (s * p.tokens + t0) * p.C + col);
  for (int64_t t = t0; t < t1; ++t) {
    const int64_t offset = (s * p.tokens + t) * p.C + col;
    __syncthreads();  // everyone is done with the previous token's shared inputs
    sh_r[i] = next.r;
    sh_w[i] = next.w;
    sh_k[i] = next.k;
    sh_a[i] = next.a;
    sh_b[i] = next.b;
    const float vi = next.v;
    __syncthreads();
    if (t + 1 < t1) next = LoadToken(p, offset + p.C);
    // sa = Σ_j a[j]·S[i][j] over the OLD row; four partial sums for instruction-level
    // parallelism.
    float s0 = 0.0f, s1 = 0.0f, s2 = 0.0f, s3 = 0.0f;
#pragma unroll
    for (int j = 0; j < kN; j += 4) {
      s0 = fmaf(sh_a[j], row[j], s0);
      s1 = fmaf(sh_a[j + 1], row[j + 1], s1);
      s2 = fmaf(sh_a[j + 2], row[j + 2], s2);
      s3 = fmaf(sh_a[j + 3], row[j + 3], s3);
    }
    const float sa = (s0 + s1) + (s2 + s3);
    float y0 = 0.0f, y1 = 0.0f, y2 = 0.0f, y3 = 0.0f;
#pragma unroll
    for (int j = 0; j < kN; j += 4) {
      row[j] = row[j] * sh_w[j] + sh_k[j] * vi + sa * sh_b[j];
      row[j + 1] = row[j + 1] * sh_w[j + 1] + sh_k[j + 1] * vi + sa * sh_b[j + 1];
      row[j + 2] = row[j + 2] * sh_w[j + 2] + sh_k[j + 2] * vi + sa * sh_b[j + 2];
      row[j + 3] = row[j + 3] * sh_w[j + 3] + sh_k[j + 3] * vi + sa * sh_b[j + 3];
      y0 = fmaf(row[j], sh_r[j], y0);
      y1 = fmaf(row[j + 1], sh_r[j + 1], y1);
      y2 = fmaf(row[j + 2], sh_r[j + 2], y2);
      y3 = fmaf(row[j + 3], sh_r[j + 3], y3);
    }
    if (kEmit) p.y[offset] = (y0 + y1) + (y2 + y3);
  }
}

__device__ __forceinline__ void LoadRow(const float* src, float (&row)[kN]) {
#pragma unroll
  for (int j = 0; j < kN; j += 4) {
    const float4 q = *reinterpret_cast<const float4*>(src + j);
    row[j] = q.x;
    row[j + 1] = q.y;
    row[j + 2] = q.z;
    row[j + 3] = q.w;
  }
}

__device__ __forceinline__ void StoreRow(float* dst, const float (&row)[kN]) {
#pragma unroll
  for (int j = 0; j < kN; j += 4) {
    *reinterpret_cast<float4*>(dst + j) = make_float4(row[j], row[j + 1], row[j + 2], row[j + 3]);
  }
}

// Block (s, h, c) runs chunk c of session s, head h: from the slot's state (starts == nullptr,
// a single chunk) or from the chained start state; the last chunk writes the slot's state.
__global__ void __launch_bounds__(kN)
    Wkv7RunKernel(Wkv7Args p, int64_t chunk, int64_t chunks, const float* starts) {
  AllowNextLaunch();
  WaitForPrevious();
  const int64_t heads = p.C / kN;
  const int64_t c = blockIdx.x % chunks;
  const int64_t h = (blockIdx.x / chunks) % heads;
  const int64_t s = blockIdx.x / (chunks * heads);
  const int i = threadIdx.x;
  float* state = p.state + static_cast<int64_t>(p.slots[s]) * p.slot_stride + (h * kN + i) * kN;
  float row[kN];
  if (starts == nullptr) {
    LoadRow(state, row);
  } else {
    LoadRow(starts + (((s * heads + h) * chunks + c) * kN + i) * kN, row);
  }
  const int64_t t0 = c * chunk, t1 = min(p.tokens, t0 + chunk);
  RunTokens<true>(p, s, h, t0, t1, row);
  if (c == chunks - 1) StoreRow(state, row);
}

// Block (s, h, c): chunk c's transfer from a zero state: Cc (with the k·v terms) and P (from
// the identity, without them), spec §2.7. Threads [0, N) own rows of Cc, [N, 2N) rows of P.
__global__ void __launch_bounds__(2 * kN)
    Wkv7TransferKernel(Wkv7Args p, int64_t chunk, int64_t chunks, float* transfer_p,
                       float* transfer_c) {
  AllowNextLaunch();
  WaitForPrevious();
  __shared__ __align__(16) float sh_w[kN], sh_k[kN], sh_a[kN], sh_b[kN], sh_v[kN];
  const int64_t heads = p.C / kN;
  const int64_t c = blockIdx.x % chunks;
  const int64_t h = (blockIdx.x / chunks) % heads;
  const int64_t s = blockIdx.x / (chunks * heads);
  const bool is_p = threadIdx.x >= kN;
  const int i = threadIdx.x % kN;
  float row[kN];
#pragma unroll
  for (int j = 0; j < kN; ++j) row[j] = (is_p && j == i) ? 1.0f : 0.0f;
  const int64_t t0 = c * chunk, t1 = min(p.tokens, t0 + chunk);
  for (int64_t t = t0; t < t1; ++t) {
    const int64_t offset = (s * p.tokens + t) * p.C + h * kN + i;
    __syncthreads();
    if (!is_p) {
      sh_w[i] = p.w[offset];
      sh_k[i] = p.k[offset];
      sh_a[i] = p.a[offset];
      sh_b[i] = p.b[offset];
      sh_v[i] = p.v[offset];
    }
    __syncthreads();
    const float vi = is_p ? 0.0f : sh_v[i];
    float s0 = 0.0f, s1 = 0.0f;
#pragma unroll
    for (int j = 0; j < kN; j += 2) {
      s0 = fmaf(sh_a[j], row[j], s0);
      s1 = fmaf(sh_a[j + 1], row[j + 1], s1);
    }
    const float sa = s0 + s1;
#pragma unroll
    for (int j = 0; j < kN; ++j) row[j] = row[j] * sh_w[j] + sh_k[j] * vi + sa * sh_b[j];
  }
  const int64_t block = ((s * heads + h) * chunks + c) * kN * kN;
  StoreRow((is_p ? transfer_p : transfer_c) + block + i * kN, row);
}

// Block (s, h): S_0 = the slot's state; S_{c+1} = S_c·P_c + Cc_c; writes S_c for every chunk.
// Thread i owns row i; P_c goes through shared memory, and so does the row (a product reads
// it by a run-time index, which registers cannot serve). The padded pitch keeps the 64 rows
// in different banks.
__global__ void __launch_bounds__(kN)
    Wkv7ChainKernel(Wkv7Args p, int64_t chunks, const float* transfer_p, const float* transfer_c,
                    float* starts) {
  AllowNextLaunch();
  WaitForPrevious();
  constexpr int kPitch = kN + 1;
  __shared__ __align__(16) float sh_p[kN * kN];
  __shared__ float sh_s[kN * kPitch];
  const int64_t heads = p.C / kN;
  const int64_t h = blockIdx.x % heads;
  const int64_t s = blockIdx.x / heads;
  const int i = threadIdx.x;
  float row[kN];
  LoadRow(p.state + static_cast<int64_t>(p.slots[s]) * p.slot_stride + (h * kN + i) * kN, row);
  for (int64_t c = 0; c < chunks; ++c) {
    const int64_t block = ((s * heads + h) * chunks + c) * kN * kN;
    StoreRow(starts + block + i * kN, row);
    if (c == chunks - 1) break;  // the last chunk's end state comes from Wkv7RunKernel
#pragma unroll
    for (int j = 0; j < kN; ++j) sh_s[i * kPitch + j] = row[j];
    __syncthreads();  // everyone is done with the previous P
    for (int e = i; e < kN * kN / 4; e += kN) {
      reinterpret_cast<float4*>(sh_p)[e] = reinterpret_cast<const float4*>(transfer_p + block)[e];
    }
    __syncthreads();
    LoadRow(transfer_c + block + i * kN, row);
    for (int m = 0; m < kN; ++m) {
      const float sm = sh_s[i * kPitch + m];
#pragma unroll
      for (int j = 0; j < kN; ++j) row[j] = fmaf(sm, sh_p[m * kN + j], row[j]);
    }
  }
}

// Sums of one value per thread over a kN-thread block (two warps); every thread gets the same
// result. `shared` holds 2·kN/32 floats; Two sums at once halve the synchronisations.
__device__ __forceinline__ float2 HeadSum2(float a, float b, float* shared) {
  a = WarpSum(a);
  b = WarpSum(b);
  __syncthreads();  // earlier readers of `shared` are done
  if ((threadIdx.x & 31) == 0) {
    shared[threadIdx.x >> 5] = a;
    shared[kN / 32 + (threadIdx.x >> 5)] = b;
  }
  __syncthreads();
  return make_float2(shared[0] + shared[1], shared[2] + shared[3]);
}

// Block (s, h), thread i = channel h·N + i. Per token: the prepare step (κ̂ needs the head's
// norm), the WKV update of row i, then GroupNorm, bonus and gate over the head.
__global__ void __launch_bounds__(kN) TimeMixCoreKernel(TimeMixCoreArgs p) {
  AllowNextLaunch();
  static_assert(kN == 64, "HeadSum2 assumes two warps");
  __shared__ __align__(16) float sh_r[kN], sh_w[kN], sh_k[kN], sh_a[kN], sh_b[kN];
  __shared__ float sums[2 * kN / 32];
  const int64_t heads = p.C / kN;
  const int64_t h = blockIdx.x % heads;
  const int64_t s = blockIdx.x / heads;
  const int i = threadIdx.x;
  const int64_t c = h * kN + i;
  // Parameters first: nothing in the stream writes them, so they load while the previous
  // kernel finishes (overlapped launches).
  const float w0 = p.w0[c], a0 = p.a0[c], k_k = p.k_k[c], k_a = p.k_a[c], r_k = p.r_k[c];
  const float ln_w = p.ln_w[c], ln_b = p.ln_b[c];
  const float v0 = p.first_layer ? 0.0f : p.v0[c];
  WaitForPrevious();
  float* state = p.state + static_cast<int64_t>(p.slots[s]) * p.slot_stride + c * kN;
  float row[kN];
  LoadRow(state, row);
  for (int64_t t = 0; t < p.tokens; ++t) {
    const int64_t idx = (s * p.tokens + t) * p.C + c;
    const float k = p.k[idx], r = p.r[idx];
    // ---- prepare (Rwkv7Prepare) ----
    const float kappa = k * k_k;
    const float norm = fmaxf(sqrtf(HeadSum2(kappa * kappa, 0.0f, sums).x), kL2MinNorm);
    const float kh = kappa * (1.0f / norm);
    const float alpha = Sigmoid(a0 + p.alpha[idx]);
    const float w = expf(-kDecayScale * Sigmoid(w0 + p.decay[idx]));
    const float k_mod = k * (1.0f + (alpha - 1.0f) * k_a);
    float v = p.v[idx];
    if (p.first_layer) {
      p.v_first[idx] = v;
    } else {
      v = v + (p.v_first[idx] - v) * Sigmoid(v0 + p.v_gate[idx]);
    }
    // ---- WKV (Wkv7) ----
    __syncthreads();  // everyone is done with the previous token's shared inputs
    sh_r[i] = r;
    sh_w[i] = w;
    sh_k[i] = k_mod;
    sh_a[i] = -kh;
    sh_b[i] = kh * alpha;
    __syncthreads();
    float s0 = 0.0f, s1 = 0.0f, s2 = 0.0f, s3 = 0.0f;
#pragma unroll
    for (int j = 0; j < kN; j += 4) {
      s0 = fmaf(sh_a[j], row[j], s0);
      s1 = fmaf(sh_a[j + 1], row[j + 1], s1);
      s2 = fmaf(sh_a[j + 2], row[j + 2], s2);
      s3 = fmaf(sh_a[j + 3], row[j + 3], s3);
    }
    const float sa = (s0 + s1) + (s2 + s3);
    float y0 = 0.0f, y1 = 0.0f, y2 = 0.0f, y3 = 0.0f;
#pragma unroll
    for (int j = 0; j < kN; j += 4) {
      row[j] = row[j] * sh_w[j] + sh_k[j] * v + sa * sh_b[j];
      row[j + 1] = row[j + 1] * sh_w[j + 1] + sh_k[j + 1] * v + sa * sh_b[j + 1];
      row[j + 2] = row[j + 2] * sh_w[j + 2] + sh_k[j + 2] * v + sa * sh_b[j + 2];
      row[j + 3] = row[j + 3] * sh_w[j + 3] + sh_k[j + 3] * v + sa * sh_b[j + 3];
      y0 = fmaf(row[j], sh_r[j], y0);
      y1 = fmaf(row[j + 1], sh_r[j + 1], y1);
      y2 = fmaf(row[j + 2], sh_r[j + 2], y2);
      y3 = fmaf(row[j + 3], sh_r[j + 3], y3);
    }
    const float y = (y0 + y1) + (y2 + y3);
    // ---- GroupNorm over the head, bonus, gate (GroupNormBonusGate) ----
    const float2 sum_bonus = HeadSum2(y, r * k_mod * r_k, sums);
    const float mean = sum_bonus.x / kN;
    const float d = y - mean;
    const float var = HeadSum2(d * d, 0.0f, sums).x / kN;
    const float o = d * (1.0f / sqrtf(var + kGroupNormEps)) * ln_w + ln_b + sum_bonus.y * v;
    StoreAs(p.out, p.out_type, idx, o * p.g[idx]);
  }
  StoreRow(state, row);
}

Status CheckWkvArgs(const Wkv7Args& p) {
  if (p.C % kN != 0) return Status::Error("Wkv7: C must be a multiple of 64");
  if (p.sessions <= 0 || p.tokens <= 0) return Status::Error("Wkv7: empty step");
  return Status();
}

}  // namespace

Status FillUniform(Context& ctx, void* dst, DType type, int64_t count, uint64_t seed, float offset,
                   float scale) {
  if (count <= 0) return Status();
  return Launch(ctx, "FillUniformKernel", FillUniformKernel, dim3(Blocks(count, 256)), dim3(256),
                dst, type, count, seed, offset, scale);
}

Status EmbedLayerNorm(Context& ctx, const EmbedArgs& a) {
  if (a.rows <= 0) return Status();
  return Launch(ctx, "EmbedKernel", EmbedKernel, dim3(static_cast<unsigned>(a.rows)),
                dim3(kRowThreads), a);
}

Status ShiftMix(Context& ctx, const ShiftMixArgs& a) {
  if (a.mixes < 1 || a.mixes > 6) return Status::Error("ShiftMix: 1 to 6 mixes");
  if (a.sessions <= 0 || a.tokens <= 0) return Status();
  if (a.tokens > 1 && a.saved == nullptr) return Status::Error("ShiftMix: needs `saved`");
  return Launch(ctx, "ShiftMixKernel", ShiftMixKernel,
                dim3(static_cast<unsigned>(a.sessions * a.tokens)), dim3(kRowThreads), a);
}

Status CommitShift(Context& ctx, const float* saved, float* shift_state, int64_t slot_stride,
                   const int32_t* slots, int64_t sessions, int64_t C) {
  if (sessions <= 0) return Status();
  return Launch(ctx, "CommitShiftKernel", CommitShiftKernel, dim3(static_cast<unsigned>(sessions)),
                dim3(256), saved, shift_state, slot_stride, slots, C);
}

Status Unary(Context& ctx, UnaryOp op, const float* x, void* y, DType y_type, int64_t n) {
  if (n <= 0) return Status();
  return Launch(ctx, "UnaryKernel", UnaryKernel, dim3(Blocks(n, 256)), dim3(256), op, x, y, y_type,
                n);
}

Status Rwkv7Prepare(Context& ctx, const PrepareArgs& p) {
  if (p.head_size % 32 != 0 || p.head_size > 32 * kMaxPerLane || p.C % p.head_size != 0) {
    return Status::Error("Rwkv7Prepare: head size must be a multiple of 32 up to 256");
  }
  if (p.rows <= 0) return Status();
  return Launch(ctx, "PrepareKernel", PrepareKernel, dim3(static_cast<unsigned>(p.rows)),
                dim3(kRowThreads), p);
}

Status GroupNormBonusGate(Context& ctx, const GroupNormBonusGateArgs& a) {
  if (a.head_size % 32 != 0 || a.head_size > 32 * kMaxPerLane || a.C % a.head_size != 0) {
    return Status::Error("GroupNormBonusGate: head size must be a multiple of 32 up to 256");
  }
  if (a.rows <= 0) return Status();
  return Launch(ctx, "GroupNormBonusGateKernel", GroupNormBonusGateKernel,
                dim3(static_cast<unsigned>(a.rows)), dim3(kRowThreads), a);
}

Status LayerNormLastRows(Context& ctx, const float* x, const float* ln_w, const float* ln_b,
                         int64_t sessions, int64_t tokens, int64_t C, void* out, DType out_type) {
  if (sessions <= 0) return Status();
  return Launch(ctx, "LayerNormLastRowsKernel", LayerNormLastRowsKernel,
                dim3(static_cast<unsigned>(sessions)), dim3(kRowThreads), x, ln_w, ln_b, tokens, C,
                out, out_type);
}

Status Wkv7(Context& ctx, const Wkv7Args& p) {
  SKEIN_CUDA_RETURN_IF_ERROR(CheckWkvArgs(p));
  const int64_t blocks = p.sessions * (p.C / kN);
  return Launch(ctx, "Wkv7RunKernel", Wkv7RunKernel, dim3(static_cast<unsigned>(blocks)), dim3(kN),
                p, p.tokens, 1, nullptr);
}

Status Rwkv7TimeMixCore(Context& ctx, const TimeMixCoreArgs& a) {
  if (a.C % kN != 0) return Status::Error("Rwkv7TimeMixCore: C must be a multiple of 64");
  if (a.sessions <= 0 || a.tokens <= 0) return Status();
  return Launch(ctx, "TimeMixCoreKernel", TimeMixCoreKernel,
                dim3(static_cast<unsigned>(a.sessions * (a.C / kN))), dim3(kN), a);
}

Status Wkv7Chunked(Context& ctx, const Wkv7Args& p, int64_t chunk, float* scratch) {
  SKEIN_CUDA_RETURN_IF_ERROR(CheckWkvArgs(p));
  if (chunk <= 0) return Status::Error("Wkv7Chunked: chunk must be positive");
  const int64_t chunks = (p.tokens + chunk - 1) / chunk;
  if (chunks == 1) return Wkv7(ctx, p);
  const int64_t heads = p.C / kN;
  const int64_t per = p.sessions * heads * chunks * kN * kN;
  float* transfer_p = scratch;
  float* transfer_c = scratch + per;
  float* starts = scratch + 2 * per;
  const unsigned chunk_blocks = static_cast<unsigned>(p.sessions * heads * chunks);
  SKEIN_CUDA_RETURN_IF_ERROR(Launch(ctx, "Wkv7TransferKernel", Wkv7TransferKernel,
                                    dim3(chunk_blocks), dim3(2 * kN), p, chunk, chunks, transfer_p,
                                    transfer_c));
  SKEIN_CUDA_RETURN_IF_ERROR(Launch(ctx, "Wkv7ChainKernel", Wkv7ChainKernel,
                                    dim3(static_cast<unsigned>(p.sessions * heads)), dim3(kN), p,
                                    chunks, transfer_p, transfer_c, starts));
  return Launch(ctx, "Wkv7RunKernel", Wkv7RunKernel, dim3(chunk_blocks), dim3(kN), p, chunk, chunks,
                starts);
}

}  // namespace skein::cuda
