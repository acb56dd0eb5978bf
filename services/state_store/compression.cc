#include "services/state_store/compression.h"

#include <zstd.h>

#include <algorithm>
#include <memory>

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
  // `expected_size` comes from a stored record and the frame's own size field is just as much
  // stored data: a corrupt record once made this allocate whatever it claimed (a terabyte
  // aborted the process). So the output grows only as the decoder fills it, up to one byte
  // past the expected size (to notice a frame that expands to more). The first allocation
  // covers what a state blob usually expands to, so a healthy read rarely grows at all.
  constexpr size_t kMinBuffer = size_t{64} << 10;
  const uint64_t cap = expected_size + 1;
  std::string out(std::min<uint64_t>(cap, std::max<uint64_t>(kMinBuffer, 4 * frame.size())), '\0');
  std::unique_ptr<ZSTD_DCtx, size_t (*)(ZSTD_DCtx*)> dctx(ZSTD_createDCtx(), &ZSTD_freeDCtx);
  if (dctx == nullptr) return absl::ResourceExhaustedError("zstd: cannot allocate a decoder");
  ZSTD_inBuffer in{frame.data(), frame.size(), 0};
  ZSTD_outBuffer buffer{out.data(), out.size(), 0};
  for (;;) {
    if (buffer.pos == buffer.size) {
      if (buffer.size >= cap) break;  // expanded past the expected size
      out.resize(std::min<uint64_t>(cap, 2 * static_cast<uint64_t>(out.size())));
      buffer.dst = out.data();
      buffer.size = out.size();
    }
    const size_t in_before = in.pos, out_before = buffer.pos;
    const size_t left = ZSTD_decompressStream(dctx.get(), &buffer, &in);
    if (ZSTD_isError(left)) {
      return absl::DataLossError(absl::StrCat("zstd frame is corrupt: ", ZSTD_getErrorName(left)));
    }
    // Done when the last frame is complete and every input byte used (a later frame
    // would be decoded too, as ZSTD_decompress does).
    if (left == 0 && in.pos == in.size) break;
    if (in.pos == in_before && buffer.pos == out_before) {
      return absl::DataLossError("zstd frame is truncated");
    }
  }
  if (buffer.pos > expected_size) {
    return absl::DataLossError(
        absl::StrCat("zstd frame expands to more than the entry's ", expected_size, " bytes"));
  }
  if (buffer.pos != expected_size) {
    return absl::DataLossError(absl::StrCat("zstd frame expands to ", buffer.pos,
                                            " bytes; the entry has ", expected_size));
  }
  out.resize(buffer.pos);
  return out;
}

}  // namespace skein::state_store
