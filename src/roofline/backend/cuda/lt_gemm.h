// Matrix products through cuBLASLt, row-major: C[M, N] = op(A)[M, K] . op(B)[K, N] (+ bias[N]) (+ beta C_in),
// A and B of one type (bf16 unless told), f32 accumulation (CUBLAS_COMPUTE_32F), C bf16, f16 or f32. The one
// cuBLASLt wrapper of the project: inference's matmul (CublasLtGemm, gemm.h) is the forward form below, and
// training uses all three products of a linear layer:
//   forward   Y  = X . W^T            (trans_b)           bf16 out, bias epilogue; or f32 out + residual (beta 1)
//   input     dX = dY . W                                 bf16 or f32 out
//   weight    dW += dY^T . X          (trans_a)           f32 out, beta 1 (gradients accumulate)
// cuBLASLt is column-major, so the row-major product is posed as C^T = op(B)^T . op(A)^T. Plans (descriptors
// and the heuristic's algorithm) are cached per shape, types, strides and alignment, as the inference
// backend's CublasLtGemm does for its one form; the workspace is allocated once. Deterministic for a given
// GPU and plan (no split-K atomics are requested). One instance per stream.
// The weight-gradient product can also write its bias gradient (a_row_sums: the row sums of op(A) over K, i.e.
// the column sums of dY; cuBLASLt's BGRADB epilogue, our A being its B), saving the separate pass over dY.
// A GELU (tanh form, as GPT-2's) can ride in the epilogue (GemmGelu): forward C = gelu(product + bias) with the
// pre-activation stored to aux; backward C = product * gelu'(aux). That saves the separate element-wise pass
// and the round trip of its input through memory.
#pragma once
#include <cublasLt.h>
#include <cuda_runtime_api.h>

#include <cstdint>
#include <map>
#include <string>
#include <tuple>
#include <vector>

namespace roofline::cuda {

struct GemmOperand {
  const void* data = nullptr;
  int64_t ld = 0;       // row stride of the stored (row-major) matrix, in elements
  bool transposed = false;
  cudaDataType type = CUDA_R_16BF;  // A and B must agree
};

struct GemmGelu {
  enum class Kind { None, Forward, Backward };
  Kind kind = Kind::None;
  const void* aux = nullptr;  // bf16, row-major, row stride ld (a multiple of 8): written forward, read backward
  int64_t ld = 0;
};

class LtGemm {
 public:
  LtGemm(cudaStream_t stream, size_t workspace_bytes);
  ~LtGemm();
  LtGemm(const LtGemm&) = delete;
  // For the profile: the first run of each plan first times cuBLASLt's other candidate algorithms (into a
  // scratch output, so nothing the model reads changes) and survey() reports chosen vs fastest. The choice
  // itself stays the heuristic's first (a timing-based choice could differ between runs and break bit-exact
  // resume; and an autotuned choice, tried for decode-sized GEMMs, was within 1% of the heuristic's: see
  // docs/performance.md, session 5).
  void enable_survey() { survey_enabled_ = true; }
  std::string survey() const;
  LtGemm& operator=(const LtGemm&) = delete;

  // C (type c_type, row stride ldc) = op(A) . op(B) (+ bias, of type bias_type) + beta * C_in (C_in defaults
  // to C itself; same type and stride as C). a_row_sums (f32 [M], not with a bias or a GELU): written (not
  // accumulated) with the row sums of op(A). Throws where cuBLASLt has no algorithm for the form.
  void run(int64_t M, int64_t N, int64_t K, GemmOperand a, GemmOperand b, void* c, cudaDataType c_type, int64_t ldc,
           float beta = 0.0f, const void* c_in = nullptr, const void* bias = nullptr,
           cudaDataType bias_type = CUDA_R_32F, GemmGelu gelu = {}, float* a_row_sums = nullptr);

 private:
  struct Key {
    int64_t M, N, K, lda, ldb, ldc;
    bool ta, tb, bias;
    int ab_type, c_type, bias_type;
    uint32_t align;
    int gelu;
    int64_t aux_ld;
    bool a_row_sums;
    auto tie() const {
      return std::tie(M, N, K, lda, ldb, ldc, ta, tb, bias, ab_type, c_type, bias_type, align, gelu, aux_ld,
                      a_row_sums);
    }
    bool operator<(const Key& o) const { return tie() < o.tie(); }
  };
  struct Plan {
    cublasLtMatmulDesc_t desc = nullptr;
    cublasLtMatrixLayout_t a = nullptr, b = nullptr, c = nullptr;
    cublasLtMatmulAlgo_t algo{};
  };
  Plan& plan_for(const Key& key);
  void survey_plan(const Key& key, const Plan& plan, const void* a, const void* b, const void* c_in, float beta);
  static void destroy(Plan& plan);

  cudaStream_t stream_;
  cublasLtHandle_t handle_ = nullptr;
  void* workspace_ = nullptr;
  size_t workspace_bytes_ = 0;
  std::map<Key, Plan> plans_;
  bool survey_enabled_ = false;
  std::vector<std::string> survey_lines_;
};

}  // namespace roofline::cuda
