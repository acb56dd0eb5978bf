#include "services/state_store/redis_backend.h"

#include <hiredis/hiredis.h>
#include <sys/time.h>

#include <functional>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "base/absl_bridge.h"
#include "xxhash.h"

namespace skein::state_store {
namespace {

using Reply = RedisReply;
using Args = RedisArgs;

// Atomically checks a batch's expectations and applies its changes. KEYS are the objects;
// ARGV[1] is the number of operations, then four arguments per operation: kind, index into
// KEYS, value, expiry (Unix ms; 0 = none).
constexpr std::string_view kApplyScript = R"lua(
local n = tonumber(ARGV[1])
for i = 0, n - 1 do
  local kind = ARGV[2 + 4 * i]
  local key = KEYS[tonumber(ARGV[3 + 4 * i])]
  if kind == 'expect' then
    if redis.call('GET', key) ~= ARGV[4 + 4 * i] then return 'conflict ' .. key end
  elseif kind == 'absent' then
    if redis.call('EXISTS', key) == 1 then return 'conflict ' .. key end
  elseif kind == 'blob' then
    if redis.call('EXISTS', key) == 0 then return 'conflict ' .. key end
  end
end
for i = 0, n - 1 do
  local kind = ARGV[2 + 4 * i]
  local key = KEYS[tonumber(ARGV[3 + 4 * i])]
  local expiry = tonumber(ARGV[5 + 4 * i])
  if kind == 'put' then
    redis.call('SET', key, ARGV[4 + 4 * i])
    if expiry > 0 then redis.call('PEXPIREAT', key, expiry) end
  elseif kind == 'del' then
    redis.call('DEL', key)
  elseif kind == 'expire' then
    if expiry > 0 then redis.call('PEXPIREAT', key, expiry) else redis.call('PERSIST', key) end
  end
end
return 'ok'
)lua";

// Unix milliseconds for PEXPIREAT; 0 means "no expiry".
int64_t ExpiryMillis(absl::Time expiry) {
  if (expiry == absl::InfiniteFuture()) return 0;
  return std::max<int64_t>(1, absl::ToUnixMillis(expiry));
}

std::string GlobEscape(std::string_view text) {
  std::string out;
  for (char c : text) {
    if (c == '*' || c == '?' || c == '[' || c == ']' || c == '\\') out.push_back('\\');
    out.push_back(c);
  }
  return out;
}

}  // namespace

absl::StatusOr<std::unique_ptr<RedisBackend>> RedisBackend::Connect(const RedisOptions& options) {
  if (options.chunk_bytes == 0) return absl::InvalidArgumentError("redis: chunk_bytes is 0");
  if (options.key_prefix.empty() || options.key_prefix.find_first_of("{}: ") != std::string::npos) {
    return absl::InvalidArgumentError(
        absl::StrCat("redis: key prefix \"", options.key_prefix,
                     "\" must be non-empty and free of '{', '}', ':' and spaces"));
  }
  absl::StatusOr<std::unique_ptr<RedisClient>> client = RedisClient::Connect(options);
  if (!client.ok()) return client.status();
  return std::unique_ptr<RedisBackend>(new RedisBackend(*std::move(client)));
}

RedisBackend::RedisBackend(std::unique_ptr<RedisClient> client)
    : options_(client->options()), client_(std::move(client)) {}
RedisBackend::~RedisBackend() = default;

std::string RedisBackend::RedisKey(std::string_view group, char kind, std::string_view name) const {
  uint64_t hash = XXH3_64bits(group.data(), group.size());
  return absl::StrCat(options_.key_prefix, ":{", absl::Hex(hash, absl::kZeroPad16),
                      "}:", base::AsAbsl(group), ":", absl::string_view(&kind, 1), ":",
                      base::AsAbsl(name));
}

