// StateStore: opening, recovery, the helpers every operation uses, capacity and housekeeping.
#include "services/state_store/store.h"

#include <algorithm>
#include <map>
#include <set>
#include <vector>

#include "absl/hash/hash.h"
#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "base/clock.h"
#include "services/common/logging.h"
#include "services/state_store/compression.h"
#include "services/state_store/store_internal.h"

namespace skein::state_store {

std::string MakeSnapshotId(const std::string& random_hex, const std::string& key) {
  return absl::StrCat(random_hex, ".", absl::WebSafeBase64Escape(key));
}

std::optional<std::pair<std::string, std::string>> ParseSnapshotId(const std::string& id) {
  size_t dot = id.find('.');
  if (dot != 32) return std::nullopt;
  for (size_t i = 0; i < dot; ++i) {
    if (!absl::ascii_isxdigit(static_cast<unsigned char>(id[i]))) return std::nullopt;
  }
  std::string key;
  if (!absl::WebSafeBase64Unescape(id.substr(dot + 1), &key) || !ValidateKey(key).ok()) {
    return std::nullopt;
  }
  return std::make_pair(SnapshotName(id.substr(0, dot)), key);
}

// ---------------------------------------------------------------------------------------------
// Opening and recovery.

StateStore::StateStore(std::unique_ptr<StorageBackend> backend, StoreOptions options,
                       base::Clock* clock, prometheus::Registry* registry,
                       std::unique_ptr<StoreIndex> index)
    : backend_(std::move(backend)),
      options_(options),
      clock_(clock ? clock : base::RealClock::Get()),
      own_registry_(registry ? nullptr : std::make_unique<prometheus::Registry>()),
      metrics_(registry ? *registry : *own_registry_, backend_->Name()),
      index_(index ? std::move(index) : std::make_unique<MemoryStoreIndex>()) {}

StateStore::~StateStore() {
  stop_sweeper_.Notify();
  if (sweeper_.joinable()) sweeper_.join();
}

absl::StatusOr<std::unique_ptr<StateStore>> StateStore::Open(
    std::unique_ptr<StorageBackend> backend, StoreOptions options, base::Clock* clock,
    prometheus::Registry* registry, std::unique_ptr<StoreIndex> index) {
  if (backend == nullptr) return absl::InvalidArgumentError("no storage backend");
  if (options.zstd_level != 0) {
    if (absl::StatusOr<std::string> probe = ZstdCompress("", options.zstd_level); !probe.ok()) {
      return probe.status();
    }
  }
  auto store = std::unique_ptr<StateStore>(
      new StateStore(std::move(backend), options, clock, registry, std::move(index)));
  if (absl::Status s = store->Recover(); !s.ok()) return s;
  return store;
}

absl::Status StateStore::Recover() {
  absl::Time now = clock_->Now();
  std::set<std::pair<std::string, std::string>> referenced;  // (group, blob name)
  // Parts by (group, snapshot name); kept only if their snapshot is open.
  struct FoundPart {
    std::string name;
    uint32_t index;
    StoredPart part;
  };
  std::map<std::pair<std::string, std::string>, std::vector<FoundPart>> parts;
  std::set<std::pair<std::string, std::string>> open_snapshots;
  absl::Status scan = backend_->ScanRecords([&](std::string_view group_view, std::string_view name,
                                                std::string_view value) {
    std::string group(group_view);
    if (name == kEntryName) {
      absl::StatusOr<StoredEntry> entry = ParseRecord<StoredEntry>(value, group, "entry");
      if (!entry.ok()) {
        log::Error("unreadable entry record", {{"key", group}});
        return;
      }
      uint64_t stored = 0;
      for (const StoredPart& p : entry->parts()) {
        stored += p.stored_size();
        referenced.insert({group, p.blob()});
      }
      index_->Upsert(InfoOf(*entry, now), stored);
      if (entry->version() > last_version_) last_version_ = entry->version();
    } else if (name.rfind("s/", 0) == 0) {
      absl::StatusOr<StoredSnapshot> snap = ParseRecord<StoredSnapshot>(value, group, "snapshot");
      if (!snap.ok()) return;
      std::string id = MakeSnapshotId(std::string(name.substr(2)), group);
      index_->AddSnapshot(id, group, absl::FromUnixMillis(snap->deadline_unix_ms()),
                          snap->committed());
      if (!snap->committed()) open_snapshots.insert({group, std::string(name)});
      if (snap->planned_version() > last_version_) last_version_ = snap->planned_version();
    } else if (name.rfind("p/", 0) == 0) {
      std::vector<std::string> pieces = absl::StrSplit(base::AsAbsl(name), '/');
      uint32_t index = 0;
      absl::StatusOr<StoredPart> part = ParseRecord<StoredPart>(value, group, "snapshot part");
      if (pieces.size() != 3 || !absl::SimpleAtoi(pieces[2], &index) || !part.ok()) return;
      parts[{group, SnapshotName(pieces[1])}].push_back({std::string(name), index, *part});
    }
  });
  if (!scan.ok()) return scan;

  for (const auto& [snapshot, list] : parts) {
    const std::string& group = snapshot.first;
    if (!open_snapshots.contains(snapshot)) {
      // Parts outlived their snapshot (it expired in a backend that dropped only some
      // objects): nothing can commit them.
      Batch batch(group);
      for (const FoundPart& found : list) batch.DeleteRecord(found.name);
      if (absl::Status s = backend_->Apply(batch); !s.ok()) return s;
      continue;
    }
    std::string id = MakeSnapshotId(snapshot.second.substr(2), group);
    for (const FoundPart& found : list) {
      referenced.insert({group, found.part.blob()});
      index_->SetSnapshotPart(id, found.index, found.part.stored_size());
    }
  }

  if (!backend_->ExpiresObjects()) {
    std::vector<std::pair<std::string, std::string>> orphans;
    absl::Status blobs = backend_->ScanBlobs([&](std::string_view group, std::string_view name) {
      std::pair<std::string, std::string> ref{std::string(group), std::string(name)};
      if (!referenced.contains(ref)) orphans.push_back(std::move(ref));
    });
    if (!blobs.ok()) return blobs;
    for (const auto& [group, name] : orphans) {
      Batch batch(group);
      batch.DeleteBlob(name);
      if (absl::Status s = backend_->Apply(batch); !s.ok()) return s;
      metrics_.orphans_removed.Increment();
    }
    if (!orphans.empty()) {
      log::Info("removed blobs of interrupted writes", {{"count", absl::StrCat(orphans.size())}});
    }
  }
  PublishUsage();
  return absl::OkStatus();
}

// ---------------------------------------------------------------------------------------------
// Helpers.

absl::Mutex& StateStore::KeyLock(const std::string& key) {
  return key_locks_[absl::Hash<std::string>()(key) % key_locks_.size()];
}

absl::Status StateStore::CheckVersion(const std::string& key, const ReadEntryResult& current,
                                      absl::Time now, bool has_expected, uint64_t expected,
                                      const char* unchanged) {
  const bool live = current.entry && IsLive(*current.entry, now);
  const uint64_t current_version = live ? current.entry->version() : 0;
  if (!has_expected || expected == current_version) return absl::OkStatus();
  metrics_.version_conflicts.Increment();
  return absl::AbortedError(absl::StrCat("key \"", key, "\" is at version ", current_version,
                                         ", not ", expected, "; ", unchanged));
}

absl::StatusOr<StateStore::ReadEntryResult> StateStore::ReadEntry(const std::string& key) {
  absl::StatusOr<std::optional<std::string>> raw = backend_->ReadRecord(key, kEntryName);
  if (!raw.ok()) return raw.status();
  ReadEntryResult result;
  if (!raw->has_value()) return result;
  absl::StatusOr<StoredEntry> entry = ParseRecord<StoredEntry>(**raw, key, "entry");
  if (!entry.ok()) return entry.status();
  result.entry = *std::move(entry);
  result.raw = *std::move(*raw);
  return result;
}

bool StateStore::IsLive(const StoredEntry& entry, absl::Time now) const {
  return entry.expires_at_unix_ms() == 0 || Millis(now) < entry.expires_at_unix_ms() ||
         index_->PinnedUntil(entry.key(), now).has_value();
}

absl::Time StateStore::BackendExpiry(const StoredEntry& entry, absl::Time now) const {
  if (entry.expires_at_unix_ms() == 0) return absl::InfiniteFuture();
  absl::Time expiry = absl::FromUnixMillis(entry.expires_at_unix_ms());
  if (std::optional<absl::Time> pinned = index_->PinnedUntil(entry.key(), now)) {
    expiry = std::max(expiry, *pinned);
  }
  return expiry;
}

v1::EntryInfo StateStore::InfoOf(const StoredEntry& entry, absl::Time now) const {
  v1::EntryInfo info;
  info.set_key(entry.key());
  info.set_version(entry.version());
  uint64_t total = 0;
  for (const StoredPart& p : entry.parts()) {
    v1::PartInfo* part = info.add_parts();
    *part->mutable_metadata() = p.metadata();
    part->set_size(p.size());
    *part->mutable_checksum() = p.checksum();
    total += p.size();
  }
  info.set_total_size(total);
  info.set_expires_at_unix_ms(entry.expires_at_unix_ms());
  info.set_created_at_unix_ms(entry.created_at_unix_ms());
  info.set_pinned(index_->PinnedUntil(entry.key(), now).has_value());
  return info;
}

uint64_t StateStore::NextVersion(const std::optional<StoredEntry>& current, absl::Time now) {
  uint64_t floor =
      std::max<uint64_t>(current ? current->version() + 1 : 1,
                         static_cast<uint64_t>(std::max<int64_t>(0, absl::ToUnixMicros(now))));
  uint64_t last = last_version_.load();
  uint64_t next;
  do {
    next = std::max(floor, last + 1);
  } while (!last_version_.compare_exchange_weak(last, next));
  return next;
}

absl::StatusOr<absl::Time> StateStore::ExpiryFor(uint64_t ttl_seconds, absl::Time now) const {
  absl::Duration ttl = ttl_seconds == 0 ? options_.default_ttl : absl::Seconds(ttl_seconds);
  if (ttl_seconds > static_cast<uint64_t>(absl::ToInt64Seconds(options_.max_ttl))) {
    return absl::InvalidArgumentError(absl::StrCat("ttl_seconds ", ttl_seconds,
                                                   " is over the limit of ",
                                                   absl::ToInt64Seconds(options_.max_ttl)));
  }
  if (ttl <= absl::ZeroDuration()) return absl::InfiniteFuture();
  return now + ttl;
}

void StateStore::PublishUsage() { metrics_.SetUsage(index_->usage(), options_.capacity_bytes); }

absl::Status StateStore::ReserveCapacity(uint64_t bytes) {
  if (options_.capacity_bytes != 0 && bytes > options_.capacity_bytes) {
    return absl::ResourceExhaustedError(
        absl::StrCat("a blob of ", bytes, " bytes is larger than the store's capacity of ",
                     options_.capacity_bytes));
  }
  std::vector<std::string> victims;
  return RetryOnConflict<absl::Status>(
      [&]() -> Attempt<absl::Status> {
        switch (index_->TryReserve(bytes, options_.capacity_bytes, clock_->Now(), &victims)) {
          case StoreIndex::ReserveResult::kReserved:
            return absl::OkStatus();
          case StoreIndex::ReserveResult::kExhausted:
            return absl::ResourceExhaustedError(absl::StrCat(
                "no room for ", bytes, " bytes: the capacity of ", options_.capacity_bytes,
                " bytes is held by pinned entries and writes in progress"));
          case StoreIndex::ReserveResult::kNeedEviction:
            for (const std::string& key : victims) Evict(key, /*for_ttl=*/false);
            break;
        }
        return kRetry;  // evicted, or raced with other writers: reserve again
      },
      [&]() -> absl::Status {
        return absl::ResourceExhaustedError(
            absl::StrCat("no room for ", bytes, " bytes after evicting; the store is busy"));
      });
}

absl::Status StateStore::CheckPendingRoom(uint64_t bytes) {
  const uint64_t limit =
      options_.max_pending_bytes != 0 ? options_.max_pending_bytes : options_.capacity_bytes / 4;
  if (limit == 0) return absl::OkStatus();
  // A soft bound: concurrent parts may pass the check together and overshoot it by their own
  // sizes, which the capacity reservation that follows still bounds.
  const StoreIndex::Usage usage = index_->usage();
  if (usage.pending_bytes + usage.reserved_bytes + bytes > limit) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "open snapshots and writes in progress hold ", usage.pending_bytes + usage.reserved_bytes,
        " bytes; a part of ", bytes, " more would pass the bound of ", limit,
        " (--max-pending-bytes); commit or abort snapshots, or retry later"));
  }
  return absl::OkStatus();
}

