#include "services/tokenizer/python_literal.h"

#include <cstdint>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "services/tokenizer/utf8.h"

namespace skein::tokenizer {
namespace {

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

bool IsOctal(char c) { return c >= '0' && c <= '7'; }

struct Prefix {
  bool bytes = false;
  bool raw = false;
};

// Reads the letters before the opening quote.
absl::StatusOr<Prefix> ParsePrefix(absl::string_view letters) {
  Prefix prefix;
  for (char c : letters) {
    const char lower = absl::ascii_tolower(c);
    bool* flag = nullptr;
    if (lower == 'b') flag = &prefix.bytes;
    if (lower == 'r') flag = &prefix.raw;
    if (lower == 'u' && letters.size() == 1) continue;
    if (flag == nullptr || *flag) {
      return absl::InvalidArgumentError(absl::StrCat("unsupported string prefix '", letters, "'"));
    }
    *flag = true;
  }
  return prefix;
}

// Decodes the escape whose letter is at body[*pos] (just after the backslash), appending
// its value to `out` and advancing *pos past it.
absl::Status DecodeEscape(absl::string_view body, bool bytes_literal, size_t* pos,
                          std::string* out) {
  const char c = body[*pos];
  ++*pos;
  switch (c) {
    case '\\':
      out->push_back('\\');
      return absl::OkStatus();
    case '\'':
      out->push_back('\'');
      return absl::OkStatus();
    case '"':
      out->push_back('"');
      return absl::OkStatus();
    case 'a':
      out->push_back('\a');
      return absl::OkStatus();
    case 'b':
      out->push_back('\b');
      return absl::OkStatus();
    case 'f':
      out->push_back('\f');
      return absl::OkStatus();
    case 'n':
      out->push_back('\n');
      return absl::OkStatus();
    case 'r':
      out->push_back('\r');
      return absl::OkStatus();
    case 't':
      out->push_back('\t');
      return absl::OkStatus();
    case 'v':
      out->push_back('\v');
      return absl::OkStatus();
    default:
      break;
  }
  if (IsOctal(c)) {
    uint32_t value = c - '0';
    for (int i = 0; i < 2 && *pos < body.size() && IsOctal(body[*pos]); ++i, ++*pos) {
      value = value * 8 + (body[*pos] - '0');
    }
    if (!bytes_literal) {
      AppendUtf8(value, out);
    } else if (value > 0xFF) {
      return absl::InvalidArgumentError(
          absl::StrFormat("octal escape \\%o is out of range for a byte", value));
    } else {
      out->push_back(static_cast<char>(value));
    }
    return absl::OkStatus();
  }
  int digits = 0;
  if (c == 'x') digits = 2;
  if (!bytes_literal && c == 'u') digits = 4;
  if (!bytes_literal && c == 'U') digits = 8;
  if (!bytes_literal && c == 'N') {
    return absl::InvalidArgumentError("\\N{...} escapes are not supported");
  }
  if (digits == 0) {
    // Python keeps an unrecognised escape as written.
    out->push_back('\\');
    out->push_back(c);
    return absl::OkStatus();
  }
  uint32_t value = 0;
  for (int i = 0; i < digits; ++i, ++*pos) {
    const int h = *pos < body.size() ? HexValue(body[*pos]) : -1;
    if (h < 0) {
      return absl::InvalidArgumentError(absl::StrCat("truncated \\", std::string(1, c),
                                                     " escape: expected ", digits, " hex digits"));
    }
    value = value * 16 + h;
  }
  if (bytes_literal) {
    out->push_back(static_cast<char>(value));
    return absl::OkStatus();
  }
  if (value > 0x10FFFF) {
    return absl::InvalidArgumentError(
        absl::StrFormat("escape \\%c%0*X is beyond U+10FFFF", c, digits, value));
  }
  if (value >= 0xD800 && value <= 0xDFFF) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "escape \\%c%0*X is a surrogate, which has no UTF-8 encoding", c, digits, value));
  }
  AppendUtf8(value, out);
  return absl::OkStatus();
}

}  // namespace

void AppendUtf8(char32_t cp, std::string* out) {
  if (cp < 0x80) {
    out->push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out->push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out->push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out->push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

absl::StatusOr<std::string> DecodePythonLiteral(absl::string_view literal) {
  while (!literal.empty() && literal.front() == ' ') literal.remove_prefix(1);
  while (!literal.empty() && literal.back() == ' ') literal.remove_suffix(1);
  if (!IsValidUtf8(literal)) {
    return absl::InvalidArgumentError("literal is not valid UTF-8 text");
  }
  const size_t quote_pos = literal.find_first_of("'\"");
  if (quote_pos == absl::string_view::npos) {
    return absl::InvalidArgumentError(
        absl::StrCat("expected a quoted string or bytes literal, got \"", literal, "\""));
  }
  absl::StatusOr<Prefix> prefix = ParsePrefix(literal.substr(0, quote_pos));
  if (!prefix.ok()) return prefix.status();
  const char quote = literal[quote_pos];
  const absl::string_view body = literal.substr(quote_pos + 1);
  if (body.size() >= 2 && body[0] == quote && body[1] == quote) {
    return absl::InvalidArgumentError("triple-quoted literals are not supported");
  }

  std::string out;
  size_t pos = 0;
  while (true) {
    if (pos == body.size()) {
      return absl::InvalidArgumentError(
          absl::StrCat("missing closing quote ", std::string(1, quote)));
    }
    const char c = body[pos];
    if (c == quote) break;
    if (prefix->bytes && static_cast<unsigned char>(c) >= 0x80) {
      return absl::InvalidArgumentError(
          "bytes literal contains a non-ASCII character (write it as \\xHH)");
    }
    if (c != '\\') {
      out.push_back(c);
      ++pos;
      continue;
    }
    if (pos + 1 == body.size()) {
      return absl::InvalidArgumentError("literal ends in a lone backslash");
    }
    if (prefix->raw) {
      // In a raw literal a backslash only stops the next character from closing it.
      out.append(body.data() + pos, 2);
      pos += 2;
      continue;
    }
    ++pos;
    if (absl::Status s = DecodeEscape(body, prefix->bytes, &pos, &out); !s.ok()) return s;
  }
  if (pos + 1 != body.size()) {
    return absl::InvalidArgumentError(
        absl::StrCat("unexpected text after the closing quote: \"", body.substr(pos + 1), "\""));
  }
  return out;
}

}  // namespace skein::tokenizer