absl::StatusOr<std::optional<std::string>> RedisBackend::ReadRecord(std::string_view group,
                                                                    std::string_view name) {
  std::string key = RedisKey(group, 'r', name);
  absl::StatusOr<Reply> reply = client_->Run(key, {"GET", key});
  if (!reply.ok()) return reply.status();
  if ((*reply)->type == REDIS_REPLY_NIL) return std::nullopt;
  if ((*reply)->type != REDIS_REPLY_STRING) {
    return absl::InternalError(absl::StrCat("redis GET ", key, ": unexpected reply type"));
  }
  return std::string((*reply)->str, (*reply)->len);
}

absl::Status RedisBackend::Apply(const Batch& batch) {
  using Kind = Batch::Op::Kind;
  std::vector<std::string> keys;
  std::vector<std::string> argv_tail;  // four per operation
  for (const Batch::Op& op : batch.ops()) {
    bool blob = op.kind == Kind::kExpectBlob || op.kind == Kind::kDeleteBlob ||
                op.kind == Kind::kExpireBlob;
    keys.push_back(RedisKey(batch.group(), blob ? 'b' : 'r', op.name));
    std::string kind;
    switch (op.kind) {
      case Kind::kExpectRecord:
        kind = op.has_value ? "expect" : "absent";
        break;
      case Kind::kExpectBlob:
        kind = "blob";
        break;
      case Kind::kPutRecord:
        kind = "put";
        break;
      case Kind::kDeleteRecord:
      case Kind::kDeleteBlob:
        kind = "del";
        break;
      case Kind::kExpireBlob:
      case Kind::kExpireRecord:
        kind = "expire";
        break;
    }
    argv_tail.push_back(kind);
    argv_tail.push_back(absl::StrCat(keys.size()));
    argv_tail.push_back(op.value);
    argv_tail.push_back(absl::StrCat(ExpiryMillis(op.expiry)));
  }
  if (keys.empty()) return absl::OkStatus();
  std::string key_count = absl::StrCat(keys.size());
  std::string op_count = absl::StrCat(batch.ops().size());
  Args args = {"EVAL", kApplyScript, key_count};
  for (const std::string& k : keys) args.push_back(k);
  args.push_back(op_count);
  for (const std::string& a : argv_tail) args.push_back(a);

  absl::StatusOr<Reply> reply = client_->Run(keys[0], args);
  if (!reply.ok()) return reply.status();
  std::string_view answer((*reply)->str ? (*reply)->str : "", (*reply)->len);
  if (answer == "ok") return absl::OkStatus();
  if (answer.rfind("conflict", 0) == 0) {
    return absl::AbortedError(absl::StrCat("redis: ", base::AsAbsl(answer), " changed"));
  }
  return absl::InternalError(
      absl::StrCat("redis apply script answered \"", base::AsAbsl(answer), "\""));
}

