// Matrix products for CudaBackend::matmul (internal to backend/cuda):
//   out[M, N] = x[M, K] . w[N, K]^T (+ bias[N]),  row-major, f32 accumulation (CUBLAS_COMPUTE_32F),
// the forward form of LtGemm (lt_gemm.h), which holds the plans (descriptors and the heuristic's algorithm,
// cached per shape, types and alignment) and the workspace. Supported operand types (cuBLASLt's table for
// CUBLAS_COMPUTE_32F): inputs bf16 -> out bf16 or f32; inputs f16 -> out f16 or f32; inputs f32 -> out f32.
// The bias has the type of out. Not thread-safe: one per stream.
#pragma once
#include <cuda_runtime_api.h>
#include <library_types.h>

#include <cstdint>

#include "roofline/backend/cuda/lt_gemm.h"

namespace roofline::cuda {

class CublasLtGemm {
 public:
  CublasLtGemm(cudaStream_t stream, size_t workspace_bytes) : gemm_(stream, workspace_bytes) {}

  static bool supported(cudaDataType input, cudaDataType output);
  // Each new shape's first product times cuBLASLt's candidates and keeps the fastest (LtGemm::enable_tuning).
  void enable_tuning() { gemm_.enable_tuning(); }

  // beta 1: out += the product (out f32, accumulated in place: a residual add as the epilogue).
  void run(void* out, cudaDataType out_type, const void* x, const void* w, cudaDataType in_type, const void* bias,
           int64_t M, int64_t N, int64_t K, float beta = 0.0f);

 private:
  LtGemm gemm_;
};

}  // namespace roofline::cuda
