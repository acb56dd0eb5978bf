// Crash tests for skein-state-store as a real process on loopback with real storage: writers
// put multi-megabyte states concurrently, the store (or its Redis) is killed with SIGKILL in
// the middle, everything is restarted, and then every acknowledged write must be present and
// intact, and nothing partial may be visible.
//
// What each run relies on: a SIGKILL leaves the kernel's page cache alone, so RocksDB keeps
// every acknowledged write under any --fsync policy (the store runs with its default,
// interval); Redis runs with appendonly yes + appendfsync always
// (tests/support/redis_server.h).
#include <signal.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>
#include <map>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "services/state_store/client.h"
#include "tests/support/child_process.h"
#include "tests/support/prerequisite.h"
#include "tests/support/redis_server.h"

namespace skein {
namespace {

using ::skein::testing::ChildProcess;
using namespace std::chrono_literals;

constexpr size_t kBlobBytes = 1'500'000;
constexpr int kWriters = 4;
constexpr int kKeysPerWriter = 3;

// The content written for (key, seq): deterministic, different for every pair, seq in front.
std::string Content(const std::string& key, uint64_t seq) {
  std::string out(kBlobBytes, '\0');
  uint64_t x = std::hash<std::string>()(key) ^ (seq * 0x9E3779B97F4A7C15ull);
  for (size_t i = 0; i + 8 <= out.size(); i += 8) {
    x += 0x9E3779B97F4A7C15ull;
    uint64_t z = x;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z ^= z >> 31;
    std::memcpy(&out[i], &z, 8);
  }
  std::memcpy(&out[0], &seq, 8);
  return out;
}

struct Store {
  std::unique_ptr<ChildProcess> process;
  std::string address;
  int metrics_port = 0;
};

Store StartStore(const std::vector<std::string>& extra_args) {
  Store store;
  std::string binary = testing::RunfilePath("services/state_store/skein-state-store");
  EXPECT_FALSE(binary.empty());
  std::string ready = testing::MakeTempDir("ready") + "/ready.json";
  std::vector<std::string> argv = {binary,         "--listen", "127.0.0.1:0", "--metrics-port", "0",
                                   "--ready-file", ready,      "--log-level", "warning"};
  argv.insert(argv.end(), extra_args.begin(), extra_args.end());
  store.process = std::make_unique<ChildProcess>(argv);
  std::string content = testing::WaitForFile(ready, 30s);
  if (content.empty()) {
    ADD_FAILURE() << "store did not start: " << store.process->Stderr();
    return store;
  }
  auto json = nlohmann::json::parse(content);
  store.address = json["grpc"];
  store.metrics_port = json["metrics_port"];
  return store;
}

state_store::StateStoreClient ClientFor(const std::string& address) {
  return state_store::StateStoreClient(
      grpc::CreateChannel(address, grpc::InsecureChannelCredentials()));
}

// Writers that keep putting until stopped, remembering what was acknowledged.
class Workload {
 public:
  explicit Workload(std::string address) : address_(std::move(address)) {}

  void Start() {
    for (int w = 0; w < kWriters; ++w) {
      threads_.emplace_back([this, w] { Run(w); });
    }
  }
  void WaitForAcks(int count, std::chrono::seconds limit) {
    auto deadline = std::chrono::steady_clock::now() + limit;
    while (acks_ < count && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(10ms);
    }
  }
  void Stop() {
    stop_ = true;
    for (std::thread& t : threads_) t.join();
    threads_.clear();
  }
  int acks() const { return acks_; }

  // Checks every key against what was acknowledged and attempted.
  void Verify(const std::string& address) {
    state_store::StateStoreClient client = ClientFor(address);
    absl::MutexLock lock(&mu_);
    int checked = 0;
    for (const auto& [key, attempted] : attempted_) {
      SCOPED_TRACE(key);
      absl::StatusOr<state_store::ClientBlob> blob = client.Get(key);
      auto acked = acked_.find(key);
      if (!blob.ok()) {
        // Only a key that was never acknowledged may be missing, and only as NOT_FOUND:
        // DATA_LOSS would mean a torn or corrupt write became visible.
        EXPECT_EQ(blob.status().code(), absl::StatusCode::kNotFound) << blob.status();
        EXPECT_TRUE(acked == acked_.end()) << "acknowledged seq " << acked->second << " lost";
        continue;
      }
      uint64_t seq = blob->header.metadata().token_position();
      EXPECT_EQ(blob->data, Content(key, seq)) << "seq " << seq;
      EXPECT_LE(seq, attempted);
      if (acked != acked_.end()) {
        EXPECT_GE(seq, acked->second);
      }
      ++checked;
    }
    EXPECT_GT(checked, 0);
  }

  std::vector<std::string> Keys() {
    absl::MutexLock lock(&mu_);
    std::vector<std::string> keys;
    for (const auto& [key, seq] : attempted_) keys.push_back(key);
    return keys;
  }

 private:
  void Run(int writer) {
    state_store::StateStoreClient client = ClientFor(address_);
    for (uint64_t seq = 1; !stop_; ++seq) {
      std::string key =
          "sessions/w" + std::to_string(writer) + "/k" + std::to_string(seq % kKeysPerWriter);
      {
        absl::MutexLock lock(&mu_);
        attempted_[key] = seq;
      }
      state_store::ClientPutOptions options;
      options.metadata.set_token_position(seq);
      options.timeout = absl::Seconds(20);
      if (client.Put(key, Content(key, seq), options).ok()) {
        absl::MutexLock lock(&mu_);
        acked_[key] = seq;
        ++acks_;
      } else {
        std::this_thread::sleep_for(20ms);
      }
    }
  }

