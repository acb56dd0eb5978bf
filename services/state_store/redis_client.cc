#include "services/state_store/redis_client.h"

#include <hiredis/hiredis.h>
#include <sys/time.h>

#include <set>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "base/absl_bridge.h"

namespace skein::state_store {
namespace {

timeval TimevalOf(absl::Duration d) {
  timeval tv{};
  tv.tv_sec = static_cast<time_t>(absl::ToInt64Seconds(d));
  tv.tv_usec = static_cast<suseconds_t>(absl::ToInt64Microseconds(d) % 1'000'000);
  return tv;
}

// CRC16-CCITT (XMODEM: polynomial 0x1021, initial value 0), Redis Cluster's key hash.
uint16_t Crc16(std::string_view data) {
  uint16_t crc = 0;
  for (unsigned char c : data) {
    crc ^= static_cast<uint16_t>(c) << 8;
    for (int bit = 0; bit < 8; ++bit) {
      crc = (crc & 0x8000) != 0 ? static_cast<uint16_t>((crc << 1) ^ 0x1021)
                                : static_cast<uint16_t>(crc << 1);
    }
  }
  return crc;
}

std::string_view ReplyText(const redisReply* r) {
  return r->str == nullptr ? std::string_view() : std::string_view(r->str, r->len);
}

// "MOVED 3999 127.0.0.1:6381" / "ASK 3999 127.0.0.1:6381": the target, or "".
std::string Redirect(const redisReply* r, bool* ask) {
  if (r->type != REDIS_REPLY_ERROR) return "";
  std::string_view text = ReplyText(r);
  const bool moved = text.rfind("MOVED ", 0) == 0;
  *ask = text.rfind("ASK ", 0) == 0;
  if (!moved && !*ask) return "";
  const size_t space = text.rfind(' ');
  return std::string(text.substr(space + 1));
}

// The one reply of a one-command pipeline; an error reply becomes INTERNAL.
absl::StatusOr<RedisReply> SingleReply(const RedisArgs& args,
                                       absl::StatusOr<std::vector<RedisReply>> replies) {
  if (!replies.ok()) return replies.status();
  RedisReply reply = std::move((*replies)[0]);
  if (reply->type == REDIS_REPLY_ERROR) {
    return absl::InternalError(
        absl::StrCat("redis ", base::AsAbsl(args[0]), ": ", base::AsAbsl(ReplyText(reply.get()))));
  }
  return reply;
}

}  // namespace

void RedisReplyDeleter::operator()(redisReply* reply) const {
  if (reply != nullptr) freeReplyObject(reply);
}

uint16_t RedisSlot(std::string_view key) {
  const size_t open = key.find('{');
  if (open != std::string_view::npos) {
    const size_t close = key.find('}', open + 1);
    if (close != std::string_view::npos && close > open + 1) {
      return Crc16(key.substr(open + 1, close - open - 1)) & 16383;
    }
  }
  return Crc16(key) & 16383;
}

absl::StatusOr<std::unique_ptr<RedisConnection>> RedisConnection::Open(
    const std::string& host, int port, const RedisOptions& options) {
  std::unique_ptr<RedisTlsBridge> bridge;
  redisContext* ctx = nullptr;
  if (!options.tls.ca_file.empty()) {
    int fd = -1;
    absl::StatusOr<std::unique_ptr<RedisTlsBridge>> made =
        RedisTlsBridge::Connect(host, port, options.tls, options.connect_timeout, &fd);
    if (!made.ok()) return made.status();
    bridge = *std::move(made);
    ctx = redisConnectFd(fd);
  } else {
    ctx = redisConnectWithTimeout(host.c_str(), port, TimevalOf(options.connect_timeout));
  }
  if (ctx == nullptr) return absl::UnavailableError("redis: cannot allocate a connection");
  auto connection = std::unique_ptr<RedisConnection>(new RedisConnection(ctx));
  connection->tls_ = std::move(bridge);
  if (ctx->err != 0) {
    return absl::UnavailableError(
        absl::StrCat("redis: cannot connect to ", host, ":", port, ": ", ctx->errstr));
  }
  redisSetTimeout(ctx, TimevalOf(options.io_timeout));
  if (!options.password.empty()) {
    RedisArgs auth = {"AUTH"};
    if (!options.username.empty()) auth.push_back(options.username);
    auth.push_back(options.password);
    absl::StatusOr<RedisReply> ok = connection->Run(auth);
    if (!ok.ok()) {
      return absl::PermissionDeniedError(
          absl::StrCat("redis: AUTH refused by ", host, ":", port, ": ", ok.status().message()));
    }
  }
  return connection;
}

RedisConnection::~RedisConnection() { redisFree(ctx_); }

absl::Status RedisConnection::Broken() {
  broken_ = true;
  return absl::UnavailableError(
      absl::StrCat("redis: ", ctx_->errstr[0] ? ctx_->errstr : "connection lost"));
}

absl::StatusOr<std::vector<RedisReply>> RedisConnection::Pipeline(
    const std::vector<RedisArgs>& commands) {
  for (const RedisArgs& args : commands) {
    std::vector<const char*> argv;
    std::vector<size_t> lengths;
    for (std::string_view a : args) {
      argv.push_back(a.data());
      lengths.push_back(a.size());
    }
    if (redisAppendCommandArgv(ctx_, static_cast<int>(argv.size()), argv.data(), lengths.data()) !=
        REDIS_OK) {
      return Broken();
    }
  }
  std::vector<RedisReply> replies;
  for (size_t i = 0; i < commands.size(); ++i) {
    void* raw = nullptr;
    if (redisGetReply(ctx_, &raw) != REDIS_OK || raw == nullptr) return Broken();
    replies.emplace_back(static_cast<redisReply*>(raw));
  }
  return replies;
}

absl::StatusOr<RedisReply> RedisConnection::Run(const RedisArgs& args) {
  return SingleReply(args, Pipeline({args}));
}

absl::StatusOr<std::unique_ptr<RedisClient>> RedisClient::Connect(const RedisOptions& options) {
  if (options.port <= 0 || options.port > 65535) {
    return absl::InvalidArgumentError(absl::StrCat("redis: bad port ", options.port));
  }
  auto client = std::unique_ptr<RedisClient>(new RedisClient(options));
  const std::string seed = absl::StrCat(options.host, ":", options.port);
  absl::StatusOr<std::unique_ptr<RedisConnection>> connection = client->Acquire(seed);
  if (!connection.ok()) return connection.status();
  absl::StatusOr<RedisReply> pong = (*connection)->Run({"PING"});
  if (!pong.ok()) return pong.status();
  absl::StatusOr<RedisReply> info = (*connection)->Run({"INFO", "cluster"});
  client->Release(seed, *std::move(connection));
  if (!info.ok()) return info.status();
  client->cluster_ = ReplyText(info->get()).find("cluster_enabled:1") != std::string_view::npos;
  if (client->cluster_) {
    if (absl::Status s = client->RefreshSlots(); !s.ok()) return s;
  }
  return client;
}

absl::Status RedisClient::RefreshSlots() {
  const std::string seed = absl::StrCat(options_.host, ":", options_.port);
  // Ask any node we know, the configured one first.
  std::vector<std::string> nodes = {seed};
  {
    absl::MutexLock lock(&mu_);
    for (const auto& [first, range] : slots_) nodes.push_back(range.second);
  }
  absl::Status last = absl::UnavailableError("redis: no cluster node answered CLUSTER SLOTS");
  for (const std::string& node : nodes) {
    absl::StatusOr<std::unique_ptr<RedisConnection>> connection = Acquire(node);
    if (!connection.ok()) {
      last = connection.status();
      continue;
    }
    absl::StatusOr<RedisReply> reply = (*connection)->Run({"CLUSTER", "SLOTS"});
    Release(node, *std::move(connection));
    if (!reply.ok()) {
      last = reply.status();
      continue;
    }
    std::map<uint16_t, std::pair<uint16_t, std::string>> slots;
    const redisReply* r = reply->get();
    for (size_t i = 0; r->type == REDIS_REPLY_ARRAY && i < r->elements; ++i) {
      const redisReply* range = r->element[i];
      if (range->type != REDIS_REPLY_ARRAY || range->elements < 3) continue;
      const redisReply* master = range->element[2];
      if (master->type != REDIS_REPLY_ARRAY || master->elements < 2) continue;
      std::string host(ReplyText(master->element[0]));
      // A node that reports an empty host means "the address you reached me at".
      if (host.empty()) host = node.substr(0, node.rfind(':'));
      slots[static_cast<uint16_t>(range->element[0]->integer)] = {
          static_cast<uint16_t>(range->element[1]->integer),
          absl::StrCat(host, ":", master->element[1]->integer)};
    }
    if (slots.empty()) {
      last = absl::UnavailableError("redis: the cluster serves no slots yet");
      continue;
    }
    absl::MutexLock lock(&mu_);
    slots_ = std::move(slots);
    return absl::OkStatus();
  }
  return last;
}

std::string RedisClient::NodeFor(std::string_view key) {
  if (!cluster_) return absl::StrCat(options_.host, ":", options_.port);
  const uint16_t slot = RedisSlot(key);
  absl::MutexLock lock(&mu_);
  auto it = slots_.upper_bound(slot);
  if (it != slots_.begin()) {
    --it;
    if (slot <= it->second.first) return it->second.second;
  }
  return absl::StrCat(options_.host, ":", options_.port);  // it answers MOVED
}

absl::StatusOr<std::unique_ptr<RedisConnection>> RedisClient::Acquire(const std::string& node) {
  {
    absl::MutexLock lock(&mu_);
    auto& idle = idle_[node];
    if (!idle.empty()) {
      std::unique_ptr<RedisConnection> connection = std::move(idle.back());
      idle.pop_back();
      return connection;
    }
  }
  const size_t colon = node.rfind(':');
  int port = 0;
  if (colon == std::string::npos || !absl::SimpleAtoi(node.substr(colon + 1), &port)) {
    return absl::InternalError(absl::StrCat("redis: bad node address ", node));
  }
  return RedisConnection::Open(node.substr(0, colon), port, options_);
}

void RedisClient::Release(const std::string& node, std::unique_ptr<RedisConnection> connection) {
  if (connection->broken()) return;
  absl::MutexLock lock(&mu_);
  auto& idle = idle_[node];
  if (static_cast<int>(idle.size()) < options_.max_idle_connections) {
    idle.push_back(std::move(connection));
  }
}

absl::StatusOr<std::vector<RedisReply>> RedisClient::Pipeline(
    std::string_view key, const std::vector<RedisArgs>& commands) {
  std::string node = NodeFor(key);
  bool asking = false;
  for (int attempt = 0;; ++attempt) {
    absl::StatusOr<std::unique_ptr<RedisConnection>> connection = Acquire(node);
    if (!connection.ok()) {
      // A master that went away: its slots may have moved.
      if (cluster_ && attempt < 3 && RefreshSlots().ok()) {
        node = NodeFor(key);
        continue;
      }
      return connection.status();
    }
    std::vector<RedisArgs> sent;
    if (asking) sent.push_back({"ASKING"});
    sent.insert(sent.end(), commands.begin(), commands.end());
    absl::StatusOr<std::vector<RedisReply>> replies = (*connection)->Pipeline(sent);
    Release(node, *std::move(connection));
    if (!replies.ok()) {
      if (cluster_ && attempt < 3 && RefreshSlots().ok()) {
        node = NodeFor(key);
        continue;
      }
      return replies.status();
    }
    if (asking) replies->erase(replies->begin());
    std::string target;
    bool ask = false;
    for (const RedisReply& r : *replies) {
      target = Redirect(r.get(), &ask);
      if (!target.empty()) break;
    }
    if (target.empty()) return replies;
    if (attempt >= 5) {
      return absl::UnavailableError(
          absl::StrCat("redis: key ", base::AsAbsl(key), " is still redirected after 5 tries"));
    }
    // MOVED: the slot map is stale. ASK: this one call goes to the migration target.
    if (!ask) (void)RefreshSlots();
    asking = ask;
    node = target;
  }
}

absl::StatusOr<RedisReply> RedisClient::Run(std::string_view key, const RedisArgs& args) {
  return SingleReply(args, Pipeline(key, {args}));
}

absl::Status RedisClient::ForEachMaster(
    const std::function<absl::Status(RedisConnection&)>& visit) {
  std::set<std::string> masters;
  if (cluster_) {
    if (absl::Status s = RefreshSlots(); !s.ok()) return s;
    absl::MutexLock lock(&mu_);
    for (const auto& [first, range] : slots_) masters.insert(range.second);
  } else {
    masters.insert(absl::StrCat(options_.host, ":", options_.port));
  }
  for (const std::string& node : masters) {
    absl::StatusOr<std::unique_ptr<RedisConnection>> connection = Acquire(node);
    if (!connection.ok()) return connection.status();
    absl::Status s = visit(**connection);
    if (!s.ok()) return s;
    Release(node, *std::move(connection));
  }
  return absl::OkStatus();
}

}  // namespace skein::state_store
