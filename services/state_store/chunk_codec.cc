#include "services/state_store/chunk_codec.h"

#include <algorithm>
#include <cstdint>
#include <cstring>

#include "grpcpp/support/proto_buffer_reader.h"

namespace skein::state_store {
namespace {

// Tag of field 2 with wire type 2 (length-delimited): (2 << 3) | 2.
constexpr uint8_t kChunkTag = 0x12;
// A tag byte and a varint length of at most 10 bytes.
constexpr size_t kMaxPrefix = 11;

// Writes the tag and the length of a chunk of `size` bytes; returns the bytes written.
size_t WritePrefix(size_t size, uint8_t* out) {
  size_t n = 0;
  out[n++] = kChunkTag;
  uint64_t v = size;
  while (v >= 0x80) {
    out[n++] = static_cast<uint8_t>(v | 0x80);
    v >>= 7;
  }
  out[n++] = static_cast<uint8_t>(v);
  return n;
}

grpc::Slice PrefixSlice(size_t size) {
  uint8_t prefix[kMaxPrefix];
  return grpc::Slice(prefix, WritePrefix(size, prefix));
}

void ReleaseOwner(void* owner) { delete static_cast<std::shared_ptr<const std::string>*>(owner); }

}  // namespace

grpc::ByteBuffer ChunkMessage(std::shared_ptr<const std::string> owner, size_t offset,
                              size_t size) {
  // gRPC does not write through the pointer; the slice API just takes a void*.
  void* bytes = const_cast<char*>(owner->data() + offset);
  grpc::Slice slices[2] = {
      PrefixSlice(size),
      grpc::Slice(bytes, size, &ReleaseOwner, new std::shared_ptr<const std::string>(owner))};
  return grpc::ByteBuffer(slices, 2);
}

grpc::ByteBuffer CopiedChunkMessage(const char* data, size_t size) {
  grpc::Slice slice(size + kMaxPrefix);
  uint8_t* out = const_cast<uint8_t*>(slice.begin());
  const size_t prefix = WritePrefix(size, out);
  std::memcpy(out + prefix, data, size);
  grpc::Slice whole = slice.sub(0, prefix + size);
  return grpc::ByteBuffer(&whole, 1);
}

std::optional<ChunkView> FindChunk(const grpc::ByteBuffer& buffer) {
  ChunkView view;
  if (!buffer.Dump(&view.slices_).ok()) return std::nullopt;
  // The tag and length may straddle slices; gather the first few bytes.
  uint8_t head[kMaxPrefix];
  size_t have = 0;
  for (const grpc::Slice& slice : view.slices_) {
    const size_t take = std::min(slice.size(), kMaxPrefix - have);
    std::memcpy(head + have, slice.begin(), take);
    have += take;
    if (have == kMaxPrefix) break;
  }
  if (have == 0 || head[0] != kChunkTag) return std::nullopt;
  uint64_t size = 0;
  size_t at = 1;
  for (int shift = 0;; shift += 7) {
    if (at == have || shift > 63) return std::nullopt;
    const uint8_t byte = head[at++];
    size |= static_cast<uint64_t>(byte & 0x7F) << shift;
    if ((byte & 0x80) == 0) break;
  }
  // Exactly the chunk, nothing after it (a later field would need protobuf's rules).
  if (size != buffer.Length() - at) return std::nullopt;
  view.skip_ = at;
  view.size_ = static_cast<size_t>(size);
  return view;
}

void ChunkView::AppendTo(std::string* out) const {
  size_t skip = skip_;
  for (const grpc::Slice& slice : slices_) {
    if (skip >= slice.size()) {
      skip -= slice.size();
      continue;
    }
    out->append(reinterpret_cast<const char*>(slice.begin()) + skip, slice.size() - skip);
    skip = 0;
  }
}

grpc::ByteBuffer SerializeMessage(const google::protobuf::MessageLite& message) {
  grpc::Slice slice(message.ByteSizeLong());
  message.SerializeWithCachedSizesToArray(const_cast<uint8_t*>(slice.begin()));
  return grpc::ByteBuffer(&slice, 1);
}

bool ParseMessage(const grpc::ByteBuffer& buffer, google::protobuf::MessageLite* message) {
  grpc::ByteBuffer copy(buffer);  // shares the slices; the reader consumes its argument
  grpc::ProtoBufferReader reader(&copy);
  return message->ParseFromZeroCopyStream(&reader);
}

}  // namespace skein::state_store
