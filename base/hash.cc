#include "base/hash.h"

#include "base/xxh3_avx2.h"
#include "xxhash.h"

namespace skein::base {

uint64_t Xxh3_64(const void* data, size_t size) {
#if defined(__x86_64__)
  static const bool has_avx2 = __builtin_cpu_supports("avx2");
  if (has_avx2) return internal::Xxh3Avx2(data, size);
#endif
  return XXH3_64bits(data, size);
}

}  // namespace skein::base
