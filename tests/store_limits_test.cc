// Every bound skein-state-store puts on what clients can make it hold, against the real
// process on loopback: RPC threads, bytes announced by puts in progress, idle streams, open
// snapshots and the bytes their uncommitted parts hold. Each limit answers RESOURCE_EXHAUSTED
// (an idle stream: cancelled) and leaves the store serving and its committed data intact.
#include <chrono>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "services/state_store/client.h"
#include "skein/v1/state_store.grpc.pb.h"
#include "tests/support/child_process.h"

namespace skein {
namespace {

using namespace std::chrono_literals;

struct Store {
  std::unique_ptr<testing::ChildProcess> process;
  std::string address;
};

Store StartStore(const std::vector<std::string>& extra) {
  Store store;
  const std::string binary = testing::RunfilePath("services/state_store/skein-state-store");
  EXPECT_FALSE(binary.empty());
  const std::string ready = testing::MakeTempDir("ready") + "/ready.json";
  std::vector<std::string> argv = {binary,   "--listen",     "127.0.0.1:0", "--metrics-port",
                                   "0",      "--ready-file", ready,         "--backend",
                                   "memory", "--log-level",  "warning"};
  argv.insert(argv.end(), extra.begin(), extra.end());
  store.process = std::make_unique<testing::ChildProcess>(argv);
  const std::string content = testing::WaitForFile(ready, 30s);
  if (content.empty()) {
    ADD_FAILURE() << "the store did not start: " << store.process->Stderr();
    return store;
  }
  store.address = nlohmann::json::parse(content)["grpc"];
  return store;
}

std::shared_ptr<grpc::Channel> Channel(const std::string& address) {
  return grpc::CreateChannel(address, grpc::InsecureChannelCredentials());
}

// A put stream that has sent its header (announcing `total_size` bytes) and then waits.
struct OpenPut {
  grpc::ClientContext context;
  v1::PutResponse response;
  std::unique_ptr<grpc::ClientWriter<v1::PutRequest>> writer;

