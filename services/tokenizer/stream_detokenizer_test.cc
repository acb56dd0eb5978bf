#include "services/tokenizer/stream_detokenizer.h"

#include <random>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "gtest/gtest.h"
#include "services/tokenizer/test_vocab.h"
#include "services/tokenizer/utf8.h"
#include "tests/support/test_data.h"

namespace skein::tokenizer {
namespace {

const std::string kFffd(kReplacementCharacter);

// Byte b is id b + 1; ids 300.. are the extra tokens below.
constexpr uint32_t kEmojiHead = 300;  // F0 9F: the first half of U+1F600
constexpr uint32_t kEmojiTail = 301;  // 98 80: the second half
constexpr uint32_t kHello = 302;      // "hello "

const WorldTokenizer& Tokenizer() {
  static const WorldTokenizer* t = [] {
    absl::StatusOr<WorldTokenizer> built = WorldTokenizer::FromText(
        testing::SingleByteVocabLines() + testing::BytesVocabLine(kEmojiHead, "\xF0\x9F") +
        testing::BytesVocabLine(kEmojiTail, "\x98\x80") +
        testing::BytesVocabLine(kHello, "hello "));
    EXPECT_TRUE(built.ok()) << built.status();
    return new WorldTokenizer(*std::move(built));
  }();
  return *t;
}

uint32_t Byte(unsigned char b) { return b + 1u; }

TEST(StreamDetokenizerTest, EmojiSplitAcrossTokens) {
  StreamDetokenizer stream(&Tokenizer());
  EXPECT_EQ(*stream.Push(kHello), "hello ");
  EXPECT_EQ(*stream.Push(kEmojiHead), "");
  EXPECT_EQ(stream.pending_bytes(), 2u);
  EXPECT_EQ(*stream.Push(kEmojiTail), "\xF0\x9F\x98\x80");
  EXPECT_EQ(stream.pending_bytes(), 0u);
  EXPECT_EQ(stream.Finish(), "");
}

TEST(StreamDetokenizerTest, EmojiOneByteAtATime) {
  StreamDetokenizer stream(&Tokenizer());
  EXPECT_EQ(*stream.Push(Byte(0xF0)), "");
  EXPECT_EQ(*stream.Push(Byte(0x9F)), "");
  EXPECT_EQ(*stream.Push(Byte(0x98)), "");
  EXPECT_EQ(*stream.Push(Byte(0x80)), "\xF0\x9F\x98\x80");
}

TEST(StreamDetokenizerTest, HopelessBytesAreReplacedAtOnce) {
  StreamDetokenizer stream(&Tokenizer());
  EXPECT_EQ(*stream.Push(Byte(0xFF)), kFffd);
  EXPECT_EQ(*stream.Push(Byte(0xE2)), "");          // could still become a character
  EXPECT_EQ(*stream.Push(Byte('(')), kFffd + "(");  // now it cannot
  EXPECT_EQ(*stream.Push(Byte(0xED)), "");
  EXPECT_EQ(*stream.Push(Byte(0xA0)), kFffd + kFffd);  // ED A0 is a surrogate: never valid
  EXPECT_EQ(stream.pending_bytes(), 0u);
}

TEST(StreamDetokenizerTest, FinishFlushesAnUnfinishedCharacterAsOneReplacement) {
  StreamDetokenizer stream(&Tokenizer());
  std::string text;
  ASSERT_TRUE(stream.Push({kHello, kEmojiHead}, &text).ok());
  EXPECT_EQ(text, "hello ");
  EXPECT_EQ(stream.Finish(), kFffd);
  // Finish resets: the stream starts afresh.
  EXPECT_EQ(stream.pending_bytes(), 0u);
  EXPECT_EQ(*stream.Push(kEmojiTail), kFffd + kFffd);  // 98 and 80 are lone continuations
  EXPECT_EQ(stream.Finish(), "");
}

TEST(StreamDetokenizerTest, BadIdLeavesTheStreamAsItWas) {
  StreamDetokenizer stream(&Tokenizer());
  ASSERT_EQ(*stream.Push(kEmojiHead), "");
  std::string text = "before";
  absl::Status s = stream.Push({kHello, 0}, &text);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("token id 0"), std::string::npos);
  EXPECT_EQ(text, "before");
  EXPECT_EQ(stream.pending_bytes(), 2u);
  EXPECT_EQ(stream.Push(100000).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(*stream.Push(kEmojiTail), "\xF0\x9F\x98\x80");
}

TEST(StreamDetokenizerTest, LenientModeSkipsIdsWithoutBytes) {
  StreamDetokenizer stream(&Tokenizer(), DecodeMode::kLenient);
  EXPECT_EQ(*stream.Push(kEmojiHead), "");
  EXPECT_EQ(*stream.Push(0), "");
  EXPECT_EQ(*stream.Push(310), "");  // a padding row
  EXPECT_EQ(*stream.Push(kEmojiTail), "\xF0\x9F\x98\x80");
  EXPECT_FALSE(stream.Push(100000).ok());
}

// However the ids are split into calls, the output is the repaired whole.
void CheckSplitsMatchWhole(const WorldTokenizer& t, uint32_t seeds) {
  for (uint32_t seed = 0; seed < seeds; ++seed) {
    std::mt19937 rng(seed);
    std::vector<uint32_t> ids(rng() % 200);
    for (uint32_t& id : ids) {
      // Mostly single bytes (to split characters often), some longer tokens.
      id = rng() % 3 == 0 ? 1 + rng() % t.max_token_id() : Byte(0x7F + rng() % 0x81);
      if (!t.HasBytes(id)) id = Byte('z');
    }
    StreamDetokenizer stream(&t);
    std::string streamed;
    size_t pos = 0;
    while (pos < ids.size()) {
      const size_t n = std::min<size_t>(rng() % 4, ids.size() - pos);
      ASSERT_TRUE(stream.Push(absl::MakeConstSpan(ids).subspan(pos, n), &streamed).ok());
      ASSERT_LE(stream.pending_bytes(), 3u);
      pos += n;
    }
    streamed += stream.Finish();
    ASSERT_EQ(streamed, RepairUtf8(*t.Decode(ids))) << "seed " << seed;
  }
}

TEST(StreamDetokenizerTest, SplitsMatchWholeOnSyntheticVocabulary) {
  CheckSplitsMatchWhole(Tokenizer(), 200);
}

TEST(StreamDetokenizerTest, SplitsMatchWholeOnWorldVocabulary) {
  SKEIN_REQUIRE_TEST_DATA(vocab, testing::kWorldVocabPath);
  CheckSplitsMatchWhole(testing::SharedWorldTokenizer(vocab), 200);
}

// Spec §8.3: the official tokenizer splits U+1F600 into b'\xf0\x9f', b'\x98', b'\x80'.
TEST(StreamDetokenizerTest, WorldEmojiTokens) {
  SKEIN_REQUIRE_TEST_DATA(vocab, testing::kWorldVocabPath);
  StreamDetokenizer stream(&testing::SharedWorldTokenizer(vocab));
  EXPECT_EQ(*stream.Push(3319), "");
  EXPECT_EQ(*stream.Push(153), "");
  EXPECT_EQ(*stream.Push(129), "😀");
}

}  // namespace
}  // namespace skein::tokenizer
