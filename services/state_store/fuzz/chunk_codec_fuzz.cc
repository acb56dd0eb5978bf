// libFuzzer target: the state store's chunk codec (chunk_codec.h), which reads PutRequest and
// GetResponse chunks straight off gRPC byte buffers instead of through protobuf. Whatever a
// peer sends arrives here first, cut into slices wherever the transport cut it, so the input
// is a slicing plan followed by the message bytes:
//   byte 0             number of cuts (mod 8)
//   next `cuts` bytes  where to cut, each as an offset into what is left of the message
//   the rest           the message
// The codec must agree with protobuf, the format it short-cuts: a message it takes for a chunk
// must parse (as PutRequest and as GetResponse) to exactly that chunk, and every message
// that protobuf itself would write for a lone chunk must be taken for one. Messages it builds
// must read back to the bytes they were built from.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "google/protobuf/stubs/logging.h"
#include "services/state_store/chunk_codec.h"
#include "skein/v1/state_store.pb.h"

namespace skein::state_store {
namespace {

grpc::ByteBuffer Sliced(const std::string& wire, const std::vector<size_t>& cuts) {
  std::vector<grpc::Slice> slices;
  size_t from = 0;
  for (size_t cut : cuts) {
    slices.emplace_back(wire.data() + from, cut - from);
    from = cut;
  }
  slices.emplace_back(wire.data() + from, wire.size() - from);
  return grpc::ByteBuffer(slices.data(), slices.size());
}

std::string ChunkOf(const ChunkView& view) {
  std::string out = "x";  // AppendTo appends: what is there already must stay
  view.AppendTo(&out);
  if (out.size() != 1 + view.size() || out[0] != 'x') std::abort();
  return out.substr(1);
}

// Protobuf's reading of `buffer` as message M, if it is a lone chunk.
template <typename M>
std::optional<std::string> ProtobufChunk(const grpc::ByteBuffer& buffer) {
  M message;
  if (!ParseMessage(buffer, &message) || message.item_case() != M::kChunk) return std::nullopt;
  return message.chunk();
}

void CheckBuffer(const std::string& wire, const std::vector<size_t>& cuts) {
  const grpc::ByteBuffer buffer = Sliced(wire, cuts);
  const std::optional<ChunkView> view = FindChunk(buffer);
  const std::optional<std::string> put = ProtobufChunk<v1::PutRequest>(buffer);
  const std::optional<std::string> get = ProtobufChunk<v1::GetResponse>(buffer);
  if (view.has_value()) {
    // Nothing but one chunk field: both messages read it the same way.
    const std::string chunk = ChunkOf(*view);
    if (put != chunk || get != chunk) std::abort();
  } else if (put.has_value()) {
    // Protobuf saw a chunk that the codec left to it: fine for an unusual encoding (a
    // repeated field, an overlong length, unknown fields), never for protobuf's own.
    v1::PutRequest canonical;
    canonical.set_chunk(*put);
    if (canonical.SerializeAsString() == wire) std::abort();
  }
}

void CheckBuiltMessages(const std::string& data) {
  // Built from a shared owner at an offset, and as a copy; both must read back exactly.
  const auto owner = std::make_shared<const std::string>("head" + data + "tail");
  for (const grpc::ByteBuffer& built :
       {ChunkMessage(owner, 4, data.size()), CopiedChunkMessage(data.data(), data.size())}) {
    const std::optional<ChunkView> view = FindChunk(built);
    if (!view.has_value() || ChunkOf(*view) != data) std::abort();
    if (ProtobufChunk<v1::PutRequest>(built) != data) std::abort();
  }
}

}  // namespace
}  // namespace skein::state_store

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  // Protobuf logs every string field that is not UTF-8; random bytes are mostly that.
  google::protobuf::SetLogHandler(nullptr);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  size_t at = 1;
  const size_t planned = data[0] % 8;
  std::vector<uint8_t> offsets;
  while (offsets.size() < planned && at < size) offsets.push_back(data[at++]);
  const std::string wire(reinterpret_cast<const char*>(data) + at, size - at);
  std::vector<size_t> cuts;
  size_t last = 0;
  for (uint8_t offset : offsets) {
    last += offset % (wire.size() - last + 1);
    cuts.push_back(last);  // empty slices are allowed: a transport may hand them over
  }
  skein::state_store::CheckBuffer(wire, cuts);
  skein::state_store::CheckBuiltMessages(wire);
  return 0;
}
