// What the CUDA runtime can tell about the GPUs present. Plain C++ header: callable from host-only code.
// Only built when ROOFLINE_HAVE_CUDA; callers guard with that macro.
#pragma once
#include <string>
#include <vector>

namespace roofline::cuda {

struct DeviceInfo {
  int index = 0;
  std::string name;
  int sm_major = 0, sm_minor = 0;
  int multiprocessors = 0;
  size_t total_memory = 0, free_memory = 0;
  size_t l2_bytes = 0;
};

// Empty when no driver or no device is present (never throws for that case).
std::vector<DeviceInfo> list_devices();

// Device-to-device copy bandwidth in bytes/s, counting bytes read plus bytes written, over a buffer of
// `bytes` (median of `repeats` timed copies after warm-up). Throws roofline::Error on a CUDA failure.
double measure_copy_bandwidth(size_t bytes, int repeats);

// Seconds one kernel adds to a chain of dependent kernels in a CUDA graph when it does no work: launch,
// scheduling and the wait for the previous one (the fixed cost a decode step pays per kernel). Median of
// `repeats` replays of a graph of `kernels` empty kernels. Throws roofline::Error on a CUDA failure.
double measure_kernel_overhead(int kernels, int repeats);

}  // namespace roofline::cuda
