#include "services/state_store/store.h"

#include <algorithm>
#include <map>
#include <set>
#include <vector>

#include "absl/hash/hash.h"
#include "absl/random/random.h"
#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "services/common/logging.h"
#include "services/state_store/checksum.h"
#include "services/state_store/compression.h"
#include "services/state_store/key.h"

namespace skein::state_store {
namespace {

// absl here is built with its own string_view; this bridges std::string_view into it.
absl::string_view Sv(std::string_view s) { return absl::string_view(s.data(), s.size()); }

constexpr uint32_t kFormat = 1;
constexpr int kMaxAttempts = 8;
constexpr uint32_t kMaxParts = 256;
constexpr uint32_t kMaxPageSize = 1000;
constexpr uint32_t kDefaultPageSize = 100;
constexpr size_t kMaxHolderBytes = 256;
// A committed snapshot's marker is kept this long so a repeated commit answers the same.
constexpr absl::Duration kCommitMarkerRetention = absl::Minutes(10);
const std::string kPageTokenPrefix = "k1.";

const std::string kEntryName = "e";
std::string SnapshotName(std::string_view hex) { return absl::StrCat("s/", Sv(hex)); }
std::string PartName(std::string_view hex, uint32_t part) {
  return absl::StrCat("p/", Sv(hex), "/", part);
}
std::string NewBlobName(std::string_view hex) { return absl::StrCat("b/", Sv(hex)); }

std::string RandomHex() {
  thread_local absl::BitGen gen;
  return absl::StrCat(absl::Hex(absl::Uniform<uint64_t>(gen), absl::kZeroPad16),
                      absl::Hex(absl::Uniform<uint64_t>(gen), absl::kZeroPad16));
}

int64_t Millis(absl::Time t) { return absl::ToUnixMillis(t); }

std::optional<ChecksumAlgorithm> AlgorithmOf(v1::Checksum::Algorithm algorithm) {
  switch (algorithm) {
    case v1::Checksum::ALGORITHM_CRC32C:
      return ChecksumAlgorithm::kCrc32c;
    case v1::Checksum::ALGORITHM_XXH3_64:
      return ChecksumAlgorithm::kXxh3_64;
    default:
      return std::nullopt;
  }
}

template <typename Message>
absl::StatusOr<Message> ParseRecord(std::string_view raw, std::string_view key,
                                    std::string_view what) {
  Message message;
  if (!message.ParseFromArray(raw.data(), static_cast<int>(raw.size()))) {
    return absl::DataLossError(
        absl::StrCat("stored ", Sv(what), " of key \"", Sv(key), "\" cannot be parsed"));
  }
  return message;
}

// Parts of one snapshot must describe one state: the same model, position and format, and
// (when every part names its layers) adjacent layer ranges in part order.
absl::Status CheckPartsAgree(const std::vector<StoredPart>& parts) {
  const v1::StateMetadata& first = parts[0].metadata();
  bool all_layers = true;
  for (const StoredPart& p : parts) all_layers &= p.metadata().layers().last() > 0;
  for (size_t i = 1; i < parts.size(); ++i) {
    const v1::StateMetadata& m = parts[i].metadata();
    if (m.model().fingerprint() != first.model().fingerprint() ||
        m.model().name() != first.model().name()) {
      return absl::FailedPreconditionError(absl::StrCat("snapshot part ", i, " is of model \"",
                                                        m.model().fingerprint(), "\", part 0 of \"",
                                                        first.model().fingerprint(), "\""));
    }
    if (m.token_position() != first.token_position()) {
      return absl::FailedPreconditionError(
          absl::StrCat("snapshot part ", i, " is at token position ", m.token_position(),
                       ", part 0 at ", first.token_position()));
    }
    if (m.format_version() != first.format_version()) {
      return absl::FailedPreconditionError(absl::StrCat("snapshot part ", i, " has format version ",
                                                        m.format_version(), ", part 0 has ",
                                                        first.format_version()));
    }
    if (all_layers && m.layers().first() != parts[i - 1].metadata().layers().last()) {
      return absl::FailedPreconditionError(
          absl::StrCat("snapshot part ", i, " starts at layer ", m.layers().first(), " but part ",
                       i - 1, " ends at layer ", parts[i - 1].metadata().layers().last()));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> DecodePageToken(const std::string& token) {
  std::string key;
  if (token.rfind(kPageTokenPrefix, 0) != 0 ||
      !absl::WebSafeBase64Unescape(token.substr(kPageTokenPrefix.size()), &key) ||
      !ValidateKey(key).ok()) {
    return absl::InvalidArgumentError("page_token is not one this store issued");
  }
  return key;
}

}  // namespace

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

StateStore::StateStore(std::unique_ptr<StorageBackend> backend, StoreOptions options, Clock* clock,
                       prometheus::Registry* registry, std::unique_ptr<StoreIndex> index)
    : backend_(std::move(backend)),
      options_(options),
      clock_(clock ? clock : RealClock::Get()),
      own_registry_(registry ? nullptr : std::make_unique<prometheus::Registry>()),
      metrics_(registry ? *registry : *own_registry_, backend_->Name()),
      index_(index ? std::move(index) : std::make_unique<MemoryStoreIndex>()) {}

StateStore::~StateStore() {
  stop_sweeper_.Notify();
  if (sweeper_.joinable()) sweeper_.join();
}

absl::StatusOr<std::unique_ptr<StateStore>> StateStore::Open(
    std::unique_ptr<StorageBackend> backend, StoreOptions options, Clock* clock,
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
      std::vector<std::string> pieces = absl::StrSplit(Sv(name), '/');
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
  for (int attempt = 0; attempt < kMaxAttempts; ++attempt) {
    switch (index_->TryReserve(bytes, options_.capacity_bytes, clock_->Now(), &victims)) {
      case StoreIndex::ReserveResult::kReserved:
        return absl::OkStatus();
      case StoreIndex::ReserveResult::kExhausted:
        return absl::ResourceExhaustedError(
            absl::StrCat("no room for ", bytes, " bytes: the capacity of ", options_.capacity_bytes,
                         " bytes is held by pinned entries and writes in progress"));
      case StoreIndex::ReserveResult::kNeedEviction:
        for (const std::string& key : victims) Evict(key, /*for_ttl=*/false);
        break;
    }
  }
  return absl::ResourceExhaustedError(
      absl::StrCat("no room for ", bytes, " bytes after evicting; the store is busy"));
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
// Put.

absl::Status StateStore::CheckPutHeader(const v1::PutHeader& header) {
  if (absl::Status s = ValidateKey(header.key()); !s.ok()) return s;
  if (!header.has_checksum() || !AlgorithmOf(header.checksum().algorithm())) {
    return absl::InvalidArgumentError(
        "header.checksum.algorithm is required (ALGORITHM_CRC32C or ALGORITHM_XXH3_64)");
  }
  if (header.total_size() > options_.max_blob_bytes) {
    return absl::ResourceExhaustedError(absl::StrCat("blob of ", header.total_size(),
                                                     " bytes is over the limit of ",
                                                     options_.max_blob_bytes, " bytes"));
  }
  const v1::StateMetadata& m = header.metadata();
  if (m.size_bytes() != 0 && m.size_bytes() != header.total_size()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "metadata.size_bytes ", m.size_bytes(), " differs from total_size ", header.total_size()));
  }
  if (m.layers().last() < m.layers().first()) {
    return absl::InvalidArgumentError(absl::StrCat("metadata.layers [", m.layers().first(), ", ",
                                                   m.layers().last(), ") is reversed"));
  }
  if (absl::StatusOr<absl::Time> e = ExpiryFor(header.ttl_seconds(), absl::UnixEpoch()); !e.ok()) {
    return e.status();
  }
  if (header.snapshot_id().empty()) {
    if (header.part() != 0) {
      return absl::InvalidArgumentError("part is set but snapshot_id is not");
    }
    return absl::OkStatus();
  }
  if (header.has_expected_version()) {
    return absl::InvalidArgumentError(
        "expected_version does not apply to a snapshot part; pass it to CommitSnapshot");
  }
  std::optional<std::pair<std::string, std::string>> parsed = ParseSnapshotId(header.snapshot_id());
  if (!parsed) {
    return absl::NotFoundError(absl::StrCat("unknown snapshot \"", header.snapshot_id(), "\""));
  }
  if (parsed->second != header.key()) {
    return absl::InvalidArgumentError(absl::StrCat("snapshot ", header.snapshot_id(),
                                                   " belongs to key \"", parsed->second,
                                                   "\", not \"", header.key(), "\""));
  }
  absl::StatusOr<std::optional<std::string>> raw =
      backend_->ReadRecord(parsed->second, parsed->first);
  if (!raw.ok()) return raw.status();
  if (!raw->has_value()) {
    return absl::NotFoundError(absl::StrCat("unknown snapshot \"", header.snapshot_id(), "\""));
  }
  absl::StatusOr<StoredSnapshot> snap =
      ParseRecord<StoredSnapshot>(**raw, header.key(), "snapshot");
  if (!snap.ok()) return snap.status();
  if (snap->committed()) {
    return absl::FailedPreconditionError(
        absl::StrCat("snapshot ", header.snapshot_id(), " is already committed"));
  }
  if (Millis(clock_->Now()) >= snap->deadline_unix_ms()) {
    return absl::NotFoundError(absl::StrCat("snapshot ", header.snapshot_id(), " has expired"));
  }
  if (header.part() >= snap->part_count()) {
    return absl::FailedPreconditionError(absl::StrCat("part ", header.part(),
                                                      " is out of range: the snapshot has ",
                                                      snap->part_count(), " parts"));
  }
  return absl::OkStatus();
}

absl::StatusOr<v1::PutResponse> StateStore::Put(const v1::PutHeader& header, std::string data) {
  absl::Time start = absl::Now();
  if (absl::Status s = CheckPutHeader(header); !s.ok()) return s;
  if (data.size() != header.total_size()) {
    return absl::DataLossError(absl::StrCat("received ", data.size(), " bytes for \"", header.key(),
                                            "\"; the header announced ", header.total_size()));
  }
  ChecksumAlgorithm algorithm = *AlgorithmOf(header.checksum().algorithm());
  uint64_t actual = ComputeChecksum(algorithm, data);
  if (actual != header.checksum().value()) {
    metrics_.checksum_failures_client.Increment();
    return absl::DataLossError(
        absl::StrCat("data for \"", header.key(), "\" has ", Sv(ChecksumAlgorithmName(algorithm)),
                     " ", absl::Hex(actual), ", the header says ",
                     absl::Hex(header.checksum().value()), "; nothing was stored"));
  }

  StoredPart part;
  *part.mutable_metadata() = header.metadata();
  part.mutable_metadata()->set_size_bytes(data.size());
  part.set_size(data.size());
  *part.mutable_checksum() = header.checksum();
  part.set_blob(NewBlobName(RandomHex()));
  std::string stored = std::move(data);
  if (options_.zstd_level != 0 && !stored.empty()) {
    absl::StatusOr<std::string> compressed = ZstdCompress(stored, options_.zstd_level);
    if (!compressed.ok()) return compressed.status();
    if (compressed->size() < stored.size()) {
      stored = *std::move(compressed);
      part.set_compression(COMPRESSION_ZSTD);
    }
  }
  part.set_stored_size(stored.size());

  if (!header.snapshot_id().empty()) {
    if (absl::Status s = CheckPendingRoom(stored.size()); !s.ok()) return s;
  }
  if (absl::Status s = ReserveCapacity(stored.size()); !s.ok()) return s;
  absl::StatusOr<v1::PutResponse> result;
  if (header.snapshot_id().empty()) {
    result = PutEntry(header, part, stored);
  } else {
    std::optional<std::pair<std::string, std::string>> parsed =
        ParseSnapshotId(header.snapshot_id());
    result = PutSnapshotPart(header, parsed->second, parsed->first, part, stored);
  }
  index_->Release(stored.size());
  PublishUsage();
  if (result.ok()) {
    metrics_.put_bytes.Increment(static_cast<double>(header.total_size()));
    metrics_.put_seconds.Observe(absl::ToDoubleSeconds(absl::Now() - start));
  }
  return result;
}

absl::StatusOr<v1::PutResponse> StateStore::PutEntry(const v1::PutHeader& header,
                                                     const StoredPart& part,
                                                     const std::string& stored) {
  const std::string& key = header.key();
  std::string blob = part.blob();
  absl::Time now = clock_->Now();
  if (absl::Status s = backend_->WriteBlob(key, blob, stored, now + options_.staging_timeout);
      !s.ok()) {
    return s;
  }
  auto discard_blob = [&] {
    Batch batch(key);
    batch.DeleteBlob(blob);
    backend_->Apply(batch).IgnoreError();
  };
  for (int attempt = 0; attempt < kMaxAttempts; ++attempt) {
    absl::MutexLock lock(&KeyLock(key));
    now = clock_->Now();
    absl::StatusOr<ReadEntryResult> current = ReadEntry(key);
    if (!current.ok()) {
      discard_blob();
      return current.status();
    }
    if (absl::Status s = CheckVersion(key, *current, now, header.has_expected_version(),
                                      header.expected_version(), "nothing was stored");
        !s.ok()) {
      discard_blob();
      return s;
    }
    absl::StatusOr<absl::Time> expiry = ExpiryFor(header.ttl_seconds(), now);
    if (!expiry.ok()) {
      discard_blob();
      return expiry.status();
    }
    StoredEntry entry;
    entry.set_format(kFormat);
    entry.set_key(key);
    entry.set_version(NextVersion(current->entry, now));
    *entry.add_parts() = part;
    entry.set_created_at_unix_ms(Millis(now));
    entry.set_expires_at_unix_ms(*expiry == absl::InfiniteFuture() ? 0 : Millis(*expiry));
    absl::Time backend_expiry = BackendExpiry(entry, now);

    Batch batch(key);
    batch.ExpectRecord(kEntryName, current->raw)
        .ExpectBlob(blob)
        .PutRecord(kEntryName, entry.SerializeAsString(), backend_expiry)
        .ExpireBlob(blob, backend_expiry);
    if (current->entry) {
      for (const StoredPart& old : current->entry->parts()) batch.DeleteBlob(old.blob());
    }
    absl::Status applied = backend_->Apply(batch);
    if (IsConflict(applied)) continue;
    if (!applied.ok()) return applied;  // outcome unknown: the blob is left for clean-up
    index_->Upsert(InfoOf(entry, now), part.stored_size());
    v1::PutResponse response;
    response.set_key(key);
    response.set_version(entry.version());
    response.set_stored_bytes(part.stored_size());
    return response;
  }
  discard_blob();
  return absl::AbortedError(absl::StrCat("key \"", key, "\" kept changing; nothing was stored"));
}

absl::StatusOr<v1::PutResponse> StateStore::PutSnapshotPart(const v1::PutHeader& header,
                                                            const std::string& key,
                                                            const std::string& snapshot_name,
                                                            const StoredPart& part,
                                                            const std::string& stored) {
  std::string blob = part.blob();
  std::string hex = snapshot_name.substr(2);
  std::string part_name = PartName(hex, header.part());
  // The snapshot's deadline bounds how long the staged blob may live.
  absl::StatusOr<std::optional<std::string>> first_read = backend_->ReadRecord(key, snapshot_name);
  if (!first_read.ok()) return first_read.status();
  if (!first_read->has_value()) {
    return absl::NotFoundError(absl::StrCat("unknown snapshot \"", header.snapshot_id(), "\""));
  }
  absl::StatusOr<StoredSnapshot> snap = ParseRecord<StoredSnapshot>(**first_read, key, "snapshot");
  if (!snap.ok()) return snap.status();
  absl::Time deadline = absl::FromUnixMillis(snap->deadline_unix_ms());
  if (absl::Status s = backend_->WriteBlob(key, blob, stored, deadline); !s.ok()) return s;
  auto discard_blob = [&] {
    Batch batch(key);
    batch.DeleteBlob(blob);
    backend_->Apply(batch).IgnoreError();
  };

  for (int attempt = 0; attempt < kMaxAttempts; ++attempt) {
    absl::MutexLock lock(&KeyLock(key));
    absl::StatusOr<std::optional<std::string>> raw = backend_->ReadRecord(key, snapshot_name);
    absl::StatusOr<std::optional<std::string>> old_raw = backend_->ReadRecord(key, part_name);
    if (!raw.ok() || !old_raw.ok()) {
      discard_blob();
      return raw.ok() ? old_raw.status() : raw.status();
    }
    if (!raw->has_value()) {
      discard_blob();
      return absl::NotFoundError(absl::StrCat("unknown snapshot \"", header.snapshot_id(), "\""));
    }
    snap = ParseRecord<StoredSnapshot>(**raw, key, "snapshot");
    if (!snap.ok()) {
      discard_blob();
      return snap.status();
    }
    if (snap->committed()) {
      discard_blob();
      return absl::FailedPreconditionError(
          absl::StrCat("snapshot ", header.snapshot_id(), " is already committed"));
    }
    if (Millis(clock_->Now()) >= snap->deadline_unix_ms()) {
      discard_blob();
      return absl::NotFoundError(absl::StrCat("snapshot ", header.snapshot_id(), " has expired"));
    }
    Batch batch(key);
    batch.ExpectRecord(snapshot_name, *raw)
        .ExpectRecord(part_name, *old_raw)
        .ExpectBlob(blob)
        .PutRecord(part_name, part.SerializeAsString(), deadline);
    if (old_raw->has_value()) {
      absl::StatusOr<StoredPart> old = ParseRecord<StoredPart>(**old_raw, key, "snapshot part");
      if (old.ok()) batch.DeleteBlob(old->blob());
    }
    absl::Status applied = backend_->Apply(batch);
    if (IsConflict(applied)) continue;
    if (!applied.ok()) return applied;
    index_->SetSnapshotPart(header.snapshot_id(), header.part(), part.stored_size());
    v1::PutResponse response;
    response.set_key(key);
    response.set_version(snap->planned_version());
    response.set_stored_bytes(part.stored_size());
    return response;
  }
  discard_blob();
  return absl::AbortedError(
      absl::StrCat("snapshot ", header.snapshot_id(), " kept changing; the part was not stored"));
}

// ---------------------------------------------------------------------------------------------
// Reads.

absl::StatusOr<StateStore::Blob> StateStore::Get(const std::string& key, uint32_t part_index) {
  absl::Time start = absl::Now();
  if (absl::Status s = ValidateKey(key); !s.ok()) return s;
  for (int attempt = 0; attempt < kMaxAttempts; ++attempt) {
    absl::Time now = clock_->Now();
    absl::StatusOr<ReadEntryResult> current = ReadEntry(key);
    if (!current.ok()) return current.status();
    if (!current->entry || !IsLive(*current->entry, now)) {
      metrics_.misses.Increment();
      return absl::NotFoundError(absl::StrCat("no entry \"", key, "\""));
    }
    const StoredEntry& entry = *current->entry;
    if (part_index >= static_cast<uint32_t>(entry.parts_size())) {
      return absl::OutOfRangeError(absl::StrCat("entry \"", key, "\" has ", entry.parts_size(),
                                                " part(s); part ", part_index, " does not exist"));
    }
    const StoredPart& part = entry.parts(static_cast<int>(part_index));
    absl::StatusOr<std::string> stored = backend_->ReadBlob(key, part.blob());
    if (absl::IsNotFound(stored.status())) {
      // Replaced between our two reads? Then read again; otherwise the data is gone.
      absl::StatusOr<ReadEntryResult> again = ReadEntry(key);
      if (again.ok() && again->raw != current->raw) continue;
    }
    absl::Status problem = stored.status();
    std::string data;
    if (problem.ok()) {
      if (part.compression() == COMPRESSION_ZSTD) {
        absl::StatusOr<std::string> raw = ZstdDecompress(*stored, part.size());
        if (raw.ok()) {
          data = *std::move(raw);
        } else {
          problem = raw.status();
        }
      } else {
        data = *std::move(stored);
      }
    }
    if (problem.ok()) {
      std::optional<ChecksumAlgorithm> algorithm = AlgorithmOf(part.checksum().algorithm());
      if (data.size() != part.size()) {
        problem =
            absl::DataLossError(absl::StrCat("holds ", data.size(), " bytes, not ", part.size()));
      } else if (!algorithm) {
        problem = absl::DataLossError("has no usable checksum");
      } else if (uint64_t actual = ComputeChecksum(*algorithm, data);
                 actual != part.checksum().value()) {
        problem = absl::DataLossError(absl::StrCat(
            "no longer matches its ", Sv(ChecksumAlgorithmName(*algorithm)), " (",
            absl::Hex(actual), " instead of ", absl::Hex(part.checksum().value()), ")"));
      }
    }
    if (!problem.ok()) {
      if (problem.code() != absl::StatusCode::kUnavailable) {
        metrics_.checksum_failures_storage.Increment();
        log::Error("stored state is corrupt", {{"key", key},
                                               {"part", absl::StrCat(part_index)},
                                               {"version", absl::StrCat(entry.version())},
                                               {"reason", std::string(problem.message())}});
        return absl::DataLossError(absl::StrCat("entry \"", key, "\" part ", part_index,
                                                " (version ", entry.version(), "): stored data ",
                                                problem.message()));
      }
      return problem;
    }
    index_->MarkUsed(key);
    metrics_.hits.Increment();
    metrics_.get_bytes.Increment(static_cast<double>(data.size()));
    metrics_.get_seconds.Observe(absl::ToDoubleSeconds(absl::Now() - start));
    Blob blob;
    *blob.header.mutable_entry() = InfoOf(entry, now);
    *blob.header.mutable_metadata() = part.metadata();
    blob.header.set_size(part.size());
    *blob.header.mutable_checksum() = part.checksum();
    blob.data = std::move(data);
    return blob;
  }
  return absl::UnavailableError(absl::StrCat("entry \"", key, "\" kept changing while read"));
}

absl::StatusOr<v1::EntryInfo> StateStore::Stat(const std::string& key) {
  if (absl::Status s = ValidateKey(key); !s.ok()) return s;
  absl::Time now = clock_->Now();
  absl::StatusOr<ReadEntryResult> current = ReadEntry(key);
  if (!current.ok()) return current.status();
  if (!current->entry || !IsLive(*current->entry, now)) {
    return absl::NotFoundError(absl::StrCat("no entry \"", key, "\""));
  }
  return InfoOf(*current->entry, now);
}

absl::StatusOr<v1::ListResponse> StateStore::List(const v1::ListRequest& request) {
  if (absl::Status s = ValidateKeyPrefix(request.prefix()); !s.ok()) return s;
  if (request.page_size() > kMaxPageSize) {
    return absl::InvalidArgumentError(
        absl::StrCat("page_size ", request.page_size(), " is over ", kMaxPageSize));
  }
  uint32_t page_size = request.page_size() == 0 ? kDefaultPageSize : request.page_size();
  std::string after;
  if (!request.page_token().empty()) {
    absl::StatusOr<std::string> decoded = DecodePageToken(request.page_token());
    if (!decoded.ok()) return decoded.status();
    after = *decoded;
  }
  std::vector<v1::EntryInfo> entries =
      index_->List(request.prefix(), after, page_size + 1, clock_->Now());
  v1::ListResponse response;
  bool more = entries.size() > page_size;
  if (more) entries.resize(page_size);
  for (v1::EntryInfo& e : entries) *response.add_entries() = std::move(e);
  if (more) {
    response.set_next_page_token(absl::StrCat(
        kPageTokenPrefix, absl::WebSafeBase64Escape(response.entries().rbegin()->key())));
  }
  return response;
}

// ---------------------------------------------------------------------------------------------
// Changes to existing entries.

absl::StatusOr<v1::DeleteResponse> StateStore::Delete(const v1::DeleteRequest& request) {
  const std::string& key = request.key();
  if (absl::Status s = ValidateKey(key); !s.ok()) return s;
  for (int attempt = 0; attempt < kMaxAttempts; ++attempt) {
    absl::MutexLock lock(&KeyLock(key));
    absl::Time now = clock_->Now();
    absl::StatusOr<ReadEntryResult> current = ReadEntry(key);
    if (!current.ok()) return current.status();
    if (absl::Status s = CheckVersion(key, *current, now, request.has_expected_version(),
                                      request.expected_version(), "nothing was deleted");
        !s.ok()) {
      return s;
    }
    const bool live = current->entry && IsLive(*current->entry, now);
    v1::DeleteResponse response;
    response.set_existed(live);
    if (!current->entry) {
      index_->Remove(key);
      PublishUsage();
      return response;
    }
    Batch batch(key);
    batch.ExpectRecord(kEntryName, current->raw).DeleteRecord(kEntryName);
    for (const StoredPart& p : current->entry->parts()) batch.DeleteBlob(p.blob());
    absl::Status applied = backend_->Apply(batch);
    if (IsConflict(applied)) continue;
    if (!applied.ok()) return applied;
    index_->Remove(key);
    PublishUsage();
    return response;
  }
  return absl::AbortedError(absl::StrCat("key \"", key, "\" kept changing; not deleted"));
}

absl::StatusOr<v1::EntryInfo> StateStore::Touch(const v1::TouchRequest& request) {
  const std::string& key = request.key();
  if (absl::Status s = ValidateKey(key); !s.ok()) return s;
  for (int attempt = 0; attempt < kMaxAttempts; ++attempt) {
    absl::MutexLock lock(&KeyLock(key));
    absl::Time now = clock_->Now();
    absl::StatusOr<ReadEntryResult> current = ReadEntry(key);
    if (!current.ok()) return current.status();
    if (!current->entry || !IsLive(*current->entry, now)) {
      return absl::NotFoundError(absl::StrCat("no entry \"", key, "\""));
    }
    if (request.ttl_seconds() > static_cast<uint64_t>(absl::ToInt64Seconds(options_.max_ttl))) {
      return absl::InvalidArgumentError(
          absl::StrCat("ttl_seconds ", request.ttl_seconds(), " is over the limit"));
    }
    StoredEntry entry = *current->entry;
    entry.set_expires_at_unix_ms(
        request.ttl_seconds() == 0
            ? 0
            : Millis(now + absl::Seconds(static_cast<int64_t>(request.ttl_seconds()))));
    absl::Time backend_expiry = BackendExpiry(entry, now);
    Batch batch(key);
    batch.ExpectRecord(kEntryName, current->raw)
        .PutRecord(kEntryName, entry.SerializeAsString(), backend_expiry);
    for (const StoredPart& p : entry.parts()) batch.ExpireBlob(p.blob(), backend_expiry);
    absl::Status applied = backend_->Apply(batch);
    if (IsConflict(applied)) continue;
    if (!applied.ok()) return applied;
    uint64_t stored = 0;
    for (const StoredPart& p : entry.parts()) stored += p.stored_size();
    v1::EntryInfo info = InfoOf(entry, now);
    index_->Upsert(info, stored);
    return info;
  }
  return absl::AbortedError(absl::StrCat("key \"", key, "\" kept changing"));
}

absl::StatusOr<v1::PinResponse> StateStore::Pin(const v1::PinRequest& request) {
  const std::string& key = request.key();
  if (absl::Status s = ValidateKey(key); !s.ok()) return s;
  if (request.holder().empty() || request.holder().size() > kMaxHolderBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("holder must be 1 to ", kMaxHolderBytes, " bytes"));
  }
  absl::Duration lease = request.lease_seconds() == 0
                             ? options_.default_lease
                             : absl::Seconds(static_cast<int64_t>(
                                   std::min<uint64_t>(request.lease_seconds(), 1ull << 40)));
  if (lease > options_.max_lease) {
    return absl::InvalidArgumentError(absl::StrCat("lease_seconds ", request.lease_seconds(),
                                                   " is over the maximum of ",
                                                   absl::ToInt64Seconds(options_.max_lease)));
  }
  for (int attempt = 0; attempt < kMaxAttempts; ++attempt) {
    absl::MutexLock lock(&KeyLock(key));
    absl::Time now = clock_->Now();
    absl::StatusOr<ReadEntryResult> current = ReadEntry(key);
    if (!current.ok()) return current.status();
    if (!current->entry || !IsLive(*current->entry, now)) {
      return absl::NotFoundError(absl::StrCat("no entry \"", key, "\""));
    }
    absl::Time until = now + lease;
    index_->Pin(key, request.holder(), until);
    // A backend that expires objects must keep a pinned entry at least as long as the lease.
    if (backend_->ExpiresObjects() && current->entry->expires_at_unix_ms() != 0) {
      absl::Time expiry = BackendExpiry(*current->entry, now);
      Batch batch(key);
      batch.ExpectRecord(kEntryName, current->raw).ExpireRecord(kEntryName, expiry);
      for (const StoredPart& p : current->entry->parts()) batch.ExpireBlob(p.blob(), expiry);
      absl::Status applied = backend_->Apply(batch);
      if (IsConflict(applied)) continue;
      if (!applied.ok()) return applied;
    }
    v1::PinResponse response;
    response.set_lease_expires_at_unix_ms(Millis(until));
    return response;
  }
  return absl::AbortedError(absl::StrCat("key \"", key, "\" kept changing"));
}

absl::Status StateStore::Unpin(const v1::UnpinRequest& request) {
  if (absl::Status s = ValidateKey(request.key()); !s.ok()) return s;
  index_->Unpin(request.key(), request.holder());
  return absl::OkStatus();
}

// ---------------------------------------------------------------------------------------------
// Snapshots.

absl::StatusOr<v1::BeginSnapshotResponse> StateStore::BeginSnapshot(
    const v1::BeginSnapshotRequest& request) {
  const std::string& key = request.key();
  if (absl::Status s = ValidateKey(key); !s.ok()) return s;
  if (request.part_count() == 0 || request.part_count() > kMaxParts) {
    return absl::InvalidArgumentError(
        absl::StrCat("part_count ", request.part_count(), " is outside 1..", kMaxParts));
  }
  if (absl::StatusOr<absl::Time> e = ExpiryFor(request.ttl_seconds(), absl::UnixEpoch()); !e.ok()) {
    return e.status();
  }
  absl::Duration timeout = request.open_timeout_seconds() == 0
                               ? options_.default_snapshot_timeout
                               : absl::Seconds(static_cast<int64_t>(std::min<uint64_t>(
                                     request.open_timeout_seconds(), 1ull << 40)));
  if (timeout > options_.max_snapshot_timeout) {
    return absl::InvalidArgumentError(absl::StrCat(
        "open_timeout_seconds ", request.open_timeout_seconds(), " is over the maximum of ",
        absl::ToInt64Seconds(options_.max_snapshot_timeout)));
  }
  if (options_.max_open_snapshots != 0 &&
      index_->usage().open_snapshots >= options_.max_open_snapshots) {
    return absl::ResourceExhaustedError(
        absl::StrCat(options_.max_open_snapshots,
                     " snapshots are open, the most allowed (--max-open-snapshots); commit or "
                     "abort some, or retry later"));
  }
  std::string hex = RandomHex();
  std::string id = MakeSnapshotId(hex, key);
  absl::Time now = clock_->Now();
  absl::StatusOr<ReadEntryResult> current = ReadEntry(key);
  if (!current.ok()) return current.status();
  StoredSnapshot snap;
  snap.set_format(kFormat);
  snap.set_key(key);
  snap.set_part_count(request.part_count());
  snap.set_ttl_seconds(request.ttl_seconds());
  absl::Time deadline = now + timeout;
  snap.set_deadline_unix_ms(Millis(deadline));
  snap.set_planned_version(NextVersion(current->entry, now));
  Batch batch(key);
  batch.ExpectRecord(SnapshotName(hex), std::nullopt)
      .PutRecord(SnapshotName(hex), snap.SerializeAsString(), deadline);
  if (absl::Status s = backend_->Apply(batch); !s.ok()) return s;
  index_->AddSnapshot(id, key, deadline, /*committed=*/false);
  PublishUsage();
  v1::BeginSnapshotResponse response;
  response.set_snapshot_id(id);
  return response;
}

absl::StatusOr<v1::EntryInfo> StateStore::CommitSnapshot(const v1::CommitSnapshotRequest& request) {
  std::optional<std::pair<std::string, std::string>> parsed =
      ParseSnapshotId(request.snapshot_id());
  if (!parsed) {
    return absl::NotFoundError(absl::StrCat("unknown snapshot \"", request.snapshot_id(), "\""));
  }
  const auto& [snapshot_name, key] = *parsed;
  std::string hex = snapshot_name.substr(2);
  for (int attempt = 0; attempt < kMaxAttempts; ++attempt) {
    absl::MutexLock lock(&KeyLock(key));
    absl::Time now = clock_->Now();
    absl::StatusOr<std::optional<std::string>> raw = backend_->ReadRecord(key, snapshot_name);
    if (!raw.ok()) return raw.status();
    if (!raw->has_value()) {
      return absl::NotFoundError(absl::StrCat("unknown snapshot \"", request.snapshot_id(), "\""));
    }
    absl::StatusOr<StoredSnapshot> snap = ParseRecord<StoredSnapshot>(**raw, key, "snapshot");
    if (!snap.ok()) return snap.status();
    if (snap->committed()) return snap->committed_info();
    if (Millis(now) >= snap->deadline_unix_ms()) {
      return absl::NotFoundError(absl::StrCat("snapshot ", request.snapshot_id(), " has expired"));
    }
    std::vector<StoredPart> parts;
    std::vector<std::optional<std::string>> part_raws;
    std::vector<uint32_t> missing;
    for (uint32_t i = 0; i < snap->part_count(); ++i) {
      absl::StatusOr<std::optional<std::string>> part_raw =
          backend_->ReadRecord(key, PartName(hex, i));
      if (!part_raw.ok()) return part_raw.status();
      if (!part_raw->has_value()) {
        missing.push_back(i);
        continue;
      }
      absl::StatusOr<StoredPart> part = ParseRecord<StoredPart>(**part_raw, key, "snapshot part");
      if (!part.ok()) return part.status();
      parts.push_back(*std::move(part));
      part_raws.push_back(*std::move(*part_raw));
    }
    if (!missing.empty()) {
      return absl::FailedPreconditionError(absl::StrCat(
          "snapshot ", request.snapshot_id(), " is missing part(s) ", absl::StrJoin(missing, ", "),
          " of ", snap->part_count(), "; nothing was committed"));
    }
    if (absl::Status s = CheckPartsAgree(parts); !s.ok()) return s;

    absl::StatusOr<ReadEntryResult> current = ReadEntry(key);
    if (!current.ok()) return current.status();
    if (absl::Status s = CheckVersion(key, *current, now, request.has_expected_version(),
                                      request.expected_version(), "the snapshot stays open");
        !s.ok()) {
      return s;
    }
    absl::StatusOr<absl::Time> expiry = ExpiryFor(snap->ttl_seconds(), now);
    if (!expiry.ok()) return expiry.status();
    StoredEntry entry;
    entry.set_format(kFormat);
    entry.set_key(key);
    // The version promised at BeginSnapshot, unless another write got there first.
    bool intervened = current->entry && current->entry->version() >= snap->planned_version();
    entry.set_version(intervened ? NextVersion(current->entry, now) : snap->planned_version());
    uint64_t stored = 0;
    for (const StoredPart& p : parts) {
      *entry.add_parts() = p;
      stored += p.stored_size();
    }
    entry.set_created_at_unix_ms(Millis(now));
    entry.set_expires_at_unix_ms(*expiry == absl::InfiniteFuture() ? 0 : Millis(*expiry));
    absl::Time backend_expiry = BackendExpiry(entry, now);
    v1::EntryInfo info = InfoOf(entry, now);

    StoredSnapshot marker = *snap;
    marker.set_committed(true);
    *marker.mutable_committed_info() = info;
    absl::Time marker_deadline =
        std::max(absl::FromUnixMillis(snap->deadline_unix_ms()), now + kCommitMarkerRetention);
    marker.set_deadline_unix_ms(Millis(marker_deadline));

    Batch batch(key);
    batch.ExpectRecord(snapshot_name, *raw).ExpectRecord(kEntryName, current->raw);
    for (uint32_t i = 0; i < snap->part_count(); ++i) {
      batch.ExpectRecord(PartName(hex, i), part_raws[i]).ExpectBlob(parts[i].blob());
    }
    batch.PutRecord(kEntryName, entry.SerializeAsString(), backend_expiry)
        .PutRecord(snapshot_name, marker.SerializeAsString(), marker_deadline);
    for (uint32_t i = 0; i < snap->part_count(); ++i) {
      batch.DeleteRecord(PartName(hex, i)).ExpireBlob(parts[i].blob(), backend_expiry);
    }
    if (current->entry) {
      for (const StoredPart& old : current->entry->parts()) batch.DeleteBlob(old.blob());
    }
    absl::Status applied = backend_->Apply(batch);
    if (IsConflict(applied)) continue;
    if (!applied.ok()) return applied;
    index_->RemoveSnapshot(request.snapshot_id());
    index_->AddSnapshot(request.snapshot_id(), key, marker_deadline, /*committed=*/true);
    index_->Upsert(info, stored);
    metrics_.snapshots_committed.Increment();
    PublishUsage();
    return info;
  }
  return absl::AbortedError(absl::StrCat("key \"", key, "\" kept changing; not committed"));
}

absl::Status StateStore::AbortSnapshot(const v1::AbortSnapshotRequest& request) {
  if (request.snapshot_id().empty()) return absl::InvalidArgumentError("snapshot_id is empty");
  std::optional<std::pair<std::string, std::string>> parsed =
      ParseSnapshotId(request.snapshot_id());
  if (!parsed) return absl::OkStatus();  // never issued, so nothing to discard
  return AbortSnapshotById(request.snapshot_id(), parsed->second, /*expired=*/false);
}

absl::Status StateStore::AbortSnapshotById(const std::string& id, const std::string& key,
                                           bool expired) {
  std::optional<std::pair<std::string, std::string>> parsed = ParseSnapshotId(id);
  if (!parsed) return absl::OkStatus();
  const std::string& snapshot_name = parsed->first;
  std::string hex = snapshot_name.substr(2);
  for (int attempt = 0; attempt < kMaxAttempts; ++attempt) {
    absl::MutexLock lock(&KeyLock(key));
    absl::StatusOr<std::optional<std::string>> raw = backend_->ReadRecord(key, snapshot_name);
    if (!raw.ok()) return raw.status();
    if (!raw->has_value()) {
      index_->RemoveSnapshot(id);
      PublishUsage();
      return absl::OkStatus();
    }
    absl::StatusOr<StoredSnapshot> snap = ParseRecord<StoredSnapshot>(**raw, key, "snapshot");
    if (!snap.ok()) return snap.status();
    Batch batch(key);
    batch.ExpectRecord(snapshot_name, *raw).DeleteRecord(snapshot_name);
    if (snap->committed()) {
      // Only the marker is left; the parts belong to the entry now. Dropping the marker is
      // for the sweeper, once its time is up; an explicit abort leaves it.
      if (!expired) return absl::OkStatus();
    } else {
      for (uint32_t i = 0; i < snap->part_count(); ++i) {
        absl::StatusOr<std::optional<std::string>> part_raw =
            backend_->ReadRecord(key, PartName(hex, i));
        if (!part_raw.ok()) return part_raw.status();
        if (!part_raw->has_value()) continue;
        batch.ExpectRecord(PartName(hex, i), *part_raw).DeleteRecord(PartName(hex, i));
        absl::StatusOr<StoredPart> part = ParseRecord<StoredPart>(**part_raw, key, "snapshot part");
        if (part.ok()) batch.DeleteBlob(part->blob());
      }
    }
    absl::Status applied = backend_->Apply(batch);
    if (IsConflict(applied)) continue;
    if (!applied.ok()) return applied;
    index_->RemoveSnapshot(id);
    if (!snap->committed()) {
      (expired ? metrics_.snapshots_expired : metrics_.snapshots_aborted).Increment();
    }
    PublishUsage();
    return absl::OkStatus();
  }
  return absl::AbortedError(absl::StrCat("snapshot ", id, " kept changing"));
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
