// Kernel throughput: matrix products at the RWKV-7 0.1B/0.4B projection shapes, batch sizes
// of decode (1, 8, 32) and prefill (128, 512), per weight type, ISA level and thread count;
// int8 against bf16 and fp32 weights (BM_MatMulInt8VsFloat); int8 weights with int8
// activations against fp32 activations and bf16 (BM_MatMulInt8Activations, streamed from
// memory, and BM_MatMulInt8ActivationsInCache); QuantizeRowsInt8, QuantizeActivationsInt8;
// plus the WKV-7 update and LayerNorm.
//
//   bazel run -c opt //kernels/cpu:kernels_benchmark -- --benchmark_filter=MatMul
//   bazel run -c opt //kernels/cpu:kernels_benchmark -- --benchmark_filter=Int8
//   bazel run -c opt //kernels/cpu:kernels_benchmark -- --benchmark_filter=Int8Activations
// Counters: weight_GBps (weight bytes streamed per second: the decode roofline compares this
// with the memory bandwidth) and GFLOPS (2·batch·rows·cols per second).
#include <algorithm>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "base/float16.h"
#include "benchmark/benchmark.h"
#include "kernels/cpu/cpu_features.h"
#include "kernels/cpu/kernel_table.h"
#include "kernels/cpu/kernels.h"
#include "kernels/cpu/thread_pool.h"

