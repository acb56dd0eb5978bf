// StateStore: reading entries (Get, Stat, List).
#include <algorithm>
#include <string>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "services/common/logging.h"
#include "services/state_store/compression.h"
#include "services/state_store/store.h"
#include "services/state_store/store_internal.h"

namespace skein::state_store {

// ---------------------------------------------------------------------------------------------
// Reads.

absl::StatusOr<StateStore::Blob> StateStore::Get(const std::string& key, uint32_t part_index) {
  absl::Time start = absl::Now();
  if (absl::Status s = ValidateKey(key); !s.ok()) return s;
  return RetryOnConflict<absl::StatusOr<StateStore::Blob>>(
      [&]() -> Attempt<absl::StatusOr<StateStore::Blob>> {
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
                                                    " part(s); part ", part_index,
                                                    " does not exist"));
        }
        const StoredPart& part = entry.parts(static_cast<int>(part_index));
        absl::StatusOr<std::string> stored = backend_->ReadBlob(key, part.blob());
        if (absl::IsNotFound(stored.status())) {
          // Replaced between our two reads? Then read again; otherwise the data is gone.
          absl::StatusOr<ReadEntryResult> again = ReadEntry(key);
          if (again.ok() && again->raw != current->raw) return kRetry;
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
            problem = absl::DataLossError(
                absl::StrCat("holds ", data.size(), " bytes, not ", part.size()));
          } else if (!algorithm) {
            problem = absl::DataLossError("has no usable checksum");
          } else if (uint64_t actual = ComputeChecksum(*algorithm, data);
                     actual != part.checksum().value()) {
            problem = absl::DataLossError(absl::StrCat(
                "no longer matches its ", base::AsAbsl(ChecksumAlgorithmName(*algorithm)), " (",
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
                                                    " (version ", entry.version(),
                                                    "): stored data ", problem.message()));
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
      },
      [&]() -> absl::StatusOr<StateStore::Blob> {
        return absl::UnavailableError(absl::StrCat("entry \"", key, "\" kept changing while read"));
      });
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

}  // namespace skein::state_store
