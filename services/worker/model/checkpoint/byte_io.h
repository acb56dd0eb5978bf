// Little-endian loads and stores on byte buffers, free of alignment and aliasing traps.
#ifndef SKEIN_SERVICES_WORKER_MODEL_CHECKPOINT_BYTE_IO_H_
#define SKEIN_SERVICES_WORKER_MODEL_CHECKPOINT_BYTE_IO_H_

#include <bit>
#include <cstdint>
#include <cstring>
#include <string>

namespace skein::model {

static_assert(std::endian::native == std::endian::little,
              "checkpoint readers assume a little-endian host");

template <typename T>
T LoadLE(const char* p) {
  T v;
  std::memcpy(&v, p, sizeof(T));
  return v;
}

template <typename T>
void AppendLE(std::string& out, T v) {
  char b[sizeof(T)];
  std::memcpy(b, &v, sizeof(T));
  out.append(b, sizeof(T));
}

}  // namespace skein::model

#endif  // SKEIN_SERVICES_WORKER_MODEL_CHECKPOINT_BYTE_IO_H_
