// Matrix products through cuBLASLt, for CudaBackend::matmul (internal to backend/cuda):
//   out[M, N] = x[M, K] . w[N, K]^T (+ bias[N]),  row-major, f32 accumulation (CUBLAS_COMPUTE_32F).
// cuBLASLt is column-major, so the product is posed as out^T = w . x^T: A = w (K x N, ld K, transposed),
// B = x (K x M, ld K), D = out (N x M, ld N); the bias epilogue adds bias[N] down each column of D, i.e.
// along each row of out. Supported operand types (cuBLASLt's table for CUBLAS_COMPUTE_32F):
//   inputs bf16 -> out bf16 or f32;  inputs f16 -> out f16 or f32;  inputs f32 -> out f32.
// The bias has the type of out. The heuristic's algorithm, with the descriptors, is cached per shape,
// types and pointer alignment; the workspace is allocated once. Not thread-safe: one per stream.
#pragma once
#include <cublasLt.h>
#include <cuda_runtime_api.h>

#include <cstdint>
#include <map>
#include <tuple>

namespace roofline::cuda {

class CublasLtGemm {
 public:
  CublasLtGemm(cudaStream_t stream, size_t workspace_bytes);
  ~CublasLtGemm();
  CublasLtGemm(const CublasLtGemm&) = delete;
  CublasLtGemm& operator=(const CublasLtGemm&) = delete;

  static bool supported(cudaDataType input, cudaDataType output);

  void run(void* out, cudaDataType out_type, const void* x, const void* w, cudaDataType in_type, const void* bias,
           int64_t M, int64_t N, int64_t K);

  size_t cached_plans() const { return plans_.size(); }

 private:
  struct Key {
    int64_t M, N, K;
    int in_type, out_type;
    bool bias;
    uint32_t align_x, align_w, align_out;
    auto tie() const { return std::tie(M, N, K, in_type, out_type, bias, align_x, align_w, align_out); }
    bool operator<(const Key& o) const { return tie() < o.tie(); }
  };
  struct Plan {
    cublasLtMatmulDesc_t desc = nullptr;
    cublasLtMatrixLayout_t a = nullptr, b = nullptr, d = nullptr;
    cublasLtMatmulAlgo_t algo{};
  };
  Plan& plan_for(const Key& key);
  static void destroy(Plan& plan);

  cudaStream_t stream_;
  cublasLtHandle_t handle_ = nullptr;
  void* workspace_ = nullptr;
  size_t workspace_bytes_ = 0;
  std::map<Key, Plan> plans_;
};

}  // namespace roofline::cuda
