#include "kernels/cpu/thread_pool.h"

#include <atomic>
#include <chrono>
#include <numeric>
#include <set>
#include <thread>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "gtest/gtest.h"

namespace skein::kernels {
namespace {

// What the chunks of a loop saw, collected from every thread.
template <typename T>
struct Collected {
  absl::Mutex mu;
  std::set<T> items ABSL_GUARDED_BY(mu);

  void Add(T item) {
    absl::MutexLock lock(&mu);
    items.insert(std::move(item));
  }
  std::set<T> Get() {
    absl::MutexLock lock(&mu);
    return items;
  }
};

TEST(ThreadPoolTest, RunCallsEveryIndexOnce) {
  for (int threads : {1, 2, 3, 5}) {
    ThreadPool pool(threads);
    EXPECT_EQ(pool.num_threads(), threads);
    for (int round = 0; round < 200; ++round) {
      std::vector<std::atomic<int>> calls(threads);
      pool.Run([&](int i) { calls[i].fetch_add(1); });
      for (int i = 0; i < threads; ++i) ASSERT_EQ(calls[i].load(), 1) << threads << " " << i;
    }
  }
}

TEST(ThreadPoolTest, WorkersShareTheLoop) {
  // Chunks that wait for each other can only finish if two threads run them at once.
  ThreadPool pool(2);
  std::atomic<int> arrived{0};
  Collected<std::thread::id> ids;
  pool.ParallelFor(2, 1, [&](int64_t, int64_t) {
    arrived.fetch_add(1);
    while (arrived.load() < 2) std::this_thread::yield();
    ids.Add(std::this_thread::get_id());
  });
  EXPECT_EQ(ids.Get().size(), 2u);
}

TEST(ThreadPoolTest, ASlowWorkerDoesNotHoldUpTheCaller) {
  // While a worker is stuck in one chunk, the caller runs every other chunk.
  ThreadPool pool(2);
  std::atomic<bool> release{false};
  std::atomic<int> stuck{0}, others{0};
  std::thread::id caller = std::this_thread::get_id();
  std::thread releaser([&] {
    while (others.load() < 99) std::this_thread::yield();
    release.store(true);
  });
  pool.ParallelFor(100, 1, [&](int64_t, int64_t) {
    if (std::this_thread::get_id() != caller && stuck.fetch_add(1) == 0) {
      while (!release.load()) std::this_thread::yield();
    } else {
      others.fetch_add(1);
    }
  });
  releaser.join();
  EXPECT_EQ(stuck.load() + others.load(), 100);
}

TEST(ThreadPoolTest, ParallelForCoversRangeExactlyOnce) {
  ThreadPool pool(4);
  for (int64_t n : {0, 1, 3, 4, 5, 17, 1000}) {
    for (int64_t grain : {1, 2, 100}) {
      std::vector<std::atomic<int>> hits(n);
      pool.ParallelFor(n, grain, [&](int64_t begin, int64_t end) {
        ASSERT_LE(0, begin);
        ASSERT_LT(begin, end);
        ASSERT_LE(end, n);
        for (int64_t i = begin; i < end; ++i) hits[i].fetch_add(1);
      });
      for (int64_t i = 0; i < n; ++i) ASSERT_EQ(hits[i].load(), 1) << n << " " << i;
    }
  }
}

TEST(ThreadPoolTest, ParallelForCutsChunksOfGrain) {
  ThreadPool pool(4);
  Collected<std::pair<int64_t, int64_t>> chunks;
  pool.ParallelFor(20, 8, [&](int64_t b, int64_t e) { chunks.Add({b, e}); });
  EXPECT_EQ(chunks.Get(), (std::set<std::pair<int64_t, int64_t>>{{0, 8}, {8, 16}, {16, 20}}));
}

TEST(ThreadPoolTest, NestedCallsRunInline) {
  ThreadPool pool(2);
  std::atomic<int> inner{0};
  pool.Run([&](int) { pool.Run([&](int) { inner.fetch_add(1); }); });
  EXPECT_EQ(inner.load(), 4);
}

TEST(ThreadPoolTest, WorkersWakeAfterBlocking) {
  // A zero spin makes idle workers block at once, exercising the wait/notify path.
  ThreadPool pool(3, std::chrono::microseconds(0));
  for (int round = 0; round < 50; ++round) {
    std::atomic<int> sum{0};
    pool.Run([&](int i) { sum.fetch_add(i + 1); });
    ASSERT_EQ(sum.load(), 6);
    if (round % 10 == 0) std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
}

TEST(ThreadPoolTest, ConcurrentCallersAreSerialized) {
  ThreadPool pool(2);
  std::atomic<int64_t> total{0};
  std::vector<std::thread> callers;
  for (int c = 0; c < 4; ++c) {
    callers.emplace_back([&] {
      for (int r = 0; r < 100; ++r) {
        pool.ParallelFor(100, 1, [&](int64_t b, int64_t e) { total.fetch_add(e - b); });
      }
    });
  }
  for (auto& t : callers) t.join();
  EXPECT_EQ(total.load(), 4 * 100 * 100);
}

TEST(ThreadPoolTest, DefaultUsesHardwareCores) {
  ThreadPool pool;
  EXPECT_EQ(pool.num_threads(), HardwareCores());
  EXPECT_GE(HardwareCores(), 1);
}

// Back-to-back loops of different sizes, as the decode loop runs them. A worker that lingers
// in one loop while the next is published must not take a chunk of either twice (which once
// ran chunks twice and then deadlocked the pool within a few thousand loops).
TEST(ThreadPoolTest, BackToBackLoopsRunEveryChunkExactlyOnce) {
  for (int threads : {2, 3}) {
    ThreadPool pool(threads, std::chrono::microseconds(threads == 2 ? 0 : 50));
    std::vector<std::atomic<int>> runs(9);
    for (int loop = 0; loop < 100000; ++loop) {
      const int64_t n = 1 + loop % 9;
      for (int64_t i = 0; i < n; ++i) runs[i].store(0, std::memory_order_relaxed);
      pool.ParallelFor(n, 1, [&](int64_t begin, int64_t end) {
        for (int64_t i = begin; i < end; ++i) runs[i].fetch_add(1, std::memory_order_relaxed);
      });
      for (int64_t i = 0; i < n; ++i) {
        ASSERT_EQ(runs[i].load(std::memory_order_relaxed), 1)
            << "loop " << loop << " chunk " << i << " of " << n << ", " << threads << " threads";
      }
    }
  }
}

}  // namespace
}  // namespace skein::kernels