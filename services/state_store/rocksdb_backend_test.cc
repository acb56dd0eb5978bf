// What the RocksDB backend adds to the conformance suite: blob files on disk, their clean-up
// after a crash, and a listed blob whose file is gone.
#include "services/state_store/rocksdb_backend.h"

#include <filesystem>
#include <fstream>
#include <memory>
#include <set>
#include <string>

#include "gtest/gtest.h"
#include "tests/support/child_process.h"

namespace skein::state_store {
namespace {

std::set<std::string> BlobDirFiles(const std::string& dir) {
  std::set<std::string> names;
  for (const auto& e : std::filesystem::directory_iterator(dir + "/blobs")) {
    names.insert(e.path().filename().string());
  }
  return names;
}

std::unique_ptr<RocksDbBackend> OpenAt(const std::string& dir) {
  RocksDbOptions options;
  options.path = dir;
  options.sync = false;
  absl::StatusOr<std::unique_ptr<RocksDbBackend>> backend = RocksDbBackend::Open(options);
  EXPECT_TRUE(backend.ok()) << backend.status();
  return backend.ok() ? *std::move(backend) : nullptr;
}

TEST(RocksDbBackendTest, BlobsLiveInFilesThatDeletesAndRestartsCleanUp) {
  const std::string dir = testing::MakeTempDir("rocksdb_backend");
  const std::string kept = BlobFiles::FileName("g", "kept");
  const std::string deleted = BlobFiles::FileName("g", "deleted");
  {
    std::unique_ptr<RocksDbBackend> db = OpenAt(dir);
    ASSERT_NE(db, nullptr);
    const std::string state(1 << 20, 'x');
    ASSERT_TRUE(db->WriteBlob("g", "kept", state, absl::InfiniteFuture()).ok());
    ASSERT_TRUE(db->WriteBlob("g", "deleted", "bytes", absl::InfiniteFuture()).ok());
    EXPECT_EQ(BlobDirFiles(dir), (std::set<std::string>{kept, deleted}));
    ASSERT_TRUE(db->Apply(Batch("g").DeleteBlob("deleted")).ok());
    EXPECT_EQ(BlobDirFiles(dir), std::set<std::string>{kept}) << "a deleted blob's file goes";
    EXPECT_EQ(db->ReadBlob("g", "deleted").status().code(), absl::StatusCode::kNotFound);
    EXPECT_EQ(*db->ReadBlob("g", "kept"), state);
  }
  // What a crash can leave: a file never published, and a half-written temporary file.
  const std::string stray = BlobFiles::FileName("g", "never-published");
  std::ofstream(dir + "/blobs/" + stray) << "orphan";
  std::ofstream(dir + "/blobs/" + kept + ".99.0.tmp") << "partial";
  std::unique_ptr<RocksDbBackend> db = OpenAt(dir);
  ASSERT_NE(db, nullptr);
  EXPECT_EQ(BlobDirFiles(dir), std::set<std::string>{kept});
  EXPECT_EQ(db->ReadBlob("g", "kept")->size(), size_t{1} << 20);
}

TEST(RocksDbBackendTest, ListedBlobWithoutItsFileIsDataLoss) {
  const std::string dir = testing::MakeTempDir("rocksdb_backend_loss");
  std::unique_ptr<RocksDbBackend> db = OpenAt(dir);
  ASSERT_NE(db, nullptr);
  ASSERT_TRUE(db->WriteBlob("g", "b", "payload", absl::InfiniteFuture()).ok());
  std::filesystem::remove(dir + "/blobs/" + BlobFiles::FileName("g", "b"));
  absl::StatusOr<std::string> read = db->ReadBlob("g", "b");
  ASSERT_FALSE(read.ok());
  EXPECT_EQ(read.status().code(), absl::StatusCode::kDataLoss) << read.status();
}

}  // namespace
}  // namespace skein::state_store
