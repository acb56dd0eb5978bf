// The gRPC face of StateStore: skein.v1.StateStoreService. It turns the Put and Get streams
// into whole blobs (Put: header, then chunks until the client half-closes; Get: header, then
// chunks of the requested size) and maps absl::Status to gRPC status. All behaviour lives in
// StateStore. Thread-safe (gRPC calls it from many threads).
//
// Put and Get take their messages as raw byte buffers (blob_streams.h, chunk_codec.h), so
// that chunks go from the wire into the blob and from the stored blob onto the wire without
// protobuf's copies; on the wire they are the same messages as state_store.proto declares.
#ifndef SKEIN_SERVICES_STATE_STORE_STATE_STORE_SERVICE_H_
#define SKEIN_SERVICES_STATE_STORE_STATE_STORE_SERVICE_H_

#include "services/state_store/blob_streams.h"
#include "services/state_store/store.h"
#include "skein/v1/state_store.grpc.pb.h"

namespace skein::state_store {

// Chunk sizes and the bounds of the Put and Get streams (blob_streams.h).
using ServiceOptions = BlobStreamOptions;

// Put and Get use the callback API with raw byte buffers (blob_streams.h); the other methods
// are synchronous.
class StateStoreServiceImpl final
    : public v1::StateStoreService::WithRawCallbackMethod_Put<
          v1::StateStoreService::WithRawCallbackMethod_Get<v1::StateStoreService::Service>> {
 public:
  // `store` is not owned and must outlive the service.
  StateStoreServiceImpl(StateStore* store, ServiceOptions options);

  grpc::ServerReadReactor<grpc::ByteBuffer>* Put(grpc::CallbackServerContext* context,
                                                 grpc::ByteBuffer* response) override;
  grpc::ServerWriteReactor<grpc::ByteBuffer>* Get(grpc::CallbackServerContext* context,
                                                  const grpc::ByteBuffer* request) override;

  grpc::Status Stat(grpc::ServerContext* context, const v1::StatRequest* request,
                    v1::EntryInfo* response) override;
  grpc::Status Delete(grpc::ServerContext* context, const v1::DeleteRequest* request,
                      v1::DeleteResponse* response) override;
  grpc::Status List(grpc::ServerContext* context, const v1::ListRequest* request,
                    v1::ListResponse* response) override;
  grpc::Status Touch(grpc::ServerContext* context, const v1::TouchRequest* request,
                     v1::EntryInfo* response) override;
  grpc::Status Pin(grpc::ServerContext* context, const v1::PinRequest* request,
                   v1::PinResponse* response) override;
  grpc::Status Unpin(grpc::ServerContext* context, const v1::UnpinRequest* request,
                     v1::UnpinResponse* response) override;
  grpc::Status BeginSnapshot(grpc::ServerContext* context, const v1::BeginSnapshotRequest* request,
                             v1::BeginSnapshotResponse* response) override;
  grpc::Status CommitSnapshot(grpc::ServerContext* context,
                              const v1::CommitSnapshotRequest* request,
                              v1::EntryInfo* response) override;
  grpc::Status AbortSnapshot(grpc::ServerContext* context, const v1::AbortSnapshotRequest* request,
                             v1::AbortSnapshotResponse* response) override;

 private:
  StateStore* store_;
  BlobStreams streams_;
};

}  // namespace skein::state_store

#endif  // SKEIN_SERVICES_STATE_STORE_STATE_STORE_SERVICE_H_
