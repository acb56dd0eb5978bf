#include "kernels/cpu/path_choice.h"

#include <algorithm>
#include <chrono>

namespace skein::kernels {

std::vector<Bf16ActivationTiming> TimeBf16Activations(const WeightMatrix& w,
                                                      absl::Span<const int64_t> batches,
                                                      ThreadPool* pool, int repeats) {
  std::vector<Bf16ActivationTiming> out;
  for (int64_t batch : batches) {
    std::vector<float> x(static_cast<size_t>(batch * w.cols));
    for (size_t i = 0; i < x.size(); ++i) {
      // Small, varied values (what a LayerNorm output looks like), no randomness.
      x[i] = static_cast<float>(static_cast<int64_t>(i * 2654435761u % 2001) - 1000) * 1e-3f;
    }
    std::vector<float> y(static_cast<size_t>(batch * w.rows));
    auto time = [&](bool bf16) {
      MatMulJob job{x.data(), w.cols, w, y.data(), w.rows, batch, false, bf16};
      MatMul(job, pool);  // warm-up: caches, packing buffers
      double best = 1e30;
      for (int r = 0; r < repeats; ++r) {
        const auto start = std::chrono::steady_clock::now();
        MatMul(job, pool);
        best = std::min(
            best, std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
      }
      return best;
    };
    Bf16ActivationTiming t;
    t.batch = batch;
    // Interleaved, so a change in the machine's load hits both alike.
    t.exact_seconds = time(false);
    t.bf16_seconds = time(true);
    t.exact_seconds = std::min(t.exact_seconds, time(false));
    out.push_back(t);
  }
  return out;
}

bool Bf16ActivationsPayOff(absl::Span<const Bf16ActivationTiming> timings) {
  if (timings.empty()) return false;
  return std::all_of(timings.begin(), timings.end(), [](const Bf16ActivationTiming& t) {
    return t.bf16_seconds <= 0.95 * t.exact_seconds;
  });
}

}  // namespace skein::kernels
