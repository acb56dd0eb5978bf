#include "services/state_store/redis_store_index.h"

#include <hiredis/hiredis.h>
#include <unistd.h>

#include <random>

#include "absl/strings/str_cat.h"
#include "nlohmann/json.hpp"
#include "services/common/logging.h"

namespace skein::state_store {
namespace {

// KEYS[i] of every script, in this order.
constexpr const char* kKeyNames[] = {"ver",    "size", "info",  "keys",     "lru",      "clock",
                                     "expiry", "pins", "bytes", "reserved", "snapshots"};

constexpr char kUpsert[] = R"lua(
local key, ver, stored = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local old = redis.call('HGET', KEYS[1], key)
if old and tonumber(old) > ver then return 0 end
local olds = redis.call('HGET', KEYS[2], key)
if olds then redis.call('HINCRBY', KEYS[9], 'committed', -tonumber(olds)) end
redis.call('HSET', KEYS[1], key, ARGV[2])
redis.call('HSET', KEYS[2], key, ARGV[3])
redis.call('HSET', KEYS[3], key, ARGV[4])
redis.call('HINCRBY', KEYS[9], 'committed', stored)
redis.call('ZADD', KEYS[4], 0, key)
redis.call('ZADD', KEYS[5], redis.call('INCR', KEYS[6]), key)
if tonumber(ARGV[5]) > 0 then
  redis.call('ZADD', KEYS[7], ARGV[5], key)
else
  redis.call('ZREM', KEYS[7], key)
end
return 1
)lua";

constexpr char kRemove[] = R"lua(
local key = ARGV[1]
local cur = redis.call('HGET', KEYS[1], key)
if not cur then return 0 end
if ARGV[2] ~= '0' and cur ~= ARGV[2] then return 0 end
local s = redis.call('HGET', KEYS[2], key)
if s then redis.call('HINCRBY', KEYS[9], 'committed', -tonumber(s)) end
redis.call('HDEL', KEYS[1], key)
redis.call('HDEL', KEYS[2], key)
redis.call('HDEL', KEYS[3], key)
redis.call('ZREM', KEYS[4], key)
redis.call('ZREM', KEYS[5], key)
redis.call('ZREM', KEYS[7], key)
redis.call('HDEL', KEYS[8], key)
return 1
)lua";

constexpr char kMarkUsed[] = R"lua(
if redis.call('ZSCORE', KEYS[5], ARGV[1]) then
  redis.call('ZADD', KEYS[5], redis.call('INCR', KEYS[6]), ARGV[1])
end
return 1
)lua";

constexpr char kPin[] = R"lua(
local cur = redis.call('HGET', KEYS[8], ARGV[1])
local t = {}
if cur then t = cjson.decode(cur) end
t[ARGV[2]] = tonumber(ARGV[3])
redis.call('HSET', KEYS[8], ARGV[1], cjson.encode(t))
return 1
)lua";

constexpr char kUnpin[] = R"lua(
local cur = redis.call('HGET', KEYS[8], ARGV[1])
if not cur then return 0 end
local t = cjson.decode(cur)
t[ARGV[2]] = nil
if next(t) == nil then
  redis.call('HDEL', KEYS[8], ARGV[1])
else
  redis.call('HSET', KEYS[8], ARGV[1], cjson.encode(t))
end
return 1
)lua";

constexpr char kPrune[] = R"lua(
local now = tonumber(ARGV[1])
local all = redis.call('HGETALL', KEYS[8])
for i = 1, #all, 2 do
  local t = cjson.decode(all[i + 1])
  local left = false
  for h, u in pairs(t) do
    if u <= now then t[h] = nil else left = true end
  end
  if left then
    redis.call('HSET', KEYS[8], all[i], cjson.encode(t))
  else
    redis.call('HDEL', KEYS[8], all[i])
  end
end
local res = redis.call('HGETALL', KEYS[10])
for i = 1, #res, 2 do
  local b, e = string.match(res[i + 1], '^(%d+):(%d+)$')
  if e == nil or tonumber(e) <= now then redis.call('HDEL', KEYS[10], res[i]) end
