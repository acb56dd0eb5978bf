#include "services/worker/engine/session_table.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "services/worker/model/state_blob.h"

namespace skein::engine {

SessionTable::SessionTable(SessionTableOptions options) : options_(std::move(options)) {}

void SessionTable::Touch(Entry& e, const std::string& id) {
  lru_.erase(e.lru);
  lru_.push_front(id);
  e.lru = lru_.begin();
}

SessionTable::Entry& SessionTable::Insert(const std::string& id, std::unique_ptr<Session> session) {
  auto [it, inserted] = entries_.try_emplace(id);
  Entry& e = it->second;
  if (inserted) {
    lru_.push_front(id);
    e.lru = lru_.begin();
  } else {
    Touch(e, id);
  }
  e.session = std::move(session);
  return e;
}

SessionTable::Entry* SessionTable::FindOrRestore(const std::string& id, absl::Status* status) {
  auto it = entries_.find(id);
  if (it != entries_.end() && it->second.session != nullptr) return &it->second;
  if (it != entries_.end() && it->second.pinned) {
    *status = absl::FailedPreconditionError(
        absl::StrCat("session '", id, "' is being created by a step in flight"));
    return nullptr;
  }
  if (options_.spill == nullptr) {
    *status = absl::NotFoundError(absl::StrCat("session '", id, "' is not held by this stage"));
    return nullptr;
  }
  absl::StatusOr<SpilledSession> saved = options_.spill->Load(id);
  if (!saved.ok()) {
    *status =
        saved.status().code() == absl::StatusCode::kNotFound
            ? absl::NotFoundError(absl::StrCat("session '", id, "' is not held by this stage"))
            : saved.status();
    return nullptr;
  }
  absl::StatusOr<model::RwkvState> state =
      model::DecodeStateBlob(saved->state_blob, options_.model_fingerprint, options_.shape);
  if (!state.ok()) {
    *status = state.status();
    return nullptr;
  }
  auto session = std::make_unique<Session>(options_.shape);
  session->state = *std::move(state);
  if (!saved->sampler.empty()) {
    absl::StatusOr<model::Sampler> sampler = model::Sampler::Create({}, options_.vocab);
    if (sampler.ok() && sampler->RestoreState(saved->sampler).ok()) {
      session->sampler = *std::move(sampler);
    }
  }
  ++stats_.restored;
  if (spilled_ids_.erase(id) > 0) options_.spill->Forget(id);
  // No eviction here: the caller is about to pin this entry, and the bound is restored when
  // the step unpins (a step may hold more sessions than the capacity while it runs).
  return &Insert(id, std::move(session));
}

void SessionTable::EvictOverCapacity() {
  auto it = lru_.end();
  while (entries_.size() > options_.capacity && it != lru_.begin()) {
    --it;
    auto found = entries_.find(*it);
    Entry& e = found->second;
    if (e.pinned || e.session == nullptr) continue;
    bool saved = false;
    if (options_.spill != nullptr) {
      auto blob = std::make_shared<const std::string>(
          model::EncodeStateBlob(e.session->state, options_.model_fingerprint));
      const std::string sampler = e.session->sampler ? e.session->sampler->SerializeState() : "";
      saved = options_.spill->Save(*it, std::move(blob), e.session->state.position(), sampler).ok();
    }
    ++(saved ? stats_.spilled : stats_.dropped);
    if (saved) spilled_ids_.insert(*it);
    entries_.erase(found);
    it = lru_.erase(it);
  }
}

absl::StatusOr<Session*> SessionTable::Pin(const std::string& id, bool reset,
                                           int64_t expected_position,
                                           const model::RwkvState* start) {
  absl::MutexLock lock(&mutex_);
  auto it = entries_.find(id);
  if (it != entries_.end() && it->second.pinned) {
    return absl::FailedPreconditionError(
        absl::StrCat("session '", id, "' is in another step in flight"));
  }
  if (reset) {
    if (expected_position != 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          "session '", id, "': a reset step must expect position 0, not ", expected_position));
    }
    Entry* e;
    if (it == entries_.end()) {
      e = &Insert(id, nullptr);
    } else {
      e = &it->second;
      Touch(*e, id);
    }
    e->fresh = std::make_unique<Session>(options_.shape);
    if (start != nullptr) e->fresh->state = *start;
    e->pinned = true;
    return e->fresh.get();
  }
  absl::Status status;
  Entry* e = FindOrRestore(id, &status);
  if (e == nullptr) return status;
  if (e->session->state.position() != expected_position) {
    return absl::FailedPreconditionError(
        absl::StrCat("session '", id, "' is at position ", e->session->state.position(),
                     " on this stage, not at the expected ", expected_position));
  }
  Touch(*e, id);
  e->pinned = true;
  return e->session.get();
}

