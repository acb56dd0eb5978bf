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
// Works on one server or a Redis Cluster (redis_client.h routes each call to the master of
// its slot; scans visit every master). Thread-safe.
#ifndef SKEIN_SERVICES_STATE_STORE_REDIS_BACKEND_H_
#define SKEIN_SERVICES_STATE_STORE_REDIS_BACKEND_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "services/state_store/backend.h"
#include "services/state_store/redis_client.h"

namespace skein::state_store {

class RedisBackend final : public StorageBackend {
 public:
  // Connects (to a server, or to any node of a cluster). Errors: UNAVAILABLE when it cannot
  // be reached; INVALID_ARGUMENT for bad options.
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
  explicit RedisBackend(std::unique_ptr<RedisClient> client);
  absl::Status Scan(
      char kind,
      const std::function<void(std::string_view group, std::string_view name,
                               const std::string& key, RedisConnection& connection)>& visit);

  const RedisOptions options_;
  std::unique_ptr<RedisClient> client_;
};

}  // namespace skein::state_store

#endif  // SKEIN_SERVICES_STATE_STORE_REDIS_BACKEND_H_