end
return 1
)lua";

constexpr char kTryReserve[] = R"lua(
local bytes, cap, now = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local committed = tonumber(redis.call('HGET', KEYS[9], 'committed') or '0')
local pending = tonumber(redis.call('HGET', KEYS[9], 'pending') or '0')
local reserved = 0
local res = redis.call('HGETALL', KEYS[10])
for i = 1, #res, 2 do
  local b, e = string.match(res[i + 1], '^(%d+):(%d+)$')
  if e ~= nil and tonumber(e) > now then
    reserved = reserved + tonumber(b)
  else
    redis.call('HDEL', KEYS[10], res[i])
  end
end
local used = committed + pending + reserved
if cap == 0 or used + bytes <= cap then
  redis.call('HSET', KEYS[10], ARGV[4], ARGV[1] .. ':' .. ARGV[5])
  return {'reserved'}
end
local need = used + bytes - cap
local freed = 0
local out = {'evict'}
local start = 0
while freed < need do
  local batch = redis.call('ZRANGE', KEYS[5], start, start + 99)
  if #batch == 0 then break end
  for _, k in ipairs(batch) do
    if freed >= need then break end
    local pinned = false
    local p = redis.call('HGET', KEYS[8], k)
    if p then
      for _, u in pairs(cjson.decode(p)) do
        if u > now then pinned = true end
      end
    end
    if not pinned then
      table.insert(out, k)
      freed = freed + tonumber(redis.call('HGET', KEYS[2], k) or '0')
    end
  end
  start = start + 100
end
if freed < need then return {'exhausted'} end
return out
)lua";

constexpr char kAddSnapshot[] = R"lua(
local cur = redis.call('HGET', KEYS[11], ARGV[1])
local s = {}
if cur then s = cjson.decode(cur) end
if s.parts == nil then s.parts = {} end
s.key = ARGV[2]
s.deadline = tonumber(ARGV[3])
s.committed = ARGV[4] == '1'
redis.call('HSET', KEYS[11], ARGV[1], cjson.encode(s))
return 1
)lua";

constexpr char kSetPart[] = R"lua(
local cur = redis.call('HGET', KEYS[11], ARGV[1])
if not cur then return 0 end
local s = cjson.decode(cur)
if s.parts == nil then s.parts = {} end
local k = 'p' .. ARGV[2]
local old = s.parts[k] or 0
redis.call('HINCRBY', KEYS[9], 'pending', tonumber(ARGV[3]) - old)
s.parts[k] = tonumber(ARGV[3])
redis.call('HSET', KEYS[11], ARGV[1], cjson.encode(s))
return 1
)lua";

constexpr char kRemoveSnapshot[] = R"lua(
local cur = redis.call('HGET', KEYS[11], ARGV[1])
if not cur then return 0 end
local s = cjson.decode(cur)
if s.parts ~= nil then
  for _, b in pairs(s.parts) do redis.call('HINCRBY', KEYS[9], 'pending', -b) end
end
redis.call('HDEL', KEYS[11], ARGV[1])
return 1
)lua";

std::string_view Text(const redisReply* r) {
  return r == nullptr || r->str == nullptr ? std::string_view() : std::string_view(r->str, r->len);
}

int64_t Millis(absl::Time t) { return absl::ToUnixMillis(t); }

}  // namespace

absl::StatusOr<std::unique_ptr<RedisStoreIndex>> RedisStoreIndex::Connect(
    const RedisOptions& options, absl::Duration reservation_timeout) {
  absl::StatusOr<std::unique_ptr<RedisClient>> client = RedisClient::Connect(options);
  if (!client.ok()) return client.status();
  return std::unique_ptr<RedisStoreIndex>(
      new RedisStoreIndex(*std::move(client), reservation_timeout));
}

RedisStoreIndex::RedisStoreIndex(std::unique_ptr<RedisClient> client,
                                 absl::Duration reservation_timeout)
    : client_(std::move(client)),
      reservation_timeout_(reservation_timeout),
      tag_(absl::StrCat(client_->options().key_prefix, ":{", client_->options().key_prefix,
                        ":index}:")),
      instance_(absl::StrCat(getpid(), "-", std::random_device{}())) {
  for (const char* name : kKeyNames) key_names_.push_back(tag_ + name);
}

