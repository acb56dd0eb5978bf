// A quick measurement of sustained memory read bandwidth, the roofline of decode (which reads
// every weight once per step): each thread of the pool sums its slice of a buffer much larger
// than the caches. Thread-safe (each call has its own buffer).
#ifndef SKEIN_KERNELS_CPU_MEMORY_BANDWIDTH_H_
#define SKEIN_KERNELS_CPU_MEMORY_BANDWIDTH_H_

#include <cstddef>

#include "kernels/cpu/thread_pool.h"

namespace skein::kernels {

// Bytes per second, the best of `repeats` passes over a `bytes`-sized buffer.
double MeasureReadBandwidth(ThreadPool* pool, size_t bytes = size_t{1} << 30, int repeats = 5);

}  // namespace skein::kernels

#endif  // SKEIN_KERNELS_CPU_MEMORY_BANDWIDTH_H_
