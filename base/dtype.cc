#include "base/dtype.h"

#include <cstdint>
#include <cstring>

#include "base/float16.h"

namespace skein::base {
namespace {

float Load(DType t, const char* p) {
  if (t == DType::kF32) {
    float f;
    std::memcpy(&f, p, sizeof(f));
    return f;
  }
  uint16_t h;
  std::memcpy(&h, p, sizeof(h));
  return t == DType::kBF16 ? Bf16ToF32(h) : F16ToF32(h);
}

void Store(DType t, float f, char* p) {
  if (t == DType::kF32) {
    std::memcpy(p, &f, sizeof(f));
    return;
  }
  const uint16_t h = t == DType::kBF16 ? F32ToBf16(f) : F32ToF16(f);
  std::memcpy(p, &h, sizeof(h));
}

}  // namespace

std::string_view DTypeName(DType t) {
  switch (t) {
    case DType::kF32:
      return "fp32";
    case DType::kBF16:
      return "bf16";
    case DType::kF16:
      return "fp16";
  }
  return "unknown";
}

size_t DTypeSize(DType t) { return t == DType::kF32 ? 4 : 2; }

void ConvertElements(DType from, const void* src, DType to, void* dst, size_t count) {
  const char* s = static_cast<const char*>(src);
  char* d = static_cast<char*>(dst);
  if (from == to) {
    std::memcpy(d, s, count * DTypeSize(from));
    return;
  }
  const size_t in = DTypeSize(from), out = DTypeSize(to);
  for (size_t i = 0; i < count; ++i) Store(to, Load(from, s + i * in), d + i * out);
}

}  // namespace skein::base
