#include "services/tokenizer/vocab_file.h"

#include <cstdlib>
#include <fstream>
#include <string>

#include "absl/status/status.h"
#include "gtest/gtest.h"
#include "services/tokenizer/sha256.h"
#include "services/tokenizer/test_vocab.h"
#include "services/tokenizer/world_tokenizer.h"
#include "tests/support/test_data.h"

namespace skein::tokenizer {
namespace {

std::string TempPath(const std::string& name) {
  const char* dir = std::getenv("TEST_TMPDIR");
  return std::string(dir ? dir : "/tmp") + "/" + name;
}

std::string WriteTemp(const std::string& name, const std::string& contents) {
  const std::string path = TempPath(name);
  std::ofstream(path, std::ios::binary) << contents;
  return path;
}

TEST(VocabFileTest, EmptyPathIsNotFound) {
  absl::StatusOr<VocabFile> file = ReadVocabFile("");
  EXPECT_EQ(file.status().code(), absl::StatusCode::kNotFound);
  EXPECT_NE(file.status().message().find("--vocab"), std::string::npos);
}

TEST(VocabFileTest, MissingFileIsNotFoundAndNamesThePath) {
  const std::string path = TempPath("no-such-vocab.txt");
  absl::StatusOr<VocabFile> file = ReadVocabFile(path);
  EXPECT_EQ(file.status().code(), absl::StatusCode::kNotFound);
  EXPECT_NE(file.status().message().find(path), std::string::npos);
}

TEST(VocabFileTest, DirectoryIsRejected) {
  absl::StatusOr<VocabFile> file = ReadVocabFile(TempPath(""));
  EXPECT_EQ(file.status().code(), absl::StatusCode::kFailedPrecondition);
}

TEST(VocabFileTest, WrongHashIsDataLossUnlessTheCheckIsOff) {
  const std::string contents = "1 'a' 1\n";
  const std::string path = WriteTemp("custom-vocab.txt", contents);
  absl::StatusOr<VocabFile> checked = ReadVocabFile(path);
  ASSERT_EQ(checked.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_NE(checked.status().message().find(Sha256Hex(contents)), std::string::npos);
  EXPECT_NE(checked.status().message().find(kWorldVocabV20230424Sha256), std::string::npos);

  absl::StatusOr<VocabFile> unchecked = ReadVocabFile(path, {.expected_sha256 = ""});
  ASSERT_TRUE(unchecked.ok()) << unchecked.status();
  EXPECT_EQ(unchecked->contents, contents);
  EXPECT_EQ(unchecked->sha256, Sha256Hex(contents));
  EXPECT_EQ(unchecked->path, path);

  absl::StatusOr<VocabFile> pinned = ReadVocabFile(path, {.expected_sha256 = Sha256Hex(contents)});
  EXPECT_TRUE(pinned.ok()) << pinned.status();
}

TEST(VocabFileTest, OfficialFilePassesTheDefaultCheck) {
  SKEIN_REQUIRE_TEST_DATA(path, testing::kWorldVocabPath);
  absl::StatusOr<VocabFile> file = ReadVocabFile(path);
  ASSERT_TRUE(file.ok()) << file.status();
  EXPECT_EQ(file->sha256, kWorldVocabV20230424Sha256);
  EXPECT_EQ(file->contents.size(), 1093733u);  // spec §8.1
}

TEST(VocabFileTest, OneChangedByteIsDataLoss) {
  SKEIN_REQUIRE_TEST_DATA(path, testing::kWorldVocabPath);
  std::string contents = skein::testing::ReadFileOrDie(path);
  contents[contents.size() / 2] ^= 1;
  absl::StatusOr<VocabFile> file = ReadVocabFile(WriteTemp("damaged-vocab.txt", contents));
  EXPECT_EQ(file.status().code(), absl::StatusCode::kDataLoss);
}

TEST(VocabFileTest, LoadFileReportsTheFileAndLine) {
  const std::string path = WriteTemp("bad-vocab.txt", testing::SingleByteVocabLines() + "x\n");
  absl::StatusOr<WorldTokenizer> t =
      WorldTokenizer::LoadFile(path, {.file = {.expected_sha256 = ""}});
  ASSERT_EQ(t.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(t.status().message().rfind(path + ": vocab line 257: ", 0), 0u) << t.status();
}

}  // namespace
}  // namespace skein::tokenizer
