#include "services/state_store/blob_streams.h"

#include <algorithm>
#include <memory>
#include <optional>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "services/common/status.h"
#include "services/state_store/chunk_codec.h"

namespace skein::state_store {

// Takes `bytes` from a shared budget for as long as it lives, if they fit. Keeps the budget
// alive itself: a Get's share may outlive the service (gRPC frees sent chunks last).
class BudgetShare {
 public:
  using Pool = std::shared_ptr<std::atomic<uint64_t>>;

  BudgetShare() = default;
  ~BudgetShare() { Return(); }
  BudgetShare(const BudgetShare&) = delete;
  BudgetShare& operator=(const BudgetShare&) = delete;

  // False (taking nothing) when `bytes` more would pass `limit` (0: no limit). `*held_before`
  // gets what others held.
  bool Take(const Pool& pool, uint64_t bytes, uint64_t limit, uint64_t* held_before) {
    Return();
    *held_before = pool->fetch_add(bytes);
    if (limit != 0 && *held_before + bytes > limit) {
      pool->fetch_sub(bytes);
      return false;
    }
    pool_ = pool;
    bytes_ = bytes;
    return true;
  }
  void Return() {
    if (pool_ != nullptr) pool_->fetch_sub(bytes_);
    pool_ = nullptr;
  }

 private:
  Pool pool_;
  uint64_t bytes_ = 0;
};

// A Put: a header, then chunks until the client half-closes; stored once complete.
class PutReactor final : public grpc::ServerReadReactor<grpc::ByteBuffer> {
 public:
  PutReactor(BlobStreams* streams, grpc::CallbackServerContext* context, grpc::ByteBuffer* response)
      : streams_(streams),
        context_(context),
        response_(response),
        watch_(streams->watchdog_.Start(context)) {
    StartRead(&buffer_);
  }

  void OnReadDone(bool ok) override {
    if (!ok) {
      InputEnded();
      return;
    }
    watch_.Progress();
    grpc::Status s = header_ ? TakeChunk() : TakeHeader();
    if (!s.ok()) {
      Finish(s);
      return;
    }
    StartRead(&buffer_);
  }

  void OnDone() override { delete this; }

 private:
  grpc::Status TakeHeader() {
    v1::PutRequest message;
    if (!ParseMessage(buffer_, &message)) {
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "malformed PutRequest");
    }
    if (!message.has_header()) {
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                          "the first message of a put must be a header, not a chunk");
    }
    if (absl::Status s = streams_->store_->CheckPutHeader(message.header()); !s.ok()) {
      return ToGrpcStatus(s);
    }
    const uint64_t announced = message.header().total_size();
    uint64_t before = 0;
    if (!budget_.Take(streams_->inflight_put_bytes_, announced,
                      streams_->options_.max_inflight_put_bytes, &before)) {
      return grpc::Status(
          grpc::StatusCode::RESOURCE_EXHAUSTED,
          absl::StrCat("puts in progress already hold ", before, " bytes; ", announced,
                       " more would pass the bound of ", streams_->options_.max_inflight_put_bytes,
                       " (--max-inflight-put-bytes); retry later"));
    }
    header_ = message.header();
    data_.reserve(announced);
    return grpc::Status::OK;
  }

  grpc::Status TakeChunk() {
    if (std::optional<ChunkView> chunk = FindChunk(buffer_)) {
      if (data_.size() + chunk->size() > header_->total_size()) return Overflow();
      chunk->AppendTo(&data_);
      return grpc::Status::OK;
    }
    v1::PutRequest message;
    if (!ParseMessage(buffer_, &message)) {
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "malformed PutRequest");
    }
    if (message.has_header()) {
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                          "a put carries one header; a second one arrived");
    }
    if (data_.size() + message.chunk().size() > header_->total_size()) return Overflow();
    data_.append(message.chunk());
    return grpc::Status::OK;
  }

  grpc::Status Overflow() const {
    return grpc::Status(grpc::StatusCode::DATA_LOSS,
                        absl::StrCat("more data than the header's total_size of ",
                                     header_->total_size(), " bytes; nothing was stored"));
  }

  // The client half-closed, went away, or the stream was cancelled for idleness.
  void InputEnded() {
    if (watch_.cancelled()) {
      Finish(grpc::Status(grpc::StatusCode::DEADLINE_EXCEEDED,
                          absl::StrCat("the put stream was idle for over ",
                                       absl::FormatDuration(streams_->watchdog_.idle_limit()),
                                       "; nothing was stored")));
      return;
    }
    if (context_->IsCancelled()) {
      Finish(grpc::Status(grpc::StatusCode::CANCELLED,
                          header_
                              ? absl::StrCat("client went away after ", data_.size(), " of ",
                                             header_->total_size(), " bytes; nothing was stored")
                              : std::string("client went away; nothing was stored")));
      return;
    }
    if (!header_) {
      Finish(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                          "the put stream ended without a header"));
      return;
    }
    // Storing waits on disk or Redis: off gRPC's threads.
    streams_->executor_.Schedule([this] {
      absl::StatusOr<v1::PutResponse> stored = streams_->store_->Put(*header_, std::move(data_));
      budget_.Return();
      if (!stored.ok()) {
        Finish(ToGrpcStatus(stored.status()));
        return;
      }
      *response_ = SerializeMessage(*stored);
      Finish(grpc::Status::OK);
    });
  }

  BlobStreams* const streams_;
  grpc::CallbackServerContext* const context_;
  grpc::ByteBuffer* const response_;
  StreamWatchdog::Watch watch_;
  grpc::ByteBuffer buffer_;
  std::optional<v1::PutHeader> header_;
  std::string data_;
  BudgetShare budget_;
};

