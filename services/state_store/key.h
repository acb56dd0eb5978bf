// What a state-store key may be. Keys name entries in every backend (RocksDB keys, Redis keys
// with a hash tag, operator listings), so they are restricted to text that is safe and
// unambiguous everywhere:
//   - 1 to kMaxKeyBytes bytes of printable ASCII (0x20..0x7E): no control characters, no DEL,
//     no bytes >= 0x80;
//   - no leading or trailing '/', no empty segment ("a//b"), no "." or ".." segment, and no
//     backslash, so a key can never be read as a path that escapes its namespace.
// Thread-safe (pure functions).
#ifndef SKEIN_SERVICES_STATE_STORE_KEY_H_
#define SKEIN_SERVICES_STATE_STORE_KEY_H_

#include <cstddef>
#include <string_view>

#include "absl/status/status.h"

namespace skein::state_store {

inline constexpr size_t kMaxKeyBytes = 256;

// OK, or INVALID_ARGUMENT naming the rule broken and the byte offset.
absl::Status ValidateKey(std::string_view key);

// A List prefix: empty, or up to kMaxKeyBytes of printable ASCII (it may end in '/').
absl::Status ValidateKeyPrefix(std::string_view prefix);

}  // namespace skein::state_store

#endif  // SKEIN_SERVICES_STATE_STORE_KEY_H_
