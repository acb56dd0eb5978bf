// Pieces shared by the files that implement StateStore (store*.cc), and by them only: record
// names, limits, record parsing, and the retry loop of optimistic changes.
#ifndef SKEIN_SERVICES_STATE_STORE_STORE_INTERNAL_H_
#define SKEIN_SERVICES_STATE_STORE_STORE_INTERNAL_H_

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/random/random.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "base/absl_bridge.h"
#include "services/state_store/checksum.h"
#include "services/state_store/key.h"
#include "skein/state_store/records.pb.h"
#include "skein/v1/state_store.pb.h"

namespace skein::state_store {

inline constexpr uint32_t kFormat = 1;
inline constexpr int kMaxAttempts = 8;
inline constexpr uint32_t kMaxParts = 256;
inline constexpr uint32_t kMaxPageSize = 1000;
inline constexpr uint32_t kDefaultPageSize = 100;
inline constexpr size_t kMaxHolderBytes = 256;
// A committed snapshot's marker is kept this long so a repeated commit answers the same.
inline constexpr absl::Duration kCommitMarkerRetention = absl::Minutes(10);
inline const std::string kPageTokenPrefix = "k1.";

inline const std::string kEntryName = "e";
inline std::string SnapshotName(std::string_view hex) {
  return absl::StrCat("s/", base::AsAbsl(hex));
}
inline std::string PartName(std::string_view hex, uint32_t part) {
  return absl::StrCat("p/", base::AsAbsl(hex), "/", part);
}
inline std::string NewBlobName(std::string_view hex) {
  return absl::StrCat("b/", base::AsAbsl(hex));
}

inline std::string RandomHex() {
  thread_local absl::BitGen gen;
  return absl::StrCat(absl::Hex(absl::Uniform<uint64_t>(gen), absl::kZeroPad16),
                      absl::Hex(absl::Uniform<uint64_t>(gen), absl::kZeroPad16));
}

inline int64_t Millis(absl::Time t) { return absl::ToUnixMillis(t); }

inline std::optional<ChecksumAlgorithm> AlgorithmOf(v1::Checksum::Algorithm algorithm) {
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
                                    std::string_view what);

// What parsing alone cannot tell: fields that a damaged record could set out of range (a
// snapshot claiming billions of parts would have every reader loop over them).
inline absl::Status CheckRecord(const StoredSnapshot& snapshot, std::string_view key) {
  if (snapshot.part_count() == 0 || snapshot.part_count() > kMaxParts) {
    return absl::DataLossError(absl::StrCat("stored snapshot of key \"", base::AsAbsl(key),
                                            "\" claims ", snapshot.part_count(),
                                            " parts, outside 1..", kMaxParts));
  }
  return absl::OkStatus();
}
template <typename Message>
absl::Status CheckRecord(const Message&, std::string_view) {
  return absl::OkStatus();
}

template <typename Message>
inline absl::StatusOr<Message> ParseRecord(std::string_view raw, std::string_view key,
                                           std::string_view what) {
  Message message;
  if (!message.ParseFromArray(raw.data(), static_cast<int>(raw.size()))) {
    return absl::DataLossError(absl::StrCat("stored ", base::AsAbsl(what), " of key \"",
                                            base::AsAbsl(key), "\" cannot be parsed"));
  }
  if (absl::Status s = CheckRecord(message, key); !s.ok()) return s;
  return message;
}

// Parts of one snapshot must describe one state: the same model, position and format, and
// (when every part names its layers) adjacent layer ranges in part order.
inline absl::Status CheckPartsAgree(const std::vector<StoredPart>& parts) {
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

inline absl::StatusOr<std::string> DecodePageToken(const std::string& token) {
  std::string key;
  if (token.rfind(kPageTokenPrefix, 0) != 0 ||
      !absl::WebSafeBase64Unescape(token.substr(kPageTokenPrefix.size()), &key) ||
      !ValidateKey(key).ok()) {
    return absl::InvalidArgumentError("page_token is not one this store issued");
  }
  return key;
}

// A try of an optimistic change: it reads, then applies a batch that expects what it read.
// It answers its result (R: absl::Status or absl::StatusOr<T>), or kRetry to be run again
// when a concurrent change made its batch conflict.
template <typename R>
using Attempt = std::optional<R>;
inline constexpr std::nullopt_t kRetry = std::nullopt;

// Runs `attempt` until it answers anything but kRetry, at most kMaxAttempts times; then
// answers what `exhausted` returns (which may also clean up).
template <typename R, typename AttemptFn, typename ExhaustedFn>
R RetryOnConflict(AttemptFn attempt, ExhaustedFn exhausted) {
  for (int i = 0; i < kMaxAttempts; ++i) {
    if (Attempt<R> result = attempt()) return *std::move(result);
  }
  return exhausted();
}

}  // namespace skein::state_store

#endif  // SKEIN_SERVICES_STATE_STORE_STORE_INTERNAL_H_
