// A storage backend's whole contents as one byte string: the input of store_records_fuzz_test,
// and what its seed generator writes after driving a real store. Records and blobs follow one
// another, each as
//   kind   1 byte: 'b' for a blob, anything else for a record
//   group  1-byte length, then the bytes
//   name   1-byte length, then the bytes
//   value  2-byte little-endian length, then the bytes
// Decoding is lenient (a truncated last object is dropped), so that every mutation the fuzzer
// makes still describes some backend. Header-only: the seed generator is built by Bazel with
// g++, the fuzz target by clang, and both include this.
#ifndef SKEIN_SERVICES_STATE_STORE_FUZZ_BACKEND_IMAGE_H_
#define SKEIN_SERVICES_STATE_STORE_FUZZ_BACKEND_IMAGE_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace skein::state_store::fuzz {

struct ImageObject {
  bool blob = false;
  std::string group;
  std::string name;
  std::string value;
};

// Objects whose group or name is over 255 bytes, or value over 65535, cannot be encoded and
// are skipped.
inline std::string EncodeBackendImage(const std::vector<ImageObject>& objects) {
  std::string out;
  for (const ImageObject& o : objects) {
    if (o.group.size() > 0xFF || o.name.size() > 0xFF || o.value.size() > 0xFFFF) continue;
    out.push_back(o.blob ? 'b' : 'r');
    out.push_back(static_cast<char>(o.group.size()));
    out += o.group;
    out.push_back(static_cast<char>(o.name.size()));
    out += o.name;
    out.push_back(static_cast<char>(o.value.size() & 0xFF));
    out.push_back(static_cast<char>(o.value.size() >> 8));
    out += o.value;
  }
  return out;
}

inline std::vector<ImageObject> DecodeBackendImage(std::string_view in) {
  std::vector<ImageObject> objects;
  size_t at = 0;
  auto take = [&](size_t n, std::string* out) {
    if (in.size() - at < n) return false;
    out->assign(in.data() + at, n);
    at += n;
    return true;
  };
  while (in.size() - at >= 3) {
    ImageObject o;
    o.blob = in[at++] == 'b';
    const size_t group = static_cast<uint8_t>(in[at++]);
    if (!take(group, &o.group) || in.size() - at < 1) break;
    const size_t name = static_cast<uint8_t>(in[at++]);
    if (!take(name, &o.name) || in.size() - at < 2) break;
    const size_t value =
        static_cast<uint8_t>(in[at]) | (static_cast<size_t>(static_cast<uint8_t>(in[at + 1])) << 8);
    at += 2;
    if (!take(value, &o.value)) break;
    objects.push_back(std::move(o));
  }
  return objects;
}

}  // namespace skein::state_store::fuzz

#endif  // SKEIN_SERVICES_STATE_STORE_FUZZ_BACKEND_IMAGE_H_
