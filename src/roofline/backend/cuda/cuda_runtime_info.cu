#include <cuda_runtime.h>
#include <nvtx3/nvtx3.hpp>

#include <algorithm>
#include <vector>

#include "roofline/backend/cuda/cuda_runtime_info.h"
#include "roofline/core/error.h"

namespace roofline::cuda {

namespace {
void check(cudaError_t err, const char* what, const char* file, int line) {
  if (err != cudaSuccess) fail("CUDA error in {} at {}:{}: {}", what, file, line, cudaGetErrorString(err));
}
#define CUDA_CHECK(expr) check((expr), #expr, __FILE__, __LINE__)

// Fills with a pattern so that timing never runs on zeros.
__global__ void fill_pattern(uint4* data, size_t n) {
  for (size_t i = blockIdx.x * size_t(blockDim.x) + threadIdx.x; i < n; i += size_t(gridDim.x) * blockDim.x)
    data[i] = make_uint4(uint32_t(i), uint32_t(i * 2654435761u), uint32_t(i ^ 0x5bd1e995u), 0x3f800000u);
}
}  // namespace

std::vector<DeviceInfo> list_devices() {
  std::vector<DeviceInfo> out;
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess) {
    cudaGetLastError();  // clear the sticky "no device" error
    return out;
  }
  for (int i = 0; i < count; ++i) {
    cudaDeviceProp prop{};
    if (cudaGetDeviceProperties(&prop, i) != cudaSuccess) continue;
    DeviceInfo info;
    info.index = i;
    info.name = prop.name;
    info.sm_major = prop.major;
    info.sm_minor = prop.minor;
    info.multiprocessors = prop.multiProcessorCount;
    info.total_memory = prop.totalGlobalMem;
    info.l2_bytes = size_t(prop.l2CacheSize);
    size_t free_bytes = 0, total_bytes = 0;
    if (cudaSetDevice(i) == cudaSuccess && cudaMemGetInfo(&free_bytes, &total_bytes) == cudaSuccess)
      info.free_memory = free_bytes;
    out.push_back(info);
  }
  return out;
}

namespace {
__global__ void empty_kernel() {}
}  // namespace

double measure_kernel_overhead(int kernels, int repeats) {
  nvtx3::scoped_range range("cuda::measure_kernel_overhead");
  ROOFLINE_CHECK(kernels > 0 && repeats > 0, "measure_kernel_overhead: kernels and repeats must be positive");
  cudaStream_t stream;
  CUDA_CHECK(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
  cudaGraph_t graph;
  CUDA_CHECK(cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal));
  for (int i = 0; i < kernels; ++i) empty_kernel<<<1, 32, 0, stream>>>();
  CUDA_CHECK(cudaStreamEndCapture(stream, &graph));
  cudaGraphExec_t exec;
  CUDA_CHECK(cudaGraphInstantiate(&exec, graph, 0));
  cudaEvent_t start, stop;
  CUDA_CHECK(cudaEventCreate(&start));
  CUDA_CHECK(cudaEventCreate(&stop));
  for (int i = 0; i < 3; ++i) CUDA_CHECK(cudaGraphLaunch(exec, stream));
  std::vector<float> ms(static_cast<size_t>(repeats));
  for (float& t : ms) {
    CUDA_CHECK(cudaEventRecord(start, stream));
    CUDA_CHECK(cudaGraphLaunch(exec, stream));
    CUDA_CHECK(cudaEventRecord(stop, stream));
    CUDA_CHECK(cudaEventSynchronize(stop));
    CUDA_CHECK(cudaEventElapsedTime(&t, start, stop));
  }
  cudaEventDestroy(start);
  cudaEventDestroy(stop);
  cudaGraphExecDestroy(exec);
  cudaGraphDestroy(graph);
  cudaStreamDestroy(stream);
  std::nth_element(ms.begin(), ms.begin() + repeats / 2, ms.end());
  return double(ms[size_t(repeats / 2)]) * 1e-3 / kernels;
}

double measure_copy_bandwidth(size_t bytes, int repeats) {
  nvtx3::scoped_range range("cuda::measure_copy_bandwidth");
  bytes = bytes / sizeof(uint4) * sizeof(uint4);
  ROOFLINE_CHECK(bytes > 0 && repeats > 0, "measure_copy_bandwidth: bytes and repeats must be positive");
  void *src = nullptr, *dst = nullptr;
  CUDA_CHECK(cudaMalloc(&src, bytes));
  CUDA_CHECK(cudaMalloc(&dst, bytes));
  fill_pattern<<<1024, 256>>>(static_cast<uint4*>(src), bytes / sizeof(uint4));
  CUDA_CHECK(cudaGetLastError());
  cudaEvent_t start, stop;
  CUDA_CHECK(cudaEventCreate(&start));
  CUDA_CHECK(cudaEventCreate(&stop));
  for (int i = 0; i < 3; ++i) CUDA_CHECK(cudaMemcpy(dst, src, bytes, cudaMemcpyDeviceToDevice));
  std::vector<float> ms(static_cast<size_t>(repeats));
  for (int i = 0; i < repeats; ++i) {
    CUDA_CHECK(cudaEventRecord(start));
    CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice));
    CUDA_CHECK(cudaEventRecord(stop));
    CUDA_CHECK(cudaEventSynchronize(stop));
    CUDA_CHECK(cudaEventElapsedTime(&ms[size_t(i)], start, stop));
  }
  cudaEventDestroy(start);
  cudaEventDestroy(stop);
  cudaFree(src);
  cudaFree(dst);
  std::nth_element(ms.begin(), ms.begin() + repeats / 2, ms.end());
  double seconds = double(ms[size_t(repeats / 2)]) * 1e-3;
  return 2.0 * double(bytes) / seconds;
}

}  // namespace roofline::cuda
