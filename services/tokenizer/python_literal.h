// Decodes one Python string or bytes literal, as written in RWKV vocabulary files, to bytes.
//
// Supported, with Python 3 semantics:
//   * prefixes: none or u (str), b (bytes), r (raw), br / rb; any case.
//   * quotes: '...' or "..." (triple-quoted literals are not supported).
//   * escapes: \\ \' \" \a \b \f \n \r \t \v, octal \o \oo \ooo, \xHH, and in str only
//     \uHHHH and \UHHHHHHHH. An unrecognised escape keeps its backslash, as Python does (so
//     in a bytes literal \u1234 is six bytes).
// str semantics: the literal is text; every escape denotes a code point, which is UTF-8
// encoded. Thus '\x80' is the two bytes C2 80, and '\u2002' is E2 80 82. Surrogates
// (U+D800..U+DFFF) cannot be encoded and are rejected, as is \N{...}.
// bytes semantics: \xHH and octal escapes denote raw bytes (octal above \377 is rejected);
// only ASCII characters may appear unescaped.
// Errors are INVALID_ARGUMENT with a message that says what is wrong (no location: the
// caller adds the line). Thread-safe (pure function).
#ifndef SKEIN_SERVICES_TOKENIZER_PYTHON_LITERAL_H_
#define SKEIN_SERVICES_TOKENIZER_PYTHON_LITERAL_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace skein::tokenizer {

// Returns the bytes `literal` denotes: a str literal's text UTF-8 encoded, or a bytes
// literal's bytes. Spaces around the literal are ignored; anything else after the closing
// quote is an error. The source text must be valid UTF-8.
absl::StatusOr<std::string> DecodePythonLiteral(absl::string_view literal);

// Appends the UTF-8 encoding of `code_point` (which must be <= 0x10FFFF and not a surrogate).
void AppendUtf8(char32_t code_point, std::string* out);

}  // namespace skein::tokenizer

#endif  // SKEIN_SERVICES_TOKENIZER_PYTHON_LITERAL_H_
