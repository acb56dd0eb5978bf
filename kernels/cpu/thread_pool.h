// A fixed set of worker threads that run one parallel job at a time.
//
// Made for the decode loop, which calls it about a hundred times per token: a job is handed
// out by bumping a generation counter that idle workers spin on for a short while before they
// block on it, so back-to-back jobs cost a cache-line round trip rather than a syscall.
//
// Thread-safe: concurrent Run/ParallelFor calls from different threads are serialized. A job
// that calls back into the same pool (from any of its threads) runs its nested job inline on
// the calling thread instead of deadlocking.
#ifndef SKEIN_KERNELS_CPU_THREAD_POOL_H_
#define SKEIN_KERNELS_CPU_THREAD_POOL_H_

#include <atomic>
#include <chrono>
#include <cstdint>
#include <mutex>
#include <thread>
#include <vector>

#include "absl/functional/function_ref.h"

namespace skein::kernels {

// CPUs this process may run on (affinity mask), at least 1.
int HardwareCores();

class ThreadPool {
 public:
  // `num_threads` <= 0 means HardwareCores(). The calling thread counts as one of them, so
  // num_threads - 1 workers are started. `spin` is how long an idle worker polls for the next
  // job before blocking.
  explicit ThreadPool(int num_threads = 0,
                      std::chrono::microseconds spin = std::chrono::microseconds(200));
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int num_threads() const { return num_threads_; }

  // Calls fn(i) once for every i in [0, num_threads()), i = 0 on the calling thread, and
  // returns when all calls have returned.
  void Run(absl::FunctionRef<void(int)> fn);

  // Splits [0, n) into at most num_threads() contiguous ranges of at least `grain` items
  // (except when n < grain) and calls fn(begin, end) on each, in parallel.
  void ParallelFor(int64_t n, int64_t grain, absl::FunctionRef<void(int64_t, int64_t)> fn);

 private:
  void WorkerLoop(int index);

  const int num_threads_;
  const std::chrono::microseconds spin_;
  std::vector<std::thread> workers_;
  std::mutex run_mutex_;  // one job at a time

  // Written by the caller before `generation_` is bumped (release), read by workers after
  // they see the new generation (acquire).
  const absl::FunctionRef<void(int)>* job_ = nullptr;
  bool stop_ = false;

  alignas(64) std::atomic<uint32_t> generation_{0};
  alignas(64) std::atomic<uint32_t> pending_{0};
};

}  // namespace skein::kernels

#endif  // SKEIN_KERNELS_CPU_THREAD_POOL_H_
