// STREAM-like memory bandwidth: copy (a = b), triad (a = b + s·c) and a pure read (sum of a),
// over arrays much larger than the caches, with 1..N threads (each thread takes a contiguous
// slice). The read figure is the roofline for decode, which only reads weights.
//
//   bazel run -c opt //kernels/cpu:memory_bandwidth_benchmark
// Array size: SKEIN_BW_MIB (default 512 MiB per array).
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <vector>

#include "benchmark/benchmark.h"
#include "kernels/cpu/thread_pool.h"

namespace skein::kernels {
namespace {

size_t ArrayFloats() {
  size_t mib = 512;
  if (const char* env = std::getenv("SKEIN_BW_MIB")) mib = std::strtoull(env, nullptr, 10);
  if (mib == 0) mib = 512;
  return mib * (1u << 20) / sizeof(float);
}

struct Arrays {
  size_t n = ArrayFloats();
  std::unique_ptr<float[]> a{new float[n]};
  std::unique_ptr<float[]> b{new float[n]};
  std::unique_ptr<float[]> c{new float[n]};
  Arrays() {
    // Touch every page so the timed loops measure memory, not page faults.
    for (size_t i = 0; i < n; ++i) {
      a[i] = 1.0f;
      b[i] = 2.0f;
      c[i] = 0.5f;
    }
  }
};

Arrays& SharedArrays() {
  static Arrays* arrays = new Arrays();
  return *arrays;
}

// Eight independent partial sums so the loop is bound by loads, not by add latency.
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

template <typename SliceFn>
void RunSliced(ThreadPool& pool, size_t n, SliceFn fn) {
  pool.ParallelFor(static_cast<int64_t>(n), 1 << 16,
                   [&](int64_t begin, int64_t end) { fn(begin, end); });
}

void BM_Read(benchmark::State& state) {
  Arrays& arr = SharedArrays();
  ThreadPool pool(static_cast<int>(state.range(0)));
  float sink = 0;
  for (auto _ : state) {
    std::vector<float> partial(pool.num_threads());
    pool.Run([&](int t) {
      const size_t begin = arr.n * t / pool.num_threads();
      const size_t end = arr.n * (t + 1) / pool.num_threads();
      partial[t] = SumSlice(arr.a.get() + begin, end - begin);
    });
    for (float p : partial) sink += p;
  }
  benchmark::DoNotOptimize(sink);
  state.SetBytesProcessed(state.iterations() * arr.n * sizeof(float));
}

void BM_Copy(benchmark::State& state) {
  Arrays& arr = SharedArrays();
  ThreadPool pool(static_cast<int>(state.range(0)));
  for (auto _ : state) {
    RunSliced(pool, arr.n, [&](size_t begin, size_t end) {
      std::memcpy(arr.a.get() + begin, arr.b.get() + begin, (end - begin) * sizeof(float));
    });
    benchmark::ClobberMemory();
  }
  // STREAM convention: bytes read plus bytes written.
  state.SetBytesProcessed(state.iterations() * arr.n * sizeof(float) * 2);
}

void BM_Triad(benchmark::State& state) {
  Arrays& arr = SharedArrays();
  ThreadPool pool(static_cast<int>(state.range(0)));
  const float scalar = 3.0f;
  for (auto _ : state) {
    RunSliced(pool, arr.n, [&](size_t begin, size_t end) {
      float* a = arr.a.get();
      const float* b = arr.b.get();
      const float* c = arr.c.get();
      for (size_t i = begin; i < end; ++i) a[i] = b[i] + scalar * c[i];
    });
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(state.iterations() * arr.n * sizeof(float) * 3);
}

void ThreadArgs(benchmark::internal::Benchmark* b) {
  for (int t = 1; t <= HardwareCores(); t *= 2) b->Arg(t);
  if ((HardwareCores() & (HardwareCores() - 1)) != 0) b->Arg(HardwareCores());
  b->ArgName("threads")->UseRealTime()->MinTime(0.5);
}

BENCHMARK(BM_Read)->Apply(ThreadArgs);
BENCHMARK(BM_Copy)->Apply(ThreadArgs);
BENCHMARK(BM_Triad)->Apply(ThreadArgs);

}  // namespace
}  // namespace skein::kernels

BENCHMARK_MAIN();