  OpenPut(v1::StateStoreService::Stub& stub, const std::string& key, uint64_t total_size) {
    context.set_deadline(std::chrono::system_clock::now() + 60s);
    writer = stub.Put(&context, &response);
    v1::PutRequest request;
    request.mutable_header()->set_key(key);
    request.mutable_header()->set_total_size(total_size);
    request.mutable_header()->mutable_checksum()->set_algorithm(v1::Checksum::ALGORITHM_CRC32C);
    EXPECT_TRUE(writer->Write(request));
  }
  grpc::Status Finish() {
    writer->WritesDone();
    return writer->Finish();
  }
};

// A stored entry survives every refusal.
void ExpectIntact(const std::string& address, const std::string& key, const std::string& data) {
  state_store::StateStoreClient client(Channel(address));
  absl::StatusOr<state_store::ClientBlob> blob = client.Get(key);
  ASSERT_TRUE(blob.ok()) << blob.status();
  EXPECT_EQ(blob->data, data);
}

TEST(StoreLimitsTest, BusyRpcThreadsAnswerResourceExhausted) {
  Store store = StartStore({"--max-rpc-threads", "6", "--stream-idle-seconds", "0"});
  ASSERT_FALSE(store.address.empty());
  auto stub = v1::StateStoreService::NewStub(Channel(store.address));
  // Each open put holds a thread; more than the quota must be refused, not queued.
  std::vector<std::unique_ptr<OpenPut>> puts;
  grpc::Status refused;
  for (int i = 0; i < 12 && refused.ok(); ++i) {
    puts.push_back(std::make_unique<OpenPut>(*stub, "busy/" + std::to_string(i), 10));
    v1::StatRequest request;
    request.set_key("busy/none");
    v1::EntryInfo info;
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + 10s);
    grpc::Status s = stub->Stat(&context, request, &info);
    if (s.error_code() == grpc::StatusCode::RESOURCE_EXHAUSTED) refused = s;
  }
  EXPECT_EQ(refused.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED)
      << "12 open streams on 6 threads were all served";
  // Finishing the streams (each short of its 10 bytes) frees the threads.
  for (auto& put : puts) EXPECT_EQ(put->Finish().error_code(), grpc::StatusCode::DATA_LOSS);
  state_store::StateStoreClient client(Channel(store.address));
  absl::StatusOr<v1::PutResponse> ok = client.Put("busy/after", "fine");
  EXPECT_TRUE(ok.ok()) << ok.status();
}

TEST(StoreLimitsTest, BytesAnnouncedByPutsInProgressAreBounded) {
  Store store = StartStore({"--max-inflight-put-bytes", "1000000"});
  ASSERT_FALSE(store.address.empty());
  state_store::StateStoreClient client(Channel(store.address));
  ASSERT_TRUE(client.Put("kept", "committed bytes").ok());
  auto stub = v1::StateStoreService::NewStub(Channel(store.address));
  OpenPut first(*stub, "big/1", 800000);
  std::this_thread::sleep_for(200ms);  // the header is accounted once the server reads it
  OpenPut second(*stub, "big/2", 300000);
  grpc::Status s = second.Finish();
  EXPECT_EQ(s.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << s.error_message();
  EXPECT_NE(s.error_message().find("--max-inflight-put-bytes"), std::string::npos);
  EXPECT_EQ(first.Finish().error_code(), grpc::StatusCode::DATA_LOSS);  // short of 800000
  // The bound counts puts in progress only: with the first gone, the same put fits.
  absl::StatusOr<v1::PutResponse> again = client.Put("big/2", std::string(300000, 'x'));
  EXPECT_TRUE(again.ok()) << again.status();
  ExpectIntact(store.address, "kept", "committed bytes");
}

TEST(StoreLimitsTest, IdleStreamsAreCancelled) {
  Store store = StartStore({"--stream-idle-seconds", "0.5"});
  ASSERT_FALSE(store.address.empty());
  auto stub = v1::StateStoreService::NewStub(Channel(store.address));
  const auto start = std::chrono::steady_clock::now();
  OpenPut idle(*stub, "idle", 100);
  // The client sends nothing more; the server gives up on its own, well before the deadline.
  grpc::Status s = idle.writer->Finish();
  const auto took = std::chrono::steady_clock::now() - start;
  EXPECT_FALSE(s.ok());
  EXPECT_LT(took, 20s) << "the idle stream was not cancelled";
  state_store::StateStoreClient client(Channel(store.address));
  EXPECT_EQ(client.Stat("idle").status().code(), absl::StatusCode::kNotFound)
      << "an idle, cancelled put stored something";
  // A put that keeps sending is not idle, however long it takes in total.
  absl::StatusOr<v1::PutResponse> ok = client.Put("busy", std::string(3 << 20, 'y'));
  EXPECT_TRUE(ok.ok()) << ok.status();
}

TEST(StoreLimitsTest, OpenSnapshotsAreBounded) {
  Store store = StartStore({"--max-open-snapshots", "2"});
  ASSERT_FALSE(store.address.empty());
  auto stub = v1::StateStoreService::NewStub(Channel(store.address));
  auto begin = [&](const std::string& key, v1::BeginSnapshotResponse* out) {
    v1::BeginSnapshotRequest request;
    request.set_key(key);
    request.set_part_count(1);
    grpc::ClientContext context;
    return stub->BeginSnapshot(&context, request, out);
  };
  v1::BeginSnapshotResponse a, b, c;
  ASSERT_TRUE(begin("snap/a", &a).ok());
  ASSERT_TRUE(begin("snap/b", &b).ok());
  grpc::Status s = begin("snap/c", &c);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << s.error_message();
  // Aborting one makes room.
  v1::AbortSnapshotRequest abort;
  abort.set_snapshot_id(a.snapshot_id());
  v1::AbortSnapshotResponse aborted;
  grpc::ClientContext context;
  ASSERT_TRUE(stub->AbortSnapshot(&context, abort, &aborted).ok());
  EXPECT_TRUE(begin("snap/c", &c).ok());
}

TEST(StoreLimitsTest, UncommittedSnapshotPartsCannotEvictCommittedEntries) {
  // 4 MB of capacity, of which open snapshots' parts may hold 1 MB.
  Store store = StartStore({"--capacity-bytes", "4000000", "--max-pending-bytes", "1000000"});
  ASSERT_FALSE(store.address.empty());
  state_store::StateStoreClient client(Channel(store.address));
  const std::string committed(2'500'000, 'c');
  ASSERT_TRUE(client.Put("session/state", committed).ok());
  auto stub = v1::StateStoreService::NewStub(Channel(store.address));
  // Snapshots opened and filled but never committed (a writer that died).
  int refused = 0;
  for (int i = 0; i < 6; ++i) {
    v1::BeginSnapshotRequest request;
    request.set_key("snap/" + std::to_string(i));
    request.set_part_count(1);
    v1::BeginSnapshotResponse begun;
    grpc::ClientContext context;
    ASSERT_TRUE(stub->BeginSnapshot(&context, request, &begun).ok());
    state_store::ClientPutOptions options;
    options.snapshot_id = begun.snapshot_id();
    absl::StatusOr<v1::PutResponse> part =
        client.Put(request.key(), std::string(400'000, 'p'), options);
    if (!part.ok()) {
      EXPECT_EQ(part.status().code(), absl::StatusCode::kResourceExhausted) << part.status();
      ++refused;
    }
  }
  EXPECT_GE(refused, 3) << "6 × 400 kB of uncommitted parts fit a 1 MB bound";
  ExpectIntact(store.address, "session/state", committed);
}

}  // namespace
}  // namespace skein
