#include "base/dtype.h"

#include <cstdint>
#include <cstdio>
#include <cstdlib>
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
    case DType::kI8:
      return "int8";
  }
  return "unknown";
}

size_t DTypeSize(DType t) {
  switch (t) {
    case DType::kF32:
      return 4;
    case DType::kBF16:
    case DType::kF16:
      return 2;
    case DType::kI8:
      return 1;
  }
  return 0;
}

void ConvertElements(DType from, const void* src, DType to, void* dst, size_t count) {
  const char* s = static_cast<const char*>(src);
  char* d = static_cast<char*>(dst);
  if (from == DType::kI8 || to == DType::kI8) {
    // int8 elements are quantised values whose scale lives elsewhere: narrowing to them (or
    // copying them as if they were self-describing) would silently lose that meaning.
    if (from != DType::kI8 || to != DType::kF32) {
      std::fprintf(
          stderr, "ConvertElements: unsupported conversion %s -> %s (int8 converts only to fp32)\n",
          DTypeName(from).data(), DTypeName(to).data());
      std::abort();
    }
    const auto* q = reinterpret_cast<const int8_t*>(s);
    for (size_t i = 0; i < count; ++i) {
      const float f = static_cast<float>(q[i]);
      std::memcpy(d + i * sizeof(float), &f, sizeof(f));
    }
    return;
  }
  if (from == to) {
    std::memcpy(d, s, count * DTypeSize(from));
    return;
  }
  const size_t in = DTypeSize(from), out = DTypeSize(to);
  for (size_t i = 0; i < count; ++i) Store(to, Load(from, s + i * in), d + i * out);
}

}  // namespace skein::base