void SessionTable::Unpin(const std::string& id, bool commit, bool release) {
  absl::MutexLock lock(&mutex_);
  auto it = entries_.find(id);
  if (it == entries_.end()) return;
  Entry& e = it->second;
  e.pinned = false;
  if (e.fresh != nullptr) {
    if (commit) e.session = std::move(e.fresh);
    e.fresh.reset();
  }
  if (release || e.session == nullptr) {
    if (release && spilled_ids_.erase(id) > 0) options_.spill->Forget(id);
    lru_.erase(e.lru);
    entries_.erase(it);
    return;
  }
  EvictOverCapacity();
}

absl::Status SessionTable::Put(const std::string& id, std::unique_ptr<Session> session) {
  absl::MutexLock lock(&mutex_);
  auto it = entries_.find(id);
  if (it != entries_.end() && it->second.pinned) {
    return absl::FailedPreconditionError(absl::StrCat("session '", id, "' is in a step"));
  }
  Insert(id, std::move(session));
  EvictOverCapacity();
  return absl::OkStatus();
}

absl::Status SessionTable::With(const std::string& id,
                                const std::function<absl::Status(Session&)>& fn) {
  absl::MutexLock lock(&mutex_);
  auto it = entries_.find(id);
  if (it != entries_.end() && it->second.pinned) {
    return absl::FailedPreconditionError(absl::StrCat("session '", id, "' is in a step"));
  }
  absl::Status status;
  Entry* e = FindOrRestore(id, &status);
  if (e == nullptr) return status;
  status = fn(*e->session);
  EvictOverCapacity();
  return status;
}

absl::Status SessionTable::Fork(const std::string& source, const std::string& target) {
  absl::MutexLock lock(&mutex_);
  absl::Status status;
  Entry* src = FindOrRestore(source, &status);
  if (src == nullptr) return status;
  if (src->pinned) {
    return absl::FailedPreconditionError(absl::StrCat("session '", source, "' is in a step"));
  }
  auto copy = std::make_unique<Session>(*src->session);
  auto it = entries_.find(target);
  if (it != entries_.end()) {
    if (it->second.pinned) {
      return absl::FailedPreconditionError(absl::StrCat("session '", target, "' is in a step"));
    }
    const model::RwkvState& have = it->second.session->state;
    if (have.position() == copy->state.position() &&
        std::equal(have.data().begin(), have.data().end(), copy->state.data().begin())) {
      return absl::OkStatus();  // already a fork of the source: idempotent
    }
    return absl::AlreadyExistsError(
        absl::StrCat("session '", target, "' exists with another state"));
  }
  Insert(target, std::move(copy));
  EvictOverCapacity();
  return absl::OkStatus();
}

absl::StatusOr<bool> SessionTable::Drop(const std::string& id) {
  absl::MutexLock lock(&mutex_);
  auto it = entries_.find(id);
  if (it != entries_.end() && it->second.pinned) {
    return absl::FailedPreconditionError(absl::StrCat("session '", id, "' is in a step"));
  }
  if (spilled_ids_.erase(id) > 0) options_.spill->Forget(id);
  if (it == entries_.end()) return false;
  lru_.erase(it->second.lru);
  entries_.erase(it);
  return true;
}

SessionTableStats SessionTable::stats() const {
  absl::MutexLock lock(&mutex_);
  SessionTableStats s = stats_;
  s.resident = entries_.size();
  for (const auto& [id, e] : entries_) s.pinned += e.pinned ? 1 : 0;
  return s;
}

}  // namespace skein::engine
