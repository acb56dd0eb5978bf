#include "services/tokenizer/vocab_parser.h"

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "gtest/gtest.h"
#include "services/tokenizer/test_vocab.h"
#include "tests/support/test_data.h"

namespace skein::tokenizer {
namespace {

// Lines in the official file's own style (spec §8.2 quotes these).
constexpr char kSample[] =
    "1 '\\x00' 1\n"
    "40 \"'\" 1\n"
    "129 b'\\x80' 1\n"
    "261 '\\n\\n' 2\n"
    "2423 '\\x80' 2\n"
    "9804 '\\u2002' 3\n"
    "11 '\\t' 1\n"
    "93 '\\\\' 1\n"
    "300 ' the' 4\n"
    "301 '  a b  ' 7\n"
    "302 '\xE4\xBD\xA0\xE5\xA5\xBD' 6\n";

TEST(VocabParserTest, ParsesEachLiteralKind) {
  absl::StatusOr<std::vector<VocabEntry>> entries = ParseVocabulary(kSample);
  ASSERT_TRUE(entries.ok()) << entries.status();
  ASSERT_EQ(entries->size(), 11u);
  const std::vector<std::pair<uint32_t, std::string>> want = {
      {1, std::string(1, '\0')},
      {40, "'"},
      {129, "\x80"},
      {261, "\n\n"},
      {2423, "\xC2\x80"},
      {9804, "\xE2\x80\x82"},
      {11, "\t"},
      {93, "\\"},
      {300, " the"},
      {301, "  a b  "},
      {302, "\xE4\xBD\xA0\xE5\xA5\xBD"},
  };
  for (size_t i = 0; i < want.size(); ++i) {
    EXPECT_EQ((*entries)[i].id, want[i].first);
    EXPECT_EQ((*entries)[i].bytes, want[i].second) << "id " << want[i].first;
    EXPECT_EQ((*entries)[i].line, static_cast<int>(i + 1));
  }
}

TEST(VocabParserTest, CrlfAndMissingFinalNewlineParseTheSame) {
  absl::StatusOr<std::vector<VocabEntry>> lf = ParseVocabulary(kSample);
  absl::StatusOr<std::vector<VocabEntry>> crlf =
      ParseVocabulary(absl::StrReplaceAll(kSample, {{"\n", "\r\n"}}));
  std::string unterminated = kSample;
  unterminated.pop_back();
  absl::StatusOr<std::vector<VocabEntry>> last = ParseVocabulary(unterminated);
  ASSERT_TRUE(lf.ok() && crlf.ok() && last.ok());
  ASSERT_EQ(crlf->size(), lf->size());
  ASSERT_EQ(last->size(), lf->size());
  for (size_t i = 0; i < lf->size(); ++i) {
    EXPECT_EQ((*crlf)[i].bytes, (*lf)[i].bytes);
    EXPECT_EQ((*last)[i].bytes, (*lf)[i].bytes);
  }
}

TEST(VocabParserTest, EmptyFileHasNoEntries) {
  absl::StatusOr<std::vector<VocabEntry>> entries = ParseVocabulary("");
  ASSERT_TRUE(entries.ok());
  EXPECT_TRUE(entries->empty());
}

// Puts `bad` on line 3 of an otherwise good file and checks the error names line 3.
void ExpectLine3Error(const std::string& bad, const std::string& fragment) {
  const std::string text = absl::StrCat("1 'a' 1\n2 'b' 1\n", bad, "\n4 'd' 1\n");
  absl::StatusOr<std::vector<VocabEntry>> entries = ParseVocabulary(text);
  ASSERT_FALSE(entries.ok()) << bad;
  EXPECT_EQ(entries.status().code(), absl::StatusCode::kInvalidArgument);
  const std::string message(entries.status().message());
  EXPECT_EQ(message.rfind("vocab line 3: ", 0), 0u) << message;
  EXPECT_NE(message.find(fragment), std::string::npos) << message;
}

TEST(VocabParserTest, MalformedLinesNameTheirLine) {
  ExpectLine3Error("", "empty line");
  ExpectLine3Error("3", "expected '<id> <literal> <length>'");
  ExpectLine3Error("3 'c'", "expected '<id> <literal> <length>'");
  ExpectLine3Error("x 'c' 1", "id \"x\" is not a decimal integer");
  ExpectLine3Error("-3 'c' 1", "not a decimal integer");
  ExpectLine3Error("99999999999 'c' 1", "above the maximum");
  ExpectLine3Error("0 'c' 1", "end-of-text");
  ExpectLine3Error("4000000 'c' 1", "above the maximum");
  ExpectLine3Error("3 'c' one", "length \"one\" is not a decimal integer");
  ExpectLine3Error("3 'c' 2", "token 3 is 1 bytes but the line declares 2");
  ExpectLine3Error("3 '\\x80' 1", "token 3 is 2 bytes but the line declares 1");
  ExpectLine3Error("3 '' 0", "token 3 is empty");
  ExpectLine3Error("3 'c 1", "missing closing quote");
  ExpectLine3Error("3 c 1", "expected a quoted");
  ExpectLine3Error("3 '\\ud800' 3", "surrogate");
  ExpectLine3Error("3 '\xFF' 1", "not valid UTF-8");
}

TEST(VocabParserTest, DuplicateIdNamesBothLines) {
  absl::StatusOr<std::vector<VocabEntry>> entries =
      ParseVocabulary("1 'a' 1\n2 'b' 1\n3 'c' 1\n2 'd' 1\n");
  ASSERT_FALSE(entries.ok());
  EXPECT_EQ(entries.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(entries.status().message(), "vocab line 4: id 2 is already defined on line 2");
}

TEST(VocabParserTest, IdsNeedNotBeContiguousOrSorted) {
  absl::StatusOr<std::vector<VocabEntry>> entries = ParseVocabulary("70000 'a' 1\n5 'b' 1\n");
  ASSERT_TRUE(entries.ok()) << entries.status();
  EXPECT_EQ((*entries)[0].id, 70000u);
  EXPECT_EQ((*entries)[1].id, 5u);
}

TEST(VocabParserTest, CrlfErrorsStillNameTheLine) {
  absl::StatusOr<std::vector<VocabEntry>> entries = ParseVocabulary("1 'a' 1\r\n2 'bb' 1\r\n");
  ASSERT_FALSE(entries.ok());
  EXPECT_EQ(entries.status().message(), "vocab line 2: token 2 is 2 bytes but the line declares 1");
}

// The official file, checked against the facts spec §8.1-8.2 states about it.
TEST(VocabParserTest, OfficialWorldVocabulary) {
  SKEIN_REQUIRE_TEST_DATA(path, testing::kWorldVocabPath);
  const std::string text = skein::testing::ReadFileOrDie(path);
  absl::StatusOr<std::vector<VocabEntry>> entries = ParseVocabulary(text);
  ASSERT_TRUE(entries.ok()) << entries.status();
  ASSERT_EQ(entries->size(), 65529u);
  size_t previous_length = 0;
  for (size_t i = 0; i < entries->size(); ++i) {
    const VocabEntry& e = (*entries)[i];
    ASSERT_EQ(e.id, i + 1);  // ids 1..65529 in order
    ASSERT_GE(e.bytes.size(), previous_length) << "lines are sorted by byte length";
    previous_length = e.bytes.size();
  }
  for (int b = 0; b < 256; ++b) {
    EXPECT_EQ((*entries)[b].bytes, std::string(1, static_cast<char>(b))) << "id = byte + 1";
  }
  auto bytes_of = [&](uint32_t id) { return (*entries)[id - 1].bytes; };
  EXPECT_EQ(bytes_of(261), "\n\n");
  EXPECT_EQ(bytes_of(129), "\x80");
  EXPECT_EQ(bytes_of(40), "'");
  EXPECT_EQ(bytes_of(2423), "\xC2\x80");
  EXPECT_EQ(bytes_of(9804), "\xE2\x80\x82");
  EXPECT_EQ(bytes_of(65529), std::string(128, ' '));

  // The CRLF copy (RWKV-LM/RWKV-v5/tokenizer) parses to the same tokens.
  absl::StatusOr<std::vector<VocabEntry>> crlf =
      ParseVocabulary(absl::StrReplaceAll(text, {{"\n", "\r\n"}}));
  ASSERT_TRUE(crlf.ok()) << crlf.status();
  ASSERT_EQ(crlf->size(), entries->size());
  for (size_t i = 0; i < entries->size(); ++i) ASSERT_EQ((*crlf)[i].bytes, (*entries)[i].bytes);
}

}  // namespace
}  // namespace skein::tokenizer
