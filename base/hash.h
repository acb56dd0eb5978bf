// Hashing of large buffers (checksums of state blobs and stored entries, fingerprints of
// weights). XXH3-64 (seed 0), computed with AVX2 where the CPU has it: Debian's libxxhash is
// built for baseline x86-64 and runs about a third as fast. Same function, same values.
#ifndef SKEIN_BASE_HASH_H_
#define SKEIN_BASE_HASH_H_

#include <cstddef>
#include <cstdint>

namespace skein::base {

uint64_t Xxh3_64(const void* data, size_t size);

}  // namespace skein::base

#endif  // SKEIN_BASE_HASH_H_
