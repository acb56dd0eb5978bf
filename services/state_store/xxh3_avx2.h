// XXH3-64 built with AVX2 instructions; call only where __builtin_cpu_supports("avx2").
#ifndef SKEIN_SERVICES_STATE_STORE_XXH3_AVX2_H_
#define SKEIN_SERVICES_STATE_STORE_XXH3_AVX2_H_

#include <cstddef>
#include <cstdint>

namespace skein::state_store {

uint64_t Xxh3Avx2(const void* data, size_t size);

}  // namespace skein::state_store

#endif  // SKEIN_SERVICES_STATE_STORE_XXH3_AVX2_H_
