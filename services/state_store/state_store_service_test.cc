// The gRPC service over loopback, on each backend: streamed puts and gets, malformed streams,
// a client that gives up mid-put, corrupt data never sent, snapshots through the wire.
#include "services/state_store/state_store_service.h"

#include <memory>
#include <random>
#include <string>
#include <thread>

#include "gmock/gmock.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "services/state_store/client.h"
#include "services/state_store/testing/backend_fixture.h"
#include "skein/state_store/records.pb.h"
#include "tests/support/prerequisite.h"

namespace skein::state_store {
namespace {

using ::skein::state_store::testing::BackendFactory;
using ::skein::state_store::testing::BackendKind;

std::string RandomBytes(size_t size, uint32_t seed) {
  std::mt19937 gen(seed);
  std::string out(size, '\0');
  for (char& c : out) c = static_cast<char>(gen());
  return out;
}

v1::PutRequest HeaderMessage(const std::string& key, const std::string& data) {
  v1::PutRequest message;
  v1::PutHeader* header = message.mutable_header();
  header->set_key(key);
  header->set_total_size(data.size());
  header->mutable_checksum()->set_algorithm(v1::Checksum::ALGORITHM_XXH3_64);
  header->mutable_checksum()->set_value(ComputeChecksum(ChecksumAlgorithm::kXxh3_64, data));
  return message;
}

v1::PutRequest ChunkMessage(std::string_view chunk) {
  v1::PutRequest message;
  message.set_chunk(std::string(chunk));
  return message;
}

class StateStoreServiceTest : public ::testing::TestWithParam<BackendKind> {
 protected:
  void SetUp() override {
    factory_ = std::make_unique<BackendFactory>(GetParam());
    if (!factory_->unavailable_reason().empty())
      SKEIN_MISSING_PREREQUISITE() << factory_->unavailable_reason();
    absl::StatusOr<std::unique_ptr<StorageBackend>> backend = factory_->Make();
    ASSERT_TRUE(backend.ok()) << backend.status();
    StoreOptions options;
    options.max_blob_bytes = 1 << 20;
    absl::StatusOr<std::unique_ptr<StateStore>> store =
        StateStore::Open(*std::move(backend), options);
    ASSERT_TRUE(store.ok()) << store.status();
    store_ = *std::move(store);
    service_ = std::make_unique<StateStoreServiceImpl>(store_.get(), ServiceOptions());
    grpc::ServerBuilder builder;
    int port = 0;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
    builder.RegisterService(service_.get());
    server_ = builder.BuildAndStart();
    ASSERT_NE(server_, nullptr);
    channel_ = grpc::CreateChannel("127.0.0.1:" + std::to_string(port),
                                   grpc::InsecureChannelCredentials());
    stub_ = v1::StateStoreService::NewStub(channel_);
    client_ = std::make_unique<StateStoreClient>(channel_);
  }
  void TearDown() override {
    if (server_) server_->Shutdown(std::chrono::system_clock::now());
  }

  // Sends `messages` as one put stream and returns its status.
  grpc::Status SendPut(const std::vector<v1::PutRequest>& messages) {
    grpc::ClientContext context;
    v1::PutResponse response;
    auto writer = stub_->Put(&context, &response);
    for (const v1::PutRequest& m : messages) {
      if (!writer->Write(m)) break;
    }
    writer->WritesDone();
    return writer->Finish();
  }

  absl::StatusCode StatCode(const std::string& key) { return store_->Stat(key).status().code(); }

