#include "services/state_store/client.h"

#include <algorithm>
#include <chrono>

#include "absl/strings/str_cat.h"
#include "grpcpp/client_context.h"
#include "services/common/status.h"

namespace skein::state_store {
namespace {

void SetDeadline(grpc::ClientContext* context, absl::Duration timeout) {
  if (timeout > absl::ZeroDuration()) {
    context->set_deadline(std::chrono::system_clock::now() +
                          std::chrono::microseconds(absl::ToInt64Microseconds(timeout)));
  }
}

v1::Checksum::Algorithm ToProto(ChecksumAlgorithm algorithm) {
  return algorithm == ChecksumAlgorithm::kCrc32c ? v1::Checksum::ALGORITHM_CRC32C
                                                 : v1::Checksum::ALGORITHM_XXH3_64;
}

}  // namespace

StateStoreClient::StateStoreClient(const std::shared_ptr<grpc::Channel>& channel)
    : stub_(v1::StateStoreService::NewStub(channel)) {}

absl::StatusOr<v1::PutResponse> StateStoreClient::Put(const std::string& key, std::string_view data,
                                                      const ClientPutOptions& options) {
  grpc::ClientContext context;
  SetDeadline(&context, options.timeout);
  v1::PutResponse response;
  std::unique_ptr<grpc::ClientWriter<v1::PutRequest>> writer = stub_->Put(&context, &response);
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
  bool open = writer->Write(message);
  size_t chunk_bytes = std::max<size_t>(1, options.chunk_bytes);
  for (size_t offset = 0; open && offset < data.size(); offset += chunk_bytes) {
    message.Clear();
    message.set_chunk(data.data() + offset, std::min(chunk_bytes, data.size() - offset));
    open = writer->Write(message);
  }
  writer->WritesDone();
  grpc::Status status = writer->Finish();
  if (!status.ok()) return FromGrpcStatus(status);
  return response;
}

absl::StatusOr<ClientBlob> StateStoreClient::Get(const std::string& key, uint32_t part,
                                                 uint32_t chunk_bytes, absl::Duration timeout) {
  grpc::ClientContext context;
  SetDeadline(&context, timeout);
  v1::GetRequest request;
  request.set_key(key);
  request.set_part(part);
  request.set_chunk_bytes(chunk_bytes);
  std::unique_ptr<grpc::ClientReader<v1::GetResponse>> reader = stub_->Get(&context, request);
  ClientBlob blob;
  v1::GetResponse message;
  bool have_header = false;
  while (reader->Read(&message)) {
    if (message.has_header()) {
      blob.header = message.header();
      blob.data.reserve(blob.header.size());
      have_header = true;
    } else {
      blob.data.append(message.chunk());
    }
  }
  grpc::Status status = reader->Finish();
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
