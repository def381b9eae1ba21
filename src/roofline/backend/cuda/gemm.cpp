#include "roofline/backend/cuda/gemm.h"

#include <nvtx3/nvtx3.hpp>

#include "roofline/core/error.h"

namespace roofline::cuda {

bool CublasLtGemm::supported(cudaDataType input, cudaDataType output) {
  switch (input) {
    case CUDA_R_16BF: return output == CUDA_R_16BF || output == CUDA_R_32F;
    case CUDA_R_16F: return output == CUDA_R_16F || output == CUDA_R_32F;
    case CUDA_R_32F: return output == CUDA_R_32F;
    default: return false;
  }
}

void CublasLtGemm::run(void* out, cudaDataType out_type, const void* x, const void* w, cudaDataType in_type,
                       const void* bias, int64_t M, int64_t N, int64_t K, float beta) {
  nvtx3::scoped_range range("cuda::matmul");
  ROOFLINE_CHECK(supported(in_type, out_type), "matmul: cuBLASLt cannot take inputs of type {} to output type {}",
                 int(in_type), int(out_type));
  if (M == 0 || N == 0) return;
  // x [M, K] row-major times w [N, K] row-major read transposed.
  gemm_.run(M, N, K, GemmOperand{x, K, false, in_type}, GemmOperand{w, K, true, in_type}, out, out_type, N, beta,
            nullptr, bias, out_type);
}

}  // namespace roofline::cuda
