// The machine's streaming memory read bandwidth, measured with the same threads the kernels use: the
// denominator of the CPU decode roofline (a decode step must stream every weight byte once).
#pragma once
#include <cstddef>

#include "roofline/backend/cpu/cpu_features.h"

namespace roofline {

class ThreadPool;

// Bytes per second for a multithreaded read of a `bytes` buffer (default 1 GiB: well beyond any L3)
// with the widest SIMD loads of select_cpu_isa(): for each of a few read patterns (1, 4 or 8 streams per
// thread, with prefetch) the median of several passes after a warm-up pass; the best pattern wins.
// Takes a few seconds for 1 GiB.
double measure_memory_read_bandwidth(ThreadPool& pool, size_t bytes = size_t(1) << 30);
// Same with the read kernel of a given level.
double measure_memory_read_bandwidth(ThreadPool& pool, size_t bytes, CpuIsa isa);

}  // namespace roofline