namespace skein::kernels {
namespace {

// Enough distinct weight copies that repeated calls stream from memory, not from cache
// (the L3 of a server CPU can hold a whole 768×3072 matrix).
constexpr size_t kMinWeightBytesInFlight = size_t{1} << 30;

struct WeightSet {
  std::vector<std::vector<int8_t>> q;
  std::vector<float> scales;  // int8: shared by every copy
  std::vector<std::vector<uint16_t>> half;
  std::vector<std::vector<uint32_t>> panels;
  std::vector<std::vector<float>> f32;
  std::vector<WeightMatrix> matrices;
};

// `streamed`: enough copies to defeat the caches (decode-sized batches, which are bound by
// reading the weights); otherwise one (large batches are bound by arithmetic).
WeightSet MakeWeights(DType type, int64_t rows, int64_t cols, bool streamed) {
  WeightSet set;
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> dist(-0.05f, 0.05f);
  const size_t bytes = rows * cols * DTypeSize(type);
  const size_t copies = streamed ? std::max<size_t>(1, kMinWeightBytesInFlight / bytes) : 1;
  for (size_t c = 0; c < copies; ++c) {
    WeightMatrix m{nullptr, type, rows, cols, cols};
    // Random values once; copies reuse them (their addresses are what matters).
    if (type == DType::kI8) {
      set.q.emplace_back(rows * cols);
      if (c == 0) {
        std::uniform_int_distribution<int> qdist(-127, 127);
        for (int8_t& v : set.q.back()) v = static_cast<int8_t>(qdist(rng));
        set.scales.assign(rows, 0.05f / 127.0f);
      } else {
        set.q.back() = set.q.front();
      }
      m.data = set.q.back().data();
      m.scales = set.scales.data();
    } else if (type == DType::kF32) {
      set.f32.emplace_back(rows * cols);
      if (c == 0) {
        for (float& v : set.f32.back()) v = dist(rng);
      } else {
        set.f32.back() = set.f32.front();
      }
      m.data = set.f32.back().data();
    } else {
      set.half.emplace_back(rows * cols);
      if (c == 0) {
        for (uint16_t& v : set.half.back()) {
          v = type == DType::kBF16 ? base::F32ToBf16(dist(rng)) : base::F32ToF16(dist(rng));
        }
      } else {
        set.half.back() = set.half.front();
      }
      m.data = set.half.back().data();
    }
    set.matrices.push_back(m);
  }
  return set;
}

// The same matrices pre-packed into panels (what the engine loads on AVX512_BF16 CPUs for
// bf16, and on AVX512-VNNI CPUs for int8 runs with int8 activations).
void PackPanels(WeightSet& set) {
  for (WeightMatrix& m : set.matrices) {
    const bool int8 = m.type == DType::kI8;
    // 64-byte aligned, as the engine allocates them (a vector load then never straddles two
    // cache lines).
    constexpr size_t kAlignWords = 64 / sizeof(uint32_t);
    set.panels.emplace_back(
        (int8 ? Int8PanelWords(m.rows, m.cols) : Bf16PanelWords(m.rows, m.cols)) + kAlignWords);
    const auto address = reinterpret_cast<uintptr_t>(set.panels.back().data());
    uint32_t* out = set.panels.back().data() + (64 - address % 64) % 64 / sizeof(uint32_t);
    if (int8) {
      PackInt8Panels(m, out);
    } else {
      PackBf16Panels(m, out);
    }
    m.panels = out;
  }
  set.half.clear();
  set.q.clear();
  for (WeightMatrix& m : set.matrices) m.data = nullptr;
}

// Args: rows, cols, batch, type, isa, threads. `streamed`: see MakeWeights.
void RunMatMul(benchmark::State& state, bool streamed) {
  const int64_t rows = state.range(0), cols = state.range(1), batch = state.range(2);
  // type 0-2 = fp32, bf16, fp16 weights; 3 = bf16 weights with bf16-rounded activations
  // (vdpbf16ps where available); 4 = the same on pre-packed panels; 5 = int8 weights;
  // 6 = int8 weights with int8 activations (quantised per call, inside the timing);
  // 7 = bf16 weights on pre-packed panels with fp32 activations (exact: the engine's default);
  // 8 = int8 weights on pre-packed panels with int8 activations (vpdpbusd over panels);
  // 9 = int8 weights on pre-packed panels with fp32 activations (the default int8 run).
  const bool int8_packed = state.range(3) == 8 || state.range(3) == 9;
  const bool int8_activations = state.range(3) == 6 || state.range(3) == 8;
  const bool int8 = state.range(3) == 5 || int8_activations || int8_packed;
  const bool packed = state.range(3) == 4 || state.range(3) == 7;
  const bool bf16_activations = state.range(3) == 3 || state.range(3) == 4;
  const auto type = int8                         ? DType::kI8
                    : bf16_activations || packed ? DType::kBF16
                                                 : static_cast<DType>(state.range(3));
  if (packed && !Bf16PanelsAccelerated()) {
    state.SkipWithError("no AVX512_BF16 on this CPU or build");
    return;
  }
  if (int8_packed && !Int8PanelsAccelerated()) {
    state.SkipWithError("no AVX512-VNNI on this CPU or build");
    return;
  }
  const auto isa = static_cast<IsaLevel>(state.range(4));
  if (!ForceIsaLevel(isa).ok()) {
    state.SkipWithError("ISA level not supported on this CPU");
    return;
  }
  ThreadPool pool(static_cast<int>(state.range(5)));
  WeightSet weights = MakeWeights(type, rows, cols, streamed);
  if (packed || int8_packed) PackPanels(weights);
  std::vector<float> x(batch * cols, 0.01f), y(batch * rows);
  size_t i = 0;
  for (auto _ : state) {
    const WeightMatrix& w = weights.matrices[i++ % weights.matrices.size()];
    MatMulJob job{x.data(), cols, w, y.data(), rows, batch, false, bf16_activations};
    job.int8_activations = int8_activations;
    MatMul(job, &pool);
    benchmark::ClobberMemory();
  }
  const double calls = static_cast<double>(state.iterations());
  // Every byte a call reads of the weights (int8: the scales too).
  state.counters["weight_GBps"] =
      benchmark::Counter(calls * static_cast<double>(weights.matrices.front().bytes()) / 1e9,
                         benchmark::Counter::kIsRate);
  state.counters["GFLOPS"] =
      benchmark::Counter(calls * 2.0 * batch * rows * cols / 1e9, benchmark::Counter::kIsRate);
  state.SetLabel(std::string(IsaLevelName(isa)) +
                 (packed && bf16_activations        ? " bf16 panels (bf16 activations)"
                  : packed                          ? " bf16 panels"
                  : bf16_activations                ? " bf16 (bf16 activations)"
                  : type == DType::kF32             ? " f32"
                  : type == DType::kBF16            ? " bf16"
                  : int8_packed && int8_activations ? " int8 panels (int8 activations)"
                  : int8_packed                     ? " int8 panels"
                  : int8_activations                ? " int8 (int8 activations)"
                  : type == DType::kI8              ? " int8"
                                                    : " f16"));
  (void)ForceIsaLevel(SupportedIsaLevel());
}

// Decode-sized batches stream the weights from memory (what they are bound by); larger ones
// keep one copy (they are bound by arithmetic).
void BM_MatMul(benchmark::State& state) { RunMatMul(state, /*streamed=*/state.range(2) <= 8); }

void MatMulArgs(benchmark::internal::Benchmark* b) {
  b->ArgNames({"rows", "cols", "batch", "type", "isa", "threads"});
  const std::vector<std::pair<int64_t, int64_t>> shapes = {
      {768, 768}, {3072, 768}, {768, 3072}, {1024, 1024}, {4096, 1024}, {65536, 768}};
  for (int threads : {1, 2}) {
    for (int isa : {1, 2}) {
      for (int type : {0, 1, 2, 3, 4, 5, 6, 7, 8, 9}) {
        // Panels need the avx512 level (below it they run the portable loop: no figure).
        if ((type == 4 || type >= 7) && isa < 2) continue;
        for (auto [rows, cols] : shapes) {
          for (int64_t batch : {1, 8, 32, 128, 512}) {
            if (rows == 65536 && batch > 32) continue;  // the head runs on last tokens only
            b->Args({rows, cols, batch, type, isa, threads});
          }
        }
      }
    }
  }
  b->UseRealTime();
}
BENCHMARK(BM_MatMul)->Apply(MatMulArgs);

// int8 against bf16 and fp32 weights on the best ISA level, one thread: the projection
// shapes 768×768 and 3072×768 (rows × cols), decode (batch 1, weights streamed from memory)
// and a small prefill (batch 32).
void BM_MatMulInt8VsFloat(benchmark::State& state) { BM_MatMul(state); }
void Int8VsFloatArgs(benchmark::internal::Benchmark* b) {
  b->ArgNames({"rows", "cols", "batch", "type", "isa", "threads"});
  const int isa = static_cast<int>(SupportedIsaLevel());
  for (auto [rows, cols] : {std::pair<int64_t, int64_t>{768, 768}, {3072, 768}}) {
    for (int64_t batch : {1, 32}) {
      for (int type : {0, 1, 5}) b->Args({rows, cols, batch, type, isa, 1});
    }
  }
  b->UseRealTime();
}
BENCHMARK(BM_MatMulInt8VsFloat)->Apply(Int8VsFloatArgs);

// int8 weights with int8 activations (type 6; type 8 on packed panels) against fp32
// activations (type 5) and bf16 weights (type 1) on the best ISA level: the model's projection
// shapes and the head (65536 × 768), decode (batch 1) and a few sequences (batch 8), both with the
// weights streamed from memory, on 1 and 2 threads.
void BM_MatMulInt8Activations(benchmark::State& state) { RunMatMul(state, /*streamed=*/true); }
void Int8ActivationsArgs(benchmark::internal::Benchmark* b) {
  b->ArgNames({"rows", "cols", "batch", "type", "isa", "threads"});
  const int isa = static_cast<int>(SupportedIsaLevel());
  const std::vector<std::pair<int64_t, int64_t>> shapes = {
      {768, 768}, {3072, 768}, {768, 3072}, {1024, 1024}, {4096, 1024}, {65536, 768}};
  for (int threads : {1, 2}) {
    for (auto [rows, cols] : shapes) {
      for (int64_t batch : {1, 8}) {
        for (int type : {1, 5, 6, 8, 9}) b->Args({rows, cols, batch, type, isa, threads});
      }
    }
  }
  b->UseRealTime();
}
BENCHMARK(BM_MatMulInt8Activations)->Apply(Int8ActivationsArgs);

// The same products with one copy of the weights, which stays in the caches (all but the
// head): the arithmetic's own speed, where memory bandwidth is not the limit. One thread.
void BM_MatMulInt8ActivationsInCache(benchmark::State& state) {
  RunMatMul(state, /*streamed=*/false);
}
void Int8ActivationsInCacheArgs(benchmark::internal::Benchmark* b) {
  b->ArgNames({"rows", "cols", "batch", "type", "isa", "threads"});
  const int isa = static_cast<int>(SupportedIsaLevel());
  const std::vector<std::pair<int64_t, int64_t>> shapes = {
      {768, 768}, {3072, 768}, {768, 3072}, {1024, 1024}, {4096, 1024}};
  for (auto [rows, cols] : shapes) {
    for (int64_t batch : {1, 8, 32, 128}) {
      for (int type : {1, 4, 5, 6, 8, 9}) b->Args({rows, cols, batch, type, isa, 1});
    }
  }
  b->UseRealTime();
}
BENCHMARK(BM_MatMulInt8ActivationsInCache)->Apply(Int8ActivationsInCacheArgs);

// Args: rows, cols, source type (DType), threads. source_GBps counts the source bytes read.
void BM_QuantizeRowsInt8(benchmark::State& state) {
  const int64_t rows = state.range(0), cols = state.range(1);
  const auto type = static_cast<DType>(state.range(2));
  ThreadPool pool(static_cast<int>(state.range(3)));
  WeightSet weights = MakeWeights(type, rows, cols, /*streamed=*/false);
  std::vector<int8_t> q(rows * cols);
  std::vector<float> scales(rows);
  for (auto _ : state) {
    QuantizeRowsInt8(weights.matrices.front(), q.data(), scales.data(), &pool);
    benchmark::ClobberMemory();
  }
  state.counters["source_GBps"] = benchmark::Counter(
      static_cast<double>(state.iterations()) * rows * cols * DTypeSize(type) / 1e9,
      benchmark::Counter::kIsRate);
  state.SetLabel(std::string(base::DTypeName(type)) + " source");
}
BENCHMARK(BM_QuantizeRowsInt8)
    ->ArgNames({"rows", "cols", "type", "threads"})
    ->ArgsProduct({{768, 3072}, {768}, {0, 1}, {1}})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

// Args: batch, cols, simd. The per-call quantisation of activations that int8-activation
// products do first (once per distinct x in a MatMulMany call): simd 0 = the portable
// QuantizeActivationsInt8, 1 = the active variant's own (what MatMul uses; the same result).
void BM_QuantizeActivationsInt8(benchmark::State& state) {
  const int64_t batch = state.range(0), cols = state.range(1);
  auto* quantize = state.range(2) ? ActiveInt8Dot().quantize : &QuantizeActivationsInt8;
  if (quantize == nullptr) {
    state.SkipWithError("the active variant has no quantiser of its own");
    return;
  }
  std::vector<float> x(batch * cols);
  for (size_t i = 0; i < x.size(); ++i) x[i] = 0.01f * static_cast<float>(i % 37) - 0.18f;
  const int64_t ldq = Int8ActivationRowBytes(cols);
  std::vector<int8_t> q(batch * ldq);
  std::vector<float> scales(batch * ldq / kInt8ActivationBlock);
  for (auto _ : state) {
    quantize(x.data(), cols, batch, cols, q.data(), scales.data());
    benchmark::ClobberMemory();
  }
  state.counters["values_per_s"] = benchmark::Counter(
      static_cast<double>(state.iterations()) * batch * cols, benchmark::Counter::kIsRate);
  state.SetLabel(state.range(2) ? std::string(Int8DotIsaName(ActiveInt8Dot().isa)) : "portable");
}
BENCHMARK(BM_QuantizeActivationsInt8)
    ->ArgNames({"batch", "cols", "simd"})
    ->ArgsProduct({{1, 8}, {768, 3072}, {0, 1}});

// Args: tokens, isa. One 64×64 head.
void BM_Wkv7Head(benchmark::State& state) {
  const int64_t tokens = state.range(0), n = 64;
  if (!ForceIsaLevel(static_cast<IsaLevel>(state.range(1))).ok()) {
    state.SkipWithError("ISA level not supported on this CPU");
    return;
  }
  std::vector<float> s(n * n, 0.01f), in(tokens * n, 0.5f), w(tokens * n, 0.9f), y(tokens * n);
  for (auto _ : state) {
    Wkv7Head({s.data(), n, tokens, n, in.data(), w.data(), in.data(), in.data(), in.data(),
              in.data(), y.data(), n});
    benchmark::ClobberMemory();
  }
  state.counters["tokens_per_s"] = benchmark::Counter(
      static_cast<double>(state.iterations()) * tokens, benchmark::Counter::kIsRate);
  (void)ForceIsaLevel(SupportedIsaLevel());
}
BENCHMARK(BM_Wkv7Head)->ArgNames({"tokens", "isa"})->ArgsProduct({{1, 128}, {0, 1, 2}});

void BM_LayerNorm(benchmark::State& state) {
  const int64_t n = state.range(0);
  if (!ForceIsaLevel(static_cast<IsaLevel>(state.range(1))).ok()) {
    state.SkipWithError("ISA level not supported on this CPU");
    return;
  }
  std::vector<float> x(n, 0.3f), g(n, 1.0f), b(n, 0.0f), y(n);
  for (auto _ : state) {
    LayerNorm(x.data(), g.data(), b.data(), n, 1e-5f, y.data());
    benchmark::ClobberMemory();
  }
  (void)ForceIsaLevel(SupportedIsaLevel());
}
BENCHMARK(BM_LayerNorm)->ArgNames({"n", "isa"})->ArgsProduct({{768, 2048}, {0, 1, 2}});

}  // namespace
}  // namespace skein::kernels

BENCHMARK_MAIN();
