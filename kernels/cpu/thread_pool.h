// A fixed set of worker threads that share one parallel loop at a time.
//
// Work is cut into chunks that the calling thread and the workers claim one by one, so a
// worker that the OS has not scheduled yet (a busy machine) delays nothing: the threads that
// do run take its share. Made for the decode loop, which runs about a hundred parallel loops
// per token: a loop is handed out by bumping a generation counter that idle workers spin on
// for a short while before they block, so back-to-back loops cost a few cache-line transfers
// rather than a syscall.
//
// Thread-safe: concurrent calls from different threads are serialized. A loop body that calls
// back into a pool runs its nested loop inline on the calling thread instead of deadlocking.
#ifndef SKEIN_KERNELS_CPU_THREAD_POOL_H_
#define SKEIN_KERNELS_CPU_THREAD_POOL_H_

#include <atomic>
#include <chrono>
#include <cstdint>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/functional/function_ref.h"
#include "absl/synchronization/mutex.h"

namespace skein::kernels {

// CPUs this process may run on (affinity mask), at least 1.
int HardwareCores();

class ThreadPool {
 public:
  // `num_threads` <= 0 means HardwareCores(). The calling thread counts as one of them, so
  // num_threads - 1 workers are started. `spin` is how long an idle worker polls for the next
  // loop before blocking.
  explicit ThreadPool(int num_threads = 0,
                      std::chrono::microseconds spin = std::chrono::microseconds(200));
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int num_threads() const { return num_threads_; }

  // Calls fn(begin, end) over consecutive chunks of `grain` items covering [0, n) (the last
  // one may be shorter), in parallel, and returns when all have returned. Each chunk runs
  // exactly once, on any thread (the caller included).
  void ParallelFor(int64_t n, int64_t grain, absl::FunctionRef<void(int64_t, int64_t)> fn);

  // Calls fn(i) for every i in [0, num_threads()): ParallelFor with one index per chunk.
  void Run(absl::FunctionRef<void(int)> fn);

 private:
  struct Loop {
    const absl::FunctionRef<void(int64_t, int64_t)>* body = nullptr;
    int64_t n = 0;
    int64_t grain = 1;
  };

  void WorkerLoop();
  // Claims and runs chunks of loop `generation` until none is left.
  void Participate(uint32_t generation);

  // The current loop, to a thread that holds an unfinished chunk of it (a worker does not hold
  // run_mutex_). The loop is written only with run_mutex_ held, before its generation is
  // published (release), and read only by a thread that claimed a chunk of that generation
  // (acquire); its writer waits for that chunk before it changes the loop again. The atomics
  // order these reads, which clang's analysis cannot follow; nothing else reads loop_ without
  // the mutex.
  const Loop& published_loop() const ABSL_NO_THREAD_SAFETY_ANALYSIS { return loop_; }

  const int num_threads_;
  const std::chrono::microseconds spin_;
  std::vector<std::thread> workers_;
  absl::Mutex run_mutex_;  // one loop at a time

  Loop loop_ ABSL_GUARDED_BY(run_mutex_);
  // Set by the destructor before it publishes its generation. Atomic: a worker late for the
  // previous loop may read it while the destructor writes it.
  std::atomic<bool> stop_{false};

  // (generation << 32) | next unclaimed chunk, advanced by compare-and-swap so that a claim
  // made for an old loop can never take a chunk of a newer one.
  alignas(64) std::atomic<uint64_t> claim_{0};
  // (generation << 32) | number of chunks. The count carries its generation so that a
  // worker comparing an old loop's claim word against a newer loop's count (published just
  // before the newer claim word) cannot take a chunk that does not exist.
  alignas(64) std::atomic<uint64_t> limit_{0};
  alignas(64) std::atomic<uint32_t> done_{0};
  alignas(64) std::atomic<uint32_t> generation_{0};
};

}  // namespace skein::kernels

#endif  // SKEIN_KERNELS_CPU_THREAD_POOL_H_
