// UTF-8 validation and repair, shared by the decoder and the streaming detokenizer.
//
// Invalid input is repaired the way the WHATWG Encoding Standard and Unicode (chapter 3,
// "U+FFFD substitution of maximal subparts") recommend: at each position, the longest prefix
// of a well-formed sequence (Unicode Table 3-7) that is present is a "maximal subpart"; when it
// is not a whole character it becomes ONE U+FFFD, and decoding resumes right after it. A byte
// that can start no sequence (80..BF, C0, C1, F5..FF) is one U+FFFD on its own. Examples:
//   E2 82 28      -> U+FFFD '('      (E2 82 is a maximal subpart)
//   F0 9F 98      -> U+FFFD          (truncated 4-byte sequence at the end)
//   ED A0 80      -> U+FFFD x3       (ED A0 is never valid: surrogates are excluded)
//   C0 AF         -> U+FFFD x2       (overlong forms start with bytes that never start a sequence)
// All functions are pure and thread-safe.
#ifndef SKEIN_SERVICES_TOKENIZER_UTF8_H_
#define SKEIN_SERVICES_TOKENIZER_UTF8_H_

#include <cstddef>
#include <string>

#include "absl/strings/string_view.h"

namespace skein::tokenizer {

// U+FFFD REPLACEMENT CHARACTER in UTF-8.
inline constexpr absl::string_view kReplacementCharacter = "\xEF\xBF\xBD";

// What starts at some position of a byte string.
struct Utf8Sequence {
  enum class Kind {
    kValid,      // `length` bytes form one well-formed character.
    kInvalid,    // `length` bytes are a maximal subpart that can never become valid.
    kTruncated,  // all remaining bytes (`length` of them) are a valid but unfinished prefix.
  };
  Kind kind;
  size_t length;  // >= 1
};

// Classifies the sequence at the start of `bytes`, which must not be empty.
Utf8Sequence NextUtf8Sequence(absl::string_view bytes);

// True if `bytes` is well-formed UTF-8 (the empty string is).
bool IsValidUtf8(absl::string_view bytes);

// Appends `bytes` to `*out` with every maximal invalid subpart replaced by U+FFFD. If
// `at_end` is false, a truncated sequence at the very end of `bytes` is not consumed (more
// bytes may complete it); otherwise it becomes one U+FFFD. Returns how many bytes were
// consumed (bytes.size() when `at_end`).
size_t AppendUtf8Repaired(absl::string_view bytes, bool at_end, std::string* out);

// `bytes` as valid UTF-8, with maximal invalid subparts replaced by U+FFFD.
std::string RepairUtf8(absl::string_view bytes);

}  // namespace skein::tokenizer

#endif  // SKEIN_SERVICES_TOKENIZER_UTF8_H_
