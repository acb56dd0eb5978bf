// What the Redis backend promises beyond the shared contract: its key layout keeps an entry's
// objects on one Redis Cluster slot, it chunks large blobs, and it hands expiry to Redis.
#include "services/state_store/redis_backend.h"

#include <hiredis/hiredis.h>

#include <fstream>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "services/state_store/checksum.h"
#include "services/state_store/store.h"
#include "tests/support/child_process.h"
#include "tests/support/prerequisite.h"
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
    if (!server_) SKEIN_MISSING_PREREQUISITE() << why;
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

// Redis over TLS (hiredis 0.14 has none: redis_tls.h bridges it), with certificates made by
// openssl: a store round-trips data through a TLS-only port; no TLS, or a CA that did not
// sign the server, is refused.
TEST(RedisTlsTest, AStoreTalksToRedisOverTls) {
  const std::string openssl = skein::testing::FindOnPath("openssl");
  if (openssl.empty()) SKEIN_MISSING_PREREQUISITE() << "openssl not found";
  const std::string dir = skein::testing::MakeTempDir("redis-tls");
  auto run = [](std::vector<std::string> argv) {
    skein::testing::ChildProcess p(std::move(argv));
    return p.Wait(std::chrono::seconds(60)).value_or(-1) == 0;
  };
  std::ofstream(dir + "/ext.cnf") << "subjectAltName=IP:127.0.0.1\n"
                                  << "extendedKeyUsage=serverAuth,clientAuth\n";
  for (const char* ca : {"ca", "other-ca"}) {
    ASSERT_TRUE(run({openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                     "-subj", std::string("/CN=") + ca, "-keyout", dir + "/" + ca + "-key.pem",
                     "-out", dir + "/" + ca + ".pem"}));
  }
  ASSERT_TRUE(run({openssl, "req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=redis", "-keyout",
                   dir + "/key.pem", "-out", dir + "/cert.csr"}));
  ASSERT_TRUE(run({openssl, "x509", "-req", "-in", dir + "/cert.csr", "-CA", dir + "/ca.pem",
                   "-CAkey", dir + "/ca-key.pem", "-CAcreateserial", "-days", "2", "-extfile",
                   dir + "/ext.cnf", "-out", dir + "/cert.pem"}));
  const int tls_port = skein::testing::PickUnusedPort();
  std::string why;
  auto server = skein::testing::RedisServer::Start(
      &why, {"--tls-port", std::to_string(tls_port), "--tls-cert-file", dir + "/cert.pem",
             "--tls-key-file", dir + "/key.pem", "--tls-ca-cert-file", dir + "/ca.pem"});
  if (!server) SKEIN_MISSING_PREREQUISITE() << why;

  RedisOptions options;
  options.port = tls_port;
  options.tls.ca_file = dir + "/ca.pem";
  options.tls.cert_file = dir + "/cert.pem";  // Redis asks TLS clients for a certificate
  options.tls.key_file = dir + "/key.pem";
  auto backend = RedisBackend::Connect(options);
  ASSERT_TRUE(backend.ok()) << backend.status();
  auto store = StateStore::Open(*std::move(backend), StoreOptions());
  ASSERT_TRUE(store.ok()) << store.status();
  const std::string data(300000, 't');
  v1::PutHeader header;
  header.set_key("sessions/over-tls");
  header.set_total_size(data.size());
  header.mutable_checksum()->set_algorithm(v1::Checksum::ALGORITHM_CRC32C);
  header.mutable_checksum()->set_value(Crc32c(0, data));
  ASSERT_TRUE((*store)->Put(header, data).ok());
  auto got = (*store)->Get("sessions/over-tls", 0);
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->data, data);

  RedisOptions plain;
  plain.port = tls_port;
  plain.io_timeout = absl::Seconds(2);
  EXPECT_FALSE(RedisBackend::Connect(plain).ok());
  RedisOptions untrusted = options;
  untrusted.tls.ca_file = dir + "/other-ca.pem";
  EXPECT_EQ(RedisBackend::Connect(untrusted).status().code(), absl::StatusCode::kUnavailable);
}

}  // namespace
}  // namespace skein::state_store
