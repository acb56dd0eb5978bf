#include "services/state_store/testing/backend_fixture.h"

#include "absl/strings/str_cat.h"
#include "services/state_store/memory_backend.h"
#include "services/state_store/redis_backend.h"
#include "services/state_store/redis_store_index.h"
#include "services/state_store/rocksdb_backend.h"

namespace skein::state_store::testing {
namespace {

// Forwards to a shared backend, so several stores can be opened in turn over one in-memory
// map (as a restarted process would reopen its disk).
class SharedBackend final : public StorageBackend {
 public:
  explicit SharedBackend(std::shared_ptr<StorageBackend> inner) : inner_(std::move(inner)) {}
  std::string_view Name() const override { return inner_->Name(); }
  bool ExpiresObjects() const override { return inner_->ExpiresObjects(); }
  absl::StatusOr<std::optional<std::string>> ReadRecord(std::string_view group,
                                                        std::string_view name) override {
    return inner_->ReadRecord(group, name);
  }
  absl::Status Apply(const Batch& batch) override { return inner_->Apply(batch); }
  absl::Status WriteBlob(std::string_view group, std::string_view name, std::string_view data,
                         absl::Time expiry) override {
    return inner_->WriteBlob(group, name, data, expiry);
  }
  absl::StatusOr<std::string> ReadBlob(std::string_view group, std::string_view name) override {
    return inner_->ReadBlob(group, name);
  }
  absl::Status ScanRecords(const RecordVisitor& visit) override {
    return inner_->ScanRecords(visit);
  }
  absl::Status ScanBlobs(const BlobVisitor& visit) override { return inner_->ScanBlobs(visit); }

 private:
  std::shared_ptr<StorageBackend> inner_;
};

struct SharedRedis {
  std::unique_ptr<skein::testing::RedisServer> server;
  std::string why;
};

SharedRedis& Redis() {
  // Started on first use; the process exit kills it (its destructor sends SIGKILL).
  static SharedRedis* redis = [] {
    auto* r = new SharedRedis;
    r->server = skein::testing::RedisServer::Start(&r->why);
    static std::unique_ptr<SharedRedis> owner(r);
    return r;
  }();
  return *redis;
}

struct SharedCluster {
  std::unique_ptr<skein::testing::RedisCluster> cluster;
  std::string why;
};

SharedCluster& Cluster() {
  static SharedCluster* shared = [] {
    auto* c = new SharedCluster;
    c->cluster = skein::testing::RedisCluster::Start(3, &c->why);
    static std::unique_ptr<SharedCluster> owner(c);
    return c;
  }();
  return *shared;
}

RedisOptions ClusterOptions(const std::string& prefix) {
  RedisOptions options;
  options.port = Cluster().cluster->node(0).port();
  options.key_prefix = prefix;
  options.chunk_bytes = 4096;
  return options;
}

}  // namespace

std::string BackendKindName(const ::testing::TestParamInfo<BackendKind>& info) {
  switch (info.param) {
    case BackendKind::kMemory:
      return "Memory";
    case BackendKind::kRocksDb:
      return "RocksDb";
    case BackendKind::kRedis:
      return "Redis";
    case BackendKind::kRedisCluster:
      return "RedisClusterSharedIndex";
  }
  return "Unknown";
}

BackendFactory::BackendFactory(BackendKind kind) : kind_(kind) {
  static int counter = 0;
  ++counter;
  switch (kind) {
    case BackendKind::kMemory:
      memory_ = std::make_shared<MemoryBackend>();
      break;
    case BackendKind::kRocksDb:
      dir_ = skein::testing::MakeTempDir("rocksdb");
      break;
    case BackendKind::kRedis:
      if (!Redis().server) unavailable_ = Redis().why;
      redis_prefix_ = absl::StrCat("test", counter);
      break;
    case BackendKind::kRedisCluster:
      if (!Cluster().cluster) unavailable_ = Cluster().why;
      redis_prefix_ = absl::StrCat("ctest", counter);
      break;
  }
}

skein::testing::RedisServer* BackendFactory::redis() const {
  return kind_ == BackendKind::kRedis ? Redis().server.get() : nullptr;
}

absl::StatusOr<std::unique_ptr<StorageBackend>> BackendFactory::Make() {
  switch (kind_) {
    case BackendKind::kMemory:
      return std::unique_ptr<StorageBackend>(new SharedBackend(memory_));
    case BackendKind::kRocksDb: {
      RocksDbOptions options;
      options.path = dir_;
      // Tests do not need power-loss durability; skipping fsync keeps them fast.
      options.fsync = FsyncPolicy::kNever;
      absl::StatusOr<std::unique_ptr<RocksDbBackend>> backend = RocksDbBackend::Open(options);
      if (!backend.ok()) return backend.status();
      return std::unique_ptr<StorageBackend>(*std::move(backend));
    }
    case BackendKind::kRedis: {
      if (!unavailable_.empty()) return absl::UnavailableError(unavailable_);
      RedisOptions options;
      options.port = Redis().server->port();
      options.key_prefix = redis_prefix_;
      // Small chunks so that multi-chunk blobs occur in small tests.
      options.chunk_bytes = 4096;
      absl::StatusOr<std::unique_ptr<RedisBackend>> backend = RedisBackend::Connect(options);
      if (!backend.ok()) return backend.status();
      return std::unique_ptr<StorageBackend>(*std::move(backend));
    }
    case BackendKind::kRedisCluster: {
      if (!unavailable_.empty()) return absl::UnavailableError(unavailable_);
      absl::StatusOr<std::unique_ptr<RedisBackend>> backend =
          RedisBackend::Connect(ClusterOptions(redis_prefix_));
      if (!backend.ok()) return backend.status();
      return std::unique_ptr<StorageBackend>(*std::move(backend));
    }
  }
  return absl::InternalError("unknown backend kind");
}

absl::StatusOr<std::unique_ptr<StoreIndex>> BackendFactory::MakeIndex() {
  if (kind_ != BackendKind::kRedisCluster) return std::unique_ptr<StoreIndex>();
  if (!unavailable_.empty()) return absl::UnavailableError(unavailable_);
  absl::StatusOr<std::unique_ptr<RedisStoreIndex>> index =
      RedisStoreIndex::Connect(ClusterOptions(redis_prefix_));
  if (!index.ok()) return index.status();
  return std::unique_ptr<StoreIndex>(*std::move(index));
}

}  // namespace skein::state_store::testing
