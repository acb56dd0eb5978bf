// Time, injectable so that tests can move it (TTLs, leases, snapshot time-outs) without
// sleeping. Implementations are thread-safe.
#ifndef SKEIN_BASE_CLOCK_H_
#define SKEIN_BASE_CLOCK_H_

#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace skein::base {

class Clock {
 public:
  virtual ~Clock() = default;
  virtual absl::Time Now() = 0;
};

// Wall-clock time (expiry times are stored as Unix milliseconds, so they survive restarts).
class RealClock final : public Clock {
 public:
  absl::Time Now() override { return absl::Now(); }
  static RealClock* Get() {
    static RealClock clock;
    return &clock;
  }
};

// A clock that moves only when told to.
class FakeClock final : public Clock {
 public:
  // Far in the future (2096), so expiries a backend sets from fake times (Redis PEXPIREAT)
  // never fire during a test: only the store's own expiry logic is exercised.
  FakeClock() : now_(absl::FromUnixSeconds(4'000'000'000)) {}
  absl::Time Now() override {
    absl::MutexLock lock(&mu_);
    return now_;
  }
  void Advance(absl::Duration d) {
    absl::MutexLock lock(&mu_);
    now_ += d;
  }

 private:
  absl::Mutex mu_;
  absl::Time now_ ABSL_GUARDED_BY(mu_);
};

}  // namespace skein::base

#endif  // SKEIN_BASE_CLOCK_H_
