// StateStore: writing entries and the parts of open snapshots.
#include <string>

#include "absl/strings/str_cat.h"
#include "services/state_store/compression.h"
#include "services/state_store/store.h"
#include "services/state_store/store_internal.h"

namespace skein::state_store {

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
    return absl::DataLossError(absl::StrCat(
        "data for \"", header.key(), "\" has ", base::AsAbsl(ChecksumAlgorithmName(algorithm)), " ",
        absl::Hex(actual), ", the header says ", absl::Hex(header.checksum().value()),
        "; nothing was stored"));
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
  return RetryOnConflict<absl::StatusOr<v1::PutResponse>>(
      [&]() -> Attempt<absl::StatusOr<v1::PutResponse>> {
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
        if (IsConflict(applied)) return kRetry;
        if (!applied.ok()) return applied;  // outcome unknown: the blob is left for clean-up
        index_->Upsert(InfoOf(entry, now), part.stored_size());
        v1::PutResponse response;
        response.set_key(key);
        response.set_version(entry.version());
        response.set_stored_bytes(part.stored_size());
        return response;
      },
      [&]() -> absl::StatusOr<v1::PutResponse> {
        discard_blob();
        return absl::AbortedError(
            absl::StrCat("key \"", key, "\" kept changing; nothing was stored"));
      });
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

  return RetryOnConflict<absl::StatusOr<v1::PutResponse>>(
      [&]() -> Attempt<absl::StatusOr<v1::PutResponse>> {
        absl::MutexLock lock(&KeyLock(key));
        absl::StatusOr<std::optional<std::string>> raw = backend_->ReadRecord(key, snapshot_name);
        absl::StatusOr<std::optional<std::string>> old_raw = backend_->ReadRecord(key, part_name);
        if (!raw.ok() || !old_raw.ok()) {
          discard_blob();
          return raw.ok() ? old_raw.status() : raw.status();
        }
        if (!raw->has_value()) {
          discard_blob();
          return absl::NotFoundError(
              absl::StrCat("unknown snapshot \"", header.snapshot_id(), "\""));
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
          return absl::NotFoundError(
              absl::StrCat("snapshot ", header.snapshot_id(), " has expired"));
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
        if (IsConflict(applied)) return kRetry;
        if (!applied.ok()) return applied;
        index_->SetSnapshotPart(header.snapshot_id(), header.part(), part.stored_size());
        v1::PutResponse response;
        response.set_key(key);
        response.set_version(snap->planned_version());
        response.set_stored_bytes(part.stored_size());
        return response;
      },
      [&]() -> absl::StatusOr<v1::PutResponse> {
        discard_blob();
        return absl::AbortedError(absl::StrCat("snapshot ", header.snapshot_id(),
                                               " kept changing; the part was not stored"));
      });
}

}  // namespace skein::state_store
