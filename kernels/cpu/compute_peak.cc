#include "kernels/cpu/compute_peak.h"

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <vector>

#include "kernels/cpu/compute_peak_loops.h"
#include "kernels/cpu/cpu_features.h"

namespace skein::kernels {
namespace peak {

float ScalarFmaLoop(int64_t iterations) {
  float acc[kPeakChains];
  for (int c = 0; c < kPeakChains; ++c) acc[c] = 0.01f * static_cast<float>(c + 1);
  for (int64_t i = 0; i < iterations; ++i) {
    // A multiply and an add, as the portable kernels do (std::fma would be a libm call here).
    for (int c = 0; c < kPeakChains; ++c) acc[c] = acc[c] * 0.999f + 0.001f;
  }
  float sum = 0;
  for (float a : acc) sum += a;
  return sum;
}

}  // namespace peak

namespace {

using Loop = float (*)(int64_t);

// FLOP/s of `loop` (`flop_per_round` per chain per round) over every thread of `pool`.
double Time(ThreadPool* pool, Loop loop, double flop_per_round) {
  const int threads = pool != nullptr ? pool->num_threads() : 1;
  // About 5 ms per run at 3 GHz for the vector forms (one round: 12 multiply-adds).
  const int64_t iterations = 1 << 20;
  std::vector<float> sinks(threads);
  auto run = [&](int t) { sinks[t] += loop(iterations); };
  double best = 0;
  for (int r = 0; r < 3; ++r) {
    const auto start = std::chrono::steady_clock::now();
    if (pool != nullptr) {
      pool->Run(run);
    } else {
      run(0);
    }
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    best = std::max(best, threads * static_cast<double>(iterations) * peak::kPeakChains *
                              flop_per_round / seconds);
  }
  volatile float sink = 0;
  for (float s : sinks) sink = sink + s;
  return best;
}

}  // namespace

ComputePeak MeasureComputePeak(ThreadPool* pool) {
  ComputePeak out;
  switch (ActiveIsaLevel()) {
    case IsaLevel::kAvx512:
      out.fp32_fma = Time(pool, &peak::Avx512FmaLoop, 32);
      if (DetectCpuFeatures().avx512_bf16) out.bf16_dot = Time(pool, &peak::Avx512Bf16DotLoop, 64);
      if (DetectCpuFeatures().avx512_vnni) {
        out.int8_dot = Time(pool, &peak::Avx512VnniDotLoop, 128);
      }
      break;
    case IsaLevel::kAvx2:
      out.fp32_fma = Time(pool, &peak::Avx2FmaLoop, 16);
      break;
    case IsaLevel::kScalar:
      out.fp32_fma = Time(pool, &peak::ScalarFmaLoop, 2);
      break;
  }
  return out;
}

}  // namespace skein::kernels