std::string RedisStoreIndex::Key(const char* name) const { return tag_ + name; }

void RedisStoreIndex::Failed(const char* what, const absl::Status& status) const {
  errors_.fetch_add(1);
  log::Warning("shared index: a Redis call failed",
               {{"op", what}, {"error", std::string(status.message())}});
}

absl::StatusOr<RedisReply> RedisStoreIndex::Script(const char* script,
                                                   const std::vector<std::string>& args) const {
  RedisArgs argv = {"EVAL", script};
  const std::string count = absl::StrCat(key_names_.size());
  argv.push_back(count);
  for (const std::string& k : key_names_) argv.push_back(k);
  for (const std::string& a : args) argv.push_back(a);
  return client_->Run(key_names_[0], argv);
}

void RedisStoreIndex::Change(const char* what, const char* script,
                             const std::vector<std::string>& args) {
  absl::StatusOr<RedisReply> r = Script(script, args);
  if (!r.ok()) Failed(what, r.status());
}

void RedisStoreIndex::Upsert(const v1::EntryInfo& info, uint64_t stored_bytes) {
  v1::EntryInfo copy = info;
  copy.set_pinned(false);
  Change("upsert", kUpsert,
         {info.key(), absl::StrCat(info.version()), absl::StrCat(stored_bytes),
          copy.SerializeAsString(), absl::StrCat(info.expires_at_unix_ms())});
}

void RedisStoreIndex::Remove(const std::string& key, uint64_t version) {
  Change("remove", kRemove, {key, absl::StrCat(version)});
}

void RedisStoreIndex::MarkUsed(const std::string& key) { Change("mark_used", kMarkUsed, {key}); }

std::vector<std::vector<absl::Time>> RedisStoreIndex::Leases(
    const std::vector<std::string>& keys) const {
  std::vector<std::vector<absl::Time>> out(keys.size());
  if (keys.empty()) return out;
  const std::string pins = Key("pins");
  RedisArgs args = {"HMGET", pins};
  for (const std::string& k : keys) args.push_back(k);
  absl::StatusOr<RedisReply> r = client_->Run(pins, args);
  if (!r.ok()) {
    Failed("pins", r.status());
    return out;
  }
  for (size_t i = 0; i < keys.size() && i < (*r)->elements; ++i) {
    std::string_view text = Text((*r)->element[i]);
    if (text.empty()) continue;
    nlohmann::json j = nlohmann::json::parse(text, nullptr, false);
    if (!j.is_object()) continue;
    for (auto& [holder, until] : j.items()) {
      if (until.is_number()) out[i].push_back(absl::FromUnixMillis(until.get<int64_t>()));
    }
  }
  return out;
}

namespace {
bool AnyAfter(const std::vector<absl::Time>& leases, absl::Time now) {
  for (absl::Time t : leases) {
    if (t > now) return true;
  }
  return false;
}
}  // namespace

