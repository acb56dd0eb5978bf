#include "kernels/cpu/path_choice.h"

#include <algorithm>
#include <chrono>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"

namespace skein::kernels {

namespace {

// Small, varied values (what a LayerNorm output looks like), no randomness.
std::vector<float> ProbeActivations(int64_t batch, int64_t cols) {
  std::vector<float> x(static_cast<size_t>(batch * cols));
  for (size_t i = 0; i < x.size(); ++i) {
    x[i] = static_cast<float>(static_cast<int64_t>(i * 2654435761u % 2001) - 1000) * 1e-3f;
  }
  return x;
}

// Best time of `repeats` runs of `job` after one warm-up (caches, packing buffers).
double BestTime(const MatMulJob& job, ThreadPool* pool, int repeats) {
  MatMul(job, pool);
  double best = 1e30;
  for (int r = 0; r < repeats; ++r) {
    const auto start = std::chrono::steady_clock::now();
    MatMul(job, pool);
    best = std::min(
        best, std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  }
  return best;
}

}  // namespace

std::vector<Bf16ActivationTiming> TimeBf16Activations(const WeightMatrix& w,
                                                      absl::Span<const int64_t> batches,
                                                      ThreadPool* pool, int repeats) {
  std::vector<Bf16ActivationTiming> out;
  for (int64_t batch : batches) {
    const std::vector<float> x = ProbeActivations(batch, w.cols);
    std::vector<float> y(static_cast<size_t>(batch * w.rows));
    auto time = [&](bool bf16) {
      return BestTime({x.data(), w.cols, w, y.data(), w.rows, batch, false, bf16}, pool, repeats);
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

std::vector<TileTiming> TimeTileProducts(const WeightMatrix& w, absl::Span<const int64_t> batches,
                                         bool bf16_activations, ThreadPool* pool, int repeats) {
  std::vector<TileTiming> out;
  for (int64_t batch : batches) {
    const std::vector<float> x = ProbeActivations(batch, w.cols);
    std::vector<float> y(static_cast<size_t>(batch * w.rows));
    MatMulJob job{x.data(), w.cols, w, y.data(), w.rows, batch, false, bf16_activations};
    auto time = [&](MatMulJob::Tiles tiles) {
      job.tiles = tiles;
      return BestTime(job, pool, repeats);
    };
    TileTiming t;
    t.batch = batch;
    t.bf16_activations = bf16_activations;
    // Interleaved, so a change in the machine's load hits both alike.
    t.vector_seconds = time(MatMulJob::Tiles::kAvoid);
    t.tile_seconds = time(MatMulJob::Tiles::kUse);
    t.vector_seconds = std::min(t.vector_seconds, time(MatMulJob::Tiles::kAvoid));
    out.push_back(t);
  }
  return out;
}

int64_t TileMinBatch(absl::Span<const TileTiming> timings) {
  std::vector<TileTiming> sorted(timings.begin(), timings.end());
  std::sort(sorted.begin(), sorted.end(),
            [](const TileTiming& a, const TileTiming& b) { return a.batch < b.batch; });
  int64_t min_batch = kNoTileBatch;
  for (auto t = sorted.rbegin(); t != sorted.rend() && t->tile_seconds < t->vector_seconds; ++t) {
    min_batch = t->batch;
  }
  return min_batch;
}

namespace {

// The process's tile choice (ChooseTilePolicy).
struct TileChoiceState {
  absl::Mutex mutex;
  bool decided ABSL_GUARDED_BY(mutex) = false;
  bool rounded_timed ABSL_GUARDED_BY(mutex) = false;
  TileChoice choice ABSL_GUARDED_BY(mutex);
};

}  // namespace

TileChoice ChooseTilePolicy(const WeightMatrix& w, bool bf16_activations, ThreadPool* pool) {
  static TileChoiceState* const state = new TileChoiceState;
  absl::MutexLock lock(&state->mutex);
  bool& decided = state->decided;
  bool& rounded_timed = state->rounded_timed;
  TileChoice* const choice = &state->choice;
  // Tiles run bf16 panels only (int8 panels have kernels of their own).
  const bool can_time = AmxTilesAvailable() && w.panels != nullptr && w.type == DType::kBF16 &&
                        w.rows > 0 && w.cols > 0;
  // Up to the largest batches the engine runs whole (prefill chunks, batched decode).
  const int64_t batches[] = {1, 2, 4, 8, 16, 32, 64, 128, 256};
  if (!decided) {
    decided = true;
    choice->policy = GetTilePolicy();
    choice->policy.min_batch_exact = choice->policy.min_batch_rounded = kNoTileBatch;
    if (can_time) {
      choice->timings = TimeTileProducts(w, batches, false, pool);
      choice->policy.min_batch_exact = TileMinBatch(choice->timings);
    }
    SetTilePolicy(choice->policy);
  }
  if (bf16_activations && !rounded_timed && can_time) {
    rounded_timed = true;
    const std::vector<TileTiming> rounded = TimeTileProducts(w, batches, true, pool);
    choice->policy.min_batch_rounded = TileMinBatch(rounded);
    choice->timings.insert(choice->timings.end(), rounded.begin(), rounded.end());
    SetTilePolicy(choice->policy);
  }
  return *choice;
}

}  // namespace skein::kernels
