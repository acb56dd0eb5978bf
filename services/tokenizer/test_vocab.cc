#include "services/tokenizer/test_vocab.h"

#include <cstdio>
#include <cstdlib>
#include <map>
#include <memory>

#include "absl/base/thread_annotations.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/synchronization/mutex.h"
#include "nlohmann/json.hpp"
#include "tests/support/test_data.h"

namespace skein::tokenizer::testing {
namespace {

absl::Mutex& CacheMutex() {
  static auto* mu = new absl::Mutex();
  return *mu;
}

// Loaded tokenizers by path. Entries are never removed, so a reference to one stays valid.
std::map<std::string, std::unique_ptr<WorldTokenizer>>& Cache()
    ABSL_EXCLUSIVE_LOCKS_REQUIRED(CacheMutex()) {
  static auto* cache = new std::map<std::string, std::unique_ptr<WorldTokenizer>>();
  return *cache;
}

}  // namespace

const WorldTokenizer& SharedWorldTokenizer(const std::string& path) {
  absl::MutexLock lock(&CacheMutex());
  auto& slot = Cache()[path];
  if (!slot) {
    absl::StatusOr<WorldTokenizer> t = WorldTokenizer::LoadFile(path);
    if (!t.ok()) {
      std::fprintf(stderr, "cannot load %s: %s\n", path.c_str(), t.status().ToString().c_str());
      std::abort();
    }
    slot = std::make_unique<WorldTokenizer>(*std::move(t));
  }
  return *slot;
}

std::string HexToBytes(absl::string_view hex) {
  auto nibble = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    std::fprintf(stderr, "bad hex digit '%c'\n", c);
    std::abort();
  };
  if (hex.size() % 2 != 0) std::abort();
  std::string out;
  for (size_t i = 0; i < hex.size(); i += 2) {
    out.push_back(static_cast<char>(nibble(hex[i]) * 16 + nibble(hex[i + 1])));
  }
  return out;
}

std::vector<GoldenCase> ReadGoldenCases(const std::string& path) {
  const nlohmann::json doc = nlohmann::json::parse(skein::testing::ReadFileOrDie(path));
  std::vector<GoldenCase> cases;
  for (const auto& c : doc.at("cases")) {
    GoldenCase g;
    g.name = c.at("name").get<std::string>();
    g.bytes = HexToBytes(c.at("bytes_hex").get<std::string>());
    g.ids = c.at("ids").get<std::vector<uint32_t>>();
    cases.push_back(std::move(g));
  }
  return cases;
}

std::string BytesVocabLine(uint32_t id, absl::string_view bytes) {
  std::string line = absl::StrCat(id, " b'");
  for (unsigned char c : bytes) absl::StrAppendFormat(&line, "\\x%02x", c);
  absl::StrAppend(&line, "' ", bytes.size(), "\n");
  return line;
}

std::string SingleByteVocabLines() {
  std::string lines;
  for (int b = 0; b < 256; ++b) {
    const char c = static_cast<char>(b);
    lines += BytesVocabLine(b + 1, absl::string_view(&c, 1));
  }
  return lines;
}

}  // namespace skein::tokenizer::testing
