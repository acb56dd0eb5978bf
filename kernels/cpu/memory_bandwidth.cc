#include "kernels/cpu/memory_bandwidth.h"

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <memory>
#include <vector>

namespace skein::kernels {
namespace {

// Eight independent partial sums keep the loop bound by loads rather than add latency.
float SumSlice(const float* p, size_t n) {
  float s[8] = {};
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    for (int j = 0; j < 8; ++j) s[j] += p[i + j];
  }
  for (; i < n; ++i) s[0] += p[i];
  float total = 0;
  for (float v : s) total += v;
  return total;
}

}  // namespace

double MeasureReadBandwidth(ThreadPool* pool, size_t bytes, int repeats) {
  const size_t n = std::max<size_t>(bytes / sizeof(float), 1024);
  std::unique_ptr<float[]> buffer(new float[n]);
  const int threads = pool != nullptr ? pool->num_threads() : 1;
  std::vector<float> sums(threads);
  auto pass = [&](int t) {
    const size_t begin = n * t / threads, end = n * (t + 1) / threads;
    sums[t] += SumSlice(buffer.get() + begin, end - begin);
  };
  // First touch (each thread its own slice, as the timed passes read it).
  auto touch = [&](int t) {
    const size_t begin = n * t / threads, end = n * (t + 1) / threads;
    std::fill(buffer.get() + begin, buffer.get() + end, 1.0f);
  };
  if (pool != nullptr) {
    pool->Run(touch);
  } else {
    touch(0);
  }
  double best = 0;
  for (int r = 0; r < std::max(repeats, 1); ++r) {
    const auto start = std::chrono::steady_clock::now();
    if (pool != nullptr) {
      pool->Run(pass);
    } else {
      pass(0);
    }
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    best = std::max(best, static_cast<double>(n * sizeof(float)) / seconds);
  }
  // Keep the sums observable so the passes are not optimised away.
  volatile float sink = 0;
  for (float s : sums) sink = sink + s;
  return best;
}

}  // namespace skein::kernels
