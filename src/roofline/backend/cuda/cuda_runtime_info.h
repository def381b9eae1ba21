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

// The fixed cost of one memory-bound kernel in a chain of dependent kernels replayed as a CUDA graph:
// launch, the wait for the previous kernel, and the latency before its reads stream at full rate (what a
// decode step of many small kernels pays beyond its bytes). Measured as the intercept of a straight-line
// fit of time against bytes over read kernels of 256 KiB to 64 MiB (each chain reads more than L2 holds,
// so every byte comes from memory). `empty_s` is the cost of an empty kernel in the same kind of chain.
struct KernelOverhead {
  double fixed_s = 0;         // the fit's intercept: seconds per kernel
  double read_bytes_per_s = 0;  // the fit's slope, as a bandwidth (bytes read only)
  double empty_s = 0;
};
KernelOverhead measure_kernel_overhead();

}  // namespace roofline::cuda
