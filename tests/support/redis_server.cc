#include "tests/support/redis_server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <random>
#include <sstream>
#include <thread>

namespace skein::testing {
namespace {

// True on "+PONG" (a server still loading its AOF answers "-LOADING" and is not ready yet).
bool Ping(int port) { return RedisCommand(port, "PING").rfind("+PONG", 0) == 0; }

// True if 127.0.0.1:port can be bound right now.
bool Bindable(int port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return false;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  const bool ok = bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0;
  close(fd);
  return ok;
}

// A port for a cluster node: Redis Cluster also listens on port + 10000 (its bus), so the
// port must be at most 55535 and both must be free.
int PickClusterPort() {
  static std::mt19937 rng(std::random_device{}());
  for (int attempt = 0; attempt < 200; ++attempt) {
    const int port = 20000 + static_cast<int>(rng() % 35000);
    if (Bindable(port) && Bindable(port + 10000)) return port;
  }
  return PickUnusedPort();
}

}  // namespace

std::string RedisServer::FindBinary() {
  if (const char* env = std::getenv("SKEIN_REDIS_SERVER"); env && *env) return env;
  const char* path = std::getenv("PATH");
  std::stringstream dirs(path ? path : "/usr/bin:/usr/local/bin");
  for (std::string dir; std::getline(dirs, dir, ':');) {
    std::filesystem::path candidate = std::filesystem::path(dir) / "redis-server";
    if (access(candidate.c_str(), X_OK) == 0) return candidate.string();
  }
  if (access("/usr/bin/redis-server", X_OK) == 0) return "/usr/bin/redis-server";
  return "";
}

std::unique_ptr<RedisServer> RedisServer::Start(std::string* why,
                                                std::vector<std::string> extra_args) {
  std::string binary = FindBinary();
  if (binary.empty()) {
    *why = "redis-server not found (install it with tools/setup/install_deps.sh)";
    return nullptr;
  }
  const bool cluster =
      std::find(extra_args.begin(), extra_args.end(), "--cluster-enabled") != extra_args.end();
  // A port picked as free can be taken before the server binds it; try a few.
  for (int attempt = 0; attempt < 3; ++attempt) {
    auto server = std::unique_ptr<RedisServer>(new RedisServer(
        binary, MakeTempDir("redis"), cluster ? PickClusterPort() : PickUnusedPort(), extra_args));
    if (server->Launch(why)) return server;
  }
  return nullptr;
}

RedisServer::~RedisServer() { Kill(); }

bool RedisServer::Launch(std::string* why) {
  std::vector<std::string> argv = {binary_,
                                   "--port",
                                   std::to_string(port_),
                                   "--bind",
                                   "127.0.0.1",
                                   "--dir",
                                   dir_,
                                   "--save",
                                   "",
                                   "--appendonly",
                                   "yes",
                                   "--appendfsync",
                                   "always",
                                   "--daemonize",
                                   "no",
                                   "--protected-mode",
                                   "yes",
                                   "--loglevel",
                                   "warning"};
  argv.insert(argv.end(), extra_.begin(), extra_.end());
  process_ = std::make_unique<ChildProcess>(argv);
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (std::chrono::steady_clock::now() < deadline) {
    if (!process_->Running()) {
      *why = "redis-server exited: " + process_->Stdout() + process_->Stderr();
      return false;
    }
    if (Ping(port_)) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  *why = "redis-server did not answer PING: " + process_->Stdout();
  return false;
}

void RedisServer::Kill() {
  if (process_) {
    process_->Signal(SIGKILL);
    process_->Wait(std::chrono::seconds(10));
    process_.reset();
  }
}

bool RedisServer::Restart(std::string* why) {
  Kill();
  return Launch(why);
}

std::string RedisCommand(int port, const std::string& command) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return "";
  timeval tv{2, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  std::string reply;
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0) {
    const std::string line = command + "\r\n";
    if (send(fd, line.data(), line.size(), 0) == static_cast<ssize_t>(line.size())) {
      char buf[4096];
      ssize_t n = recv(fd, buf, sizeof(buf), 0);
      if (n > 0) reply.assign(buf, static_cast<size_t>(n));
    }
  }
  close(fd);
  return reply;
}

std::unique_ptr<RedisCluster> RedisCluster::Start(int masters, std::string* why) {
  const std::string server = RedisServer::FindBinary();
  if (server.empty()) {
    *why = "redis-server not found (install it with tools/setup/install_deps.sh)";
    return nullptr;
  }
  const std::string cli = (std::filesystem::path(server).parent_path() / "redis-cli").string();
  if (access(cli.c_str(), X_OK) != 0) {
    *why = "redis-cli not found beside " + server + " (install redis-tools)";
    return nullptr;
  }
  auto cluster = std::unique_ptr<RedisCluster>(new RedisCluster());
  std::vector<std::string> create = {cli, "--cluster", "create"};
  for (int i = 0; i < masters; ++i) {
    std::unique_ptr<RedisServer> node =
        RedisServer::Start(why, {"--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
                                 "--cluster-node-timeout", "2000"});
    if (node == nullptr) return nullptr;
    create.push_back(node->address());
    cluster->nodes_.push_back(std::move(node));
  }
  create.insert(create.end(), {"--cluster-replicas", "0", "--cluster-yes"});
  ChildProcess made(create);
  if (made.Wait(std::chrono::seconds(60)).value_or(-1) != 0) {
    *why = "redis-cli --cluster create failed: " + made.Stdout() + made.Stderr();
    return nullptr;
  }
  // Every node must agree the cluster is up before clients use it.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  for (const auto& node : cluster->nodes_) {
    while (RedisCommand(node->port(), "CLUSTER INFO").find("cluster_state:ok") ==
           std::string::npos) {
      if (std::chrono::steady_clock::now() > deadline) {
        *why = "the Redis Cluster did not reach cluster_state:ok";
        return nullptr;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  }
  return cluster;
}

}  // namespace skein::testing
