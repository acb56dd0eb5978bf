#include "services/state_store/compression.h"

#include <zstd.h>

#include "absl/strings/str_cat.h"

namespace skein::state_store {

absl::StatusOr<std::string> ZstdCompress(std::string_view data, int level) {
  if (level < ZSTD_minCLevel() || level > ZSTD_maxCLevel() || level == 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "zstd level ", level, " is outside [", ZSTD_minCLevel(), ", ", ZSTD_maxCLevel(), "] or 0"));
  }
  std::string out(ZSTD_compressBound(data.size()), '\0');
  size_t n = ZSTD_compress(out.data(), out.size(), data.data(), data.size(), level);
  if (ZSTD_isError(n)) {
    return absl::InternalError(absl::StrCat("zstd compression failed: ", ZSTD_getErrorName(n)));
  }
  out.resize(n);
  return out;
}

absl::StatusOr<std::string> ZstdDecompress(std::string_view frame, uint64_t expected_size) {
  unsigned long long declared = ZSTD_getFrameContentSize(frame.data(), frame.size());
  if (declared == ZSTD_CONTENTSIZE_ERROR) {
    return absl::DataLossError("stored bytes are not a zstd frame");
  }
  if (declared != ZSTD_CONTENTSIZE_UNKNOWN && declared != expected_size) {
    return absl::DataLossError(
        absl::StrCat("zstd frame declares ", declared, " bytes; the entry has ", expected_size));
  }
  std::string out(expected_size, '\0');
  size_t n = ZSTD_decompress(out.data(), out.size(), frame.data(), frame.size());
  if (ZSTD_isError(n)) {
    return absl::DataLossError(absl::StrCat("zstd frame is corrupt: ", ZSTD_getErrorName(n)));
  }
  if (n != expected_size) {
    return absl::DataLossError(
        absl::StrCat("zstd frame expands to ", n, " bytes; the entry has ", expected_size));
  }
  return out;
}

}  // namespace skein::state_store
