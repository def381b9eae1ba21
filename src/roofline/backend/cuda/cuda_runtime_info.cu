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

// Reads n 16-byte words; writes only if an impossible value turns up, so the reads cannot be dropped.
__global__ void read_kernel(const uint4* data, size_t n, uint4* sink) {
  uint32_t acc = 0;
  for (size_t i = size_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += size_t(gridDim.x) * blockDim.x) {
    const uint4 v = data[i];
    acc ^= v.x ^ v.y ^ v.z ^ v.w;
  }
  if (acc == 0x9e3779b9u) *sink = make_uint4(acc, 0, 0, 0);
}

// Median seconds per kernel of a graph of `kernels` chained launches made by `launch(i, stream)`.
template <typename Launch>
double seconds_per_kernel(int kernels, Launch&& launch) {
  cudaStream_t stream;
  CUDA_CHECK(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
  cudaGraph_t graph;
  CUDA_CHECK(cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal));
  for (int i = 0; i < kernels; ++i) launch(i, stream);
  CUDA_CHECK(cudaStreamEndCapture(stream, &graph));
  cudaGraphExec_t exec;
  CUDA_CHECK(cudaGraphInstantiate(&exec, graph, 0));
  cudaEvent_t start, stop;
  CUDA_CHECK(cudaEventCreate(&start));
  CUDA_CHECK(cudaEventCreate(&stop));
  for (int i = 0; i < 2; ++i) CUDA_CHECK(cudaGraphLaunch(exec, stream));
  std::vector<float> ms(9);
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
  std::nth_element(ms.begin(), ms.begin() + 4, ms.end());
  return double(ms[4]) * 1e-3 / kernels;
}
}  // namespace

KernelOverhead measure_kernel_overhead() {
  nvtx3::scoped_range range("cuda::measure_kernel_overhead");
  KernelOverhead out;
  out.empty_s = seconds_per_kernel(256, [](int, cudaStream_t s) { empty_kernel<<<1, 32, 0, s>>>(); });
  const size_t pool_bytes = size_t(1) << 30;  // consecutive kernels read consecutive regions of 1 GiB
  void* pool = nullptr;
  uint4* sink = nullptr;
  CUDA_CHECK(cudaMalloc(&pool, pool_bytes));
  CUDA_CHECK(cudaMalloc(&sink, sizeof(uint4)));
  fill_pattern<<<1024, 256>>>(static_cast<uint4*>(pool), pool_bytes / sizeof(uint4));
  CUDA_CHECK(cudaGetLastError());
  int sms = 0;
  CUDA_CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, 0));
  std::vector<double> x, y;
  for (size_t bytes = size_t(256) << 10; bytes <= size_t(64) << 20; bytes *= 4) {
    // Each chain reads at least 512 MiB, ten times an H100's L2, so a region is gone before it comes back.
    const int kernels = int(std::clamp<size_t>((size_t(512) << 20) / bytes, 16, 2048));
    const size_t words = bytes / sizeof(uint4), regions = pool_bytes / bytes;
    const int blocks = int(std::min<size_t>((words + 255) / 256, size_t(sms) * 8));
    const double t = seconds_per_kernel(kernels, [&](int i, cudaStream_t s) {
      read_kernel<<<blocks, 256, 0, s>>>(static_cast<const uint4*>(pool) + (size_t(i) % regions) * words, words, sink);
    });
    x.push_back(double(bytes));
    y.push_back(t);
  }
  cudaFree(pool);
  cudaFree(sink);
  // Least squares y = a + b x.
  const double n = double(x.size());
  double sx = 0, sy = 0, sxx = 0, sxy = 0;
  for (size_t i = 0; i < x.size(); ++i) sx += x[i], sy += y[i], sxx += x[i] * x[i], sxy += x[i] * y[i];
  const double b = (n * sxy - sx * sy) / (n * sxx - sx * sx), a = (sy - b * sx) / n;
  out.fixed_s = std::max(a, out.empty_s);
  out.read_bytes_per_s = b > 0 ? 1 / b : 0;
  return out;
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
