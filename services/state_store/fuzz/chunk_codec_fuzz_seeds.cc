// Writes seeds for chunk_codec_fuzz_test: chunk messages of sizes around each varint length
// boundary, cut into slices in several ways, and the messages the codec must leave to
// protobuf (headers, a chunk followed by another field). Each file is the fuzz target's input
// format: a cut count, the cuts, then the message.
#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include "skein/v1/state_store.pb.h"

namespace skein::state_store {
namespace {

bool Write(const std::string& path, const std::vector<uint8_t>& cuts, const std::string& wire) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.put(static_cast<char>(cuts.size()));
  for (uint8_t c : cuts) out.put(static_cast<char>(c));
  out << wire;
  return static_cast<bool>(out);
}

std::string Chunk(size_t size) {
  v1::PutRequest put;
  std::string bytes(size, '\0');
  for (size_t i = 0; i < size; ++i) bytes[i] = static_cast<char>(i * 31 + 7);
  put.set_chunk(bytes);
  return put.SerializeAsString();
}

int Main(const std::string& dir) {
  bool ok = true;
  for (size_t size : {size_t{0}, size_t{1}, size_t{127}, size_t{128}, size_t{300}, size_t{16384}}) {
    const std::string wire = Chunk(size);
    const std::string name = dir + "/chunk_" + std::to_string(size);
    ok &= Write(name, {}, wire);
    ok &= Write(name + "_cut", {1, 1, 3}, wire);
  }
  v1::PutRequest header;
  header.mutable_header()->set_key("sessions/a");
  header.mutable_header()->set_total_size(10);
  header.mutable_header()->mutable_checksum()->set_value(12345);
  ok &= Write(dir + "/put_header", {}, header.SerializeAsString());
  v1::GetResponse get;
  get.mutable_header()->mutable_entry()->set_key("sessions/a");
  get.mutable_header()->set_size(10);
  ok &= Write(dir + "/get_header", {2}, get.SerializeAsString());
  ok &= Write(dir + "/chunk_then_header", {}, Chunk(3) + header.SerializeAsString());
  ok &= Write(dir + "/two_chunks", {5}, Chunk(3) + Chunk(4));
  if (!ok) std::fprintf(stderr, "chunk_codec_fuzz_seeds: cannot write into %s\n", dir.c_str());
  return ok ? 0 : 1;
}

}  // namespace
}  // namespace skein::state_store

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: chunk_codec_fuzz_seeds DIR\n");
    return 2;
  }
  return skein::state_store::Main(argv[1]);
}
