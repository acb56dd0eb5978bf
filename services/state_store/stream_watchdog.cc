#include "services/state_store/stream_watchdog.h"

#include <algorithm>
#include <utility>

namespace skein::state_store {
namespace {

int64_t NowNanos() { return absl::GetCurrentTimeNanos(); }

}  // namespace

StreamWatchdog::StreamWatchdog(absl::Duration idle_limit) : idle_limit_(idle_limit) {
  if (idle_limit_ > absl::ZeroDuration()) thread_ = std::thread([this] { Loop(); });
}

StreamWatchdog::~StreamWatchdog() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  if (thread_.joinable()) thread_.join();
}

StreamWatchdog::Watch::Watch(StreamWatchdog* owner, std::shared_ptr<Entry> entry)
    : owner_(owner), entry_(std::move(entry)) {}

StreamWatchdog::Watch::~Watch() {
  if (entry_ == nullptr) return;
  absl::MutexLock lock(&owner_->mu_);
  owner_->entries_.erase(entry_.get());
}

void StreamWatchdog::Watch::Progress() {
  if (entry_ != nullptr) entry_->last_progress_ns.store(NowNanos(), std::memory_order_relaxed);
}

StreamWatchdog::Watch StreamWatchdog::Start(grpc::ServerContextBase* context) {
  if (idle_limit_ <= absl::ZeroDuration()) return Watch(this, nullptr);
  auto entry = std::make_shared<Entry>();
  entry->context = context;
  entry->last_progress_ns.store(NowNanos());
  absl::MutexLock lock(&mu_);
  entries_[entry.get()] = entry;
  return Watch(this, std::move(entry));
}

void StreamWatchdog::Loop() {
  // Checks a few times per limit, so a stream is cancelled between 1 and 1.25 limits idle.
  const absl::Duration period =
      std::clamp(idle_limit_ / 4, absl::Milliseconds(10), absl::Seconds(1));
  const int64_t limit_ns = absl::ToInt64Nanoseconds(idle_limit_);
  absl::MutexLock lock(&mu_);
  while (!mu_.AwaitWithTimeout(absl::Condition(&stopping_), period)) {
    const int64_t now = NowNanos();
    for (auto& [key, entry] : entries_) {
      if (entry->cancelled.load()) continue;
      if (now - entry->last_progress_ns.load(std::memory_order_relaxed) < limit_ns) continue;
      entry->cancelled.store(true);
      // Under mu_, so the Watch (and so the stream's context) cannot go away meanwhile.
      entry->context->TryCancel();
    }
  }
}

}  // namespace skein::state_store
