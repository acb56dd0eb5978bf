// A fixed set of threads for the store's blocking work (disk, Redis) on behalf of the
// callback-API streams: gRPC runs reactions on its own threads, which must not wait on I/O.
#ifndef SKEIN_SERVICES_STATE_STORE_BLOCKING_EXECUTOR_H_
#define SKEIN_SERVICES_STATE_STORE_BLOCKING_EXECUTOR_H_

#include <deque>
#include <functional>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"

namespace skein::state_store {

class BlockingExecutor {
 public:
  explicit BlockingExecutor(int threads);
  // Runs every task already scheduled, then joins the threads.
  ~BlockingExecutor();
  BlockingExecutor(const BlockingExecutor&) = delete;
  BlockingExecutor& operator=(const BlockingExecutor&) = delete;

  // Queues `task` to run on one of the threads, in FIFO order of start. Thread-safe.
  void Schedule(std::function<void()> task);

 private:
  void Loop();

  absl::Mutex mu_;
  std::deque<std::function<void()>> tasks_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<std::thread> threads_;
};

}  // namespace skein::state_store

#endif  // SKEIN_SERVICES_STATE_STORE_BLOCKING_EXECUTOR_H_
