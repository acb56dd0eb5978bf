#include "services/state_store/blob_files.h"

#include <filesystem>
#include <fstream>
#include <set>
#include <string>

#include "gtest/gtest.h"
#include "tests/support/child_process.h"

namespace skein::state_store {
namespace {

std::set<std::string> Files(const std::string& dir) {
  std::set<std::string> names;
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    names.insert(e.path().filename().string());
  }
  return names;
}

TEST(BlobFilesTest, WritesReplacesReadsAndRemoves) {
  const std::string dir = testing::MakeTempDir("blob_files") + "/blobs";
  absl::StatusOr<BlobFiles> files = BlobFiles::Open(dir);
  ASSERT_TRUE(files.ok()) << files.status();
  const std::string name = BlobFiles::FileName("group", "blob");
  EXPECT_EQ(name.size(), 32u);
  EXPECT_NE(name, BlobFiles::FileName("group", "blob2"));
  EXPECT_NE(BlobFiles::FileName("a", "bc"), BlobFiles::FileName("ab", "c"))
      << "group and name must not run together";

  EXPECT_EQ(files->Read(name).status().code(), absl::StatusCode::kNotFound);
  std::string big(3 << 20, '\0');
  for (size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>(i * 131 + 7);
  for (bool sync : {false, true}) {
    ASSERT_TRUE(files->Write(name, big, sync).ok());
    absl::StatusOr<std::string> back = files->Read(name);
    ASSERT_TRUE(back.ok()) << back.status();
    EXPECT_EQ(*back, big);
    ASSERT_TRUE(files->Write(name, "short", sync).ok());
    EXPECT_EQ(*files->Read(name), "short") << "a rewrite replaces the whole file";
  }
  ASSERT_TRUE(files->Write(name, "", false).ok());
  EXPECT_EQ(*files->Read(name), "");
  EXPECT_EQ(Files(dir), std::set<std::string>{name}) << "no temporary file is left behind";
  ASSERT_TRUE(files->Remove(name).ok());
  ASSERT_TRUE(files->Remove(name).ok()) << "removing an absent file is not an error";
  EXPECT_EQ(files->Read(name).status().code(), absl::StatusCode::kNotFound);
}

TEST(BlobFilesTest, RemoveUnlistedKeepsListedFilesAndDropsTemporaries) {
  const std::string dir = testing::MakeTempDir("blob_files_gc");
  absl::StatusOr<BlobFiles> files = BlobFiles::Open(dir);
  ASSERT_TRUE(files.ok());
  const std::string keep = BlobFiles::FileName("g", "keep");
  const std::string drop = BlobFiles::FileName("g", "drop");
  ASSERT_TRUE(files->Write(keep, "kept", false).ok());
  ASSERT_TRUE(files->Write(drop, "dropped", false).ok());
  // What a writer killed between write() and rename() leaves.
  // (base/atomic_file.h's temporary name); it goes although the keep test below keeps it.
  std::ofstream(dir + "/." + keep + ".123.4.tmp") << "partial";
  ASSERT_TRUE(files->RemoveUnlisted([&](const std::string& f) { return f != drop; }).ok());
  EXPECT_EQ(Files(dir), std::set<std::string>{keep});
  EXPECT_EQ(*files->Read(keep), "kept");
}

TEST(BlobFilesTest, UnwritableDirectoryIsUnavailable) {
  absl::StatusOr<BlobFiles> files = BlobFiles::Open("/proc/skein-cannot-create/blobs");
  ASSERT_FALSE(files.ok());
  EXPECT_EQ(files.status().code(), absl::StatusCode::kUnavailable);
}

}  // namespace
}  // namespace skein::state_store
