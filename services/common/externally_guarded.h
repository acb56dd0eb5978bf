// ExternallyGuarded<T>: a value guarded by a mutex that belongs to another object.
//
// ABSL_GUARDED_BY names a mutex of the same object (or a global one). Fields that an owner's
// mutex guards but that live elsewhere (a nested struct per replica, per stream, or per
// request, all guarded by the owner's one mutex) cannot say so. Wrapped in ExternallyGuarded,
// such a value is reachable only through Get(mu), which clang's -Wthread-safety analysis checks
// like an ABSL_GUARDED_BY member: the caller must hold `mu`. Debug builds also check that `mu`
// is the mutex the value was bound to at construction, and that it is held.
//
//   struct Replica {
//     struct State { bool healthy = false; };
//     explicit Replica(const absl::Mutex* mu) : state(mu) {}
//     ExternallyGuarded<State> state;  // guarded by the owner's mutex_
//   };
//   absl::MutexLock lock(&mutex_);
//   replica.state.Get(mutex_).healthy = true;
//
// As with any guarded member, the analysis cannot follow a reference past the critical
// section: keep what Get returns in a local for the locked scope only.
#ifndef SKEIN_SERVICES_COMMON_EXTERNALLY_GUARDED_H_
#define SKEIN_SERVICES_COMMON_EXTERNALLY_GUARDED_H_

#include <cassert>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"

namespace skein {

template <typename T>
class ExternallyGuarded {
 public:
  // `mu` (not owned) guards the value; the value is constructed from `args`.
  template <typename... Args>
  explicit ExternallyGuarded(const absl::Mutex* mu, Args&&... args)
      : mu_(mu), value_(std::forward<Args>(args)...) {}

  ExternallyGuarded(const ExternallyGuarded&) = delete;
  ExternallyGuarded& operator=(const ExternallyGuarded&) = delete;

  T& Get(const absl::Mutex& mu) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    Check(mu);
    return value_;
  }
  const T& Get(const absl::Mutex& mu) const ABSL_SHARED_LOCKS_REQUIRED(mu) {
    Check(mu);
    return value_;
  }

 private:
  void Check([[maybe_unused]] const absl::Mutex& mu) const ABSL_SHARED_LOCKS_REQUIRED(mu) {
#ifndef NDEBUG
    assert(&mu == mu_ && "ExternallyGuarded::Get with a mutex other than its own");
    mu.AssertReaderHeld();
#endif
  }

  [[maybe_unused]] const absl::Mutex* const mu_;  // read by the debug check only
  T value_;
};

}  // namespace skein

#endif  // SKEIN_SERVICES_COMMON_EXTERNALLY_GUARDED_H_
