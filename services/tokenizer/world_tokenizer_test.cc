#include "services/tokenizer/world_tokenizer.h"

#include <algorithm>
#include <random>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "services/tokenizer/test_vocab.h"
#include "tests/support/test_data.h"

namespace skein::tokenizer {
namespace {

using testing::BytesVocabLine;
using testing::SingleByteVocabLines;

// Greedy longest match done the slow, obvious way: at each position try every length from
// the longest token down.
using TokenMap = std::unordered_map<std::string, uint32_t>;

TokenMap TokensByBytes(const WorldTokenizer& t) {
  TokenMap by_bytes;
  for (uint32_t id = t.vocab_size(); id-- > 0;) {  // descending, so smaller ids win ties
    if (t.HasBytes(id)) by_bytes[std::string(t.TokenBytes(id))] = id;
  }
  return by_bytes;
}

std::vector<uint32_t> ReferenceEncode(const WorldTokenizer& t, const TokenMap& by_bytes,
                                      const std::string& text) {
  std::vector<uint32_t> ids;
  size_t pos = 0;
  while (pos < text.size()) {
    for (size_t len = std::min(t.max_token_bytes(), text.size() - pos); len > 0; --len) {
      auto it = by_bytes.find(text.substr(pos, len));
      if (it != by_bytes.end()) {
        ids.push_back(it->second);
        pos += len;
        break;
      }
    }
  }
  return ids;
}

WorldTokenizer MakeTokenizer(const std::string& extra_lines,
                             const WorldTokenizerOptions& options = {}) {
  absl::StatusOr<WorldTokenizer> t =
      WorldTokenizer::FromText(SingleByteVocabLines() + extra_lines, options);
  EXPECT_TRUE(t.ok()) << t.status();
  return *std::move(t);
}

// Inputs of several kinds: uniform bytes (NULs, invalid UTF-8), runs of a few bytes, valid
// UTF-8 text, and concatenated vocabulary tokens (which stress long matches).
std::string RandomInput(std::mt19937& rng, const WorldTokenizer& t, int kind, size_t length) {
  std::string s;
  while (s.size() < length) {
    switch (kind) {
      case 0:
        s.push_back(static_cast<char>(rng()));
        break;
      case 1:
        s.append(1 + rng() % 40, " \n\0a\xF0\xFF"[rng() % 6]);
        break;
      case 2: {
        static const char* kPieces[] = {"the ",    "你好",   "😀",           "é",  "\n\n", "  ",
                                        "Привет ", "مرحبا ", "def f(x):\n", "ー", "🏽", "12345"};
        s += kPieces[rng() % (sizeof(kPieces) / sizeof(kPieces[0]))];
        break;
      }
      default: {
        const uint32_t id = 1 + rng() % t.max_token_id();
        absl::StrAppend(&s, t.TokenBytes(id));
        break;
      }
    }
  }
  return s;
}

TEST(WorldTokenizerTest, SmallVocabularyLongestMatch) {
  const WorldTokenizer t = MakeTokenizer("300 'ab' 2\n301 'abc' 3\n302 'bcd' 3\n");
  EXPECT_EQ(t.Encode("abcd"), (std::vector<uint32_t>{301, 'd' + 1}));
  EXPECT_EQ(t.Encode("abd"), (std::vector<uint32_t>{300, 'd' + 1}));
  EXPECT_EQ(t.Encode("xbcd"), (std::vector<uint32_t>{'x' + 1, 302}));
  EXPECT_EQ(t.vocab_size(), 320u);  // largest id 302, rounded up to a multiple of 64
  EXPECT_EQ(t.token_count(), 259u);
  EXPECT_EQ(t.max_token_bytes(), 3u);
}

TEST(WorldTokenizerTest, IdsMayHaveGaps) {
  const WorldTokenizer t = MakeTokenizer("1000 'hello' 5\n");
  EXPECT_EQ(t.Encode("hello!"), (std::vector<uint32_t>{1000, '!' + 1}));
  EXPECT_EQ(t.vocab_size(), 1024u);
  EXPECT_EQ(t.max_token_id(), 1000u);
  EXPECT_FALSE(t.HasBytes(500));
  EXPECT_EQ(t.Decode({500}).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(*t.Decode({500}, DecodeMode::kLenient), "");
}

TEST(WorldTokenizerTest, ExplicitVocabSize) {
  WorldTokenizerOptions options;
  options.vocab_size = 300;
  const WorldTokenizer t = MakeTokenizer("", options);
  EXPECT_EQ(t.vocab_size(), 300u);
  options.vocab_size = 256;
  absl::StatusOr<WorldTokenizer> too_small =
      WorldTokenizer::FromText(SingleByteVocabLines(), options);
  EXPECT_EQ(too_small.status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(WorldTokenizerTest, IdenticalTokensEncodeToTheSmallerId) {
  const WorldTokenizer t = MakeTokenizer("400 'xy' 2\n300 'xy' 2\n");
  EXPECT_EQ(t.Encode("xy"), (std::vector<uint32_t>{300}));
  EXPECT_EQ(*t.Decode({400}), "xy");
}

TEST(WorldTokenizerTest, RejectsVocabulariesThatCannotEncodeEveryByte) {
  std::string lines = SingleByteVocabLines();
  lines.erase(lines.find("\n201 ") + 1);  // keep ids 1..200 (bytes 0x00..0xC7)
  absl::StatusOr<WorldTokenizer> t = WorldTokenizer::FromText(lines + "300 'ab' 2\n");
  ASSERT_EQ(t.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(t.status().message().find("0xC8"), std::string::npos) << t.status();
}

TEST(WorldTokenizerTest, FromEntriesValidates) {
  std::vector<VocabEntry> entries;
  for (int b = 0; b < 256; ++b)
    entries.push_back({static_cast<uint32_t>(b + 1), std::string(1, b)});
  EXPECT_TRUE(WorldTokenizer::FromEntries(entries).ok());

  std::vector<VocabEntry> duplicate = entries;
  duplicate.push_back({5, "zz", 12});
  absl::StatusOr<WorldTokenizer> t = WorldTokenizer::FromEntries(duplicate);
  EXPECT_EQ(t.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(t.status().message().find("id 5 appears twice"), std::string::npos) << t.status();

  std::vector<VocabEntry> zero = entries;
  zero.push_back({0, "zz"});
  EXPECT_EQ(WorldTokenizer::FromEntries(zero).status().code(), absl::StatusCode::kInvalidArgument);

  std::vector<VocabEntry> empty = entries;
  empty.push_back({999, ""});
  EXPECT_EQ(WorldTokenizer::FromEntries(empty).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(WorldTokenizerTest, DecodeModes) {
  const WorldTokenizer t = MakeTokenizer("");  // ids 1..256, vocab_size 320
  EXPECT_EQ(*t.Decode({'h' + 1, 'i' + 1}), "hi");

  absl::Status eot = t.Decode({'h' + 1, 0}).status();
  EXPECT_EQ(eot.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(eot.message(), "token id 0 at position 1 is end-of-text, which has no bytes");
  EXPECT_EQ(*t.Decode({'h' + 1, 0, 'i' + 1}, DecodeMode::kLenient), "hi");

  absl::Status padding = t.Decode({300}).status();
  EXPECT_EQ(padding.message(), "token id 300 at position 0 has no bytes");
  EXPECT_EQ(*t.Decode({300}, DecodeMode::kLenient), "");

  for (DecodeMode mode : {DecodeMode::kStrict, DecodeMode::kLenient}) {
    absl::Status outside = t.Decode({'a' + 1, 320}, mode).status();
    EXPECT_EQ(outside.code(), absl::StatusCode::kInvalidArgument);
    EXPECT_EQ(outside.message(), "token id 320 at position 1 is outside the vocabulary (size 320)");
  }

  std::string out = "kept";
  EXPECT_FALSE(t.DecodeAppend({'a' + 1, 4000000000u}, DecodeMode::kLenient, &out).ok());
  EXPECT_EQ(out, "kept");
  EXPECT_TRUE(t.DecodeAppend({'a' + 1}, DecodeMode::kStrict, &out).ok());
  EXPECT_EQ(out, "kepta");
}

TEST(WorldTokenizerTest, LongTokensDecodeExactly) {
  const WorldTokenizer t = MakeTokenizer(BytesVocabLine(300, std::string(40, 'q')) +
                                         BytesVocabLine(301, std::string(17, 'r')) +
                                         BytesVocabLine(302, std::string(16, 's')));
  const std::string text = std::string(40, 'q') + "x" + std::string(17, 'r') +
                           std::string(16, 's') + std::string(40, 'q');
  const std::vector<uint32_t> ids = t.Encode(text);
  EXPECT_EQ(ids, (std::vector<uint32_t>{300, 'x' + 1, 301, 302, 300}));
  EXPECT_EQ(*t.Decode(ids), text);
}

// decode(encode(x)) == x, and encode agrees with the slow reference, on many random inputs.
void CheckRoundTripAndReference(const WorldTokenizer& t, uint32_t seeds) {
  const TokenMap by_bytes = TokensByBytes(t);
  for (uint32_t seed = 0; seed < seeds; ++seed) {
    std::mt19937 rng(seed);
    const int kind = seed % 4;
    const size_t length = seed % 7 == 0 ? 0 : rng() % (seed % 3 == 0 ? 3000 : 200);
    const std::string input = RandomInput(rng, t, kind, length);
    const std::vector<uint32_t> ids = t.Encode(input);
    absl::StatusOr<std::string> decoded = t.Decode(ids);
    ASSERT_TRUE(decoded.ok()) << decoded.status();
    ASSERT_EQ(*decoded, input) << "seed " << seed;
    ASSERT_EQ(t.CountTokens(input), ids.size());
    ASSERT_EQ(std::count(ids.begin(), ids.end(), 0u), 0);
    if (seed % 4 == 0 || length < 300) {
      ASSERT_EQ(ids, ReferenceEncode(t, by_bytes, input)) << "seed " << seed;
    }
  }
}

TEST(WorldTokenizerTest, RoundTripAndReferenceOnSyntheticVocabulary) {
  std::string lines;
  std::mt19937 rng(7);
  for (uint32_t id = 300; id < 2300; ++id) {
    std::string token(2 + rng() % 6, '\0');
    for (char& c : token) c = " \n\0a\xF0\xFF"[rng() % 6];
    lines += BytesVocabLine(id, token);
  }
  CheckRoundTripAndReference(MakeTokenizer(lines), 120);
}

TEST(WorldTokenizerTest, RoundTripAndReferenceOnWorldVocabulary) {
  SKEIN_REQUIRE_TEST_DATA(vocab, testing::kWorldVocabPath);
  CheckRoundTripAndReference(testing::SharedWorldTokenizer(vocab), 60);
}

TEST(WorldTokenizerTest, ConcurrentUseGivesTheSameResults) {
  SKEIN_REQUIRE_TEST_DATA(vocab, testing::kWorldVocabPath);
  const WorldTokenizer& t = testing::SharedWorldTokenizer(vocab);
  std::mt19937 rng(1);
  const std::string input = RandomInput(rng, t, 2, 20000);
  const std::vector<uint32_t> want = t.Encode(input);
  std::vector<std::thread> threads;
  std::vector<int> ok(4, 0);
  for (int i = 0; i < 4; ++i) {
    threads.emplace_back([&, i] {
      bool same = true;
      for (int round = 0; round < 5; ++round) {
        same = same && t.Encode(input) == want && *t.Decode(want) == input;
      }
      ok[i] = same;
    });
  }
  for (std::thread& th : threads) th.join();
  EXPECT_EQ(ok, std::vector<int>(4, 1));
}

}  // namespace
}  // namespace skein::tokenizer
