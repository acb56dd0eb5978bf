#include "services/state_store/state_store_service.h"

#include <algorithm>
#include <string>

#include "absl/strings/str_cat.h"
#include "services/common/status.h"

namespace skein::state_store {
namespace {

// Copies a StatusOr's value into a response message, or returns its error.
template <typename T>
grpc::Status Answer(absl::StatusOr<T> result, T* response) {
  if (!result.ok()) return ToGrpcStatus(result.status());
  *response = *std::move(result);
  return grpc::Status::OK;
}

}  // namespace

StateStoreServiceImpl::StateStoreServiceImpl(StateStore* store, ServiceOptions options)
    : store_(store), options_(options) {}

grpc::Status StateStoreServiceImpl::Put(grpc::ServerContext* context,
                                        grpc::ServerReader<v1::PutRequest>* reader,
                                        v1::PutResponse* response) {
  v1::PutRequest message;
  if (!reader->Read(&message)) {
    if (context->IsCancelled()) {
      return grpc::Status(grpc::StatusCode::CANCELLED, "client went away; nothing was stored");
    }
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                        "the put stream ended without a header");
  }
  if (!message.has_header()) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                        "the first message of a put must be a header, not a chunk");
  }
  const v1::PutHeader header = message.header();
  if (absl::Status s = store_->CheckPutHeader(header); !s.ok()) return ToGrpcStatus(s);

  std::string data;
  data.reserve(header.total_size());
  while (reader->Read(&message)) {
    if (message.has_header()) {
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                          "a put carries one header; a second one arrived");
    }
    const std::string& chunk = message.chunk();
    if (data.size() + chunk.size() > header.total_size()) {
      return grpc::Status(grpc::StatusCode::DATA_LOSS,
                          absl::StrCat("more data than the header's total_size of ",
                                       header.total_size(), " bytes; nothing was stored"));
    }
    data.append(chunk);
  }
  if (context->IsCancelled()) {
    return grpc::Status(grpc::StatusCode::CANCELLED,
                        absl::StrCat("client went away after ", data.size(), " of ",
                                     header.total_size(), " bytes; nothing was stored"));
  }
  return Answer(store_->Put(header, std::move(data)), response);
}

grpc::Status StateStoreServiceImpl::Get(grpc::ServerContext* /*context*/,
                                        const v1::GetRequest* request,
                                        grpc::ServerWriter<v1::GetResponse>* writer) {
  absl::StatusOr<StateStore::Blob> blob = store_->Get(request->key(), request->part());
  if (!blob.ok()) return ToGrpcStatus(blob.status());
  size_t chunk_bytes =
      request->chunk_bytes() == 0 ? options_.default_chunk_bytes : request->chunk_bytes();
  chunk_bytes = std::clamp<size_t>(chunk_bytes, options_.min_chunk_bytes, options_.max_chunk_bytes);
  v1::GetResponse message;
  *message.mutable_header() = std::move(blob->header);
  if (!writer->Write(message)) {
    return grpc::Status(grpc::StatusCode::CANCELLED, "client went away");
  }
  const std::string& data = blob->data;
  for (size_t offset = 0; offset < data.size(); offset += chunk_bytes) {
    message.Clear();
    message.set_chunk(data.data() + offset, std::min(chunk_bytes, data.size() - offset));
    if (!writer->Write(message)) {
      return grpc::Status(grpc::StatusCode::CANCELLED, "client went away");
    }
  }
  return grpc::Status::OK;
}

grpc::Status StateStoreServiceImpl::Stat(grpc::ServerContext*, const v1::StatRequest* request,
                                         v1::EntryInfo* response) {
  return Answer(store_->Stat(request->key()), response);
}

grpc::Status StateStoreServiceImpl::Delete(grpc::ServerContext*, const v1::DeleteRequest* request,
                                           v1::DeleteResponse* response) {
  return Answer(store_->Delete(*request), response);
}

grpc::Status StateStoreServiceImpl::List(grpc::ServerContext*, const v1::ListRequest* request,
                                         v1::ListResponse* response) {
  return Answer(store_->List(*request), response);
}

grpc::Status StateStoreServiceImpl::Touch(grpc::ServerContext*, const v1::TouchRequest* request,
                                          v1::EntryInfo* response) {
  return Answer(store_->Touch(*request), response);
}

grpc::Status StateStoreServiceImpl::Pin(grpc::ServerContext*, const v1::PinRequest* request,
                                        v1::PinResponse* response) {
  return Answer(store_->Pin(*request), response);
}

grpc::Status StateStoreServiceImpl::Unpin(grpc::ServerContext*, const v1::UnpinRequest* request,
                                          v1::UnpinResponse*) {
  return ToGrpcStatus(store_->Unpin(*request));
}

grpc::Status StateStoreServiceImpl::BeginSnapshot(grpc::ServerContext*,
                                                  const v1::BeginSnapshotRequest* request,
                                                  v1::BeginSnapshotResponse* response) {
  return Answer(store_->BeginSnapshot(*request), response);
}

grpc::Status StateStoreServiceImpl::CommitSnapshot(grpc::ServerContext*,
                                                   const v1::CommitSnapshotRequest* request,
                                                   v1::EntryInfo* response) {
  return Answer(store_->CommitSnapshot(*request), response);
}

grpc::Status StateStoreServiceImpl::AbortSnapshot(grpc::ServerContext*,
                                                  const v1::AbortSnapshotRequest* request,
                                                  v1::AbortSnapshotResponse*) {
  return ToGrpcStatus(store_->AbortSnapshot(*request));
}

}  // namespace skein::state_store
