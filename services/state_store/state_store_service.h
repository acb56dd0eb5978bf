// The gRPC face of StateStore: skein.v1.StateStoreService. It turns the Put and Get streams
// into whole blobs (Put: header, then chunks until the client half-closes; Get: header, then
// chunks of the requested size) and maps absl::Status to gRPC status. All behaviour lives in
// StateStore. Thread-safe (gRPC calls it from many threads).
//
// Put and Get take their messages as raw byte buffers (chunk_codec.h), so that chunks go
// from the wire into the blob and from the stored blob onto the wire without protobuf's
// copies; on the wire they are the same messages as state_store.proto declares.
#ifndef SKEIN_SERVICES_STATE_STORE_STATE_STORE_SERVICE_H_
#define SKEIN_SERVICES_STATE_STORE_STATE_STORE_SERVICE_H_

#include <atomic>
#include <cstdint>

#include "absl/time/time.h"
#include "services/state_store/store.h"
#include "services/state_store/stream_watchdog.h"
#include "skein/v1/state_store.grpc.pb.h"

namespace skein::state_store {

struct ServiceOptions {
  // Get chunk size when the request leaves it 0.
  uint32_t default_chunk_bytes = 1 << 20;
  // Chunk sizes asked for are clamped to [min_chunk_bytes, max_chunk_bytes]; the maximum
  // must leave room in --max-message-bytes for the message framing.
  uint32_t min_chunk_bytes = 4 << 10;
  uint32_t max_chunk_bytes = 4 << 20;
  // Bytes that Put streams in progress may announce together (their headers' total_size,
  // buffered in memory until stored); a Put beyond it is refused with RESOURCE_EXHAUSTED
  // before any data is read. 0: no bound.
  uint64_t max_inflight_put_bytes = 1ull << 30;
  // A Put or Get stream that moves no message for this long is cancelled (0: never).
  absl::Duration stream_idle_timeout = absl::Seconds(60);
};

class StateStoreServiceImpl final : public v1::StateStoreService::Service {
 public:
  // `store` is not owned and must outlive the service.
  StateStoreServiceImpl(StateStore* store, ServiceOptions options);

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
  using RawStream = grpc::ServerReaderWriter<grpc::ByteBuffer, grpc::ByteBuffer>;
  grpc::Status RawPut(grpc::ServerContext* context, RawStream* stream);
  grpc::Status RawGet(grpc::ServerContext* context, RawStream* stream);

  StateStore* store_;
  ServiceOptions options_;
  std::atomic<uint64_t> inflight_put_bytes_{0};
  StreamWatchdog watchdog_;
};

}  // namespace skein::state_store

#endif  // SKEIN_SERVICES_STATE_STORE_STATE_STORE_SERVICE_H_
