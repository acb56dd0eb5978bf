// Connections to one Redis server or to a Redis Cluster, for the Redis backend and the shared
// store index.
//
// Every call names a key that decides where it runs: on a single server, there; in a cluster,
// on the master serving the key's hash slot (CRC16 of its hash tag, as Redis computes it).
// The slot map comes from CLUSTER SLOTS and is refreshed when a node answers MOVED; an ASK
// (a slot being migrated) is followed to its target with ASKING. Keys of one call must share
// a slot (callers hash-tag them). Scans visit every master.
//
// Connections come from a small pool per node and are re-established after errors.
// Thread-safe.
#ifndef SKEIN_SERVICES_STATE_STORE_REDIS_CLIENT_H_
#define SKEIN_SERVICES_STATE_STORE_REDIS_CLIENT_H_

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "services/state_store/redis_tls.h"

struct redisContext;
struct redisReply;

namespace skein::state_store {

struct RedisOptions {
  // Any node of a cluster, or the server.
  std::string host = "127.0.0.1";
  int port = 6379;
  std::string key_prefix = "skein";
  // TLS to Redis (a server started with --tls-port): set `tls.ca_file` to use it.
  RedisTlsOptions tls;
  // Redis AUTH password (requirepass, or an ACL user's with `username`); empty: none.
  std::string username;
  std::string password;
  // Connections kept open for reuse per node; more are opened under load and closed after.
  int max_idle_connections = 8;
  absl::Duration connect_timeout = absl::Seconds(2);
  absl::Duration io_timeout = absl::Seconds(30);
  // Largest list element of a blob.
  size_t chunk_bytes = 1 << 20;
};

struct RedisReplyDeleter {
  void operator()(redisReply* reply) const;
};
using RedisReply = std::unique_ptr<redisReply, RedisReplyDeleter>;
using RedisArgs = std::vector<std::string_view>;

// The hash slot of `key` (0..16383): CRC16 of the text between the first '{' and the next
// '}' when that is non-empty, else of the whole key.
uint16_t RedisSlot(std::string_view key);

// One hiredis connection. Not thread-safe: owned by one caller at a time through the pool.
class RedisConnection {
 public:
  static absl::StatusOr<std::unique_ptr<RedisConnection>> Open(const std::string& host, int port,
                                                               const RedisOptions& options);
  ~RedisConnection();
  bool broken() const { return broken_; }
  // Sends every command, then reads every reply (one round trip). Error replies are returned
  // as replies; only I/O failures are errors (and leave the connection broken).
  absl::StatusOr<std::vector<RedisReply>> Pipeline(const std::vector<RedisArgs>& commands);
  // One command; an error reply becomes INTERNAL.
  absl::StatusOr<RedisReply> Run(const RedisArgs& args);

 private:
  explicit RedisConnection(redisContext* ctx) : ctx_(ctx) {}
  absl::Status Broken();
  redisContext* ctx_;
  bool broken_ = false;
  // With TLS: the bridge hiredis talks through (outlives ctx_, which closes its side first).
  std::unique_ptr<RedisTlsBridge> tls_;
};

class RedisClient {
 public:
  // Connects to the configured node and learns whether it is part of a cluster (and if so
  // the slot map). Errors: UNAVAILABLE (unreachable); INVALID_ARGUMENT (bad options).
  static absl::StatusOr<std::unique_ptr<RedisClient>> Connect(const RedisOptions& options);

  const RedisOptions& options() const { return options_; }
  bool cluster() const { return cluster_; }

  // Runs `commands` as one pipeline on the node serving `key`'s slot, following
  // redirections. Error replies other than redirections are returned as replies.
  absl::StatusOr<std::vector<RedisReply>> Pipeline(std::string_view key,
                                                   const std::vector<RedisArgs>& commands);
  // One command on `key`'s node; an error reply becomes INTERNAL.
  absl::StatusOr<RedisReply> Run(std::string_view key, const RedisArgs& args);
  // Calls `visit` with a connection to each master in turn (one server: itself).
  absl::Status ForEachMaster(const std::function<absl::Status(RedisConnection&)>& visit);

 private:
  explicit RedisClient(RedisOptions options) : options_(std::move(options)) {}
  absl::Status RefreshSlots();
  std::string NodeFor(std::string_view key);
  absl::StatusOr<std::unique_ptr<RedisConnection>> Acquire(const std::string& node);
  void Release(const std::string& node, std::unique_ptr<RedisConnection> connection);

  const RedisOptions options_;
  bool cluster_ = false;
  absl::Mutex mu_;
  // Slot ranges: first slot -> (last slot, "host:port" of the master).
  std::map<uint16_t, std::pair<uint16_t, std::string>> slots_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, std::vector<std::unique_ptr<RedisConnection>>> idle_ ABSL_GUARDED_BY(mu_);
};

}  // namespace skein::state_store

#endif  // SKEIN_SERVICES_STATE_STORE_REDIS_CLIENT_H_