absl::Status RedisBackend::WriteBlob(std::string_view group, std::string_view name,
                                     std::string_view data, absl::Time expiry) {
  // One transaction: a reader never sees a half-pushed list, and a writer that disconnects
  // before EXEC leaves nothing behind.
  std::string key = RedisKey(group, 'b', name);
  std::vector<Args> commands = {{"MULTI"}, {"DEL", key}};
  size_t offset = 0;
  do {
    std::string_view chunk = data.substr(offset, options_.chunk_bytes);
    commands.push_back({"RPUSH", key, chunk});
    offset += chunk.size();
  } while (offset < data.size());
  std::string expiry_ms = absl::StrCat(ExpiryMillis(expiry));
  if (expiry != absl::InfiniteFuture()) commands.push_back({"PEXPIREAT", key, expiry_ms});
  commands.push_back({"EXEC"});

  absl::StatusOr<std::vector<Reply>> replies = client_->Pipeline(key, commands);
  if (!replies.ok()) return replies.status();
  for (const Reply& reply : *replies) {
    if (reply->type == REDIS_REPLY_ERROR) {
      return absl::InternalError(
          absl::StrCat("redis write ", key, ": ", absl::string_view(reply->str, reply->len)));
    }
  }
  const Reply& exec = replies->back();
  if (exec->type != REDIS_REPLY_ARRAY) {
    return absl::InternalError(absl::StrCat("redis write ", key, ": transaction aborted"));
  }
  for (size_t i = 0; i < exec->elements; ++i) {
    if (exec->element[i]->type == REDIS_REPLY_ERROR) {
      return absl::InternalError(
          absl::StrCat("redis write ", key, ": ",
                       absl::string_view(exec->element[i]->str, exec->element[i]->len)));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> RedisBackend::ReadBlob(std::string_view group, std::string_view name) {
  std::string key = RedisKey(group, 'b', name);
  absl::StatusOr<Reply> reply = client_->Run(key, {"LRANGE", key, "0", "-1"});
  if (!reply.ok()) return reply.status();
  if ((*reply)->type != REDIS_REPLY_ARRAY) {
    return absl::InternalError(absl::StrCat("redis LRANGE ", key, ": unexpected reply type"));
  }
  if ((*reply)->elements == 0) {
    return absl::NotFoundError(
        absl::StrCat("no blob ", base::AsAbsl(name), " in ", base::AsAbsl(group)));
  }
  size_t total = 0;
  for (size_t i = 0; i < (*reply)->elements; ++i) total += (*reply)->element[i]->len;
  std::string data;
  data.reserve(total);
  for (size_t i = 0; i < (*reply)->elements; ++i) {
    const redisReply* chunk = (*reply)->element[i];
    if (chunk->type != REDIS_REPLY_STRING) {
      return absl::DataLossError(absl::StrCat("redis blob ", key, " holds a non-string chunk"));
    }
    data.append(chunk->str, chunk->len);
  }
  return data;
}

absl::Status RedisBackend::Scan(
    char kind, const std::function<void(std::string_view, std::string_view, const std::string&,
                                        RedisConnection&)>& visit) {
  const std::string head = options_.key_prefix + ":{";
  const std::string pattern = GlobEscape(head) + "*";
  // Every master holds its own slots' keys.
  return client_->ForEachMaster([&](RedisConnection& connection) -> absl::Status {
    std::string cursor = "0";
    do {
      absl::StatusOr<Reply> reply =
          connection.Run({"SCAN", cursor, "MATCH", pattern, "COUNT", "1000"});
      if (!reply.ok()) return reply.status();
      if ((*reply)->type != REDIS_REPLY_ARRAY || (*reply)->elements != 2) {
        return absl::InternalError("redis SCAN: unexpected reply");
      }
      cursor.assign((*reply)->element[0]->str, (*reply)->element[0]->len);
      const redisReply* keys = (*reply)->element[1];
      for (size_t i = 0; i < keys->elements; ++i) {
        std::string key(keys->element[i]->str, keys->element[i]->len);
        // PREFIX:{16 hex}:GROUP:K:NAME, where NAME has no ':'.
        size_t group_start = head.size() + 16 + 2;
        size_t last_colon = key.rfind(':');
        if (key.size() < group_start || last_colon == std::string::npos ||
            last_colon < group_start + 2 || key[last_colon - 2] != ':') {
          continue;
        }
        if (key[last_colon - 1] != kind) continue;
        std::string_view view(key);
        visit(view.substr(group_start, last_colon - 2 - group_start), view.substr(last_colon + 1),
              key, connection);
        if (connection.broken()) return absl::UnavailableError("redis: connection lost in scan");
      }
    } while (cursor != "0");
    return absl::OkStatus();
  });
}

absl::Status RedisBackend::ScanRecords(const RecordVisitor& visit) {
  absl::Status failure;
  absl::Status status = Scan('r', [&](std::string_view group, std::string_view name,
                                      const std::string& key, RedisConnection& connection) {
    absl::StatusOr<Reply> reply = connection.Run({"GET", key});
    if (!reply.ok()) {
      failure = reply.status();
      return;
    }
    // Expired or deleted since SCAN listed it.
    if ((*reply)->type != REDIS_REPLY_STRING) return;
    visit(group, name, std::string_view((*reply)->str, (*reply)->len));
  });
  if (!status.ok()) return status;
  return failure;
}

absl::Status RedisBackend::ScanBlobs(const BlobVisitor& visit) {
  return Scan('b', [&](std::string_view group, std::string_view name, const std::string&,
                       RedisConnection&) { visit(group, name); });
}

}  // namespace skein::state_store
