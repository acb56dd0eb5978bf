// What the RocksDB backend adds to the conformance suite: blob files on disk, their clean-up
// after a crash, a listed blob whose file is gone, and the fsync policies.
#include "services/state_store/rocksdb_backend.h"

#include <filesystem>
#include <fstream>
#include <memory>
#include <set>
#include <string>
#include <thread>

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

std::unique_ptr<RocksDbBackend> OpenAt(const std::string& dir,
                                       FsyncPolicy fsync = FsyncPolicy::kNever,
                                       absl::Duration interval = absl::Seconds(1)) {
  RocksDbOptions options;
  options.path = dir;
  options.fsync = fsync;
  options.fsync_interval = interval;
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

TEST(RocksDbBackendTest, FsyncPolicyNames) {
  EXPECT_EQ(*ParseFsyncPolicy("always"), FsyncPolicy::kAlways);
  EXPECT_EQ(*ParseFsyncPolicy("interval"), FsyncPolicy::kInterval);
  EXPECT_EQ(*ParseFsyncPolicy("never"), FsyncPolicy::kNever);
  EXPECT_EQ(ParseFsyncPolicy("sometimes").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ParseFsyncPolicy("").status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(RocksDbBackendTest, IntervalPolicyCountsWritesUntilTheyAreFlushed) {
  // An hour: the background round never comes during the test, so the counts are exact.
  std::unique_ptr<RocksDbBackend> db =
      OpenAt(testing::MakeTempDir("rocksdb_interval"), FsyncPolicy::kInterval, absl::Hours(1));
  ASSERT_NE(db, nullptr);
  EXPECT_EQ(db->unsynced_writes(), 0u);
  ASSERT_TRUE(db->WriteBlob("g", "a", "bytes of a", absl::InfiniteFuture()).ok());
  ASSERT_TRUE(db->WriteBlob("g", "b", "bytes of b", absl::InfiniteFuture()).ok());
  // Two files plus the WAL holding their manifest entries.
  EXPECT_EQ(db->unsynced_writes(), 3u);
  ASSERT_TRUE(db->FlushUnsynced().ok());
  EXPECT_EQ(db->unsynced_writes(), 0u);
  // A file replaced or deleted before the flush needs none.
  ASSERT_TRUE(db->WriteBlob("g", "c", "bytes of c", absl::InfiniteFuture()).ok());
  ASSERT_TRUE(db->Apply(Batch("g").DeleteBlob("c")).ok());
  EXPECT_EQ(db->unsynced_writes(), 2u);
  ASSERT_TRUE(db->FlushUnsynced().ok());
  EXPECT_EQ(db->unsynced_writes(), 0u);
  absl::StatusOr<std::string> a = db->ReadBlob("g", "a");
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_EQ(*a, "bytes of a");
}

TEST(RocksDbBackendTest, IntervalPolicyFlushesInTheBackground) {
  std::unique_ptr<RocksDbBackend> db = OpenAt(testing::MakeTempDir("rocksdb_background"),
                                              FsyncPolicy::kInterval, absl::Milliseconds(10));
  ASSERT_NE(db, nullptr);
  ASSERT_TRUE(db->WriteBlob("g", "a", std::string(1 << 20, 'a'), absl::InfiniteFuture()).ok());
  ASSERT_TRUE(db->Apply(Batch("g").PutRecord("r", "value")).ok());
  const absl::Time deadline = absl::Now() + absl::Seconds(20);
  while (db->unsynced_writes() > 0 && absl::Now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  EXPECT_EQ(db->unsynced_writes(), 0u);
}

TEST(RocksDbBackendTest, OtherPoliciesLeaveNothingToFlush) {
  for (FsyncPolicy policy : {FsyncPolicy::kAlways, FsyncPolicy::kNever}) {
    std::unique_ptr<RocksDbBackend> db = OpenAt(testing::MakeTempDir("rocksdb_policy"), policy);
    ASSERT_NE(db, nullptr);
    ASSERT_TRUE(db->WriteBlob("g", "a", "bytes", absl::InfiniteFuture()).ok());
    ASSERT_TRUE(db->Apply(Batch("g").PutRecord("r", "value")).ok());
    EXPECT_EQ(db->unsynced_writes(), 0u);
    absl::StatusOr<std::string> a = db->ReadBlob("g", "a");
    ASSERT_TRUE(a.ok()) << a.status();
    EXPECT_EQ(*a, "bytes");
  }
}

}  // namespace
}  // namespace skein::state_store
