#include "roofline/backend/cuda/gemm.h"

#include <nvtx3/nvtx3.hpp>

#include "roofline/backend/cuda/cuda_check.h"
#include "roofline/core/error.h"

namespace roofline::cuda {

namespace {

void check_cublas(cublasStatus_t status, const char* expr, const char* file, int line) {
  if (status != CUBLAS_STATUS_SUCCESS)
    fail("cuBLASLt error in {} at {}:{}: {} ({})", expr, file, line, cublasLtGetStatusString(status),
         cublasLtGetStatusName(status));
}
#define ROOFLINE_CUBLAS_CHECK(expr) check_cublas((expr), #expr, __FILE__, __LINE__)

// The largest power of two (at most 256) that divides the address: what cuBLASLt may assume.
uint32_t alignment_of(const void* p) {
  const auto address = reinterpret_cast<uintptr_t>(p);
  uint32_t align = 256;
  while (align > 1 && address % align != 0) align /= 2;
  return align;
}

template <typename T>
void set_attribute(cublasLtMatmulDesc_t desc, cublasLtMatmulDescAttributes_t attribute, const T& value) {
  ROOFLINE_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(desc, attribute, &value, sizeof(value)));
}

}  // namespace

CublasLtGemm::CublasLtGemm(cudaStream_t stream, size_t workspace_bytes)
    : stream_(stream), workspace_bytes_(workspace_bytes) {
  ROOFLINE_CUBLAS_CHECK(cublasLtCreate(&handle_));
  if (workspace_bytes_ > 0) ROOFLINE_CUDA_CHECK(cudaMalloc(&workspace_, workspace_bytes_));
}

CublasLtGemm::~CublasLtGemm() {
  for (auto& [key, plan] : plans_) destroy(plan);
  if (workspace_) cudaFree(workspace_);
  if (handle_) cublasLtDestroy(handle_);
}

void CublasLtGemm::destroy(Plan& plan) {
  if (plan.d) cublasLtMatrixLayoutDestroy(plan.d);
  if (plan.b) cublasLtMatrixLayoutDestroy(plan.b);
  if (plan.a) cublasLtMatrixLayoutDestroy(plan.a);
  if (plan.desc) cublasLtMatmulDescDestroy(plan.desc);
  plan = Plan{};
}

bool CublasLtGemm::supported(cudaDataType input, cudaDataType output) {
  switch (input) {
    case CUDA_R_16BF: return output == CUDA_R_16BF || output == CUDA_R_32F;
    case CUDA_R_16F: return output == CUDA_R_16F || output == CUDA_R_32F;
    case CUDA_R_32F: return output == CUDA_R_32F;
    default: return false;
  }
}

CublasLtGemm::Plan& CublasLtGemm::plan_for(const Key& key) {
  if (auto it = plans_.find(key); it != plans_.end()) return it->second;
  Plan plan;
  const auto in = cudaDataType(key.in_type), out = cudaDataType(key.out_type);
  try {
    ROOFLINE_CUBLAS_CHECK(cublasLtMatmulDescCreate(&plan.desc, CUBLAS_COMPUTE_32F, CUDA_R_32F));
    set_attribute(plan.desc, CUBLASLT_MATMUL_DESC_TRANSA, cublasOperation_t(CUBLAS_OP_T));
    set_attribute(plan.desc, CUBLASLT_MATMUL_DESC_TRANSB, cublasOperation_t(CUBLAS_OP_N));
    set_attribute(plan.desc, CUBLASLT_MATMUL_DESC_EPILOGUE,
                  cublasLtEpilogue_t(key.bias ? CUBLASLT_EPILOGUE_BIAS : CUBLASLT_EPILOGUE_DEFAULT));
    // A = w as stored: K x N column-major (ld K), used transposed; B = x: K x M (ld K); D = out: N x M (ld N).
    ROOFLINE_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&plan.a, in, uint64_t(key.K), uint64_t(key.N), key.K));
    ROOFLINE_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&plan.b, in, uint64_t(key.K), uint64_t(key.M), key.K));
    ROOFLINE_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&plan.d, out, uint64_t(key.N), uint64_t(key.M), key.N));

    cublasLtMatmulPreference_t preference = nullptr;
    ROOFLINE_CUBLAS_CHECK(cublasLtMatmulPreferenceCreate(&preference));
    auto set_pref = [&](cublasLtMatmulPreferenceAttributes_t attribute, auto value) {
      ROOFLINE_CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(preference, attribute, &value, sizeof(value)));
    };
    cublasLtMatmulHeuristicResult_t result{};
    int found = 0;
    try {
      set_pref(CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, uint64_t(workspace_bytes_));
      set_pref(CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, key.align_w);
      set_pref(CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, key.align_x);
      set_pref(CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, key.align_out);
      set_pref(CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, key.align_out);
      ROOFLINE_CUBLAS_CHECK(cublasLtMatmulAlgoGetHeuristic(handle_, plan.desc, plan.a, plan.b, plan.d, plan.d,
                                                           preference, 1, &result, &found));
    } catch (...) {
      cublasLtMatmulPreferenceDestroy(preference);
      throw;
    }
    cublasLtMatmulPreferenceDestroy(preference);
    ROOFLINE_CHECK(found > 0, "matmul: cuBLASLt has no algorithm for [{}, {}] x [{}, {}]^T (types {} -> {})", key.M,
                   key.K, key.N, key.K, key.in_type, key.out_type);
    plan.algo = result.algo;
  } catch (...) {
    destroy(plan);
    throw;
  }
  return plans_.emplace(key, plan).first->second;
}

void CublasLtGemm::run(void* out, cudaDataType out_type, const void* x, const void* w, cudaDataType in_type,
                       const void* bias, int64_t M, int64_t N, int64_t K) {
  nvtx3::scoped_range range("cuda::matmul");
  ROOFLINE_CHECK(supported(in_type, out_type), "matmul: cuBLASLt cannot take inputs of type {} to output type {}",
                 int(in_type), int(out_type));
  if (M == 0 || N == 0) return;
  const Key key{M, N, K, int(in_type), int(out_type), bias != nullptr, alignment_of(x), alignment_of(w),
                alignment_of(out)};
  Plan& plan = plan_for(key);
  if (bias) set_attribute(plan.desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, bias);
  const float alpha = 1.0f, beta = 0.0f;
  ROOFLINE_CUBLAS_CHECK(cublasLtMatmul(handle_, plan.desc, &alpha, w, plan.a, x, plan.b, &beta, out, plan.d, out,
                                       plan.d, &plan.algo, workspace_, workspace_bytes_, stream_));
}

}  // namespace roofline::cuda
