// The chunk codec must speak exactly protobuf's wire format for PutRequest and GetResponse
// chunks, and must hand every other message back to protobuf.
#include "services/state_store/chunk_codec.h"

#include <memory>
#include <random>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "skein/v1/state_store.pb.h"

namespace skein::state_store {
namespace {

std::string Bytes(const grpc::ByteBuffer& buffer) {
  std::vector<grpc::Slice> slices;
  EXPECT_TRUE(buffer.Dump(&slices).ok());
  std::string out;
  for (const grpc::Slice& s : slices)
    out.append(reinterpret_cast<const char*>(s.begin()), s.size());
  return out;
}

// `bytes` cut into slices at the given offsets, as a received buffer may be.
grpc::ByteBuffer Sliced(const std::string& bytes, std::vector<size_t> cuts) {
  std::vector<grpc::Slice> slices;
  size_t from = 0;
  cuts.push_back(bytes.size());
  for (size_t cut : cuts) {
    slices.emplace_back(bytes.data() + from, cut - from);
    from = cut;
  }
  return grpc::ByteBuffer(slices.data(), slices.size());
}

std::string Noise(size_t size, unsigned seed) {
  std::mt19937 gen(seed);
  std::string s(size, '\0');
  for (char& c : s) c = static_cast<char>(gen());
  return s;
}

TEST(ChunkCodecTest, EncodesWhatProtobufEncodes) {
  for (size_t size : {0, 1, 127, 128, 300, 16383, 16384, 1 << 20, (1 << 21) + 5}) {
    const auto data = std::make_shared<const std::string>(Noise(size + 10, size));
    v1::PutRequest put;
    put.set_chunk(data->substr(3, size));
    v1::GetResponse get;
    get.set_chunk(data->substr(3, size));
    const std::string expected = put.SerializeAsString();
    ASSERT_EQ(get.SerializeAsString(), expected);
    EXPECT_EQ(Bytes(ChunkMessage(data, 3, size)), expected) << size;
    EXPECT_EQ(Bytes(CopiedChunkMessage(data->data() + 3, size)), expected) << size;
  }
}

TEST(ChunkCodecTest, FindsChunksWhereverTheSlicesAreCut) {
  for (size_t size : {0, 5, 200, 70000}) {
    v1::PutRequest put;
    put.set_chunk(Noise(size, 7));
    const std::string wire = put.SerializeAsString();
    for (std::vector<size_t> cuts : std::vector<std::vector<size_t>>{
             {}, {1}, {2}, {1, 2}, {wire.size() / 2}, {1, 2, 3, wire.size() - 1}}) {
      std::vector<size_t> valid;
      for (size_t c : cuts) {
        if (c <= wire.size() && (valid.empty() || c > valid.back())) valid.push_back(c);
      }
      const grpc::ByteBuffer buffer = Sliced(wire, valid);
      std::optional<ChunkView> chunk = FindChunk(buffer);
      ASSERT_TRUE(chunk.has_value()) << size;
      EXPECT_EQ(chunk->size(), size);
      std::string out = "prefix:";
      chunk->AppendTo(&out);
      EXPECT_EQ(out, "prefix:" + put.chunk()) << size;
    }
  }
}

TEST(ChunkCodecTest, LeavesEveryOtherMessageToProtobuf) {
  v1::PutRequest header;
  header.mutable_header()->set_key("k");
  header.mutable_header()->set_total_size(10);
  EXPECT_FALSE(FindChunk(SerializeMessage(header)).has_value());
  // A chunk followed by another field (valid protobuf; the last oneof member wins).
  v1::PutRequest chunk;
  chunk.set_chunk("abc");
  const std::string both = chunk.SerializeAsString() + header.SerializeAsString();
  EXPECT_FALSE(FindChunk(Sliced(both, {})).has_value());
  v1::PutRequest parsed;
  ASSERT_TRUE(ParseMessage(Sliced(both, {}), &parsed));
  EXPECT_TRUE(parsed.has_header());
  // Truncated, or with a length that overruns: not a chunk, and not valid protobuf either.
  const std::string wire = chunk.SerializeAsString();
  EXPECT_FALSE(FindChunk(Sliced(wire.substr(0, wire.size() - 1), {})).has_value());
  EXPECT_FALSE(ParseMessage(Sliced(wire.substr(0, wire.size() - 1), {}), &parsed));
  EXPECT_FALSE(
      FindChunk(Sliced(std::string("\x12\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff", 11), {}))
          .has_value());
  EXPECT_FALSE(FindChunk(grpc::ByteBuffer()).has_value());
}

TEST(ChunkCodecTest, MessagesRoundTripThroughByteBuffers) {
  v1::GetResponse message;
  message.mutable_header()->mutable_entry()->set_key("session/1");
  message.mutable_header()->set_size(12345);
  v1::GetResponse parsed;
  ASSERT_TRUE(ParseMessage(SerializeMessage(message), &parsed));
  EXPECT_EQ(parsed.header().entry().key(), "session/1");
  EXPECT_EQ(parsed.header().size(), 12345u);
  const auto data = std::make_shared<const std::string>("0123456789");
  ASSERT_TRUE(ParseMessage(ChunkMessage(data, 2, 5), &parsed));
  EXPECT_EQ(parsed.chunk(), "23456");
}

TEST(ChunkCodecTest, TheBufferKeepsItsOwnerAlive) {
  grpc::ByteBuffer buffer;
  std::weak_ptr<const std::string> weak;
  {
    auto data = std::make_shared<const std::string>(Noise(1000, 3));
    weak = data;
    buffer = ChunkMessage(data, 0, 1000);
  }
  EXPECT_FALSE(weak.expired());
  std::optional<ChunkView> chunk = FindChunk(buffer);
  ASSERT_TRUE(chunk.has_value());
  EXPECT_EQ(chunk->size(), 1000u);
  chunk.reset();
  buffer.Clear();
  EXPECT_TRUE(weak.expired());
}

}  // namespace
}  // namespace skein::state_store
