// A client of skein.v1.StateStoreService for whole blobs: Put splits data into chunks and
// sends its checksum; Get reassembles the chunks and verifies size and checksum before
// returning (end-to-end: a blob corrupted anywhere on the way is DATA_LOSS, never data).
// Chunks are written to and read from gRPC's buffers directly (chunk_codec.h).
// Used by the `skein state` CLI, the workers, tests and benchmarks. Thread-safe (gRPC stubs
// are).
#ifndef SKEIN_SERVICES_STATE_STORE_CLIENT_H_
#define SKEIN_SERVICES_STATE_STORE_CLIENT_H_

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "grpcpp/channel.h"
#include "grpcpp/impl/rpc_method.h"
#include "grpcpp/support/byte_buffer.h"
#include "services/state_store/checksum.h"
#include "skein/v1/state_store.grpc.pb.h"

namespace skein::state_store {

struct ClientPutOptions {
  v1::StateMetadata metadata;
  uint64_t ttl_seconds = 0;
  std::optional<uint64_t> expected_version;
  // For a part of an open snapshot.
  std::string snapshot_id;
  uint32_t part = 0;
  ChecksumAlgorithm checksum = ChecksumAlgorithm::kXxh3_64;
  size_t chunk_bytes = 1 << 20;
  // Deadline for the whole call; zero or less means none.
  absl::Duration timeout = absl::Seconds(60);
};

struct ClientBlob {
  v1::GetHeader header;
  std::string data;
};

class StateStoreClient {
 public:
  explicit StateStoreClient(const std::shared_ptr<grpc::Channel>& channel);

  // Errors: the server's (see state_store.proto); UNAVAILABLE when it cannot be reached.
  absl::StatusOr<v1::PutResponse> Put(const std::string& key, std::string_view data,
                                      const ClientPutOptions& options = {});
  // The same, sending the chunks straight from `data`'s memory instead of a copy; gRPC keeps
  // `data` alive until it has sent them (which may be a moment after Put returns).
  absl::StatusOr<v1::PutResponse> Put(const std::string& key,
                                      std::shared_ptr<const std::string> data,
                                      const ClientPutOptions& options = {});
  // Errors: the server's; DATA_LOSS when what arrived does not match the header's size or
  // checksum.
  absl::StatusOr<ClientBlob> Get(const std::string& key, uint32_t part = 0,
                                 uint32_t chunk_bytes = 0,
                                 absl::Duration timeout = absl::Seconds(60));

  // Describes an entry. Errors: the server's (NOT_FOUND); UNAVAILABLE.
  absl::StatusOr<v1::EntryInfo> Stat(const std::string& key,
                                     absl::Duration timeout = absl::Seconds(60));

  v1::StateStoreService::Stub& stub() { return *stub_; }

 private:
  absl::StatusOr<v1::PutResponse> PutChunks(
      const std::string& key, std::string_view data, const ClientPutOptions& options,
      const std::function<grpc::ByteBuffer(size_t offset, size_t size)>& chunk);

  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::StateStoreService::Stub> stub_;
  // Put and Get as raw byte-buffer calls (chunk_codec.h), so that chunks skip protobuf's
  // copies; the messages on the wire are the ones state_store.proto declares.
  grpc::internal::RpcMethod raw_put_;
  grpc::internal::RpcMethod raw_get_;
};

}  // namespace skein::state_store

#endif  // SKEIN_SERVICES_STATE_STORE_CLIENT_H_
