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

// Set while a thread runs a job of some pool; a nested call then runs inline.
thread_local bool tls_inside_job = false;

// Polls `value` until it differs from `old`, first spinning for `spin`, then blocking.
uint32_t AwaitChange(const std::atomic<uint32_t>& value, uint32_t old,
                     std::chrono::microseconds spin) {
  uint32_t now = value.load(std::memory_order_acquire);
  if (now != old) return now;
  const auto deadline = std::chrono::steady_clock::now() + spin;
  for (int i = 1;; ++i) {
    SKEIN_CPU_RELAX();
    now = value.load(std::memory_order_acquire);
    if (now != old) return now;
    if ((i & 63) == 0 && std::chrono::steady_clock::now() >= deadline) break;
  }
  for (;;) {
    value.wait(old, std::memory_order_acquire);
    now = value.load(std::memory_order_acquire);
    if (now != old) return now;
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
  for (int i = 1; i < num_threads_; ++i) workers_.emplace_back([this, i] { WorkerLoop(i); });
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> lock(run_mutex_);
    stop_ = true;
    generation_.fetch_add(1, std::memory_order_release);
    generation_.notify_all();
  }
  for (std::thread& t : workers_) t.join();
}

void ThreadPool::WorkerLoop(int index) {
  uint32_t seen = 0;
  for (;;) {
    seen = AwaitChange(generation_, seen, spin_);
    if (stop_) return;
    tls_inside_job = true;
    (*job_)(index);
    tls_inside_job = false;
    if (pending_.fetch_sub(1, std::memory_order_acq_rel) == 1) pending_.notify_one();
  }
}

void ThreadPool::Run(absl::FunctionRef<void(int)> fn) {
  if (num_threads_ == 1 || tls_inside_job) {
    for (int i = 0; i < num_threads_; ++i) fn(i);
    return;
  }
  std::lock_guard<std::mutex> lock(run_mutex_);
  job_ = &fn;
  pending_.store(static_cast<uint32_t>(num_threads_ - 1), std::memory_order_relaxed);
  generation_.fetch_add(1, std::memory_order_release);
  generation_.notify_all();

  tls_inside_job = true;
  fn(0);
  tls_inside_job = false;

  uint32_t left = pending_.load(std::memory_order_acquire);
  while (left != 0) left = AwaitChange(pending_, left, spin_);
  job_ = nullptr;
}

void ThreadPool::ParallelFor(int64_t n, int64_t grain,
                             absl::FunctionRef<void(int64_t, int64_t)> fn) {
  if (n <= 0) return;
  grain = std::max<int64_t>(grain, 1);
  const int64_t parts = std::min<int64_t>(num_threads_, std::max<int64_t>(1, n / grain));
  if (parts == 1 || tls_inside_job) {
    fn(0, n);
    return;
  }
  Run([&](int i) {
    if (i >= parts) return;
    const int64_t begin = n * i / parts;
    const int64_t end = n * (i + 1) / parts;
    if (begin < end) fn(begin, end);
  });
}

}  // namespace skein::kernels
