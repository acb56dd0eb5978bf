#include "kernels/cpu/thread_pool.h"

#include <sched.h>

#include <algorithm>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define SKEIN_CPU_RELAX() _mm_pause()
#else
#define SKEIN_CPU_RELAX() ((void)0)
#endif

namespace skein::kernels {
namespace {

// Set while a thread runs a loop body of some pool; a nested loop then runs inline.
thread_local bool tls_inside_body = false;

// Polls `value` until `done(value)`, first spinning for `spin`, then blocking on it.
template <typename Done>
uint32_t Await(const std::atomic<uint32_t>& value, std::chrono::microseconds spin, Done done) {
  uint32_t now = value.load(std::memory_order_acquire);
  if (done(now)) return now;
  const auto deadline = std::chrono::steady_clock::now() + spin;
  for (int i = 1;; ++i) {
    SKEIN_CPU_RELAX();
    now = value.load(std::memory_order_acquire);
    if (done(now)) return now;
    if ((i & 63) == 0 && std::chrono::steady_clock::now() >= deadline) break;
  }
  for (;;) {
    value.wait(now, std::memory_order_acquire);
    now = value.load(std::memory_order_acquire);
    if (done(now)) return now;
  }
}

}  // namespace

int HardwareCores() {
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof(set), &set) == 0) {
    int n = CPU_COUNT(&set);
    if (n > 0) return n;
  }
  return std::max(1u, std::thread::hardware_concurrency());
}

ThreadPool::ThreadPool(int num_threads, std::chrono::microseconds spin)
    : num_threads_(num_threads > 0 ? num_threads : HardwareCores()), spin_(spin) {
  workers_.reserve(num_threads_ - 1);
  for (int i = 1; i < num_threads_; ++i) workers_.emplace_back([this] { WorkerLoop(); });
}

ThreadPool::~ThreadPool() {
  {
    absl::MutexLock lock(&run_mutex_);
    stop_.store(true, std::memory_order_relaxed);
    generation_.fetch_add(1, std::memory_order_release);
    generation_.notify_all();
  }
  for (std::thread& t : workers_) t.join();
}

void ThreadPool::WorkerLoop() {
  // The generation at construction; a loop (or the destructor) may have been published
  // before this thread got to run, and must not be missed.
  uint32_t seen = 0;
  for (;;) {
    seen = Await(generation_, spin_, [seen](uint32_t g) { return g != seen; });
    if (stop_.load(std::memory_order_relaxed)) return;  // ordered by generation_'s acquire
    Participate(seen);
  }
}

void ThreadPool::Participate(uint32_t generation) {
  for (;;) {
    uint64_t word = claim_.load(std::memory_order_acquire);
    if (static_cast<uint32_t>(word >> 32) != generation) return;
    const uint64_t limit = limit_.load(std::memory_order_acquire);
    if (static_cast<uint32_t>(limit >> 32) != generation) return;  // a newer loop is starting
    const uint32_t chunk = static_cast<uint32_t>(word);
    const uint32_t total = static_cast<uint32_t>(limit);
    if (chunk >= total) return;
    if (!claim_.compare_exchange_weak(word, word + 1, std::memory_order_acq_rel)) continue;
    // Holding an unfinished chunk of this generation: the loop's fields stay valid.
    const Loop& loop = published_loop();
    const int64_t begin = static_cast<int64_t>(chunk) * loop.grain;
    const int64_t end = std::min(loop.n, begin + loop.grain);
    const bool nested = tls_inside_body;
    tls_inside_body = true;
    (*loop.body)(begin, end);
    tls_inside_body = nested;
    if (done_.fetch_add(1, std::memory_order_acq_rel) + 1 == total) done_.notify_all();
  }
}

void ThreadPool::ParallelFor(int64_t n, int64_t grain,
                             absl::FunctionRef<void(int64_t, int64_t)> fn) {
  if (n <= 0) return;
  grain = std::max<int64_t>(grain, 1);
  const int64_t chunks = (n + grain - 1) / grain;
  if (chunks == 1 || num_threads_ == 1 || tls_inside_body || chunks > UINT32_MAX) {
    fn(0, n);
    return;
  }
  absl::MutexLock lock(&run_mutex_);
  loop_ = Loop{&fn, n, grain};
  done_.store(0, std::memory_order_relaxed);
  const uint32_t generation = generation_.load(std::memory_order_relaxed) + 1;
  limit_.store(static_cast<uint64_t>(generation) << 32 | static_cast<uint32_t>(chunks),
               std::memory_order_release);
  claim_.store(static_cast<uint64_t>(generation) << 32, std::memory_order_release);
  // seq_cst: the store must be visible before notify_all looks for sleeping workers.
  generation_.store(generation, std::memory_order_seq_cst);
  generation_.notify_all();

  Participate(generation);
  Await(done_, spin_, [chunks](uint32_t d) { return d == chunks; });
  loop_.body = nullptr;
}

void ThreadPool::Run(absl::FunctionRef<void(int)> fn) {
  ParallelFor(num_threads_, 1, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) fn(static_cast<int>(i));
  });
}

}  // namespace skein::kernels
