#include "services/state_store/key.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "base/absl_bridge.h"

namespace skein::state_store {
namespace {

// Shows a key in an error message without echoing control bytes back to a terminal.
std::string Printable(std::string_view text) {
  std::string out;
  for (unsigned char c : text.substr(0, 64)) {
    if (c >= 0x20 && c < 0x7F) {
      out.push_back(static_cast<char>(c));
    } else {
      absl::StrAppend(&out, "\\x", absl::Hex(c, absl::kZeroPad2));
    }
  }
  if (text.size() > 64) out += "...";
  return out;
}

absl::Status CheckCharacters(std::string_view text, std::string_view what) {
  if (text.size() > kMaxKeyBytes) {
    return absl::InvalidArgumentError(absl::StrCat(base::AsAbsl(what), " is ", text.size(),
                                                   " bytes; the limit is ", kMaxKeyBytes));
  }
  for (size_t i = 0; i < text.size(); ++i) {
    auto c = static_cast<unsigned char>(text[i]);
    if (c < 0x20 || c >= 0x7F) {
      return absl::InvalidArgumentError(
          absl::StrCat(base::AsAbsl(what), " \"", Printable(text), "\" has a non-printable byte 0x",
                       absl::Hex(c, absl::kZeroPad2), " at offset ", i));
    }
    if (c == '\\') {
      return absl::InvalidArgumentError(absl::StrCat(base::AsAbsl(what), " \"", Printable(text),
                                                     "\" has a backslash at offset ", i));
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status ValidateKey(std::string_view key) {
  if (key.empty()) return absl::InvalidArgumentError("key is empty");
  if (absl::Status s = CheckCharacters(key, "key"); !s.ok()) return s;
  if (key.front() == '/' || key.back() == '/') {
    return absl::InvalidArgumentError(
        absl::StrCat("key \"", Printable(key), "\" starts or ends with '/'"));
  }
  for (absl::string_view segment : absl::StrSplit(base::AsAbsl(key), '/')) {
    if (segment.empty() || segment == "." || segment == "..") {
      return absl::InvalidArgumentError(
          absl::StrCat("key \"", Printable(key), "\" has an empty, \".\" or \"..\" path segment"));
    }
  }
  return absl::OkStatus();
}

absl::Status ValidateKeyPrefix(std::string_view prefix) {
  return CheckCharacters(prefix, "prefix");
}

}  // namespace skein::state_store
