// StateStore: multi-part snapshots (Begin, Commit, Abort).
#include <algorithm>
#include <vector>

#include "absl/strings/str_cat.h"
#include "services/state_store/store.h"
#include "services/state_store/store_internal.h"

namespace skein::state_store {

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
  // Plain references: a lambda below uses them (clang cannot capture structured bindings).
  const std::string& snapshot_name = parsed->first;
  const std::string& key = parsed->second;
  std::string hex = snapshot_name.substr(2);
  return RetryOnConflict<absl::StatusOr<v1::EntryInfo>>(
      [&]() -> Attempt<absl::StatusOr<v1::EntryInfo>> {
        absl::MutexLock lock(&KeyLock(key));
        absl::Time now = clock_->Now();
        absl::StatusOr<std::optional<std::string>> raw = backend_->ReadRecord(key, snapshot_name);
        if (!raw.ok()) return raw.status();
        if (!raw->has_value()) {
          return absl::NotFoundError(
              absl::StrCat("unknown snapshot \"", request.snapshot_id(), "\""));
        }
        absl::StatusOr<StoredSnapshot> snap = ParseRecord<StoredSnapshot>(**raw, key, "snapshot");
        if (!snap.ok()) return snap.status();
        if (snap->committed()) return snap->committed_info();
        if (Millis(now) >= snap->deadline_unix_ms()) {
          return absl::NotFoundError(
              absl::StrCat("snapshot ", request.snapshot_id(), " has expired"));
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
          absl::StatusOr<StoredPart> part =
              ParseRecord<StoredPart>(**part_raw, key, "snapshot part");
          if (!part.ok()) return part.status();
          parts.push_back(*std::move(part));
          part_raws.push_back(*std::move(*part_raw));
        }
        if (!missing.empty()) {
          return absl::FailedPreconditionError(absl::StrCat(
              "snapshot ", request.snapshot_id(), " is missing part(s) ",
              absl::StrJoin(missing, ", "), " of ", snap->part_count(), "; nothing was committed"));
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
        if (IsConflict(applied)) return kRetry;
        if (!applied.ok()) return applied;
        index_->RemoveSnapshot(request.snapshot_id());
        index_->AddSnapshot(request.snapshot_id(), key, marker_deadline, /*committed=*/true);
        index_->Upsert(info, stored);
        metrics_.snapshots_committed.Increment();
        PublishUsage();
        return info;
      },
      [&]() -> absl::StatusOr<v1::EntryInfo> {
        return absl::AbortedError(absl::StrCat("key \"", key, "\" kept changing; not committed"));
      });
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
  return RetryOnConflict<absl::Status>(
      [&]() -> Attempt<absl::Status> {
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
            absl::StatusOr<StoredPart> part =
                ParseRecord<StoredPart>(**part_raw, key, "snapshot part");
            if (part.ok()) batch.DeleteBlob(part->blob());
          }
        }
        absl::Status applied = backend_->Apply(batch);
        if (IsConflict(applied)) return kRetry;
        if (!applied.ok()) return applied;
        index_->RemoveSnapshot(id);
        if (!snap->committed()) {
          (expired ? metrics_.snapshots_expired : metrics_.snapshots_aborted).Increment();
        }
        PublishUsage();
        return absl::OkStatus();
      },
      [&]() -> absl::Status {
        return absl::AbortedError(absl::StrCat("snapshot ", id, " kept changing"));
      });
}

}  // namespace skein::state_store
