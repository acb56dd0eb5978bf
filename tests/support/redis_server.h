// A private redis-server for a test: started on a free loopback port with its files in a
// temporary directory, killed when the object goes. Persistence is the strict kind the state
// store documents for Redis: AOF on, fsync on every write (`appendfsync always`), no RDB
// snapshots, so every acknowledged write survives a SIGKILL of the server.
// Not thread-safe; one object per server.
#ifndef SKEIN_TESTS_SUPPORT_REDIS_SERVER_H_
#define SKEIN_TESTS_SUPPORT_REDIS_SERVER_H_

#include <memory>
#include <string>
#include <vector>

#include "tests/support/child_process.h"

namespace skein::testing {

class RedisServer {
 public:
  // The redis-server binary: $SKEIN_REDIS_SERVER, else the first on $PATH; empty if none.
  static std::string FindBinary();

  // Starts a server and waits until it answers PING. nullptr (with `*why`) on failure.
  // `extra_args` are added to its command line (e.g. cluster mode).
  static std::unique_ptr<RedisServer> Start(std::string* why,
                                            std::vector<std::string> extra_args = {});
  ~RedisServer();

  int port() const { return port_; }
  std::string address() const { return "127.0.0.1:" + std::to_string(port_); }
  const std::string& dir() const { return dir_; }

  // SIGKILL, as a crash would.
  void Kill();
  // Starts the server again on the same port and directory (it reloads its AOF) and waits
  // until it answers PING. False (with `*why`) on failure.
  bool Restart(std::string* why);

 private:
  RedisServer(std::string binary, std::string dir, int port, std::vector<std::string> extra)
      : binary_(std::move(binary)), dir_(std::move(dir)), port_(port), extra_(std::move(extra)) {}
  bool Launch(std::string* why);

  std::string binary_;
  std::string dir_;
  int port_;
  std::vector<std::string> extra_;
  std::unique_ptr<ChildProcess> process_;
};

// A Redis Cluster of private servers (cluster mode, the same strict persistence), its slots
// spread over `masters` masters with no replicas, created with `redis-cli --cluster create`.
class RedisCluster {
 public:
  // nullptr (with `*why`) on failure, e.g. no redis-cli.
  static std::unique_ptr<RedisCluster> Start(int masters, std::string* why);
  // One node's address: clients learn the rest from it.
  std::string address() const { return nodes_.front()->address(); }
  RedisServer& node(int i) { return *nodes_[static_cast<size_t>(i)]; }
  int size() const { return static_cast<int>(nodes_.size()); }

 private:
  std::vector<std::unique_ptr<RedisServer>> nodes_;
};

// Sends one inline command to 127.0.0.1:port and returns the raw reply ("" on failure).
std::string RedisCommand(int port, const std::string& command);

}  // namespace skein::testing

#endif  // SKEIN_TESTS_SUPPORT_REDIS_SERVER_H_
