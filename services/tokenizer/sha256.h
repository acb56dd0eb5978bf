// SHA-256 of a byte string, computed by OpenSSL's libcrypto. Thread-safe.
#ifndef SKEIN_SERVICES_TOKENIZER_SHA256_H_
#define SKEIN_SERVICES_TOKENIZER_SHA256_H_

#include <string>

#include "absl/strings/string_view.h"

namespace skein::tokenizer {

// The digest of `data` as 64 lowercase hex digits.
std::string Sha256Hex(absl::string_view data);

}  // namespace skein::tokenizer

#endif  // SKEIN_SERVICES_TOKENIZER_SHA256_H_
