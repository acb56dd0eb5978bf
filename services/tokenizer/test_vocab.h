// Test helpers: the official World vocabulary and golden cases, and small synthetic
// vocabularies written in the vocabulary file format.
#ifndef SKEIN_SERVICES_TOKENIZER_TEST_VOCAB_H_
#define SKEIN_SERVICES_TOKENIZER_TEST_VOCAB_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "services/tokenizer/world_tokenizer.h"

namespace skein::tokenizer::testing {

inline constexpr char kWorldVocabPath[] = "data/rwkv_vocab_v20230424.txt";
inline constexpr char kWorldGoldenPath[] = "golden/tokenizer/world-v20230424.golden.json";

// The official tokenizer loaded from `path`, cached for the life of the test binary (the same
// path must be passed each time). Aborts the test binary if loading fails.
const WorldTokenizer& SharedWorldTokenizer(const std::string& path);

struct GoldenCase {
  std::string name;
  std::string bytes;
  std::vector<uint32_t> ids;
};

// Reads the golden JSON file (texts as hex of their bytes, and ids). Aborts on a bad file.
std::vector<GoldenCase> ReadGoldenCases(const std::string& path);

// Decodes lowercase or uppercase hex; aborts on bad input.
std::string HexToBytes(absl::string_view hex);

// Vocabulary file lines for the 256 single-byte tokens, id = byte + 1, each written as a
// bytes literal b'\xHH'.
std::string SingleByteVocabLines();

// A vocabulary file line `<id> b'\xHH...' <length>` for arbitrary bytes.
std::string BytesVocabLine(uint32_t id, absl::string_view bytes);

}  // namespace skein::tokenizer::testing

#endif  // SKEIN_SERVICES_TOKENIZER_TEST_VOCAB_H_
