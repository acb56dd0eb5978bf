// The Put and Get streams of skein.v1.StateStoreService, on gRPC's callback API with raw byte
// buffers: chunks go from the wire into the blob being assembled and from the stored blob
// onto the wire without protobuf's copies (chunk_codec.h). A stream holds no thread while it
// waits on its client; the store's blocking calls run on a BlockingExecutor.
//
// Bounds (each refused with RESOURCE_EXHAUSTED before the bytes are held, or, for a stream
// idle too long, cancelled): the bytes puts in progress announce, the bytes gets in progress
// hold, and the time a stream may go without moving a message.
#ifndef SKEIN_SERVICES_STATE_STORE_BLOB_STREAMS_H_
#define SKEIN_SERVICES_STATE_STORE_BLOB_STREAMS_H_

#include <atomic>
#include <cstdint>
#include <memory>

#include "absl/time/time.h"
#include "grpcpp/support/byte_buffer.h"
#include "grpcpp/support/server_callback.h"
#include "services/state_store/blocking_executor.h"
#include "services/state_store/store.h"
#include "services/state_store/stream_watchdog.h"

namespace skein::state_store {

struct BlobStreamOptions {
  // Get chunk size when the request leaves it 0.
  uint32_t default_chunk_bytes = 1 << 20;
  // Chunk sizes asked for are clamped to [min_chunk_bytes, max_chunk_bytes]; the maximum
  // must leave room in --max-message-bytes for the message framing.
  uint32_t min_chunk_bytes = 4 << 10;
  uint32_t max_chunk_bytes = 4 << 20;
  // Bytes that Put streams in progress may announce together (their headers' total_size,
  // buffered in memory until stored); a Put beyond it is refused before any data is read.
  // 0: no bound.
  uint64_t max_inflight_put_bytes = 1ull << 30;
  // Bytes of blobs that Get streams in progress may hold together while their clients read
  // them. 0: no bound.
  uint64_t max_inflight_get_bytes = 1ull << 30;
  // A Put or Get stream that moves no message for this long is cancelled (0: never).
  absl::Duration stream_idle_timeout = absl::Seconds(60);
  // Threads for the store's blocking calls made for streams.
  int io_threads = 8;
};

// What every stream shares. Outlives them: the server is shut down before it is destroyed.
class BlobStreams {
 public:
  // `store` is not owned and must outlive this.
  BlobStreams(StateStore* store, BlobStreamOptions options);

  // A reactor for one call; gRPC owns it (it deletes itself when the call is done).
  grpc::ServerReadReactor<grpc::ByteBuffer>* NewPut(grpc::CallbackServerContext* context,
                                                    grpc::ByteBuffer* response);
  grpc::ServerWriteReactor<grpc::ByteBuffer>* NewGet(grpc::CallbackServerContext* context,
                                                     const grpc::ByteBuffer* request);

 private:
  friend class PutReactor;
  friend class GetReactor;

  StateStore* const store_;
  const BlobStreamOptions options_;
  // Shared with what holds a share of them (BudgetShare in blob_streams.cc).
  const std::shared_ptr<std::atomic<uint64_t>> inflight_put_bytes_ =
      std::make_shared<std::atomic<uint64_t>>(0);
  const std::shared_ptr<std::atomic<uint64_t>> inflight_get_bytes_ =
      std::make_shared<std::atomic<uint64_t>>(0);
  StreamWatchdog watchdog_;
  // Last: destroyed (and so drained) first, while what its tasks use still exists.
  BlockingExecutor executor_;
};

}  // namespace skein::state_store

#endif  // SKEIN_SERVICES_STATE_STORE_BLOB_STREAMS_H_
