// XXH3-64 compiled for AVX2 (see BUILD.bazel); call only where the CPU has AVX2. Use
// base/hash.h, which checks.
#ifndef SKEIN_BASE_XXH3_AVX2_H_
#define SKEIN_BASE_XXH3_AVX2_H_

#include <cstddef>
#include <cstdint>

namespace skein::base::internal {

uint64_t Xxh3Avx2(const void* data, size_t size);

}  // namespace skein::base::internal

#endif  // SKEIN_BASE_XXH3_AVX2_H_
