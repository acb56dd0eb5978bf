// What the Redis backend promises beyond the shared contract: its key layout keeps an entry's
// objects on one Redis Cluster slot, it chunks large blobs, and it hands expiry to Redis.
#include "services/state_store/redis_backend.h"

#include <hiredis/hiredis.h>

#include <string>

#include "gtest/gtest.h"
#include "services/state_store/checksum.h"
#include "services/state_store/store.h"
#include "tests/support/redis_server.h"

namespace skein::state_store {
namespace {

// Runs one command on a fresh connection.
redisReply* Command(int port, const std::vector<std::string>& args) {
  redisContext* ctx = redisConnect("127.0.0.1", port);
  std::vector<const char*> argv;
  std::vector<size_t> lengths;
  for (const std::string& a : args) {
    argv.push_back(a.data());
    lengths.push_back(a.size());
  }
  auto* reply = static_cast<redisReply*>(
      redisCommandArgv(ctx, static_cast<int>(argv.size()), argv.data(), lengths.data()));
  redisFree(ctx);
  return reply;
}

long long Integer(int port, const std::vector<std::string>& args) {
  redisReply* reply = Command(port, args);
  long long value = reply && reply->type == REDIS_REPLY_INTEGER ? reply->integer : -999;
  freeReplyObject(reply);
  return value;
}

class RedisBackendTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string why;
    server_ = skein::testing::RedisServer::Start(&why);
    if (!server_) GTEST_SKIP() << why;
    RedisOptions options;
    options.port = server_->port();
    options.chunk_bytes = 1000;
    auto backend = RedisBackend::Connect(options);
    ASSERT_TRUE(backend.ok()) << backend.status();
    backend_ = backend->get();
    auto store = StateStore::Open(*std::move(backend), StoreOptions());
    ASSERT_TRUE(store.ok()) << store.status();
    store_ = *std::move(store);
  }

  std::unique_ptr<skein::testing::RedisServer> server_;
  RedisBackend* backend_ = nullptr;
  std::unique_ptr<StateStore> store_;
};

TEST_F(RedisBackendTest, AnEntrysKeysShareOneHashTagAndBlobsAreChunked) {
  std::string data(4500, 'q');
  v1::PutHeader header;
  header.set_key("sessions/{odd}key");
  header.set_total_size(data.size());
  header.mutable_checksum()->set_algorithm(v1::Checksum::ALGORITHM_CRC32C);
  header.mutable_checksum()->set_value(Crc32c(0, data));
  ASSERT_TRUE(store_->Put(header, data).ok());

  redisReply* keys = Command(server_->port(), {"KEYS", "*"});
  ASSERT_EQ(keys->type, REDIS_REPLY_ARRAY);
  ASSERT_EQ(keys->elements, 2u);  // the entry record and its blob
  std::string tag;
  for (size_t i = 0; i < keys->elements; ++i) {
    std::string key(keys->element[i]->str, keys->element[i]->len);
    size_t open = key.find('{'), close = key.find('}');
    ASSERT_NE(close, std::string::npos);
    std::string this_tag = key.substr(open + 1, close - open - 1);
    EXPECT_EQ(this_tag.size(), 16u) << key;
    if (tag.empty()) tag = this_tag;
    EXPECT_EQ(this_tag, tag) << key;
    EXPECT_EQ(key.rfind("skein:", 0), 0u) << key;
    if (key.find(":b:") != std::string::npos) {
      // 4500 bytes in chunks of at most 1000.
      EXPECT_EQ(Integer(server_->port(), {"LLEN", key}), 5);
      // No expiry: the entry has no TTL.
      EXPECT_EQ(Integer(server_->port(), {"PTTL", key}), -1);
    }
  }
  freeReplyObject(keys);
  EXPECT_EQ(*store_->Get("sessions/{odd}key", 0).value().data.data(), 'q');
}

TEST_F(RedisBackendTest, EntryTtlsBecomeRedisExpiriesAndPinsExtendThem) {
  std::string data = "state";
  v1::PutHeader header;
  header.set_key("ttl");
  header.set_total_size(data.size());
  header.set_ttl_seconds(100);
  header.mutable_checksum()->set_algorithm(v1::Checksum::ALGORITHM_XXH3_64);
  header.mutable_checksum()->set_value(ComputeChecksum(ChecksumAlgorithm::kXxh3_64, data));
  ASSERT_TRUE(store_->Put(header, data).ok());
  std::string record = backend_->RedisKey("ttl", 'r', "e");
  long long pttl = Integer(server_->port(), {"PTTL", record});
  EXPECT_GT(pttl, 90'000);
  EXPECT_LE(pttl, 100'000);

  v1::PinRequest pin;
  pin.set_key("ttl");
  pin.set_holder("worker");
  pin.set_lease_seconds(1000);
  ASSERT_TRUE(store_->Pin(pin).ok());
  pttl = Integer(server_->port(), {"PTTL", record});
  EXPECT_GT(pttl, 990'000);

  v1::TouchRequest touch;
  touch.set_key("ttl");
  touch.set_ttl_seconds(0);
  ASSERT_TRUE(store_->Touch(touch).ok());
  EXPECT_EQ(Integer(server_->port(), {"PTTL", record}), -1);
}

TEST_F(RedisBackendTest, ReportsAnUnreachableServer) {
  RedisOptions options;
  options.port = skein::testing::PickUnusedPort();
  absl::Status status = RedisBackend::Connect(options).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kUnavailable);
  options.key_prefix = "bad{prefix";
  EXPECT_EQ(RedisBackend::Connect(options).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(RedisBackendTest, RecoversFromARestartedServer) {
  Batch batch("g");
  batch.PutRecord("r", "before");
  ASSERT_TRUE(backend_->Apply(batch).ok());
  std::string why;
  ASSERT_TRUE(server_->Restart(&why)) << why;
  // The pooled connection is dead; the first call may fail, later ones reconnect.
  absl::StatusOr<std::optional<std::string>> value = backend_->ReadRecord("g", "r");
  if (!value.ok()) value = backend_->ReadRecord("g", "r");
  ASSERT_TRUE(value.ok()) << value.status();
  EXPECT_EQ(**value, "before");
}

}  // namespace
}  // namespace skein::state_store