std::vector<v1::EntryInfo> RedisStoreIndex::List(const std::string& prefix,
                                                 const std::string& after, size_t limit,
                                                 absl::Time now) const {
  std::vector<v1::EntryInfo> out;
  std::string start = after.empty() || after < prefix ? "[" + prefix : "(" + after;
  const std::string keys = Key("keys");
  const std::string batch = absl::StrCat(std::max<size_t>(limit, 16));
  while (out.size() < limit) {
    absl::StatusOr<RedisReply> r =
        client_->Run(keys, {"ZRANGEBYLEX", keys, start, "+", "LIMIT", "0", batch});
    if (!r.ok()) {
      Failed("list", r.status());
      return out;
    }
    std::vector<std::string> found;
    bool past_prefix = false;
    for (size_t i = 0; i < (*r)->elements; ++i) {
      std::string k(Text((*r)->element[i]));
      if (k.compare(0, prefix.size(), prefix) != 0) {
        past_prefix = true;
        break;
      }
      found.push_back(std::move(k));
    }
    if (found.empty()) break;
    const std::string info = Key("info");
    RedisArgs args = {"HMGET", info};
    for (const std::string& k : found) args.push_back(k);
    absl::StatusOr<RedisReply> infos = client_->Run(info, args);
    if (!infos.ok()) {
      Failed("list", infos.status());
      return out;
    }
    const std::vector<std::vector<absl::Time>> leases = Leases(found);
    for (size_t i = 0; i < found.size() && out.size() < limit; ++i) {
      v1::EntryInfo e;
      std::string_view bytes = Text((*infos)->element[i]);
      if (bytes.empty() || !e.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) {
        continue;  // removed since the range was read
      }
      const bool pinned = AnyAfter(leases[i], now);
      const int64_t expires = e.expires_at_unix_ms();
      if (expires != 0 && Millis(now) >= expires && !pinned) continue;
      e.set_pinned(pinned);
      out.push_back(std::move(e));
    }
    if (past_prefix || (*r)->elements < static_cast<size_t>(std::stoul(batch))) break;
    start = "(" + found.back();
  }
  return out;
}

std::vector<std::string> RedisStoreIndex::ExpiredKeys(absl::Time now) const {
  const std::string expiry = Key("expiry");
  absl::StatusOr<RedisReply> r =
      client_->Run(expiry, {"ZRANGEBYSCORE", expiry, "1", absl::StrCat(Millis(now))});
  std::vector<std::string> out;
  if (!r.ok()) {
    Failed("expired_keys", r.status());
    return out;
  }
  std::vector<std::string> candidates;
  for (size_t i = 0; i < (*r)->elements; ++i) candidates.emplace_back(Text((*r)->element[i]));
  const std::vector<std::vector<absl::Time>> leases = Leases(candidates);
  for (size_t i = 0; i < candidates.size(); ++i) {
    if (!AnyAfter(leases[i], now)) out.push_back(candidates[i]);
  }
  return out;
}

void RedisStoreIndex::Pin(const std::string& key, const std::string& holder, absl::Time until) {
  Change("pin", kPin, {key, holder, absl::StrCat(Millis(until))});
}

void RedisStoreIndex::Unpin(const std::string& key, const std::string& holder) {
  Change("unpin", kUnpin, {key, holder});
}

std::optional<absl::Time> RedisStoreIndex::PinnedUntil(const std::string& key,
                                                       absl::Time now) const {
  std::optional<absl::Time> latest;
  const std::vector<std::vector<absl::Time>> leases = Leases({key});
  for (absl::Time t : leases[0]) {
    if (t > now && (!latest || t > *latest)) latest = t;
  }
  return latest;
}

void RedisStoreIndex::PruneExpiredPins(absl::Time now) {
  Change("prune", kPrune, {absl::StrCat(Millis(now))});
}

StoreIndex::ReserveResult RedisStoreIndex::TryReserve(uint64_t bytes, uint64_t capacity,
                                                      absl::Time now,
                                                      std::vector<std::string>* victims) {
  victims->clear();
  const std::string name = absl::StrCat(instance_, "/", next_reservation_.fetch_add(1));
  absl::StatusOr<RedisReply> r =
      Script(kTryReserve, {absl::StrCat(bytes), absl::StrCat(capacity), absl::StrCat(Millis(now)),
                           name, absl::StrCat(Millis(now + reservation_timeout_))});
  if (!r.ok() || (*r)->type != REDIS_REPLY_ARRAY || (*r)->elements == 0) {
    Failed("reserve", r.ok() ? absl::InternalError("unexpected reply") : r.status());
    // Without the shared view, admit the write rather than refuse every write.
    return ReserveResult::kReserved;
  }
  const std::string_view verdict = Text((*r)->element[0]);
  if (verdict == "reserved") {
    absl::MutexLock lock(&mu_);
    reservations_.emplace(bytes, name);
    return ReserveResult::kReserved;
  }
  if (verdict == "exhausted") return ReserveResult::kExhausted;
  for (size_t i = 1; i < (*r)->elements; ++i) victims->emplace_back(Text((*r)->element[i]));
  return ReserveResult::kNeedEviction;
}

