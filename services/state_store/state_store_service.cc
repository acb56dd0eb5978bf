#include "services/state_store/state_store_service.h"

#include <algorithm>
#include <memory>
#include <optional>
#include <string>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/str_cat.h"
#include "services/common/status.h"
#include "services/state_store/chunk_codec.h"

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
    : store_(store), options_(options), watchdog_(options.stream_idle_timeout) {
  // Put and Get (methods 0 and 1, in state_store.proto's order) read and write raw byte
  // buffers. A streamed handler is what gRPC's generated code offers for replacing a method's
  // handler; the server then treats the call as a bidirectional stream, which on the wire is
  // the same as the client- and server-streaming calls the clients make.
  using Handler = grpc::internal::BidiStreamingHandler<StateStoreServiceImpl, grpc::ByteBuffer,
                                                       grpc::ByteBuffer>;
  MarkMethodStreamed(0, new Handler(&StateStoreServiceImpl::RawPut, this));
  MarkMethodStreamed(1, new Handler(&StateStoreServiceImpl::RawGet, this));
}

grpc::Status StateStoreServiceImpl::RawPut(grpc::ServerContext* context, RawStream* stream) {
  StreamWatchdog::Watch watch = watchdog_.Start(context);
  const grpc::Status idle(
      grpc::StatusCode::DEADLINE_EXCEEDED,
      absl::StrCat("the put stream was idle for over ",
                   absl::FormatDuration(watchdog_.idle_limit()), "; nothing was stored"));
  grpc::ByteBuffer buffer;
  if (!stream->Read(&buffer)) {
    if (watch.cancelled()) return idle;
    if (context->IsCancelled()) {
      return grpc::Status(grpc::StatusCode::CANCELLED, "client went away; nothing was stored");
    }
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                        "the put stream ended without a header");
  }
  v1::PutRequest message;
  if (!ParseMessage(buffer, &message)) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "malformed PutRequest");
  }
  if (!message.has_header()) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                        "the first message of a put must be a header, not a chunk");
  }
  const v1::PutHeader header = message.header();
  if (absl::Status s = store_->CheckPutHeader(header); !s.ok()) return ToGrpcStatus(s);
  // The announced size is what this stream will buffer; refuse before reading any of it.
  const uint64_t announced = header.total_size();
  const uint64_t before = inflight_put_bytes_.fetch_add(announced);
  const auto release = absl::MakeCleanup([&] { inflight_put_bytes_.fetch_sub(announced); });
  if (options_.max_inflight_put_bytes != 0 &&
      before + announced > options_.max_inflight_put_bytes) {
    return grpc::Status(
        grpc::StatusCode::RESOURCE_EXHAUSTED,
        absl::StrCat("puts in progress already hold ", before, " bytes; ", announced,
                     " more would pass the bound of ", options_.max_inflight_put_bytes,
                     " (--max-inflight-put-bytes); retry later"));
  }

  std::string data;
  data.reserve(header.total_size());
  auto too_much = [&](size_t more) { return data.size() + more > header.total_size(); };
  const grpc::Status overflow(grpc::StatusCode::DATA_LOSS,
                              absl::StrCat("more data than the header's total_size of ",
                                           header.total_size(), " bytes; nothing was stored"));
  while (stream->Read(&buffer)) {
    watch.Progress();
    if (std::optional<ChunkView> chunk = FindChunk(buffer)) {
      if (too_much(chunk->size())) return overflow;
      chunk->AppendTo(&data);
      continue;
    }
    if (!ParseMessage(buffer, &message)) {
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "malformed PutRequest");
    }
    if (message.has_header()) {
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                          "a put carries one header; a second one arrived");
    }
    if (too_much(message.chunk().size())) return overflow;
    data.append(message.chunk());
  }
  if (watch.cancelled()) return idle;
  if (context->IsCancelled()) {
    return grpc::Status(grpc::StatusCode::CANCELLED,
                        absl::StrCat("client went away after ", data.size(), " of ",
                                     header.total_size(), " bytes; nothing was stored"));
  }
  absl::StatusOr<v1::PutResponse> response = store_->Put(header, std::move(data));
  if (!response.ok()) return ToGrpcStatus(response.status());
  stream->WriteLast(SerializeMessage(*response), grpc::WriteOptions());
  return grpc::Status::OK;
}

grpc::Status StateStoreServiceImpl::RawGet(grpc::ServerContext* context, RawStream* stream) {
  // A client that stops reading blocks Write (flow control) while the blob is held.
  StreamWatchdog::Watch watch = watchdog_.Start(context);
  grpc::ByteBuffer buffer;
  v1::GetRequest request;
  if (!stream->Read(&buffer) || !ParseMessage(buffer, &request)) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "missing or malformed GetRequest");
  }
  absl::StatusOr<StateStore::Blob> blob = store_->Get(request.key(), request.part());
  if (!blob.ok()) return ToGrpcStatus(blob.status());
  size_t chunk_bytes =
      request.chunk_bytes() == 0 ? options_.default_chunk_bytes : request.chunk_bytes();
  chunk_bytes = std::clamp<size_t>(chunk_bytes, options_.min_chunk_bytes, options_.max_chunk_bytes);
  v1::GetResponse header;
  *header.mutable_header() = std::move(blob->header);
  if (!stream->Write(SerializeMessage(header))) {
    return grpc::Status(grpc::StatusCode::CANCELLED, "client went away");
  }
  // The chunks refer to the blob; gRPC releases it once they are sent.
  const auto data = std::make_shared<const std::string>(std::move(blob->data));
  for (size_t offset = 0; offset < data->size(); offset += chunk_bytes) {
    if (!stream->Write(ChunkMessage(data, offset, std::min(chunk_bytes, data->size() - offset)))) {
      if (watch.cancelled()) {
        return grpc::Status(grpc::StatusCode::DEADLINE_EXCEEDED,
                            "the client read nothing for too long; the get was cancelled");
      }
      return grpc::Status(grpc::StatusCode::CANCELLED, "client went away");
    }
    watch.Progress();
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
