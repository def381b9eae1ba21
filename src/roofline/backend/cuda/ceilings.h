// The GPU's measured ceilings, the two roofs every GPU number is compared with: device-to-device copy
// bandwidth (bytes read + written per second) and the bf16 GEMM rate of this backend's matmul on
// n x n x n random data. Plain C++ header; only built when ROOFLINE_HAVE_CUDA.
#pragma once
#include <cstdint>
#include <vector>

namespace roofline::cuda {

class CudaBackend;

struct GpuCeilings {
  double copy_bytes_per_s = 0;
  double gemm_bf16_flops_per_s = 0;
  int64_t gemm_n = 0;
  double kernel_overhead_s = 0;  // fixed cost per memory-bound kernel of a graph (cuda_runtime_info.h)
  double empty_kernel_s = 0;     // an empty kernel's cost in the same kind of chain
};

// Median of timed runs after warm-up, timed with events on the backend's stream.
GpuCeilings measure_gpu_ceilings(CudaBackend& backend, int64_t gemm_n = 8192);

struct GemmRateSample {
  int64_t m = 0, n = 0, k = 0;
  double flops_per_s = 0;
};

// The bf16 rate of the backend's matmul (out[m, n] = x[m, k] . w[n, k]^T, bf16 out) on each shape: random
// non-zero data, each run on another copy of the weights so that they stream from memory as a model's do (a
// sample's copies together hold 4x an H100's L2), a sample's runs replayed back to back from one CUDA graph as
// the engine's decode steps are (not the host's launch rate), median of 7 samples after warm-up. m <= 8 is
// refused: the backend runs a GEMV there.
std::vector<GemmRateSample> measure_gemm_rates(CudaBackend& backend, const std::vector<GemmRateSample>& shapes);

}  // namespace roofline::cuda
