// Shared by the panel packers (bf16_panels.cc, int8_panels.cc). Internal to the kernels
// library.
#ifndef SKEIN_KERNELS_CPU_PANEL_PACKING_H_
#define SKEIN_KERNELS_CPU_PANEL_PACKING_H_

#include <cstdint>

#include "kernels/cpu/thread_pool.h"

namespace skein::kernels {

// Runs pack(first, last) over panels [0, panels): on `pool`'s threads in chunks when given,
// else on this thread at once. Loading is bound by packing and by the first touch of the fresh
// pages, both of which scale with threads.
template <typename Pack>
void PackPanelsInChunks(int64_t panels, ThreadPool* pool, Pack&& pack) {
  constexpr int64_t kPanelsPerChunk = 16;
  if (pool == nullptr) {
    pack(int64_t{0}, panels);
    return;
  }
  pool->ParallelFor(panels, kPanelsPerChunk,
                    [&](int64_t first, int64_t last) { pack(first, last); });
}

}  // namespace skein::kernels

#endif  // SKEIN_KERNELS_CPU_PANEL_PACKING_H_
