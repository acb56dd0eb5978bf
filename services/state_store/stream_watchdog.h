// Cancels streaming RPCs that make no progress for too long.
//
// A Put stream holds a thread and its buffered bytes while it waits for the client's next
// chunk, and a Get stream holds its blob while the client does not read. A client that opens a
// stream and goes quiet would keep both forever; the watchdog cancels such a stream (the
// server's blocked Read or Write then returns false) once it has been idle for the limit.
#ifndef SKEIN_SERVICES_STATE_STORE_STREAM_WATCHDOG_H_
#define SKEIN_SERVICES_STATE_STORE_STREAM_WATCHDOG_H_

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "grpcpp/server_context.h"

namespace skein::state_store {

class StreamWatchdog {
 private:
  struct Entry {
    grpc::ServerContextBase* context;
    std::atomic<int64_t> last_progress_ns;
    std::atomic<bool> cancelled{false};
  };

 public:
  // `idle_limit` <= 0 disables it (streams are never cancelled for idleness).
  explicit StreamWatchdog(absl::Duration idle_limit);
  ~StreamWatchdog();  // stops the thread; streams still watched are left alone
  StreamWatchdog(const StreamWatchdog&) = delete;
  StreamWatchdog& operator=(const StreamWatchdog&) = delete;

  absl::Duration idle_limit() const { return idle_limit_; }

  // Watches one stream for as long as the Watch lives (on the stream's handler thread).
  class Watch {
   public:
    Watch(StreamWatchdog* owner, std::shared_ptr<Entry> entry);
    ~Watch();
    Watch(const Watch&) = delete;
    Watch& operator=(const Watch&) = delete;
    // Records progress (a message read or written): the idle clock starts again.
    void Progress();
    // Whether the watchdog cancelled the stream for idleness.
    bool cancelled() const { return entry_ != nullptr && entry_->cancelled.load(); }

   private:
    StreamWatchdog* owner_;
    std::shared_ptr<Entry> entry_;  // null when the watchdog is disabled
  };

  // Starts watching `context` (which must outlive the returned Watch).
  Watch Start(grpc::ServerContextBase* context);

 private:
  void Loop();

  const absl::Duration idle_limit_;
  absl::Mutex mu_;
  std::map<const Entry*, std::shared_ptr<Entry>> entries_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

}  // namespace skein::state_store

#endif  // SKEIN_SERVICES_STATE_STORE_STREAM_WATCHDOG_H_
