// Error checks for CUDA runtime calls and kernel launches: a failure throws roofline::Error naming the
// call, the file and the line. Plain C++ header (no fmt, no device code): .cu and .cpp files both use it.
#pragma once
#include <cuda_runtime_api.h>

namespace roofline::cuda {

// Throws roofline::Error("CUDA error in <expr> at <file>:<line>: <cudaGetErrorString>").
[[noreturn]] void throw_cuda_error(cudaError_t err, const char* expr, const char* file, int line);

}  // namespace roofline::cuda

#define ROOFLINE_CUDA_CHECK(expr)                                                          \
  do {                                                                                     \
    const cudaError_t roofline_cuda_err_ = (expr);                                         \
    if (roofline_cuda_err_ != cudaSuccess)                                                 \
      ::roofline::cuda::throw_cuda_error(roofline_cuda_err_, #expr, __FILE__, __LINE__);   \
  } while (0)

// After every kernel launch: reports a bad configuration (grid, shared memory) at the launch site.
#define ROOFLINE_CUDA_CHECK_LAUNCH() ROOFLINE_CUDA_CHECK(cudaGetLastError())
