// Test fixture support: builds each StorageBackend kind the same way, so one test suite runs
// against all three. RocksDB gets a fresh directory; Redis gets a private redis-server
// (started once per test binary, killed at exit) and a fresh key prefix per test, so tests
// never see each other's keys; the in-memory backend is shared through a forwarding wrapper
// so that a "restart" (a new store over the same data) is possible for it too.
// Not thread-safe.
#ifndef SKEIN_SERVICES_STATE_STORE_TESTING_BACKEND_FIXTURE_H_
#define SKEIN_SERVICES_STATE_STORE_TESTING_BACKEND_FIXTURE_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "gtest/gtest.h"
#include "services/state_store/backend.h"
#include "services/state_store/store_index.h"
#include "tests/support/redis_server.h"

namespace skein::state_store::testing {

// kRedisCluster: a Redis Cluster of three masters, with the index kept in it (shared).
enum class BackendKind { kMemory, kRocksDb, kRedis, kRedisCluster };

std::string BackendKindName(const ::testing::TestParamInfo<BackendKind>& info);

// Owns the data behind one test's backends.
class BackendFactory {
 public:
  explicit BackendFactory(BackendKind kind);

  // Empty if the backend can be used; otherwise why not (the test should skip).
  const std::string& unavailable_reason() const { return unavailable_; }

  // A new backend over the same data as every earlier one from this factory. For RocksDB the
  // previous backend must have been destroyed first (its directory lock).
  absl::StatusOr<std::unique_ptr<StorageBackend>> Make();

  // The index a store over this factory's data uses: nullptr (the store's own memory), or for
  // kRedisCluster a RedisStoreIndex over the same cluster and prefix.
  absl::StatusOr<std::unique_ptr<StoreIndex>> MakeIndex();

  BackendKind kind() const { return kind_; }
  // The shared redis-server (nullptr unless kind is kRedis).
  skein::testing::RedisServer* redis() const;
  const std::string& redis_prefix() const { return redis_prefix_; }

 private:
  BackendKind kind_;
  std::string unavailable_;
  std::string dir_;
  std::string redis_prefix_;
  std::shared_ptr<StorageBackend> memory_;
};

}  // namespace skein::state_store::testing

#endif  // SKEIN_SERVICES_STATE_STORE_TESTING_BACKEND_FIXTURE_H_
