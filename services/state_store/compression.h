// Optional zstd compression of stored blobs. The store records, per part, whether its stored
// bytes are compressed, so the setting can change between restarts without rewriting data.
// Thread-safe (no shared state).
#ifndef SKEIN_SERVICES_STATE_STORE_COMPRESSION_H_
#define SKEIN_SERVICES_STATE_STORE_COMPRESSION_H_

#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace skein::state_store {

// zstd-compresses `data` at `level` (1..22; negative levels are zstd's fast modes).
// Errors: INTERNAL if zstd fails (it does not on valid levels), INVALID_ARGUMENT for a level
// outside zstd's range.
absl::StatusOr<std::string> ZstdCompress(std::string_view data, int level);

// Decompresses one zstd frame that must expand to exactly `expected_size` bytes.
// Errors: DATA_LOSS when the frame is corrupt, truncated, or of another size.
absl::StatusOr<std::string> ZstdDecompress(std::string_view frame, uint64_t expected_size);

}  // namespace skein::state_store

#endif  // SKEIN_SERVICES_STATE_STORE_COMPRESSION_H_
