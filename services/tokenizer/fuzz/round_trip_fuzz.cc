// libFuzzer target: arbitrary bytes through the World tokenizer. Asserts (aborts on failure):
//   decode(encode(x)) == x; CountTokens(x) == encode(x).size(); no id is 0; and streaming the
//   ids in uneven pieces gives exactly RepairUtf8(x), which is valid UTF-8.
// The vocabulary is the official file when $SKEIN_VOCAB or $SKEIN_SHARED_DIR points at it
// (without the hash check), else a synthetic one built here: all single bytes plus
// multi-byte tokens that share prefixes and end inside UTF-8 characters, as World's do.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "services/tokenizer/stream_detokenizer.h"
#include "services/tokenizer/utf8.h"
#include "services/tokenizer/world_tokenizer.h"

namespace {

using skein::tokenizer::WorldTokenizer;

std::string SyntheticVocabulary() {
  std::vector<std::string> tokens;
  for (int b = 0; b < 256; ++b) tokens.push_back(std::string(1, static_cast<char>(b)));
  const char* pieces[] = {" ",
                          "  ",
                          "\n",
                          "\n\n",
                          " the",
                          "the",
                          "th",
                          "e ",
                          "ab",
                          "abc",
                          "abcd",
                          "\xF0\x9F",
                          "\x98\x80",
                          "\xE4\xBD",
                          "\xE4\xBD\xA0",
                          "\xC3\xA9",
                          "caf\xC3",
                          "\xFF\xFE",
                          "                "};
  for (const char* p : pieces) tokens.push_back(p);
  uint32_t x = 12345;  // a fixed pseudo-random sequence of extra tokens
  for (int i = 0; i < 2000; ++i) {
    std::string t;
    const int length = 2 + i % 9;
    for (int k = 0; k < length; ++k) {
      x = x * 1103515245u + 12345u;
      t.push_back("ab \n\xE4\xBD\xA0\xFF"[(x >> 16) % 8]);
    }
    tokens.push_back(t);
  }
  std::string text;
  for (size_t i = 0; i < tokens.size(); ++i) {
    std::string literal = "b'";
    for (unsigned char c : tokens[i]) absl::StrAppendFormat(&literal, "\\x%02x", c);
    absl::StrAppend(&text, i + 1, " ", literal, "' ", tokens[i].size(), "\n");
  }
  return text;
}

const WorldTokenizer& Tokenizer() {
  static const WorldTokenizer* tokenizer = [] {
    std::string path;
    if (const char* v = std::getenv("SKEIN_VOCAB")) path = v;
    if (const char* d = std::getenv("SKEIN_SHARED_DIR"); path.empty() && d && *d) {
      path = absl::StrCat(d, "/data/rwkv_vocab_v20230424.txt");
    }
    skein::tokenizer::WorldTokenizerOptions options;
    options.file.expected_sha256.clear();
    if (!path.empty()) {
      absl::StatusOr<WorldTokenizer> t = WorldTokenizer::LoadFile(path, options);
      if (t.ok()) {
        std::fprintf(stderr, "round_trip_fuzz: vocabulary %s\n", path.c_str());
        return new WorldTokenizer(*std::move(t));
      }
    }
    absl::StatusOr<WorldTokenizer> t = WorldTokenizer::FromText(SyntheticVocabulary(), options);
    if (!t.ok()) {
      std::fprintf(stderr, "synthetic vocabulary: %s\n", t.status().ToString().c_str());
      std::abort();
    }
    std::fprintf(stderr, "round_trip_fuzz: synthetic vocabulary\n");
    return new WorldTokenizer(*std::move(t));
  }();
  return *tokenizer;
}

void Check(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "round_trip_fuzz: %s\n", what);
    std::abort();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string input(reinterpret_cast<const char*>(data), size);
  const WorldTokenizer& t = Tokenizer();
  const std::vector<uint32_t> ids = t.Encode(input);
  for (uint32_t id : ids) Check(id != 0 && t.HasBytes(id), "encode produced an id without bytes");
  Check(t.CountTokens(input) == ids.size(), "CountTokens differs from Encode");
  absl::StatusOr<std::string> decoded = t.Decode(ids);
  Check(decoded.ok() && *decoded == input, "decode(encode(x)) != x");

  // Stream the ids in pieces of 1 to 4 ids, sized by the input itself.
  skein::tokenizer::StreamDetokenizer stream(&t);
  std::string text;
  size_t pos = 0;
  for (size_t i = 0; pos < ids.size(); ++i) {
    const size_t n = std::min<size_t>(ids.size() - pos, size > 0 ? 1 + data[i % size] % 4 : 1);
    Check(stream.Push(absl::MakeConstSpan(ids).subspan(pos, n), &text).ok(), "stream push failed");
    Check(stream.pending_bytes() <= 3, "stream holds more than a partial character");
    pos += n;
  }
  text += stream.Finish();
  Check(text == skein::tokenizer::RepairUtf8(input), "streamed text != RepairUtf8(input)");
  Check(skein::tokenizer::IsValidUtf8(text), "streamed text is not valid UTF-8");
  return 0;
}