  std::unique_ptr<BackendFactory> factory_;
  std::unique_ptr<StateStore> store_;
  std::unique_ptr<StateStoreServiceImpl> service_;
  std::unique_ptr<grpc::Server> server_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::StateStoreService::Stub> stub_;
  std::unique_ptr<StateStoreClient> client_;
};

TEST_P(StateStoreServiceTest, StreamsPutsAndGetsInChunks) {
  std::string data = RandomBytes(100'000, 1);
  ClientPutOptions options;
  options.chunk_bytes = 1000;
  options.checksum = ChecksumAlgorithm::kCrc32c;
  absl::StatusOr<v1::PutResponse> put = client_->Put("sessions/a", data, options);
  ASSERT_TRUE(put.ok()) << put.status();
  EXPECT_EQ(put->stored_bytes(), data.size());

  for (uint32_t asked : {4096u, 1u}) {  // 1 is below the minimum and is raised to 4 KiB
    grpc::ClientContext context;
    v1::GetRequest request;
    request.set_key("sessions/a");
    request.set_chunk_bytes(asked);
    auto reader = stub_->Get(&context, request);
    v1::GetResponse message;
    ASSERT_TRUE(reader->Read(&message));
    ASSERT_TRUE(message.has_header());
    EXPECT_EQ(message.header().size(), data.size());
    EXPECT_EQ(message.header().entry().version(), put->version());
    std::string received;
    int chunks = 0;
    while (reader->Read(&message)) {
      ASSERT_FALSE(message.has_header());
      EXPECT_LE(message.chunk().size(), 4096u);
      received += message.chunk();
      ++chunks;
    }
    ASSERT_TRUE(reader->Finish().ok());
    EXPECT_EQ(chunks, 25);  // ceil(100000 / 4096)
    EXPECT_EQ(received, data);
  }
  absl::StatusOr<ClientBlob> blob = client_->Get("sessions/a");
  ASSERT_TRUE(blob.ok()) << blob.status();
  EXPECT_EQ(blob->data, data);
  EXPECT_EQ(client_->Get("sessions/none").status().code(), absl::StatusCode::kNotFound);
}

TEST_P(StateStoreServiceTest, APutOfSharedBytesSendsThemUncopied) {
  auto data = std::make_shared<const std::string>(RandomBytes(300'000, 2));
  ClientPutOptions options;
  options.chunk_bytes = 64 << 10;
  absl::StatusOr<v1::PutResponse> put = client_->Put("sessions/shared", data, options);
  ASSERT_TRUE(put.ok()) << put.status();
  EXPECT_EQ(put->stored_bytes(), data->size());
  absl::StatusOr<ClientBlob> blob = client_->Get("sessions/shared");
  ASSERT_TRUE(blob.ok()) << blob.status();
  EXPECT_EQ(blob->data, *data);
  // An empty state, and no state at all, are both the empty blob.
  ASSERT_TRUE(client_->Put("sessions/empty", std::make_shared<const std::string>()).ok());
  ASSERT_TRUE(client_->Put("sessions/null", std::shared_ptr<const std::string>()).ok());
  for (const char* key : {"sessions/empty", "sessions/null"}) {
    absl::StatusOr<ClientBlob> empty = client_->Get(key);
    ASSERT_TRUE(empty.ok()) << empty.status();
    EXPECT_TRUE(empty->data.empty());
  }
}

TEST_P(StateStoreServiceTest, MalformedPutStreamsAreRejectedAndStoreNothing) {
  std::string data = RandomBytes(3000, 2);
  v1::PutRequest header = HeaderMessage("k", data);
  EXPECT_EQ(SendPut({}).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(SendPut({ChunkMessage(data), header}).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(SendPut({header, ChunkMessage(data.substr(0, 10)), header}).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(SendPut({header, ChunkMessage(data), ChunkMessage("x")}).error_code(),
            grpc::StatusCode::DATA_LOSS);
  EXPECT_EQ(SendPut({header, ChunkMessage(data.substr(0, 2999))}).error_code(),
            grpc::StatusCode::DATA_LOSS);
  std::string other = data;
  other[0] ^= 1;
  EXPECT_EQ(SendPut({header, ChunkMessage(other)}).error_code(), grpc::StatusCode::DATA_LOSS);
  v1::PutRequest too_big = HeaderMessage("k", std::string((1 << 20) + 1, 'x'));
  grpc::Status big = SendPut({too_big});
  EXPECT_EQ(big.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_THAT(big.error_message(), ::testing::HasSubstr("limit"));
  EXPECT_EQ(StatCode("k"), absl::StatusCode::kNotFound);

  EXPECT_TRUE(SendPut({header, ChunkMessage(data.substr(0, 1000)), ChunkMessage(""),
                       ChunkMessage(data.substr(1000))})
                  .ok());
  EXPECT_EQ(client_->Get("k")->data, data);
}

TEST_P(StateStoreServiceTest, AClientThatGivesUpMidPutLeavesNothing) {
  std::string data = RandomBytes(200'000, 3);
  ASSERT_TRUE(client_->Put("keep", "old").ok());
  for (const std::string& key : {std::string("new"), std::string("keep")}) {
    grpc::ClientContext context;
    v1::PutResponse response;
    auto writer = stub_->Put(&context, &response);
    ASSERT_TRUE(writer->Write(HeaderMessage(key, data)));
    ASSERT_TRUE(writer->Write(ChunkMessage(std::string_view(data).substr(0, 100'000))));
    context.TryCancel();
    EXPECT_EQ(writer->Finish().error_code(), grpc::StatusCode::CANCELLED);
  }
  // Give the server a moment to notice and unwind.
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  EXPECT_EQ(StatCode("new"), absl::StatusCode::kNotFound);
  EXPECT_EQ(client_->Get("keep")->data, "old");
  EXPECT_EQ(store_->usage().reserved_bytes, 0u);
  ASSERT_TRUE(client_->Put("new", data).ok());
  EXPECT_EQ(client_->Get("new")->data, data);
}

TEST_P(StateStoreServiceTest, CorruptStoredDataIsNeverSent) {
  std::string data = RandomBytes(50'000, 4);
  ASSERT_TRUE(client_->Put("bad", data).ok());
  std::optional<std::string> raw = *store_->backend().ReadRecord("bad", "e");
  StoredEntry entry;
  ASSERT_TRUE(entry.ParseFromString(*raw));
  std::string blob = *store_->backend().ReadBlob("bad", entry.parts(0).blob());
  blob[100] ^= 0x01;
  ASSERT_TRUE(
      store_->backend().WriteBlob("bad", entry.parts(0).blob(), blob, absl::InfiniteFuture()).ok());

  grpc::ClientContext context;
  v1::GetRequest request;
  request.set_key("bad");
  auto reader = stub_->Get(&context, request);
  v1::GetResponse message;
  EXPECT_FALSE(reader->Read(&message));
  EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::DATA_LOSS);
}

TEST_P(StateStoreServiceTest, SnapshotsWorkOverTheWire) {
  grpc::ClientContext begin_context;
  v1::BeginSnapshotRequest begin;
  begin.set_key("sessions/pipeline");
  begin.set_part_count(2);
  v1::BeginSnapshotResponse opened;
  ASSERT_TRUE(stub_->BeginSnapshot(&begin_context, begin, &opened).ok());
  std::vector<std::string> parts = {RandomBytes(7000, 5), RandomBytes(9000, 6)};
  for (uint32_t i = 0; i < 2; ++i) {
    ClientPutOptions options;
    options.snapshot_id = opened.snapshot_id();
    options.part = i;
    options.metadata.mutable_layers()->set_first(i * 6);
    options.metadata.mutable_layers()->set_last(i * 6 + 6);
    ASSERT_TRUE(client_->Put("sessions/pipeline", parts[i], options).ok());
    EXPECT_EQ(client_->Get("sessions/pipeline").status().code(), absl::StatusCode::kNotFound);
  }
  grpc::ClientContext commit_context;
  v1::CommitSnapshotRequest commit;
  commit.set_snapshot_id(opened.snapshot_id());
  v1::EntryInfo info;
  ASSERT_TRUE(stub_->CommitSnapshot(&commit_context, commit, &info).ok());
  EXPECT_EQ(info.parts_size(), 2);
  for (uint32_t i = 0; i < 2; ++i) {
    absl::StatusOr<ClientBlob> blob = client_->Get("sessions/pipeline", i);
    ASSERT_TRUE(blob.ok());
    EXPECT_EQ(blob->data, parts[i]);
    EXPECT_EQ(blob->header.metadata().layers().first(), i * 6);
  }
  EXPECT_EQ(client_->Get("sessions/pipeline", 2).status().code(), absl::StatusCode::kOutOfRange);

  grpc::ClientContext list_context;
  v1::ListRequest list;
  list.set_prefix("sessions/");
  v1::ListResponse listed;
  ASSERT_TRUE(stub_->List(&list_context, list, &listed).ok());
  ASSERT_EQ(listed.entries_size(), 1);
  EXPECT_EQ(listed.entries(0).total_size(), 16'000u);
}

INSTANTIATE_TEST_SUITE_P(AllBackends, StateStoreServiceTest,
                         ::testing::Values(BackendKind::kMemory, BackendKind::kRocksDb,
                                           BackendKind::kRedis),
                         testing::BackendKindName);

}  // namespace
}  // namespace skein::state_store
