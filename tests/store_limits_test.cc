// The bounds the services put on what clients can make them hold, against the real processes
// on loopback: RPC threads (any service; the tokenizer here), and in skein-state-store the
// bytes announced by puts in progress, idle streams, open snapshots and the bytes their
// uncommitted parts hold. Each limit answers RESOURCE_EXHAUSTED
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
#include "skein/v1/tokenizer.grpc.pb.h"
#include "tests/support/child_process.h"
#include "tests/support/test_data.h"

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

// RPCs on synchronous methods hold a thread each; beyond --max-rpc-threads a call is refused
// at once rather than queued without bound. The tokenizer's StreamDecode streams hold theirs
// while open.
TEST(ServerLimitsTest, BusyRpcThreadsAnswerResourceExhausted) {
  SKEIN_REQUIRE_TEST_DATA(vocab, "data/rwkv_vocab_v20230424.txt");
  const std::string binary = testing::RunfilePath("services/tokenizer/skein-tokenizer");
  ASSERT_FALSE(binary.empty());
  const std::string ready = testing::MakeTempDir("ready") + "/ready.json";
  testing::ChildProcess tokenizer({binary, "--listen", "127.0.0.1:0", "--metrics-port", "0",
                                   "--ready-file", ready, "--vocab", vocab, "--max-rpc-threads",
                                   "6", "--log-level", "warning"});
  const std::string content = testing::WaitForFile(ready, 30s);
  ASSERT_FALSE(content.empty()) << tokenizer.Stderr();
  const std::string address = nlohmann::json::parse(content)["grpc"];
  auto stub = v1::TokenizerService::NewStub(Channel(address));

  struct OpenStream {
    grpc::ClientContext context;
    std::unique_ptr<grpc::ClientReaderWriter<v1::StreamDecodeRequest, v1::StreamDecodeResponse>>
        stream;
  };
  std::vector<std::unique_ptr<OpenStream>> streams;
  grpc::Status refused;
  for (int i = 0; i < 12 && refused.ok(); ++i) {
    auto open = std::make_unique<OpenStream>();
    open->stream = stub->StreamDecode(&open->context);
    v1::StreamDecodeRequest request;
    request.add_ids(33);
    v1::StreamDecodeResponse response;
    if (!open->stream->Write(request) || !open->stream->Read(&response)) {
      refused = open->stream->Finish();
      continue;  // finished: not closed again below
    }
    streams.push_back(std::move(open));
  }
  EXPECT_EQ(refused.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED)
      << "12 open streams on 6 threads were all served: " << refused.error_message();
  // Closing the streams frees their threads.
  for (auto& open : streams) {
    open->stream->WritesDone();
    v1::StreamDecodeResponse last;
    while (open->stream->Read(&last)) {
    }
    open->stream->Finish().IgnoreError();
  }
  v1::DecodeRequest request;
  request.add_ids(33);
  v1::DecodeResponse response;
  grpc::ClientContext context;
  EXPECT_TRUE(stub->Decode(&context, request, &response).ok());
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

TEST(StoreLimitsTest, BlobsHeldByGetsInProgressAreBounded) {
  Store store = StartStore({"--max-inflight-get-bytes", "64000000", "--stream-idle-seconds", "0"});
  ASSERT_FALSE(store.address.empty());
  state_store::StateStoreClient client(Channel(store.address));
  // Larger than what HTTP/2 flow control lets through to a client that does not read.
  const std::string blob(48'000'000, 'g');
  ASSERT_TRUE(client.Put("held", blob).ok());
  auto stub = v1::StateStoreService::NewStub(Channel(store.address));
  // A get whose client does not read: the server holds the blob until it is sent.
  grpc::ClientContext slow_context;
  v1::GetRequest request;
  request.set_key("held");
  std::unique_ptr<grpc::ClientReader<v1::GetResponse>> slow = stub->Get(&slow_context, request);
  std::this_thread::sleep_for(300ms);
  absl::StatusOr<state_store::ClientBlob> second = client.Get("held");
  EXPECT_EQ(second.status().code(), absl::StatusCode::kResourceExhausted) << second.status();
  // Reading the first get to its end frees its share.
  v1::GetResponse response;
  while (slow->Read(&response)) {
  }
  EXPECT_TRUE(slow->Finish().ok());
  absl::StatusOr<state_store::ClientBlob> third = client.Get("held");
  ASSERT_TRUE(third.ok()) << third.status();
  EXPECT_EQ(third->data, blob);
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
