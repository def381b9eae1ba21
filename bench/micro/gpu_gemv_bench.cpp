// Decode-shaped products (M <= 8) through CudaBackend::matmul (the gemv path) and through cuBLASLt on the
// same data: time per call and weight GB/s against the device copy bandwidth measured in the same run.
// Usage: roofline_gpu_gemv_bench (GPU box; scripts/gpu runs it in the attention stage's binary set).
#include <cuda_runtime_api.h>

#include <algorithm>
#include <cstdio>
#include <functional>
#include <vector>

#include <fmt/format.h>

#include "roofline/backend/cuda/cuda_backend.h"
#include "roofline/backend/cuda/gemm.h"
#include "roofline/core/error.h"

#define CHECK_CUDA(expr) ROOFLINE_CHECK((expr) == cudaSuccess, "CUDA call failed: {}", #expr)

namespace roofline {
namespace {

// Bandwidth (weight bytes read / time) of the decode products, ours (CudaBackend::matmul) against cuBLASLt,
// w cycled over copies that L2 cannot hold; median of 20 samples after warm-up.
int run() {
  auto backend = cuda::make_cuda_backend(0);
  cuda::CudaBackend& gpu = *backend;
  struct Shape {
    int64_t M, N, K;
    DType out;
  };
  const Shape shapes[] = {{1, 2048, 2048, DType::BF16},
                          {1, 16384, 2048, DType::BF16},
                          {1, 2048, 8192, DType::BF16},
                          {1, 128256, 2048, DType::F32},
                          {2, 3072, 2048, DType::BF16},
                          {3, 16384, 2048, DType::BF16},
                          {4, 16384, 2048, DType::BF16},
                          {8, 2048, 2048, DType::BF16},
                          {8, 16384, 2048, DType::BF16}};
  cudaStream_t stream = gpu.stream();
  const size_t flush_bytes = size_t(256) << 20;
  Tensor flush = gpu.alloc(DType::U8, {int64_t(flush_bytes)});
  cudaEvent_t start, stop;
  CHECK_CUDA(cudaEventCreate(&start));
  CHECK_CUDA(cudaEventCreate(&stop));
  // Median over 20 samples of the time per call; a sample times `calls` back-to-back calls (fn(i), i < calls).
  auto median_ms = [&](int calls, const std::function<void(int)>& fn) {
    for (int i = 0; i < calls; ++i) fn(i);
    std::vector<float> times;
    for (int s = 0; s < 20; ++s) {
      cudaEventRecord(start, stream);
      for (int i = 0; i < calls; ++i) fn(i);
      cudaEventRecord(stop, stream);
      CHECK_CUDA(cudaEventSynchronize(stop));
      float ms = 0;
      cudaEventElapsedTime(&ms, start, stop);
      times.push_back(ms / float(calls));
    }
    std::sort(times.begin(), times.end());
    return double(times[10]);
  };
  // Copy bandwidth: read + write of a 128 MiB device-to-device copy.
  Tensor copy_dst = gpu.alloc(DType::U8, {int64_t(flush_bytes)});
  const double copy_ms = median_ms(4, [&](int) {
    cudaMemcpyAsync(copy_dst.data(), flush.data(), flush_bytes / 2, cudaMemcpyDeviceToDevice, stream);
  });
  const double copy_gbs = 2.0 * double(flush_bytes / 2) / (copy_ms * 1e6);
  std::printf("copy bandwidth: %.0f GB/s\n", copy_gbs);
  std::printf("%-28s %9s %9s %9s %9s %9s %9s\n", "shape (out)", "ours us", "ours GB/s", "lt us", "lt GB/s",
              "ours/copy", "lt/copy");
  cuda::CublasLtGemm lt(stream, size_t(32) << 20);
  for (const Shape& s : shapes) {
    // Enough copies of w (cycled through, as a decode step walks its layers) that L2 holds none of them.
    const int64_t w_bytes = s.N * s.K * 2;
    const int copies = int(std::max<int64_t>(1, (int64_t(256) << 20) / w_bytes));
    const int calls = std::max(copies, 4);
    Tensor x = gpu.alloc(DType::BF16, {s.M, s.K});
    Tensor out = gpu.alloc(s.out, {s.M, s.N});
    CHECK_CUDA(cudaMemsetAsync(x.data(), 0x3c, x.nbytes(), stream));
    std::vector<Tensor> ws;
    for (int c = 0; c < copies; ++c) {
      ws.push_back(gpu.alloc(DType::BF16, {s.N, s.K}));
      CHECK_CUDA(cudaMemsetAsync(ws.back().data(), 0x3c, ws.back().nbytes(), stream));
    }
    const double ours = median_ms(calls, [&](int i) { gpu.matmul(out, x, ws[size_t(i % copies)], nullptr); });
    const cudaDataType out_type = s.out == DType::F32 ? CUDA_R_32F : CUDA_R_16BF;
    const double theirs = median_ms(calls, [&](int i) {
      lt.run(out.data(), out_type, x.data(), ws[size_t(i % copies)].data(), CUDA_R_16BF, nullptr, s.M, s.N, s.K);
    });
    const double bytes = double(w_bytes);
    const double ours_gbs = bytes / (ours * 1e6), theirs_gbs = bytes / (theirs * 1e6);
    std::printf("%-28s %9.2f %9.0f %9.2f %9.0f %8.0f%% %8.0f%%\n",
                fmt::format("[{},{}]x[{},{}] {}", s.M, s.K, s.N, s.K, dtype_name(s.out)).c_str(), ours * 1e3,
                ours_gbs, theirs * 1e3, theirs_gbs, 100.0 * ours_gbs / copy_gbs, 100.0 * theirs_gbs / copy_gbs);
  }
  CHECK_CUDA(cudaStreamSynchronize(stream));
  cudaEventDestroy(start);
  cudaEventDestroy(stop);
  return 0;
}

}  // namespace
}  // namespace roofline

int main() {
  try {
    return roofline::run();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "roofline_gpu_gemv_bench: %s\n", e.what());
    return 1;
  }
}
