// The wire form of the chunk messages that carry a blob's bytes (PutRequest and GetResponse,
// whose `chunk` is field 2), built and read directly on gRPC byte buffers. Through protobuf,
// a chunk is copied into the message, then into the wire buffer, and on the other side from
// the wire buffer into the message and then into the blob: four copies of every byte of a
// multi-megabyte state. Here a chunk is sent straight from the blob's memory and received
// straight into the blob being assembled.
//
// A message that is anything other than exactly one chunk field (a header, or an unusual but
// valid encoding from another client) is left to protobuf: FindChunk says so, and callers
// parse it the normal way, so every valid message is understood.
#ifndef SKEIN_SERVICES_STATE_STORE_CHUNK_CODEC_H_
#define SKEIN_SERVICES_STATE_STORE_CHUNK_CODEC_H_

#include <cstddef>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "google/protobuf/message_lite.h"
#include "grpcpp/support/byte_buffer.h"
#include "grpcpp/support/slice.h"

namespace skein::state_store {

// A message holding only `chunk` = bytes [offset, offset + size) of `*owner`, referring to
// them without copying. gRPC holds `owner` until it has sent the bytes.
grpc::ByteBuffer ChunkMessage(std::shared_ptr<const std::string> owner, size_t offset, size_t size);

// The same message with its own copy of the bytes, for callers that cannot hand over
// ownership.
grpc::ByteBuffer CopiedChunkMessage(const char* data, size_t size);

// Where the bytes of a chunk-only message lie in its buffer.
class ChunkView {
 public:
  size_t size() const { return size_; }
  // Appends the chunk's bytes to `out`.
  void AppendTo(std::string* out) const;

 private:
  friend std::optional<ChunkView> FindChunk(const grpc::ByteBuffer& buffer);
  std::vector<grpc::Slice> slices_;
  size_t skip_ = 0;  // bytes of tag and length before the chunk
  size_t size_ = 0;
};

// The chunk of `buffer` if it is a chunk-only message; nullopt for any other message (which
// the caller then parses with protobuf).
std::optional<ChunkView> FindChunk(const grpc::ByteBuffer& buffer);

// Protobuf to and from byte buffers, for the small messages around the chunks. ParseMessage
// is false when the bytes are not a valid `message`.
grpc::ByteBuffer SerializeMessage(const google::protobuf::MessageLite& message);
bool ParseMessage(const grpc::ByteBuffer& buffer, google::protobuf::MessageLite* message);

}  // namespace skein::state_store

#endif  // SKEIN_SERVICES_STATE_STORE_CHUNK_CODEC_H_
