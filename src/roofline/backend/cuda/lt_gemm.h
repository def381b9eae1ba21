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

#include "roofline/backend/gemm_algorithm_table.h"

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
  // For the profile: the first run of each plan first times cuBLASLt's candidate algorithms (into a scratch
  // output, so nothing the model reads changes) and survey() reports the heuristic's first against the
  // fastest. The survey alone changes no choice (see enable_tuning).
  void enable_survey() { survey_enabled_ = true; }
  std::string survey() const;
  LtGemm& operator=(const LtGemm&) = delete;

  // Which algorithm a new plan runs (see gemm_algorithm_table.h for why choices are kept):
  //  1. the choice use_algorithms() gave for the plan's form, if cuBLASLt accepts it for the form;
  //  2. with tuning on, the fastest of cuBLASLt's candidates (up to 16, each timed on the first call's own
  //     operands into a scratch output: median of 7 after a warm-up), but only where it beats the heuristic's
  //     first by more than 3%, so that timing noise does not swap near-equal ones;
  //  3. the heuristic's first.
  // Tuning times candidates with host synchronisation, so a plan first made while the stream is being captured
  // into a graph is neither tuned nor surveyed (it keeps the heuristic's first).
  void enable_tuning() { tune_ = true; }
  // Choices for plans made from now on. Returns false (keeping none) when the table was made by another
  // cuBLASLt version or another GPU; its choices would not be valid here.
  bool use_algorithms(const GemmAlgorithmTable& table);
  // The given table's choices and those of every plan made since, when tuning is on or a table was given
  // (empty otherwise: the heuristic alone needs no record, it chooses the same in every process).
  GemmAlgorithmTable algorithms() const;
  // What the table's `library` and `device` say for this process.
  static std::string library_id();
  static std::string device_id();

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
  struct TimedAlgorithm {
    cublasLtMatmulAlgo_t algo{};
    double ms = -1;  // median; < 0: cuBLASLt refused it for these operands
  };
  static std::string form_name(const Key& key);
  Plan& plan_for(const Key& key, bool* from_table);
  cublasLtMatmulPreference_t preference_for(const Key& key) const;  // the caller destroys it
  // cuBLASLt's candidates for the plan in its order, each timed on these operands (into a scratch output).
  std::vector<TimedAlgorithm> time_candidates(const Key& key, const Plan& plan, const void* a, const void* b,
                                              const void* c_in, float beta, int count, int repeats);
  void add_survey_line(const Key& key, const std::vector<TimedAlgorithm>& timed);
  void choose(const Key& key, Plan& plan, bool from_table, const void* a, const void* b, const void* c_in,
              float beta);
  static void destroy(Plan& plan);

  cudaStream_t stream_;
  cublasLtHandle_t handle_ = nullptr;
  void* workspace_ = nullptr;
  size_t workspace_bytes_ = 0;
  std::map<Key, Plan> plans_;
  bool survey_enabled_ = false;
  std::vector<std::string> survey_lines_;
  bool tune_ = false;
  // When tuning or given a table: the given table's choices, then what each plan made since runs. A given
  // form keeps its entry (and recorded timings) whether or not this process meets it.
  GemmAlgorithmTable chosen_;
  bool keep_choices_ = false;  // use_algorithms() was given a table
};

}  // namespace roofline::cuda
