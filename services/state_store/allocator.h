// Process-wide malloc settings for programs that move multi-megabyte blobs (the state store,
// its benchmark). By default glibc serves allocations above a threshold (at most 32 MiB) with
// fresh mmap'd pages and returns freed memory to the kernel, so every 33 MB state costs one
// page fault per 4 KiB page on first touch; on some virtual machines that alone takes
// hundreds of milliseconds. Keeping large blocks in the heap lets the next blob reuse pages
// that are already mapped, at the price of holding the high-water mark of memory.
#ifndef SKEIN_SERVICES_STATE_STORE_ALLOCATOR_H_
#define SKEIN_SERVICES_STATE_STORE_ALLOCATOR_H_

namespace skein::state_store {

// Call once at start-up, before threads start. Safe to call more than once.
void KeepLargeAllocationsInHeap();

}  // namespace skein::state_store

#endif  // SKEIN_SERVICES_STATE_STORE_ALLOCATOR_H_
