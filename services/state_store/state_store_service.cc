#include "services/state_store/state_store_service.h"

#include <algorithm>
#include <memory>
#include <optional>
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
    : store_(store), streams_(store, options) {}

grpc::ServerReadReactor<grpc::ByteBuffer>* StateStoreServiceImpl::Put(
    grpc::CallbackServerContext* context, grpc::ByteBuffer* response) {
  return streams_.NewPut(context, response);
}

grpc::ServerWriteReactor<grpc::ByteBuffer>* StateStoreServiceImpl::Get(
    grpc::CallbackServerContext* context, const grpc::ByteBuffer* request) {
  return streams_.NewGet(context, request);
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
