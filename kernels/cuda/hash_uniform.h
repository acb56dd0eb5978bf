// The deterministic pseudo-random numbers that random test and benchmark weights are made of,
// the same bits on the host and on the device (the GPU fills weights in place; the CPU
// reference makes or checks the very same values). Header-only so that nvcc and the host
// compiler both see it.
#ifndef SKEIN_KERNELS_CUDA_HASH_UNIFORM_H_
#define SKEIN_KERNELS_CUDA_HASH_UNIFORM_H_

#include <cstdint>

#if defined(__CUDACC__)
#define SKEIN_HOST_DEVICE __host__ __device__
#else
#include <cmath>
#define SKEIN_HOST_DEVICE
#endif

namespace skein::cuda {

// SplitMix64's finaliser over (seed, index): a counter-based generator, so every element is
// made independently and in any order.
SKEIN_HOST_DEVICE inline uint64_t HashIndex(uint64_t seed, uint64_t index) {
  uint64_t z = seed * 0x9e3779b97f4a7c15ull + index * 0xd1b54a32d192ed03ull + 0x632be59bd9b4e019ull;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

// offset + scale·u with u uniform on [-1, 1) in steps of 2^-23. u is exact in fp32 and the
// result is one fused multiply-add, so host and device round it identically.
SKEIN_HOST_DEVICE inline float HashUniform(uint64_t seed, uint64_t index, float offset,
                                           float scale) {
  const float u =
      static_cast<float>(static_cast<int32_t>(HashIndex(seed, index) >> 40)) * (1.0f / 8388608.0f) -
      1.0f;
#if defined(__CUDA_ARCH__)
  return __fmaf_rn(scale, u, offset);
#else
  return std::fma(scale, u, offset);
#endif
}

}  // namespace skein::cuda

#endif  // SKEIN_KERNELS_CUDA_HASH_UNIFORM_H_
