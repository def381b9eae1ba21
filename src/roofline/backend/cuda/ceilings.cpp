#include "roofline/backend/cuda/ceilings.h"

#include <cuda_runtime_api.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <functional>
#include <memory>
#include <vector>

#include "roofline/backend/cuda/cuda_backend.h"
#include "roofline/backend/cuda/cuda_check.h"
#include "roofline/backend/cuda/cuda_runtime_info.h"
#include "roofline/backend/cuda/kernels.h"
#include "roofline/core/error.h"

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

namespace {

// Fills `bytes` of device memory with copies of one random bf16 block (uploaded once): random enough for the
// tensor cores' power draw, and far quicker than generating gigabytes on the host.
void fill_random(CudaBackend& backend, void* dst, size_t bytes) {
  constexpr int64_t kBlockElems = (int64_t(1) << 22) + 7;  // odd: copies do not line up with power-of-two rows
  Tensor host = Tensor::empty(DType::F32, {kBlockElems});
  uint64_t state = 0x2545f4914f6cdd1dull;
  for (int64_t i = 0; i < kBlockElems; ++i) {
    state ^= state << 13, state ^= state >> 7, state ^= state << 17;
    host.ptr<float>()[i] = float(state >> 40) / float(1 << 23) - 1.0f;
  }
  const Tensor block = backend.upload(host, DType::BF16);
  for (size_t at = 0; at < bytes; at += block.nbytes())
    ROOFLINE_CUDA_CHECK(cudaMemcpyAsync(static_cast<char*>(dst) + at, block.data(), std::min(block.nbytes(), bytes - at),
                                        cudaMemcpyDeviceToDevice, backend.stream()));
  backend.synchronize();
}

Tensor view(Tensor& pool, size_t byte_offset, int64_t rows, int64_t cols) {
  return Tensor(DType::BF16, {rows, cols}, static_cast<char*>(pool.data()) + byte_offset, Device::CUDA);
}

}  // namespace

std::vector<GemmRateSample> measure_gemm_rates(CudaBackend& backend, const std::vector<GemmRateSample>& shapes) {
  // Weights cycle through this much memory, 40x an H100's L2: no timed run finds the previous run's weights
  // cached, as no layer of a model finds the layer before's.
  constexpr size_t kWeightPoolBytes = size_t(2) << 30;
  constexpr int kSamples = 7, kMaxCopies = 1024;
  constexpr double kMinSampleMs = 0.2;  // event timing is good to a few microseconds
  constexpr size_t kMinSampleWeightBytes = size_t(200) << 20;  // 4x an H100's L2
  int64_t x_elems = 0, w_elems = 0, out_elems = 0;
  for (const GemmRateSample& s : shapes) {
    ROOFLINE_CHECK(s.m > kGemvMaxM && s.n > 0 && s.k > 0 && s.k % 8 == 0,
                   "measure_gemm_rates: shape {}x{}x{}: needs M > {} (the GEMV's rows) and K a multiple of 8", s.m,
                   s.n, s.k, kGemvMaxM);
    x_elems = std::max(x_elems, s.m * s.k);
    w_elems = std::max(w_elems, s.n * s.k);
    out_elems = std::max(out_elems, s.m * s.n);
  }
  if (shapes.empty()) return {};
  const size_t pool_bytes = std::max(kWeightPoolBytes, size_t(w_elems) * 2);
  Tensor x_pool = backend.alloc(DType::BF16, {x_elems});
  Tensor w_pool = backend.alloc(DType::BF16, {int64_t(pool_bytes / 2)});
  Tensor out_pool = backend.alloc(DType::BF16, {out_elems});
  fill_random(backend, x_pool.data(), x_pool.nbytes());
  fill_random(backend, w_pool.data(), w_pool.nbytes());

  cudaEvent_t start, stop;
  ROOFLINE_CUDA_CHECK(cudaEventCreate(&start));
  ROOFLINE_CUDA_CHECK(cudaEventCreate(&stop));
  std::vector<GemmRateSample> rates;
  for (const GemmRateSample& shape : shapes) {
    const int64_t m = shape.m, n = shape.n, k = shape.k;
    const size_t w_bytes = size_t(n * k) * 2;
    const int copies = int(std::clamp<size_t>(pool_bytes / w_bytes, 1, kMaxCopies));
    Tensor x = view(x_pool, 0, m, k), out = view(out_pool, 0, m, n);
    int run = 0;
    auto enqueue = [&](int runs) {
      for (int i = 0; i < runs; ++i, ++run) {
        Tensor w = view(w_pool, size_t(run % copies) * w_bytes, n, k);
        backend.matmul(out, x, w, nullptr);
      }
    };
    auto timed_ms = [&](const std::function<void()>& body) {
      ROOFLINE_CUDA_CHECK(cudaEventRecord(start, backend.stream()));
      body();
      ROOFLINE_CUDA_CHECK(cudaEventRecord(stop, backend.stream()));
      ROOFLINE_CUDA_CHECK(cudaEventSynchronize(stop));
      float ms = 0;
      ROOFLINE_CUDA_CHECK(cudaEventElapsedTime(&ms, start, stop));
      return double(ms);
    };
    timed_ms([&] { enqueue(2); });  // warm-up: the plan (cuBLASLt's heuristic) is made on the first run
    const double one_ms = std::max(timed_ms([&] { enqueue(1); }), 1e-4);
    // A sample lasts at least kMinSampleMs and streams at least kMinSampleWeightBytes of distinct weights: its
    // runs replay from one graph, so every replay reads the same copies, and together they must not fit in L2.
    const int runs = int(std::clamp(std::max(std::ceil(kMinSampleMs / one_ms),
                                             std::ceil(double(kMinSampleWeightBytes) / double(w_bytes))),
                                    1.0, double(copies)));
    // The runs are replayed from a CUDA graph, as the engine's decode steps are: launched one by one, the smallest
    // shapes (a few microseconds each) would time the host's launch rate (a cuBLASLt call costs about as much),
    // not the GPU. Where capture fails, they are launched one by one.
    std::unique_ptr<RecordedOps> graph;
    try {
      graph = backend.record([&] { enqueue(runs); });
      graph->replay();  // warm-up of the graph itself
    } catch (const std::exception& e) {
      std::fprintf(stderr, "calibrate: shape %lldx%lldx%lld timed without a CUDA graph (%s)\n", (long long)m,
                   (long long)n, (long long)k, e.what());
      graph.reset();
    }
    std::vector<double> per_run_ms;
    for (int i = 0; i < kSamples; ++i)
      per_run_ms.push_back(timed_ms([&] { graph ? graph->replay() : enqueue(runs); }) / runs);
    std::sort(per_run_ms.begin(), per_run_ms.end());
    rates.push_back({m, n, k, 2.0 * double(m) * double(n) * double(k) / (per_run_ms[kSamples / 2] * 1e-3)});
  }
  cudaEventDestroy(start);
  cudaEventDestroy(stop);
  return rates;
}

}  // namespace roofline::cuda
