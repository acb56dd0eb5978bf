// The tokenizer against the official tokenizer's own output: the golden file and the table of
// spec §8.3.
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "services/tokenizer/test_vocab.h"
#include "services/tokenizer/world_tokenizer.h"
#include "tests/support/test_data.h"

namespace skein::tokenizer {
namespace {

using ::skein::tokenizer::testing::SharedWorldTokenizer;

TEST(WorldTokenizerGoldenTest, EveryGoldenCase) {
  SKEIN_REQUIRE_TEST_DATA(vocab, testing::kWorldVocabPath);
  SKEIN_REQUIRE_TEST_DATA(golden, testing::kWorldGoldenPath);
  const WorldTokenizer& tokenizer = SharedWorldTokenizer(vocab);
  const std::vector<testing::GoldenCase> cases = testing::ReadGoldenCases(golden);
  ASSERT_FALSE(cases.empty());
  for (const testing::GoldenCase& c : cases) {
    EXPECT_EQ(tokenizer.Encode(c.bytes), c.ids) << c.name;
    EXPECT_EQ(tokenizer.CountTokens(c.bytes), c.ids.size()) << c.name;
    absl::StatusOr<std::string> decoded = tokenizer.Decode(c.ids);
    ASSERT_TRUE(decoded.ok()) << c.name << ": " << decoded.status();
    EXPECT_EQ(*decoded, c.bytes) << c.name;
  }
}

TEST(WorldTokenizerGoldenTest, SpecTable) {
  SKEIN_REQUIRE_TEST_DATA(vocab, testing::kWorldVocabPath);
  const WorldTokenizer& tokenizer = SharedWorldTokenizer(vocab);
  struct Case {
    std::string text;
    std::vector<uint32_t> ids;
  };
  const std::vector<Case> cases = {
      {"Hello world", {33155, 40213}},
      {"User: hi\n\nAssistant:", {24281, 59, 4571, 261, 5585, 41693, 59}},
      {"User: simulate SpaceX mars landing using python\n\nAssistant: <think",
       {24281, 59, 57236, 44898, 31377, 52092, 40085, 46966, 261, 5585, 41693, 59, 295, 35762}},
      {"The Eiffel tower is in the city of",
       {6699, 304, 25740, 109, 39990, 4600, 4596, 22590, 30449, 4706}},
      {"\n\n\n", {3328}},
      {"   leading spaces", {3340, 49366, 47345}},
      {"12345 67", {632, 654, 54, 3540}},
      {"你好，世界", {10464, 11685, 19137, 10267, 14610}},
      {"😀👍🏽", {3319, 153, 129, 28333, 3319, 144, 190}},
      {"café naïve", {1784, 7596, 46644}},
      {"a\r\nb\tc", {98, 263, 99, 10, 100}},
      {"\u0080", {2423}},
      {"a\u2002b", {98, 9804, 99}},
      {"It's", {1141, 460}},
      {std::string("\0\x01", 2), {1, 2}},
      {"\uFFFD", {19232}},
      {"", {}},
  };
  for (const Case& c : cases) {
    EXPECT_EQ(tokenizer.Encode(c.text), c.ids) << c.text;
    absl::StatusOr<std::string> decoded = tokenizer.Decode(c.ids);
    ASSERT_TRUE(decoded.ok()) << decoded.status();
    EXPECT_EQ(*decoded, c.text);
  }
}

// Facts spec §8 states about the official vocabulary.
TEST(WorldTokenizerGoldenTest, VocabularyShape) {
  SKEIN_REQUIRE_TEST_DATA(vocab, testing::kWorldVocabPath);
  const WorldTokenizer& tokenizer = SharedWorldTokenizer(vocab);
  EXPECT_EQ(tokenizer.vocab_size(), 65536u);
  EXPECT_EQ(tokenizer.token_count(), 65529u);
  EXPECT_EQ(tokenizer.max_token_id(), 65529u);
  EXPECT_EQ(tokenizer.max_token_bytes(), 128u);
  EXPECT_EQ(tokenizer.end_of_text_id(), 0u);
  EXPECT_EQ(tokenizer.sha256(), kWorldVocabV20230424Sha256);
  EXPECT_EQ(tokenizer.TokenBytes(65529), std::string(128, ' '));
  EXPECT_FALSE(tokenizer.HasBytes(0));
  for (uint32_t id = 65530; id < 65536; ++id) EXPECT_FALSE(tokenizer.HasBytes(id));
  // "<|endoftext|>" typed as text is ordinary bytes, never id 0.
  const std::vector<uint32_t> ids = tokenizer.Encode("<|endoftext|>");
  EXPECT_GT(ids.size(), 1u);
  for (uint32_t id : ids) EXPECT_NE(id, 0u);
}

}  // namespace
}  // namespace skein::tokenizer
