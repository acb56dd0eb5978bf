// StateStore: changes to existing entries (Delete, Touch, Pin, Unpin).
#include <algorithm>

#include "absl/strings/str_cat.h"
#include "services/state_store/store.h"
#include "services/state_store/store_internal.h"

namespace skein::state_store {

// ---------------------------------------------------------------------------------------------
// Changes to existing entries.

absl::StatusOr<v1::DeleteResponse> StateStore::Delete(const v1::DeleteRequest& request) {
  const std::string& key = request.key();
  if (absl::Status s = ValidateKey(key); !s.ok()) return s;
  return RetryOnConflict<absl::StatusOr<v1::DeleteResponse>>(
      [&]() -> Attempt<absl::StatusOr<v1::DeleteResponse>> {
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
        if (IsConflict(applied)) return kRetry;
        if (!applied.ok()) return applied;
        index_->Remove(key);
        PublishUsage();
        return response;
      },
      [&]() -> absl::StatusOr<v1::DeleteResponse> {
        return absl::AbortedError(absl::StrCat("key \"", key, "\" kept changing; not deleted"));
      });
}

absl::StatusOr<v1::EntryInfo> StateStore::Touch(const v1::TouchRequest& request) {
  const std::string& key = request.key();
  if (absl::Status s = ValidateKey(key); !s.ok()) return s;
  return RetryOnConflict<absl::StatusOr<v1::EntryInfo>>(
      [&]() -> Attempt<absl::StatusOr<v1::EntryInfo>> {
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
        if (IsConflict(applied)) return kRetry;
        if (!applied.ok()) return applied;
        uint64_t stored = 0;
        for (const StoredPart& p : entry.parts()) stored += p.stored_size();
        v1::EntryInfo info = InfoOf(entry, now);
        index_->Upsert(info, stored);
        return info;
      },
      [&]() -> absl::StatusOr<v1::EntryInfo> {
        return absl::AbortedError(absl::StrCat("key \"", key, "\" kept changing"));
      });
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
  return RetryOnConflict<absl::StatusOr<v1::PinResponse>>(
      [&]() -> Attempt<absl::StatusOr<v1::PinResponse>> {
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
          if (IsConflict(applied)) return kRetry;
          if (!applied.ok()) return applied;
        }
        v1::PinResponse response;
        response.set_lease_expires_at_unix_ms(Millis(until));
        return response;
      },
      [&]() -> absl::StatusOr<v1::PinResponse> {
        return absl::AbortedError(absl::StrCat("key \"", key, "\" kept changing"));
      });
}

absl::Status StateStore::Unpin(const v1::UnpinRequest& request) {
  if (absl::Status s = ValidateKey(request.key()); !s.ok()) return s;
  index_->Unpin(request.key(), request.holder());
  return absl::OkStatus();
}

}  // namespace skein::state_store
