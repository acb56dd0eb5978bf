// AtomicFile: readers see the old file or the whole new one; abandoned writes leave nothing.
#include "base/atomic_file.h"

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"

namespace skein::base {
namespace {

namespace fs = std::filesystem;

std::string TempDir(const std::string& name) {
  const char* root = std::getenv("TEST_TMPDIR");
  fs::path dir = fs::path(root ? root : "/tmp") / name;
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir.string();
}

std::string Read(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

std::vector<std::string> Names(const std::string& dir) {
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(dir)) names.push_back(e.path().filename().string());
  return names;
}

TEST(AtomicFileTest, CommitReplacesTheFileWhole) {
  const std::string dir = TempDir("commit");
  const std::string path = dir + "/model.pth";
  std::ofstream(path) << "old";
  absl::StatusOr<std::unique_ptr<AtomicFile>> f = AtomicFile::Create(path);
  ASSERT_TRUE(f.ok()) << f.status();
  ASSERT_TRUE((*f)->Append("hello ").ok());
  ASSERT_TRUE((*f)->Append("world").ok());
  ASSERT_TRUE((*f)->WriteAt(0, "J").ok());
  EXPECT_EQ((*f)->size(), 11u);
  EXPECT_EQ(Read(path), "old") << "readers see the old file until Commit";
  ASSERT_TRUE((*f)->Commit().ok());
  EXPECT_EQ(Read(path), "Jello world");
  EXPECT_EQ(Names(dir), std::vector<std::string>{"model.pth"}) << "no temporary file is left";
  EXPECT_EQ((*f)->Commit().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ((*f)->Append("x").code(), absl::StatusCode::kFailedPrecondition);
}

TEST(AtomicFileTest, AnAbandonedWriteLeavesNothing) {
  const std::string dir = TempDir("abandon");
  {
    absl::StatusOr<std::unique_ptr<AtomicFile>> f = AtomicFile::Create(dir + "/x.bin");
    ASSERT_TRUE(f.ok());
    ASSERT_TRUE((*f)->Append("partial").ok());
    ASSERT_EQ(Names(dir).size(), 1u);
    EXPECT_TRUE(IsTemporaryName(Names(dir)[0])) << Names(dir)[0];
  }
  EXPECT_TRUE(Names(dir).empty());
}

TEST(AtomicFileTest, ConcurrentWritersOfOnePathNeverMix) {
  const std::string dir = TempDir("concurrent");
  const std::string path = dir + "/blob";
  std::vector<std::thread> writers;
  for (int w = 0; w < 4; ++w) {
    writers.emplace_back([&, w] {
      for (int i = 0; i < 20; ++i) {
        EXPECT_TRUE(WriteFileAtomically(path, std::string(4096, static_cast<char>('a' + w)),
                                        /*sync=*/i % 2 == 0)
                        .ok());
      }
    });
  }
  for (std::thread& t : writers) t.join();
  const std::string content = Read(path);
  ASSERT_EQ(content.size(), 4096u);
  EXPECT_EQ(content, std::string(4096, content[0])) << "one writer's whole file, not a mix";
  EXPECT_EQ(Names(dir), std::vector<std::string>{"blob"});
}

TEST(AtomicFileTest, BadPathsAreErrors) {
  EXPECT_EQ(AtomicFile::Create("/").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(AtomicFile::Create("/nonexistent-dir/x").status().code(),
            absl::StatusCode::kUnavailable);
  EXPECT_EQ(SyncDirectory("/nonexistent-dir").code(), absl::StatusCode::kUnavailable);
  EXPECT_TRUE(SyncDirectory(TempDir("sync")).ok());
}

TEST(AtomicFileTest, TemporaryNames) {
  EXPECT_TRUE(IsTemporaryName(".model.pth.123.4.tmp"));
  EXPECT_FALSE(IsTemporaryName("model.tmp"));  // not hidden: a user's file
  EXPECT_FALSE(IsTemporaryName(".tmp"));
  EXPECT_FALSE(IsTemporaryName("0123456789abcdef"));
}

}  // namespace
}  // namespace skein::base
