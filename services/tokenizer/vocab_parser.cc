#include "services/tokenizer/vocab_parser.h"

#include <algorithm>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "services/tokenizer/python_literal.h"

namespace skein::tokenizer {
namespace {

// Numbers in a vocabulary line are accepted up to here (so that v * 10 cannot overflow) and
// then range-checked with a clear message.
constexpr uint64_t kMaxDecimal = 1'000'000'000'000'000'000ULL;

// Parses a non-empty run of decimal digits no larger than `max`.
bool ParseDecimal(absl::string_view text, uint64_t max, uint64_t* value) {
  if (text.empty()) return false;
  uint64_t v = 0;
  for (char c : text) {
    if (c < '0' || c > '9') return false;
    v = v * 10 + (c - '0');
    if (v > max) return false;
  }
  *value = v;
  return true;
}

absl::Status LineError(int line, absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat("vocab line ", line, ": ", what));
}

// Shows a field in an error message without flooding it.
std::string Excerpt(absl::string_view text) {
  constexpr size_t kMax = 40;
  if (text.size() <= kMax) return std::string(text.data(), text.size());
  return absl::StrCat(text.substr(0, kMax), "...");
}

absl::StatusOr<VocabEntry> ParseLine(absl::string_view line, int line_number) {
  const size_t first_space = line.find(' ');
  const size_t last_space = line.rfind(' ');
  if (line.empty()) return LineError(line_number, "empty line");
  if (first_space == absl::string_view::npos || first_space == last_space) {
    return LineError(line_number, absl::StrCat("expected '<id> <literal> <length>', got \"",
                                               Excerpt(line), "\""));
  }
  const absl::string_view id_text = line.substr(0, first_space);
  const absl::string_view literal = line.substr(first_space + 1, last_space - first_space - 1);
  const absl::string_view length_text = line.substr(last_space + 1);

  uint64_t id = 0;
  if (!ParseDecimal(id_text, kMaxDecimal, &id)) {
    return LineError(line_number,
                     absl::StrCat("id \"", Excerpt(id_text), "\" is not a decimal integer"));
  }
  if (id == kEndOfTextId) {
    return LineError(line_number, "id 0 is reserved for end-of-text and cannot have bytes");
  }
  if (id > kMaxTokenId) {
    return LineError(line_number, absl::StrCat("id ", id, " is above the maximum ", kMaxTokenId));
  }
  uint64_t declared = 0;
  if (!ParseDecimal(length_text, kMaxDecimal, &declared)) {
    return LineError(line_number, absl::StrCat("length \"", Excerpt(length_text),
                                               "\" is not a decimal integer"));
  }
  absl::StatusOr<std::string> bytes = DecodePythonLiteral(literal);
  if (!bytes.ok()) {
    return LineError(line_number, absl::StrCat("token ", id, ": ", bytes.status().message()));
  }
  if (bytes->size() != declared) {
    return LineError(line_number, absl::StrCat("token ", id, " is ", bytes->size(),
                                               " bytes but the line declares ", declared));
  }
  if (bytes->empty()) return LineError(line_number, absl::StrCat("token ", id, " is empty"));
  return VocabEntry{static_cast<uint32_t>(id), *std::move(bytes), line_number};
}

}  // namespace

absl::StatusOr<std::vector<VocabEntry>> ParseVocabulary(absl::string_view text) {
  std::vector<VocabEntry> entries;
  entries.reserve(std::count(text.begin(), text.end(), '\n') + 1);
  // line_of_id[id] = the line that defined id, grown on demand.
  std::vector<int> line_of_id;
  int line_number = 0;
  size_t pos = 0;
  while (pos < text.size()) {
    ++line_number;
    size_t end = text.find('\n', pos);
    if (end == absl::string_view::npos) end = text.size();
    absl::string_view line = text.substr(pos, end - pos);
    pos = end + 1;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);

    absl::StatusOr<VocabEntry> entry = ParseLine(line, line_number);
    if (!entry.ok()) return entry.status();
    if (entry->id >= line_of_id.size()) {
      line_of_id.resize(
          std::min<size_t>(kMaxTokenId + 1, std::max<size_t>(entry->id + 1, line_of_id.size() * 2)),
          0);
    }
    if (line_of_id[entry->id] != 0) {
      return LineError(line_number, absl::StrCat("id ", entry->id, " is already defined on line ",
                                                 line_of_id[entry->id]));
    }
    line_of_id[entry->id] = line_number;
    entries.push_back(*std::move(entry));
  }
  return entries;
}

}  // namespace skein::tokenizer
