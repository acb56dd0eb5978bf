#include "services/state_store/allocator.h"

#include <malloc.h>

namespace skein::state_store {

void KeepLargeAllocationsInHeap() {
#if defined(__GLIBC__)
  // Serve blocks of any size a blob can have from the heap...
  mallopt(M_MMAP_THRESHOLD, 1 << 30);
  // ...and keep freed memory mapped for the next blob.
  mallopt(M_TRIM_THRESHOLD, 1 << 30);
  // Few arenas, so memory freed by one gRPC thread is reused by the next.
  mallopt(M_ARENA_MAX, 4);
#endif
}

}  // namespace skein::state_store