void StateStore::Evict(const std::string& key, bool for_ttl) {
  absl::MutexLock lock(&KeyLock(key));
  absl::Time now = clock_->Now();
  absl::StatusOr<ReadEntryResult> current = ReadEntry(key);
  if (!current.ok()) return;
  if (!current->entry) {
    index_->Remove(key);
    PublishUsage();
    return;
  }
  if (index_->PinnedUntil(key, now)) return;
  if (for_ttl && IsLive(*current->entry, now)) return;
  Batch batch(key);
  batch.ExpectRecord(kEntryName, current->raw).DeleteRecord(kEntryName);
  for (const StoredPart& p : current->entry->parts()) batch.DeleteBlob(p.blob());
  if (!backend_->Apply(batch).ok()) return;
  index_->Remove(key);
  (for_ttl ? metrics_.evictions_ttl : metrics_.evictions_capacity).Increment();
  PublishUsage();
  log::Debug("evicted", {{"key", key}, {"reason", for_ttl ? "ttl" : "capacity"}});
}

// ---------------------------------------------------------------------------------------------
// Housekeeping.

void StateStore::SweepOnce() {
  absl::Time now = clock_->Now();
  for (const std::string& key : index_->ExpiredKeys(now)) Evict(key, /*for_ttl=*/true);
  for (const StoreIndex::SnapshotRef& s : index_->ExpiredSnapshots(now)) {
    absl::Status status = AbortSnapshotById(s.id, s.key, /*expired=*/true);
    if (!status.ok()) {
      log::Warning("cannot discard expired snapshot",
                   {{"snapshot_id", s.id}, {"error", std::string(status.message())}});
    }
  }
  index_->PruneExpiredPins(now);
  PublishUsage();
}

void StateStore::StartSweeper(absl::Duration interval) {
  if (sweeper_.joinable()) return;
  sweeper_ = std::thread([this, interval] {
    while (!stop_sweeper_.WaitForNotificationWithTimeout(interval)) SweepOnce();
  });
}

}  // namespace skein::state_store
