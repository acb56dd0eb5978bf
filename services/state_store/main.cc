// skein-state-store: durable, checksummed session-state snapshots.
//
// Backends: --backend rocksdb (default; files under --data-dir), redis (--redis HOST:PORT: a
// server, or any node of a Redis Cluster; the index is kept in Redis too, so several stores
// on one Redis share one view: --shared-index), memory (lost on exit). Without --data-dir the
// RocksDB store lives in a fresh directory under $TMPDIR (named in the log, removed when the store
// stops), so a bare start never clashes with another store; pass --data-dir for a store that
// survives restarts.
#include <signal.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "CLI/CLI.hpp"
#include "absl/strings/str_cat.h"
#include "services/common/logging.h"
#include "services/common/server_options.h"
#include "services/common/service_host.h"
#include "services/state_store/allocator.h"
#include "services/state_store/memory_backend.h"
#include "services/state_store/redis_backend.h"
#include "services/state_store/redis_store_index.h"
#include "services/state_store/rocksdb_backend.h"
#include "services/state_store/state_store_service.h"
#include "services/state_store/store.h"

namespace {

struct Flags {
  std::string backend = "rocksdb";
  std::string data_dir;
  std::string fsync = "interval";
  double fsync_interval_seconds = 1;
  std::string redis = "127.0.0.1:6379";
  std::string redis_key_prefix = "skein";
  bool shared_index = true;
  std::string redis_password_file;
  std::string redis_username;
  std::string redis_tls_ca;
  std::string redis_tls_cert;
  std::string redis_tls_key;
  uint64_t capacity_bytes = 4ull << 30;
  uint64_t max_blob_bytes = 256ull << 20;
  uint64_t default_ttl_seconds = 0;
  uint64_t max_lease_seconds = 30 * 86400;  // sessions pin their state for their TTL
  uint64_t snapshot_timeout_seconds = 60;
  std::string compression = "none";
  int zstd_level = 1;
  double sweep_interval_seconds = 1;
  uint64_t max_pending_bytes = 0;
  uint64_t max_open_snapshots = 4096;
  uint64_t max_inflight_put_bytes = 1ull << 30;
  uint64_t max_inflight_get_bytes = 1ull << 30;
  double stream_idle_seconds = 60;
  int io_threads = 8;
};

// Removes the temporary data directory (when one was made) once the store has closed it: a
// store started without --data-dir is ephemeral.
struct TemporaryDataDir {
  std::string path;
  ~TemporaryDataDir() {
    if (path.empty()) return;
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
};

int Fail(const std::string& binary, const std::string& message) {
  std::fprintf(stderr, "%s: error: %s\n", binary.c_str(), message.c_str());
  return 1;
}

std::string MakeDefaultDataDir() {
  const char* tmp = std::getenv("TMPDIR");
  std::string pattern = std::string(tmp && *tmp ? tmp : "/tmp") + "/skein-state-XXXXXX";
  std::vector<char> buffer(pattern.begin(), pattern.end());
  buffer.push_back('\0');
  if (mkdtemp(buffer.data()) == nullptr) return "";
  return buffer.data();
}

// The Redis AUTH credentials the flags name.
absl::Status RedisAuth(const Flags& flags, skein::state_store::RedisOptions* options) {
  options->username = flags.redis_username;
  options->tls.ca_file = flags.redis_tls_ca;
  options->tls.cert_file = flags.redis_tls_cert;
  options->tls.key_file = flags.redis_tls_key;
  if (flags.redis_password_file.empty()) return absl::OkStatus();
  std::ifstream in(flags.redis_password_file);
  if (!in || !std::getline(in, options->password) || options->password.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--redis-password-file: cannot read a password from ", flags.redis_password_file));
  }
  return absl::OkStatus();
}

// Opens the backend the flags choose; for RocksDB, `*data_dir` receives the directory used.
absl::StatusOr<std::unique_ptr<skein::state_store::StorageBackend>> OpenBackend(
    const Flags& flags, std::string* data_dir) {
  using skein::state_store::MemoryBackend;
  using skein::state_store::RedisBackend;
  using skein::state_store::RedisOptions;
  using skein::state_store::RocksDbBackend;
  using skein::state_store::RocksDbOptions;
  using skein::state_store::StorageBackend;
  if (flags.backend == "memory") return std::make_unique<MemoryBackend>();
  if (flags.backend == "redis") {
    RedisOptions options;
    if (absl::Status s = skein::SplitHostPort(flags.redis, &options.host, &options.port); !s.ok()) {
      return absl::InvalidArgumentError(absl::StrCat("--redis: ", s.message()));
    }
    options.key_prefix = flags.redis_key_prefix;
    if (absl::Status s = RedisAuth(flags, &options); !s.ok()) return s;
    absl::StatusOr<std::unique_ptr<RedisBackend>> backend = RedisBackend::Connect(options);
    if (!backend.ok()) return backend.status();
    return std::unique_ptr<StorageBackend>(*std::move(backend));
  }
  RocksDbOptions options;
  options.path = flags.data_dir;
  if (options.path.empty()) {
    options.path = MakeDefaultDataDir();
    if (options.path.empty()) return absl::UnavailableError("cannot create a temporary --data-dir");
  }
  *data_dir = options.path;
  absl::StatusOr<skein::state_store::FsyncPolicy> fsync =
      skein::state_store::ParseFsyncPolicy(flags.fsync);
  if (!fsync.ok()) return fsync.status();
  options.fsync = *fsync;
  options.fsync_interval = absl::Seconds(flags.fsync_interval_seconds);
  absl::StatusOr<std::unique_ptr<RocksDbBackend>> backend = RocksDbBackend::Open(options);
  if (!backend.ok()) return backend.status();
  return std::unique_ptr<StorageBackend>(*std::move(backend));
}

}  // namespace

int main(int argc, char** argv) {
  skein::state_store::KeepLargeAllocationsInHeap();
  skein::ServerOptions options;
  options.service_name = "skein-state-store";
  options.listen = "127.0.0.1:7720";
  options.metrics_port = 9720;

  CLI::App app{"skein-state-store: durable, checksummed session-state snapshots",
               "skein-state-store"};
  skein::AddServerFlags(app, &options);
  Flags flags;
  app.add_option("--backend", flags.backend, "Storage: rocksdb (local disk), redis or memory")
      ->capture_default_str()
      ->check(CLI::IsMember({"rocksdb", "redis", "memory"}));
  app.add_option("--data-dir", flags.data_dir,
                 "RocksDB directory (default: a new directory under $TMPDIR, removed on exit)");
  app.add_option("--fsync", flags.fsync,
                 "RocksDB: when writes reach the disk: always (before each write is "
                 "acknowledged), interval (in the background, every --fsync-interval-seconds) "
                 "or never (left to the kernel). Every acknowledged write survives a crash of "
                 "the process in all three; see docs/architecture.md")
      ->capture_default_str()
      ->check(CLI::IsMember({"always", "interval", "never"}));
  app.add_option("--fsync-interval-seconds", flags.fsync_interval_seconds,
                 "RocksDB with --fsync interval: how often written data is flushed")
      ->capture_default_str()
      ->check(CLI::Range(0.001, 3600.0));
  app.add_option("--redis", flags.redis, "Redis server HOST:PORT (--backend redis)")
      ->capture_default_str();
  app.add_option("--redis-password-file", flags.redis_password_file,
                 "File holding the Redis AUTH password (first line)");
  app.add_option("--redis-username", flags.redis_username, "Redis ACL user for AUTH");
  app.add_option("--redis-tls-ca", flags.redis_tls_ca,
                 "PEM CA of a Redis served over TLS (its --tls-port): connect with TLS");
  app.add_option("--redis-tls-cert", flags.redis_tls_cert,
                 "PEM client certificate for Redis TLS (when Redis asks for one)");
  app.add_option("--redis-tls-key", flags.redis_tls_key, "PEM key of --redis-tls-cert");
  app.add_option("--shared-index", flags.shared_index,
                 "With --backend redis: keep the index (keys, LRU, pins, TTLs, capacity) in Redis, "
                 "shared by every store on it (default true)");
  app.add_option("--redis-key-prefix", flags.redis_key_prefix,
                 "Prefix of every Redis key this store uses")
      ->capture_default_str();
  app.add_option("--capacity-bytes", flags.capacity_bytes,
                 "Byte budget; least-recently-used unpinned entries are evicted beyond it "
                 "(0: unlimited)")
      ->capture_default_str();
  app.add_option("--max-blob-bytes", flags.max_blob_bytes, "Largest blob (one part) accepted")
      ->capture_default_str()
      ->check(CLI::Range(uint64_t{1}, uint64_t{4} << 30));
  app.add_option("--default-ttl-seconds", flags.default_ttl_seconds,
                 "TTL of entries written without one (0: no expiry)")
      ->capture_default_str();
  app.add_option("--max-lease-seconds", flags.max_lease_seconds,
                 "Longest pin lease (30 days: a router pins a session for its TTL)")
      ->capture_default_str()
      ->check(CLI::Range(uint64_t{1}, uint64_t{365} * 24 * 3600));
  app.add_option("--snapshot-timeout-seconds", flags.snapshot_timeout_seconds,
                 "How long a snapshot may stay open when BeginSnapshot gives no time-out")
      ->capture_default_str()
      ->check(CLI::Range(uint64_t{1}, uint64_t{24} * 3600));
  app.add_option("--compression", flags.compression, "Compress stored blobs: none or zstd")
      ->capture_default_str()
      ->check(CLI::IsMember({"none", "zstd"}));
  app.add_option("--zstd-level", flags.zstd_level, "zstd level with --compression zstd")
      ->capture_default_str()
      ->check(CLI::Range(1, 19));
  app.add_option("--sweep-interval-seconds", flags.sweep_interval_seconds,
                 "How often expired entries and snapshots are removed")
      ->capture_default_str()
      ->check(CLI::Range(0.01, 3600.0));
  app.add_option("--max-pending-bytes", flags.max_pending_bytes,
                 "Stored bytes open snapshots' parts may hold together; beyond it a part is "
                 "refused (0: a quarter of --capacity-bytes)")
      ->capture_default_str();
  app.add_option("--max-open-snapshots", flags.max_open_snapshots,
                 "Snapshots open at once; beyond it BeginSnapshot is refused (0: no bound)")
      ->capture_default_str();
  app.add_option("--max-inflight-put-bytes", flags.max_inflight_put_bytes,
                 "Bytes that puts in progress may announce together (0: no bound)")
      ->capture_default_str();
  app.add_option("--max-inflight-get-bytes", flags.max_inflight_get_bytes,
                 "Bytes of blobs that gets in progress may hold together (0: no bound)")
      ->capture_default_str();
  app.add_option("--io-threads", flags.io_threads,
                 "Threads for the storage calls of put and get streams")
      ->capture_default_str()
      ->check(CLI::Range(1, 1024));
  app.add_option("--stream-idle-seconds", flags.stream_idle_seconds,
                 "Cancel a put or get stream that moves nothing for this long (0: never)")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 86400.0));
  if (auto exit_code = skein::ParseCommandLine(app, options.service_name, argc, argv)) {
    return *exit_code;
  }

  skein::ServiceHost host(options);
  std::string data_dir;
  // Declared before the backend and the store, so it outlives them.
  TemporaryDataDir temporary;
  absl::StatusOr<std::unique_ptr<skein::state_store::StorageBackend>> backend =
      OpenBackend(flags, &data_dir);
  if (flags.backend == "rocksdb" && flags.data_dir.empty()) temporary.path = data_dir;
  if (!backend.ok()) return Fail(options.service_name, std::string(backend.status().message()));

  skein::state_store::StoreOptions store_options;
  store_options.capacity_bytes = flags.capacity_bytes;
  store_options.max_blob_bytes = flags.max_blob_bytes;
  store_options.default_ttl = absl::Seconds(static_cast<int64_t>(flags.default_ttl_seconds));
  store_options.max_lease = absl::Seconds(static_cast<int64_t>(flags.max_lease_seconds));
  store_options.default_snapshot_timeout =
      absl::Seconds(static_cast<int64_t>(flags.snapshot_timeout_seconds));
  store_options.zstd_level = flags.compression == "zstd" ? flags.zstd_level : 0;
  store_options.max_pending_bytes = flags.max_pending_bytes;
  store_options.max_open_snapshots = flags.max_open_snapshots;
  std::unique_ptr<skein::state_store::StoreIndex> index;
  if (flags.backend == "redis" && flags.shared_index) {
    skein::state_store::RedisOptions redis;
    (void)skein::SplitHostPort(flags.redis, &redis.host, &redis.port);  // checked above
    redis.key_prefix = flags.redis_key_prefix;
    if (absl::Status s = RedisAuth(flags, &redis); !s.ok()) {
      return Fail(options.service_name, std::string(s.message()));
    }
    absl::StatusOr<std::unique_ptr<skein::state_store::RedisStoreIndex>> shared =
        skein::state_store::RedisStoreIndex::Connect(redis);
    if (!shared.ok()) return Fail(options.service_name, std::string(shared.status().message()));
    index = *std::move(shared);
  }
  absl::StatusOr<std::unique_ptr<skein::state_store::StateStore>> store =
      skein::state_store::StateStore::Open(*std::move(backend), store_options, nullptr,
                                           &host.metrics().registry(), std::move(index));
  if (!store.ok()) return Fail(options.service_name, std::string(store.status().message()));
  (*store)->StartSweeper(absl::Seconds(flags.sweep_interval_seconds));

  skein::state_store::ServiceOptions service_options;
  service_options.max_inflight_put_bytes = flags.max_inflight_put_bytes;
  service_options.max_inflight_get_bytes = flags.max_inflight_get_bytes;
  service_options.io_threads = flags.io_threads;
  service_options.stream_idle_timeout = absl::Seconds(flags.stream_idle_seconds);
  // Leave room for the message framing inside --max-message-bytes.
  service_options.max_chunk_bytes = static_cast<uint32_t>(
      std::max(4 << 10, std::min(4 << 20, options.max_message_bytes - (64 << 10))));
  service_options.default_chunk_bytes =
      std::min<uint32_t>(service_options.default_chunk_bytes, service_options.max_chunk_bytes);
  service_options.min_chunk_bytes =
      std::min<uint32_t>(service_options.min_chunk_bytes, service_options.max_chunk_bytes);
  skein::state_store::StateStoreServiceImpl service(store->get(), service_options);
  host.AddService(&service, "skein.v1.StateStoreService");

  // ServiceHost::Run(), with the store's own log lines once serving: a start-up failure
  // must stay a single line on stderr.
  if (absl::Status s = host.Start(); !s.ok()) {
    return Fail(options.service_name, std::string(s.message()));
  }
  skein::state_store::StoreIndex::Usage usage = (*store)->usage();
  skein::log::Info("state store opened", {{"backend", flags.backend},
                                          {"data_dir", data_dir},
                                          {"entries", absl::StrCat(usage.entries)},
                                          {"stored_bytes", absl::StrCat(usage.committed_bytes)},
                                          {"capacity_bytes", absl::StrCat(flags.capacity_bytes)}});
  if (flags.backend == "rocksdb" && flags.data_dir.empty()) {
    skein::log::Warning(
        "no --data-dir given: the store lives in a fresh temporary directory, removed when it "
        "stops",
        {{"data_dir", data_dir}});
  }
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  int signal_number = 0;
  sigwait(&signals, &signal_number);
  skein::log::Info("signal received",
                   {{"signal", signal_number == SIGTERM ? "SIGTERM" : "SIGINT"}});
  host.Shutdown();
  return 0;
}
