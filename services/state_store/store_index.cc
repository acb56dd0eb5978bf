#include "services/state_store/store_index.h"

namespace skein::state_store {

void MemoryStoreIndex::Upsert(const v1::EntryInfo& info, uint64_t stored_bytes) {
  absl::MutexLock lock(&mu_);
  auto it = entries_.find(info.key());
  if (it != entries_.end()) {
    if (it->second.info.version() > info.version()) return;
    committed_bytes_ -= it->second.stored_bytes;
    lru_.erase(it->second.lru);
  } else {
    it = entries_.emplace(info.key(), Entry{}).first;
  }
  it->second.info = info;
  it->second.info.set_pinned(false);
  it->second.stored_bytes = stored_bytes;
  it->second.lru = lru_.insert(lru_.end(), info.key());
  committed_bytes_ += stored_bytes;
}

void MemoryStoreIndex::Remove(const std::string& key, uint64_t version) {
  absl::MutexLock lock(&mu_);
  auto it = entries_.find(key);
  if (it == entries_.end()) return;
  if (version != 0 && it->second.info.version() != version) return;
  committed_bytes_ -= it->second.stored_bytes;
  lru_.erase(it->second.lru);
  entries_.erase(it);
  pins_.erase(key);
}

void MemoryStoreIndex::MarkUsed(const std::string& key) {
  absl::MutexLock lock(&mu_);
  auto it = entries_.find(key);
  if (it == entries_.end()) return;
  lru_.splice(lru_.end(), lru_, it->second.lru);
}

bool MemoryStoreIndex::IsPinnedLocked(const std::string& key, absl::Time now) const {
  auto it = pins_.find(key);
  if (it == pins_.end()) return false;
  for (const auto& [holder, until] : it->second) {
    if (until > now) return true;
  }
  return false;
}

bool MemoryStoreIndex::IsLiveLocked(const Entry& entry, absl::Time now) const {
  int64_t expires = entry.info.expires_at_unix_ms();
  return expires == 0 || absl::ToUnixMillis(now) < expires || IsPinnedLocked(entry.info.key(), now);
}

std::vector<v1::EntryInfo> MemoryStoreIndex::List(const std::string& prefix,
                                                  const std::string& after, size_t limit,
                                                  absl::Time now) const {
  absl::MutexLock lock(&mu_);
  std::vector<v1::EntryInfo> out;
  auto it = after.empty() ? entries_.lower_bound(prefix) : entries_.upper_bound(after);
  if (!after.empty() && after < prefix) it = entries_.lower_bound(prefix);
  for (; it != entries_.end() && out.size() < limit; ++it) {
    if (it->first.compare(0, prefix.size(), prefix) != 0) break;
    if (!IsLiveLocked(it->second, now)) continue;
    out.push_back(it->second.info);
    out.back().set_pinned(IsPinnedLocked(it->first, now));
  }
  return out;
}

std::vector<std::string> MemoryStoreIndex::ExpiredKeys(absl::Time now) const {
  absl::MutexLock lock(&mu_);
  std::vector<std::string> out;
  for (const auto& [key, entry] : entries_) {
    if (!IsLiveLocked(entry, now)) out.push_back(key);
  }
  return out;
}

void MemoryStoreIndex::Pin(const std::string& key, const std::string& holder, absl::Time until) {
  absl::MutexLock lock(&mu_);
  pins_[key][holder] = until;
}

void MemoryStoreIndex::Unpin(const std::string& key, const std::string& holder) {
  absl::MutexLock lock(&mu_);
  auto it = pins_.find(key);
  if (it == pins_.end()) return;
  it->second.erase(holder);
  if (it->second.empty()) pins_.erase(it);
}

std::optional<absl::Time> MemoryStoreIndex::PinnedUntil(const std::string& key,
                                                        absl::Time now) const {
  absl::MutexLock lock(&mu_);
  auto it = pins_.find(key);
  if (it == pins_.end()) return std::nullopt;
  std::optional<absl::Time> latest;
  for (const auto& [holder, until] : it->second) {
    if (until > now && (!latest || until > *latest)) latest = until;
  }
  return latest;
}

void MemoryStoreIndex::PruneExpiredPins(absl::Time now) {
  absl::MutexLock lock(&mu_);
  for (auto it = pins_.begin(); it != pins_.end();) {
    std::erase_if(it->second, [now](const auto& pin) { return pin.second <= now; });
    it = it->second.empty() ? pins_.erase(it) : std::next(it);
  }
}

StoreIndex::ReserveResult MemoryStoreIndex::TryReserve(uint64_t bytes, uint64_t capacity,
                                                       absl::Time now,
                                                       std::vector<std::string>* victims) {
  absl::MutexLock lock(&mu_);
  uint64_t used = committed_bytes_ + pending_bytes_ + reserved_bytes_;
  if (capacity == 0 || used + bytes <= capacity) {
    reserved_bytes_ += bytes;
    return ReserveResult::kReserved;
  }
  uint64_t need = used + bytes - capacity;
  uint64_t freed = 0;
  victims->clear();
  for (const std::string& key : lru_) {
    if (freed >= need) break;
    if (IsPinnedLocked(key, now)) continue;
    victims->push_back(key);
    freed += entries_.at(key).stored_bytes;
  }
  if (freed < need) {
    victims->clear();
    return ReserveResult::kExhausted;
  }
  return ReserveResult::kNeedEviction;
}

void MemoryStoreIndex::Release(uint64_t bytes) {
  absl::MutexLock lock(&mu_);
  reserved_bytes_ -= std::min(bytes, reserved_bytes_);
}

void MemoryStoreIndex::AddSnapshot(const std::string& id, const std::string& key,
                                   absl::Time deadline, bool committed) {
  absl::MutexLock lock(&mu_);
  Snapshot& s = snapshots_[id];
  s.key = key;
  s.deadline = deadline;
  s.committed = committed;
}

void MemoryStoreIndex::SetSnapshotPart(const std::string& id, uint32_t part,
                                       uint64_t stored_bytes) {
  absl::MutexLock lock(&mu_);
  auto it = snapshots_.find(id);
  if (it == snapshots_.end()) return;
  uint64_t& slot = it->second.part_bytes[part];
  pending_bytes_ -= slot;
  slot = stored_bytes;
  pending_bytes_ += slot;
}

void MemoryStoreIndex::RemoveSnapshot(const std::string& id) {
  absl::MutexLock lock(&mu_);
  auto it = snapshots_.find(id);
  if (it == snapshots_.end()) return;
  for (const auto& [part, bytes] : it->second.part_bytes) pending_bytes_ -= bytes;
  snapshots_.erase(it);
}

std::vector<StoreIndex::SnapshotRef> MemoryStoreIndex::ExpiredSnapshots(absl::Time now) const {
  absl::MutexLock lock(&mu_);
  std::vector<SnapshotRef> out;
  for (const auto& [id, s] : snapshots_) {
    if (s.deadline <= now) out.push_back({id, s.key, s.committed});
  }
  return out;
}

StoreIndex::Usage MemoryStoreIndex::usage() const {
  absl::MutexLock lock(&mu_);
  Usage u;
  u.entries = entries_.size();
  u.committed_bytes = committed_bytes_;
  u.pending_bytes = pending_bytes_;
  u.reserved_bytes = reserved_bytes_;
  for (const auto& [id, s] : snapshots_) u.open_snapshots += s.committed ? 0 : 1;
  return u;
}

}  // namespace skein::state_store