void RedisStoreIndex::Release(uint64_t bytes) {
  std::string name;
  {
    absl::MutexLock lock(&mu_);
    auto it = reservations_.find(bytes);
    if (it == reservations_.end()) return;
    name = std::move(it->second);
    reservations_.erase(it);
  }
  const std::string reserved = Key("reserved");
  absl::StatusOr<RedisReply> r = client_->Run(reserved, {"HDEL", reserved, name});
  if (!r.ok()) Failed("release", r.status());
}

void RedisStoreIndex::AddSnapshot(const std::string& id, const std::string& key,
                                  absl::Time deadline, bool committed) {
  Change("add_snapshot", kAddSnapshot,
         {id, key, absl::StrCat(Millis(deadline)), committed ? "1" : "0"});
}

void RedisStoreIndex::SetSnapshotPart(const std::string& id, uint32_t part, uint64_t stored_bytes) {
  Change("set_snapshot_part", kSetPart, {id, absl::StrCat(part), absl::StrCat(stored_bytes)});
}

void RedisStoreIndex::RemoveSnapshot(const std::string& id) {
  Change("remove_snapshot", kRemoveSnapshot, {id});
}

std::vector<StoreIndex::SnapshotRef> RedisStoreIndex::ExpiredSnapshots(absl::Time now) const {
  std::vector<SnapshotRef> out;
  const std::string snapshots = Key("snapshots");
  absl::StatusOr<RedisReply> r = client_->Run(snapshots, {"HGETALL", snapshots});
  if (!r.ok()) {
    Failed("expired_snapshots", r.status());
    return out;
  }
  for (size_t i = 0; i + 1 < (*r)->elements; i += 2) {
    nlohmann::json j = nlohmann::json::parse(Text((*r)->element[i + 1]), nullptr, false);
    if (!j.is_object() || !j["deadline"].is_number()) continue;
    if (absl::FromUnixMillis(j["deadline"].get<int64_t>()) > now) continue;
    out.push_back({std::string(Text((*r)->element[i])), j.value("key", std::string()),
                   j.value("committed", false)});
  }
  return out;
}

StoreIndex::Usage RedisStoreIndex::usage() const {
  Usage u;
  const std::string bytes = Key("bytes");
  absl::StatusOr<std::vector<RedisReply>> r =
      client_->Pipeline(bytes, {{"HMGET", bytes, "committed", "pending"},
                                {"ZCARD", Key("keys")},
                                {"HGETALL", Key("reserved")},
                                {"HGETALL", Key("snapshots")}});
  if (!r.ok()) {
    Failed("usage", r.status());
    return u;
  }
  auto number = [](const redisReply* x) {
    std::string_view t = Text(x);
    return t.empty() ? uint64_t{0}
                     : static_cast<uint64_t>(std::max<long long>(0, std::stoll(std::string(t))));
  };
  if ((*r)[0]->type == REDIS_REPLY_ARRAY && (*r)[0]->elements == 2) {
    u.committed_bytes = number((*r)[0]->element[0]);
    u.pending_bytes = number((*r)[0]->element[1]);
  }
  u.entries = static_cast<uint64_t>((*r)[1]->integer);
  const int64_t now = Millis(absl::Now());
  for (size_t i = 0; i + 1 < (*r)[2]->elements; i += 2) {
    std::string value(Text((*r)[2]->element[i + 1]));
    const size_t colon = value.find(':');
    if (colon == std::string::npos) continue;
    if (std::stoll(value.substr(colon + 1)) > now)
      u.reserved_bytes += std::stoull(value.substr(0, colon));
  }
  for (size_t i = 0; i + 1 < (*r)[3]->elements; i += 2) {
    nlohmann::json j = nlohmann::json::parse(Text((*r)[3]->element[i + 1]), nullptr, false);
    if (j.is_object() && !j.value("committed", false)) ++u.open_snapshots;
  }
  return u;
}

}  // namespace skein::state_store