  std::string address_;
  std::atomic<bool> stop_{false};
  std::atomic<int> acks_{0};
  std::vector<std::thread> threads_;
  absl::Mutex mu_;
  std::map<std::string, uint64_t> attempted_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, uint64_t> acked_ ABSL_GUARDED_BY(mu_);
};

// Opens a two-part snapshot and writes only its first part.
std::string HalfWrittenSnapshot(const std::string& address, const std::string& key) {
  state_store::StateStoreClient client = ClientFor(address);
  grpc::ClientContext context;
  v1::BeginSnapshotRequest begin;
  begin.set_key(key);
  begin.set_part_count(2);
  begin.set_open_timeout_seconds(600);
  v1::BeginSnapshotResponse opened;
  EXPECT_TRUE(client.stub().BeginSnapshot(&context, begin, &opened).ok());
  state_store::ClientPutOptions options;
  options.snapshot_id = opened.snapshot_id();
  EXPECT_TRUE(client.Put(key, Content(key, 1), options).ok());
  return opened.snapshot_id();
}

// Every listed entry is one the workload attempted, and the half-written snapshot is not one.
void ExpectListingHoldsOnly(const std::string& address, const std::vector<std::string>& keys) {
  state_store::StateStoreClient client = ClientFor(address);
  grpc::ClientContext context;
  v1::ListRequest request;
  request.set_page_size(1000);
  v1::ListResponse response;
  ASSERT_TRUE(client.stub().List(&context, request, &response).ok());
  for (const v1::EntryInfo& e : response.entries()) {
    EXPECT_NE(std::find(keys.begin(), keys.end(), e.key()), keys.end()) << e.key();
    EXPECT_EQ(e.total_size(), kBlobBytes) << e.key();
  }
}

double MetricValue(int port, const std::string& name) {
  std::optional<std::string> body = testing::HttpGet(port, "/metrics");
  if (!body) return -1;
  std::istringstream lines(*body);
  for (std::string line; std::getline(lines, line);) {
    if (line.rfind(name + "{", 0) == 0 || line.rfind(name + " ", 0) == 0) {
      return std::stod(line.substr(line.rfind(' ') + 1));
    }
  }
  return -1;
}

void KillDuringWrites(Store& store, Workload& workload) {
  workload.Start();
  workload.WaitForAcks(10, 60s);
  ASSERT_GE(workload.acks(), 10) << store.process->Stderr();
  store.process->Signal(SIGKILL);
  ASSERT_EQ(store.process->Wait(10s), 128 + SIGKILL);
  workload.Stop();
}

TEST(StateStoreFaultTest, RocksDbKeepsEveryAcknowledgedWriteThroughSigkill) {
  std::string dir = testing::MakeTempDir("state");
  std::vector<std::string> args = {"--backend", "rocksdb", "--data-dir", dir};
  Store store = StartStore(args);
  ASSERT_FALSE(store.address.empty());
  HalfWrittenSnapshot(store.address, "sessions/snap");
  Workload workload(store.address);
  KillDuringWrites(store, workload);

  Store restarted = StartStore(args);
  ASSERT_FALSE(restarted.address.empty());
  workload.Verify(restarted.address);
  EXPECT_EQ(ClientFor(restarted.address).Get("sessions/snap").status().code(),
            absl::StatusCode::kNotFound);
  std::vector<std::string> keys = workload.Keys();
  ExpectListingHoldsOnly(restarted.address, keys);
  // The byte count the store rebuilt matches what it holds: no staged blob is counted.
  state_store::StateStoreClient client = ClientFor(restarted.address);
  double held = 0;
  for (const std::string& key : keys) held += client.Get(key).ok() ? kBlobBytes : 0;
  EXPECT_EQ(MetricValue(restarted.metrics_port, "skein_state_store_stored_bytes"), held);
}

TEST(StateStoreFaultTest, RedisBackedStoreKeepsEveryAcknowledgedWriteThroughSigkill) {
  std::string why;
  auto redis = testing::RedisServer::Start(&why);
  if (!redis) SKEIN_MISSING_PREREQUISITE() << why;
  std::vector<std::string> args = {"--backend", "redis", "--redis", redis->address()};
  Store store = StartStore(args);
  ASSERT_FALSE(store.address.empty());
  HalfWrittenSnapshot(store.address, "sessions/snap");
  Workload workload(store.address);
  KillDuringWrites(store, workload);

  Store restarted = StartStore(args);
  ASSERT_FALSE(restarted.address.empty());
  workload.Verify(restarted.address);
  EXPECT_EQ(ClientFor(restarted.address).Get("sessions/snap").status().code(),
            absl::StatusCode::kNotFound);
  ExpectListingHoldsOnly(restarted.address, workload.Keys());
}

TEST(StateStoreFaultTest, AcknowledgedWritesSurviveASigkilledRedis) {
  std::string why;
  auto redis = testing::RedisServer::Start(&why);
  if (!redis) SKEIN_MISSING_PREREQUISITE() << why;
  Store store = StartStore({"--backend", "redis", "--redis", redis->address()});
  ASSERT_FALSE(store.address.empty());
  Workload workload(store.address);
  workload.Start();
  workload.WaitForAcks(10, 60s);
  ASSERT_GE(workload.acks(), 10);
  redis->Kill();
  workload.Stop();
  ASSERT_TRUE(redis->Restart(&why)) << why;
  // The same store process reconnects to the restarted server.
  workload.Verify(store.address);
  ExpectListingHoldsOnly(store.address, workload.Keys());
}

}  // namespace
}  // namespace skein