// A Get: the header, then the blob in chunks of the requested size.
class GetReactor final : public grpc::ServerWriteReactor<grpc::ByteBuffer> {
 public:
  GetReactor(BlobStreams* streams, grpc::CallbackServerContext* context,
             const grpc::ByteBuffer* request)
      : streams_(streams), watch_(streams->watchdog_.Start(context)) {
    v1::GetRequest parsed;
    if (!ParseMessage(*request, &parsed)) {
      Finish(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "missing or malformed GetRequest"));
      return;
    }
    // Reading the blob waits on disk or Redis: off gRPC's threads.
    streams_->executor_.Schedule([this, parsed = std::move(parsed)] { Load(parsed); });
  }

  void OnWriteDone(bool ok) override {
    if (!ok) {
      Finish(watch_.cancelled()
                 ? grpc::Status(grpc::StatusCode::DEADLINE_EXCEEDED,
                                "the client read nothing for too long; the get was cancelled")
                 : grpc::Status(grpc::StatusCode::CANCELLED, "client went away"));
      return;
    }
    watch_.Progress();
    WriteNext();
  }

  void OnDone() override { delete this; }

 private:
  void Load(const v1::GetRequest& request) {
    absl::StatusOr<StateStore::Blob> blob = streams_->store_->Get(request.key(), request.part());
    if (!blob.ok()) {
      Finish(ToGrpcStatus(blob.status()));
      return;
    }
    // The blob and its share of the budget live as long as any chunk that refers to it: gRPC
    // may still hold chunks after this reactor is gone, and the bound counts them.
    auto held = std::make_shared<HeldBlob>();
    uint64_t before = 0;
    const BlobStreamOptions& options = streams_->options_;
    if (!held->share.Take(streams_->inflight_get_bytes_, blob->data.size(),
                          options.max_inflight_get_bytes, &before)) {
      Finish(grpc::Status(
          grpc::StatusCode::RESOURCE_EXHAUSTED,
          absl::StrCat("gets in progress already hold ", before, " bytes; ", blob->data.size(),
                       " more would pass the bound of ", options.max_inflight_get_bytes,
                       " (--max-inflight-get-bytes); retry later")));
      return;
    }
    chunk_bytes_ = std::clamp<size_t>(
        request.chunk_bytes() == 0 ? options.default_chunk_bytes : request.chunk_bytes(),
        options.min_chunk_bytes, options.max_chunk_bytes);
    v1::GetResponse header;
    *header.mutable_header() = std::move(blob->header);
    held->bytes = std::move(blob->data);
    data_ = std::shared_ptr<const std::string>(held, &held->bytes);
    out_ = SerializeMessage(header);
    StartWrite(&out_);
  }

  void WriteNext() {
    if (offset_ >= data_->size()) {
      Finish(grpc::Status::OK);
      return;
    }
    const size_t size = std::min(chunk_bytes_, data_->size() - offset_);
    out_ = ChunkMessage(data_, offset_, size);
    offset_ += size;
    StartWrite(&out_);
  }

  struct HeldBlob {
    std::string bytes;
    BudgetShare share;
  };

  BlobStreams* const streams_;
  StreamWatchdog::Watch watch_;
  std::shared_ptr<const std::string> data_;
  size_t chunk_bytes_ = 0;
  size_t offset_ = 0;
  grpc::ByteBuffer out_;
};

BlobStreams::BlobStreams(StateStore* store, BlobStreamOptions options)
    : store_(store),
      options_(options),
      watchdog_(options.stream_idle_timeout),
      executor_(options.io_threads) {}

grpc::ServerReadReactor<grpc::ByteBuffer>* BlobStreams::NewPut(grpc::CallbackServerContext* context,
                                                               grpc::ByteBuffer* response) {
  return new PutReactor(this, context, response);
}

grpc::ServerWriteReactor<grpc::ByteBuffer>* BlobStreams::NewGet(
    grpc::CallbackServerContext* context, const grpc::ByteBuffer* request) {
  return new GetReactor(this, context, request);
}

}  // namespace skein::state_store
