// StorageBackend on a Redis server (7.x), for a store shared by several machines.
//
// Key layout, for KEY_PREFIX (--redis-key-prefix, default "skein") and group G (an entry key):
//   KEY_PREFIX:{H}:G:r:NAME   a record (Redis string)
//   KEY_PREFIX:{H}:G:b:NAME   a blob (Redis list of chunks of at most chunk_bytes)
// where H is the XXH3-64 of G in hex. {H} is a Redis Cluster hash tag: every object of one
// entry (record, blobs, a snapshot's parts) hashes to one slot, so each Apply is a single
// Lua script on one node and multi-part snapshots commit atomically even in a cluster. The
// tag is a hash rather than G itself so that braces in a key cannot change the slot.
//
// Expiry is Redis's own (PEXPIREAT), so ExpiresObjects() is true: staged blobs of a writer
// that died expire by themselves. Times are Unix milliseconds from this host's clock.
//
// Durability is Redis's: Apply returns after Redis replied to the script, so an acknowledged
// Apply is as durable as the server's persistence setting makes it (with
// `appendonly yes` and `appendfsync always` it is in the fsynced AOF before the reply).
// Connections come from a small pool and are re-established after errors. Thread-safe.
// Scans use SCAN, which covers one node; run one store per node's keyspace or a single-node
// Redis when the store's start-up scan must see everything.
#ifndef SKEIN_SERVICES_STATE_STORE_REDIS_BACKEND_H_
#define SKEIN_SERVICES_STATE_STORE_REDIS_BACKEND_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "services/state_store/backend.h"

struct redisContext;

namespace skein::state_store {

struct RedisOptions {
  std::string host = "127.0.0.1";
  int port = 6379;
  std::string key_prefix = "skein";
  // Connections kept open for reuse; more are opened under load and closed after use.
  int max_idle_connections = 8;
  absl::Duration connect_timeout = absl::Seconds(2);
  absl::Duration io_timeout = absl::Seconds(30);
  // Largest list element of a blob.
  size_t chunk_bytes = 1 << 20;
};

class RedisBackend final : public StorageBackend {
 public:
  // Connects and PINGs. Errors: UNAVAILABLE when the server cannot be reached;
  // INVALID_ARGUMENT for bad options.
  static absl::StatusOr<std::unique_ptr<RedisBackend>> Connect(const RedisOptions& options);
  ~RedisBackend() override;

  std::string_view Name() const override { return "redis"; }
  bool ExpiresObjects() const override { return true; }
  absl::StatusOr<std::optional<std::string>> ReadRecord(std::string_view group,
                                                        std::string_view name) override;
  absl::Status Apply(const Batch& batch) override;
  absl::Status WriteBlob(std::string_view group, std::string_view name, std::string_view data,
                         absl::Time expiry) override;
  absl::StatusOr<std::string> ReadBlob(std::string_view group, std::string_view name) override;
  absl::Status ScanRecords(const RecordVisitor& visit) override;
  absl::Status ScanBlobs(const BlobVisitor& visit) override;

  // The Redis key of an object (for tests and operators).
  std::string RedisKey(std::string_view group, char kind, std::string_view name) const;

 private:
  class Connection;
  explicit RedisBackend(RedisOptions options);
  absl::StatusOr<std::unique_ptr<Connection>> Acquire();
  void Release(std::unique_ptr<Connection> connection);
  absl::Status Scan(
      char kind, const std::function<void(std::string_view group, std::string_view name,
                                          const std::string& key, Connection& connection)>& visit);

  RedisOptions options_;
  absl::Mutex mu_;
  std::vector<std::unique_ptr<Connection>> idle_ ABSL_GUARDED_BY(mu_);
};

}  // namespace skein::state_store

#endif  // SKEIN_SERVICES_STATE_STORE_REDIS_BACKEND_H_
