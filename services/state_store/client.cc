#include "services/state_store/client.h"

#include <algorithm>
#include <chrono>
#include <functional>
#include <memory>
#include <optional>

#include "absl/strings/str_cat.h"
#include "grpcpp/client_context.h"
#include "services/common/client_channel.h"
#include "services/common/status.h"
#include "services/state_store/chunk_codec.h"

namespace skein::state_store {
namespace {

v1::Checksum::Algorithm ToProto(ChecksumAlgorithm algorithm) {
  return algorithm == ChecksumAlgorithm::kCrc32c ? v1::Checksum::ALGORITHM_CRC32C
                                                 : v1::Checksum::ALGORITHM_XXH3_64;
}

constexpr uint64_t kMaxReserveBytes = 256ull << 20;

absl::Status TooMuch(const std::string& key, uint64_t announced) {
  return absl::DataLossError(
      absl::StrCat("get \"", key, "\": more bytes than the header announced (", announced, ")"));
}

}  // namespace

StateStoreClient::StateStoreClient(const std::shared_ptr<grpc::Channel>& channel)
    : channel_(channel),
      stub_(v1::StateStoreService::NewStub(channel)),
      raw_put_("/skein.v1.StateStoreService/Put", grpc::internal::RpcMethod::CLIENT_STREAMING,
               channel),
      raw_get_("/skein.v1.StateStoreService/Get", grpc::internal::RpcMethod::SERVER_STREAMING,
               channel) {}

absl::StatusOr<v1::PutResponse> StateStoreClient::Put(const std::string& key, std::string_view data,
                                                      const ClientPutOptions& options) {
  return PutChunks(key, data, options, [data](size_t offset, size_t size) {
    return CopiedChunkMessage(data.data() + offset, size);
  });
}

absl::StatusOr<v1::PutResponse> StateStoreClient::Put(const std::string& key,
                                                      std::shared_ptr<const std::string> data,
                                                      const ClientPutOptions& options) {
  if (data == nullptr) data = std::make_shared<const std::string>();
  return PutChunks(key, *data, options,
                   [data](size_t offset, size_t size) { return ChunkMessage(data, offset, size); });
}

absl::StatusOr<v1::PutResponse> StateStoreClient::PutChunks(
    const std::string& key, std::string_view data, const ClientPutOptions& options,
    const std::function<grpc::ByteBuffer(size_t offset, size_t size)>& chunk) {
  grpc::ClientContext context;
  SetTimeout(&context, options.timeout);
  grpc::ByteBuffer response_buffer;
  std::unique_ptr<grpc::ClientWriter<grpc::ByteBuffer>> writer(
      grpc::internal::ClientWriterFactory<grpc::ByteBuffer>::Create(channel_.get(), raw_put_,
                                                                    &context, &response_buffer));
  v1::PutRequest message;
  v1::PutHeader* header = message.mutable_header();
  header->set_key(key);
  *header->mutable_metadata() = options.metadata;
  header->set_total_size(data.size());
  header->mutable_checksum()->set_algorithm(ToProto(options.checksum));
  header->mutable_checksum()->set_value(ComputeChecksum(options.checksum, data));
  header->set_ttl_seconds(options.ttl_seconds);
  if (options.expected_version) header->set_expected_version(*options.expected_version);
  header->set_snapshot_id(options.snapshot_id);
  header->set_part(options.part);
  bool open = writer->Write(SerializeMessage(message));
  size_t chunk_bytes = std::max<size_t>(1, options.chunk_bytes);
  for (size_t offset = 0; open && offset < data.size(); offset += chunk_bytes) {
    open = writer->Write(chunk(offset, std::min(chunk_bytes, data.size() - offset)));
  }
  writer->WritesDone();
  grpc::Status status = writer->Finish();
  if (!status.ok()) return FromGrpcStatus(status);
  v1::PutResponse response;
  if (!ParseMessage(response_buffer, &response)) {
    return absl::InternalError(absl::StrCat("put \"", key, "\": malformed PutResponse"));
  }
  return response;
}

absl::StatusOr<v1::EntryInfo> StateStoreClient::Stat(const std::string& key,
                                                     absl::Duration timeout) {
  grpc::ClientContext context;
  SetTimeout(&context, timeout);
  v1::StatRequest request;
  request.set_key(key);
  v1::EntryInfo info;
  grpc::Status s = stub_->Stat(&context, request, &info);
  if (!s.ok()) return FromGrpcStatus(s);
  return info;
}

absl::StatusOr<ClientBlob> StateStoreClient::Get(const std::string& key, uint32_t part,
                                                 uint32_t chunk_bytes, absl::Duration timeout) {
  grpc::ClientContext context;
  SetTimeout(&context, timeout);
  v1::GetRequest request;
  request.set_key(key);
  request.set_part(part);
  request.set_chunk_bytes(chunk_bytes);
  std::unique_ptr<grpc::ClientReader<grpc::ByteBuffer>> reader(
      grpc::internal::ClientReaderFactory<grpc::ByteBuffer>::Create(channel_.get(), raw_get_,
                                                                    &context, request));
  ClientBlob blob;
  grpc::ByteBuffer buffer;
  v1::GetResponse message;
  bool have_header = false;
  absl::Status problem;
  while (problem.ok() && reader->Read(&buffer)) {
    if (have_header) {
      if (std::optional<ChunkView> chunk = FindChunk(buffer)) {
        if (blob.data.size() + chunk->size() > blob.header.size()) {
          problem = TooMuch(key, blob.header.size());
        } else {
          chunk->AppendTo(&blob.data);
        }
        continue;
      }
    }
    if (!ParseMessage(buffer, &message)) {
      problem = absl::DataLossError(absl::StrCat("get \"", key, "\": malformed GetResponse"));
    } else if (message.has_header()) {
      if (have_header) {
        problem = absl::DataLossError(absl::StrCat("get \"", key, "\": a second header"));
      }
      blob.header = message.header();
      // Reserve what the header announces, up to a bound: a faulty server must not make the
      // client allocate more than the bytes it actually sends.
      blob.data.reserve(std::min<uint64_t>(blob.header.size(), kMaxReserveBytes));
      have_header = true;
    } else if (!have_header) {
      problem = absl::DataLossError(absl::StrCat("get \"", key, "\": data before the header"));
    } else if (blob.data.size() + message.chunk().size() > blob.header.size()) {
      problem = TooMuch(key, blob.header.size());
    } else {
      blob.data.append(message.chunk());
    }
  }
  if (!problem.ok()) context.TryCancel();
  grpc::Status status = reader->Finish();
  if (!problem.ok()) return problem;
  if (!status.ok()) return FromGrpcStatus(status);
  if (!have_header) return absl::DataLossError(absl::StrCat("get \"", key, "\": no header"));
  if (blob.data.size() != blob.header.size()) {
    return absl::DataLossError(absl::StrCat("get \"", key, "\": received ", blob.data.size(),
                                            " bytes, the header announced ", blob.header.size()));
  }
  std::optional<ChecksumAlgorithm> algorithm;
  if (blob.header.checksum().algorithm() == v1::Checksum::ALGORITHM_CRC32C) {
    algorithm = ChecksumAlgorithm::kCrc32c;
  } else if (blob.header.checksum().algorithm() == v1::Checksum::ALGORITHM_XXH3_64) {
    algorithm = ChecksumAlgorithm::kXxh3_64;
  }
  if (!algorithm || ComputeChecksum(*algorithm, blob.data) != blob.header.checksum().value()) {
    return absl::DataLossError(
        absl::StrCat("get \"", key, "\": received data does not match its checksum"));
  }
  return blob;
}

}  // namespace skein::state_store
