#include "roofline/backend/cuda/ceilings.h"

#include <cuda_runtime_api.h>

#include <algorithm>
#include <vector>

#include "roofline/backend/cuda/cuda_backend.h"
#include "roofline/backend/cuda/cuda_check.h"
#include "roofline/backend/cuda/cuda_runtime_info.h"

namespace roofline::cuda {

GpuCeilings measure_gpu_ceilings(CudaBackend& backend, int64_t n) {
  GpuCeilings c;
  c.gemm_n = n;
  c.copy_bytes_per_s = measure_copy_bandwidth(size_t(1) << 30, 20);
  const KernelOverhead overhead = measure_kernel_overhead();
  c.kernel_overhead_s = overhead.fixed_s;
  c.empty_kernel_s = overhead.empty_s;
  Tensor host = Tensor::empty(DType::F32, {n, n});
  uint64_t state = 0x9e3779b97f4a7c15ull;  // xorshift: fast random values in [-1, 1), never all zeros
  auto fill = [&] {
    for (int64_t i = 0; i < host.numel(); ++i) {
      state ^= state << 13, state ^= state >> 7, state ^= state << 17;
      host.ptr<float>()[i] = float(state >> 40) / float(1 << 23) - 1.0f;
    }
  };
  fill();
  Tensor x = backend.upload(host, DType::BF16);
  fill();
  Tensor w = backend.upload(host, DType::BF16);
  Tensor out = backend.alloc(DType::BF16, {n, n});
  for (int i = 0; i < 3; ++i) backend.matmul(out, x, w, nullptr);
  backend.synchronize();
  cudaEvent_t start, stop;
  ROOFLINE_CUDA_CHECK(cudaEventCreate(&start));
  ROOFLINE_CUDA_CHECK(cudaEventCreate(&stop));
  std::vector<float> ms(10);
  for (float& t : ms) {
    ROOFLINE_CUDA_CHECK(cudaEventRecord(start, backend.stream()));
    backend.matmul(out, x, w, nullptr);
    ROOFLINE_CUDA_CHECK(cudaEventRecord(stop, backend.stream()));
    ROOFLINE_CUDA_CHECK(cudaEventSynchronize(stop));
    ROOFLINE_CUDA_CHECK(cudaEventElapsedTime(&t, start, stop));
  }
  cudaEventDestroy(start);
  cudaEventDestroy(stop);
  std::sort(ms.begin(), ms.end());
  c.gemm_bf16_flops_per_s = 2.0 * double(n) * double(n) * double(n) / (double(ms[ms.size() / 2]) * 1e-3);
  return c;
}

}  // namespace roofline::cuda
