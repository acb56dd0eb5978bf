// Runs `skein tokenize` and `skein detokenize` as a user would: bytes in on stdin, results on
// stdout, errors as one line on stderr and a non-zero exit status.
#include <sys/wait.h>

#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "services/tokenizer/test_vocab.h"
#include "tests/support/prerequisite.h"
#include "tests/support/test_data.h"

namespace skein::cli {
namespace {

struct Result {
  int exit_code = -1;
  std::string out;
  std::string err;
};

std::string TempDir() {
  const char* dir = std::getenv("TEST_TMPDIR");
  return dir ? dir : "/tmp";
}

std::string SkeinBinary() {
  const char* srcdir = std::getenv("TEST_SRCDIR");
  const char* workspace = std::getenv("TEST_WORKSPACE");
  return absl::StrCat(srcdir ? srcdir : ".", "/", workspace ? workspace : "skein", "/tools/skein");
}

void WriteFile(const std::string& path, const std::string& contents) {
  std::ofstream(path, std::ios::binary) << contents;
}

// Runs `[env] skein args` with `input` on stdin.
Result RunSkein(const std::string& args, const std::string& input, const std::string& env = "") {
  const std::string dir = TempDir();
  WriteFile(dir + "/stdin", input);
  const std::string command = absl::StrCat(env, " '", SkeinBinary(), "' ", args, " <'", dir,
                                           "/stdin' >'", dir, "/stdout' 2>'", dir, "/stderr'");
  const int status = std::system(command.c_str());
  Result r;
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  r.out = skein::testing::ReadFileOrDie(dir + "/stdout");
  r.err = skein::testing::ReadFileOrDie(dir + "/stderr");
  return r;
}

std::string IdsJson(const std::vector<uint32_t>& ids) {
  return absl::StrCat("[", absl::StrJoin(ids, ","), "]\n");
}

void ExpectOneLineError(const Result& r, const std::string& fragment) {
  EXPECT_NE(r.exit_code, 0);
  EXPECT_TRUE(r.out.empty()) << r.out;
  ASSERT_FALSE(r.err.empty());
  EXPECT_EQ(r.err.find('\n'), r.err.size() - 1) << "not one line: " << r.err;
  EXPECT_NE(r.err.find(fragment), std::string::npos) << r.err;
}

class TokenizerCommandsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    vocab_ = skein::testing::FindTestData(tokenizer::testing::kWorldVocabPath);
    if (vocab_.empty()) SKEIN_MISSING_PREREQUISITE() << "vocabulary not found";
  }
  std::string vocab_;
};

TEST_F(TokenizerCommandsTest, TokenizeMatchesGoldens) {
  SKEIN_REQUIRE_TEST_DATA(golden, tokenizer::testing::kWorldGoldenPath);
  for (const auto& c : tokenizer::testing::ReadGoldenCases(golden)) {
    const Result r = RunSkein("tokenize --vocab '" + vocab_ + "'", c.bytes);
    EXPECT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(r.out, IdsJson(c.ids)) << c.name;
  }
  // Spec §8.3: U+1F600 is three tokens.
  EXPECT_EQ(RunSkein("tokenize --vocab '" + vocab_ + "'", "😀").out, "[3319,153,129]\n");
}

TEST_F(TokenizerCommandsTest, RawBytesRoundTripThroughBothCommands) {
  static constexpr char kBytes[] = "\0\xFF\xC3(caf\xC3\xA9\n\n\xF0\x9F\x98 end";
  const std::string bytes(kBytes, sizeof(kBytes) - 1);
  const Result encoded = RunSkein("tokenize --vocab '" + vocab_ + "'", bytes);
  ASSERT_EQ(encoded.exit_code, 0) << encoded.err;
  const Result decoded = RunSkein("detokenize --vocab '" + vocab_ + "'", encoded.out);
  ASSERT_EQ(decoded.exit_code, 0) << decoded.err;
  EXPECT_EQ(decoded.out, bytes);
}

TEST_F(TokenizerCommandsTest, EmptyInput) {
  EXPECT_EQ(RunSkein("tokenize --vocab '" + vocab_ + "'", "").out, "[]\n");
  const Result r = RunSkein("detokenize --vocab '" + vocab_ + "'", "[]");
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_EQ(r.out, "");
}

TEST_F(TokenizerCommandsTest, VocabFromEnvironment) {
  const Result r = RunSkein("tokenize", "Hello world", "SKEIN_VOCAB='" + vocab_ + "'");
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "[33155,40213]\n");  // spec §8.3
}

TEST_F(TokenizerCommandsTest, DetokenizeRejectsBadIds) {
  const std::string cmd = "detokenize --vocab '" + vocab_ + "'";
  ExpectOneLineError(RunSkein(cmd, "[33155, 70000]"), "token id 70000 at position 1");
  ExpectOneLineError(RunSkein(cmd, "[0]"), "end-of-text");
  ExpectOneLineError(RunSkein(cmd, "[65531]"), "has no bytes");
  ExpectOneLineError(RunSkein(cmd, "[1, 2"), "not valid JSON");
  ExpectOneLineError(RunSkein(cmd, "{\"ids\": [1]}"), "JSON array");
  ExpectOneLineError(RunSkein(cmd, "[1, -2]"), "element 1");
  ExpectOneLineError(RunSkein(cmd, "[1.5]"), "element 0");
  ExpectOneLineError(RunSkein(cmd, "[\"7\"]"), "element 0");
  ExpectOneLineError(RunSkein(cmd, "[4294967296]"), "element 0");
}

TEST_F(TokenizerCommandsTest, LenientDetokenizeSkipsIdsWithoutBytes) {
  const Result r =
      RunSkein("detokenize --lenient --vocab '" + vocab_ + "'", "[33155, 0, 65531, 40213]");
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "Hello world");
}

TEST_F(TokenizerCommandsTest, VocabularyProblems) {
  ExpectOneLineError(RunSkein("tokenize --vocab '" + TempDir() + "/missing.txt'", "x"),
                     "NOT_FOUND");

  const std::string custom = TempDir() + "/custom-vocab.txt";
  WriteFile(custom, tokenizer::testing::SingleByteVocabLines() + "300 'ab' 2\n");
  ExpectOneLineError(RunSkein("tokenize --vocab '" + custom + "'", "x"), "DATA_LOSS");
  const Result r = RunSkein("tokenize --skip-vocab-hash-check --vocab '" + custom + "'", "abc");
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "[300,100]\n");  // "ab", then 'c' = byte 0x63 + 1

  const std::string broken = TempDir() + "/broken-vocab.txt";
  WriteFile(broken, tokenizer::testing::SingleByteVocabLines() + "300 'ab' 3\n");
  ExpectOneLineError(RunSkein("detokenize --skip-vocab-hash-check --vocab '" + broken + "'", "[1]"),
                     "vocab line 257");

  const Result no_vocab = RunSkein("tokenize", "x", "SKEIN_VOCAB=");
  EXPECT_NE(no_vocab.exit_code, 0);
  EXPECT_NE(no_vocab.err.find("--vocab"), std::string::npos) << no_vocab.err;
}

}  // namespace
}  // namespace skein::cli
