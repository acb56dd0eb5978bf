// libxxhash's XXH3 inlined into a unit built with -mavx2, so the compiler picks its AVX2
// accumulation loop.
#include "base/xxh3_avx2.h"

#define XXH_INLINE_ALL
#include "xxhash.h"

namespace skein::base::internal {

uint64_t Xxh3Avx2(const void* data, size_t size) { return XXH3_64bits(data, size); }

}  // namespace skein::base::internal
