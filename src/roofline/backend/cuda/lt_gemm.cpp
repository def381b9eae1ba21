#include "roofline/backend/cuda/lt_gemm.h"

#include <fmt/format.h>

#include <algorithm>
#include <cstdio>
#include <vector>

#include "roofline/backend/cuda/cuda_check.h"
#include "roofline/core/error.h"

namespace roofline::cuda {
namespace {

void check_cublas(cublasStatus_t status, const char* expr, const char* file, int line) {
  if (status != CUBLAS_STATUS_SUCCESS)
    fail("cuBLASLt error in {} at {}:{}: {} ({})", expr, file, line, cublasLtGetStatusString(status),
         cublasLtGetStatusName(status));
}
#define LT_CUBLAS_CHECK(expr) check_cublas((expr), #expr, __FILE__, __LINE__)

uint32_t alignment_of(const void* p) {
  const auto address = reinterpret_cast<uintptr_t>(p);
  uint32_t align = 256;
  while (align > 1 && address % align != 0) align /= 2;
  return align;
}

template <typename T>
void set_attribute(cublasLtMatmulDesc_t desc, cublasLtMatmulDescAttributes_t attribute, const T& value) {
  LT_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(desc, attribute, &value, sizeof(value)));
}

}  // namespace

LtGemm::LtGemm(cudaStream_t stream, size_t workspace_bytes) : stream_(stream), workspace_bytes_(workspace_bytes) {
  LT_CUBLAS_CHECK(cublasLtCreate(&handle_));
  if (workspace_bytes_ > 0) ROOFLINE_CUDA_CHECK(cudaMalloc(&workspace_, workspace_bytes_));
}

LtGemm::~LtGemm() {
  for (auto& [key, plan] : plans_) destroy(plan);
  if (workspace_) cudaFree(workspace_);
  if (handle_) cublasLtDestroy(handle_);
}

void LtGemm::destroy(Plan& plan) {
  if (plan.c) cublasLtMatrixLayoutDestroy(plan.c);
  if (plan.b) cublasLtMatrixLayoutDestroy(plan.b);
  if (plan.a) cublasLtMatrixLayoutDestroy(plan.a);
  if (plan.desc) cublasLtMatmulDescDestroy(plan.desc);
  plan = Plan{};
}

// Column-major view: D^T [N x M] = opB' [N x K] . opA' [K x M], where cuBLASLt's "A" is our B and its "B" is
// our A. A row-major matrix [r, c] with row stride ld is a column-major [c, r] matrix with leading dim ld.
LtGemm::Plan& LtGemm::plan_for(const Key& key, bool* from_table) {
  *from_table = false;
  if (auto it = plans_.find(key); it != plans_.end()) return it->second;
  Plan plan;
  try {
    LT_CUBLAS_CHECK(cublasLtMatmulDescCreate(&plan.desc, CUBLAS_COMPUTE_32F, CUDA_R_32F));
    // cuBLASLt's A = our B: stored row-major [K, N] (not transposed) = column-major [N, K]: op N.
    //                       stored row-major [N, K] (transposed)     = column-major [K, N]: op T.
    set_attribute(plan.desc, CUBLASLT_MATMUL_DESC_TRANSA, cublasOperation_t(key.tb ? CUBLAS_OP_T : CUBLAS_OP_N));
    set_attribute(plan.desc, CUBLASLT_MATMUL_DESC_TRANSB, cublasOperation_t(key.ta ? CUBLAS_OP_T : CUBLAS_OP_N));
    const auto gelu = GemmGelu::Kind(key.gelu);
    ROOFLINE_CHECK(gelu != GemmGelu::Kind::Backward || !key.bias, "gemm: no bias with the GELU backward");
    cublasLtEpilogue_t epilogue = key.bias ? CUBLASLT_EPILOGUE_BIAS : CUBLASLT_EPILOGUE_DEFAULT;
    if (gelu == GemmGelu::Kind::Forward) epilogue = key.bias ? CUBLASLT_EPILOGUE_GELU_AUX_BIAS : CUBLASLT_EPILOGUE_GELU_AUX;
    if (gelu == GemmGelu::Kind::Backward) epilogue = CUBLASLT_EPILOGUE_DGELU;
    ROOFLINE_CHECK(!key.a_row_sums || (!key.bias && gelu == GemmGelu::Kind::None),
                   "gemm: row sums of A with neither a bias nor a GELU");
    if (key.a_row_sums) epilogue = CUBLASLT_EPILOGUE_BGRADB;  // our A is cuBLASLt's B
    if (epilogue != CUBLASLT_EPILOGUE_DEFAULT) set_attribute(plan.desc, CUBLASLT_MATMUL_DESC_EPILOGUE, epilogue);
    if (key.bias) set_attribute(plan.desc, CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE, cudaDataType(key.bias_type));
    if (key.a_row_sums) set_attribute(plan.desc, CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE, cudaDataType(CUDA_R_32F));
    if (gelu != GemmGelu::Kind::None) {
      set_attribute(plan.desc, CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_LD, key.aux_ld);
      set_attribute(plan.desc, CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_DATA_TYPE, int32_t(CUDA_R_16BF));
    }
    const uint64_t M = uint64_t(key.M), N = uint64_t(key.N), K = uint64_t(key.K);
    const auto ab = cudaDataType(key.ab_type);
    LT_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&plan.a, ab, key.tb ? K : N, key.tb ? N : K, key.ldb));
    LT_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&plan.b, ab, key.ta ? M : K, key.ta ? K : M, key.lda));
    LT_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&plan.c, cudaDataType(key.c_type), N, M, key.ldc));

    // chosen_ holds only the kept table's forms when a plan is made (each form's plan is made once).
    if (auto given = chosen_.choices.find(form_name(key)); given != chosen_.choices.end()) {
      cublasLtMatmulAlgo_t algo{};
      hex_to_bytes(given->second.algorithm, &algo, sizeof(algo));  // checked by use_algorithms
      cublasLtMatmulHeuristicResult_t check{};
      if (cublasLtMatmulAlgoCheck(handle_, plan.desc, plan.a, plan.b, plan.c, plan.c, &algo, &check) ==
              CUBLAS_STATUS_SUCCESS &&
          check.workspaceSize <= workspace_bytes_) {
        plan.algo = algo;
        *from_table = true;
      } else {
        std::fprintf(stderr, "gemm: cuBLASLt refuses the kept algorithm for %s; using its heuristic's (results "
                             "will differ from the run that kept it)\n", form_name(key).c_str());
      }
    }
    if (!*from_table) {
      cublasLtMatmulPreference_t preference = preference_for(key);
      cublasLtMatmulHeuristicResult_t result{};
      int found = 0;
      const cublasStatus_t status = cublasLtMatmulAlgoGetHeuristic(handle_, plan.desc, plan.a, plan.b, plan.c,
                                                                     plan.c, preference, 1, &result, &found);
      cublasLtMatmulPreferenceDestroy(preference);
      LT_CUBLAS_CHECK(status);
      ROOFLINE_CHECK(found > 0, "gemm: cuBLASLt has no algorithm for M {} N {} K {} (trans {} {}, out type {})",
                     key.M, key.N, key.K, key.ta, key.tb, key.c_type);
      plan.algo = result.algo;
    }
  } catch (...) {
    destroy(plan);
    throw;
  }
  return plans_.emplace(key, plan).first->second;
}

cublasLtMatmulPreference_t LtGemm::preference_for(const Key& key) const {
  cublasLtMatmulPreference_t preference = nullptr;
  LT_CUBLAS_CHECK(cublasLtMatmulPreferenceCreate(&preference));
  try {
    const uint64_t bytes = workspace_bytes_;
    LT_CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(preference, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &bytes,
                                                            sizeof(bytes)));
    for (auto attribute : {CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES,
                           CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES})
      LT_CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(preference, attribute, &key.align, sizeof(key.align)));
  } catch (...) {
    cublasLtMatmulPreferenceDestroy(preference);
    throw;
  }
  return preference;
}

std::vector<LtGemm::TimedAlgorithm> LtGemm::time_candidates(const Key& key, const Plan& plan, const void* a,
                                                             const void* b, const void* c_in, float beta, int count,
                                                             int repeats) {
  std::vector<cublasLtMatmulHeuristicResult_t> results(static_cast<size_t>(count));
  int found = 0;
  cublasLtMatmulPreference_t preference = preference_for(key);
  const cublasStatus_t status = cublasLtMatmulAlgoGetHeuristic(handle_, plan.desc, plan.a, plan.b, plan.c, plan.c,
                                                                 preference, count, results.data(), &found);
  cublasLtMatmulPreferenceDestroy(preference);
  LT_CUBLAS_CHECK(status);
  std::vector<TimedAlgorithm> timed(static_cast<size_t>(found));
  void* scratch = nullptr;
  const size_t c_bytes = size_t(key.M) * size_t(key.ldc) * (key.c_type == CUDA_R_32F ? 4 : 2);
  ROOFLINE_CUDA_CHECK(cudaMalloc(&scratch, c_bytes));
  cudaEvent_t start = nullptr, stop = nullptr;
  ROOFLINE_CUDA_CHECK(cudaEventCreate(&start));
  ROOFLINE_CUDA_CHECK(cudaEventCreate(&stop));
  const float alpha = 1.0f;
  for (int i = 0; i < found; ++i) {
    timed[size_t(i)].algo = results[size_t(i)].algo;
    std::vector<float> times;
    for (int rep = 0; rep <= repeats; ++rep) {  // the first is a warm-up
      ROOFLINE_CUDA_CHECK(cudaEventRecord(start, stream_));
      const cublasStatus_t run =
          cublasLtMatmul(handle_, plan.desc, &alpha, b, plan.a, a, plan.b, &beta, c_in, plan.c, scratch, plan.c,
                         &results[size_t(i)].algo, workspace_, workspace_bytes_, stream_);
      ROOFLINE_CUDA_CHECK(cudaEventRecord(stop, stream_));
      ROOFLINE_CUDA_CHECK(cudaEventSynchronize(stop));
      if (run != CUBLAS_STATUS_SUCCESS) break;
      float ms = 0;
      ROOFLINE_CUDA_CHECK(cudaEventElapsedTime(&ms, start, stop));
      if (rep > 0) times.push_back(ms);
    }
    if (int(times.size()) == repeats) {
      std::sort(times.begin(), times.end());
      timed[size_t(i)].ms = times[times.size() / 2];
    }
  }
  cudaEventDestroy(start);
  cudaEventDestroy(stop);
  cudaFree(scratch);
  return timed;
}

void LtGemm::add_survey_line(const Key& key, const std::vector<TimedAlgorithm>& timed) {
  int best = -1;
  for (size_t i = 0; i < timed.size(); ++i)
    if (timed[i].ms > 0 && (best < 0 || timed[i].ms < timed[size_t(best)].ms)) best = int(i);
  if (best < 0) return;
  const double flops = 2.0 * double(key.M) * double(key.N) * double(key.K);
  const double first = timed[0].ms, fastest = timed[size_t(best)].ms;
  survey_lines_.push_back(fmt::format(
      "{:>6} {:>6} {:>6} {}{} {:<4} {:>2} cand. | heuristic #0 {:>7.3f} ms {:>5.0f} TFLOP/s | best #{} {:>7.3f} ms "
      "{:>5.0f} TFLOP/s",
      key.M, key.N, key.K, key.ta ? "T" : "N", key.tb ? "T" : "N", key.c_type == CUDA_R_32F ? "f32" : "bf16",
      timed.size(), first, first > 0 ? flops / (first * 1e-3) / 1e12 : 0.0, best, fastest,
      flops / (fastest * 1e-3) / 1e12));
}

// Called once per plan, on its first run: the survey's timings, tuning, and the record of the choice.
void LtGemm::choose(const Key& key, Plan& plan, bool from_table, const void* a, const void* b, const void* c_in,
                    float beta) {
  // Timing synchronizes with the host, which a stream being captured into a graph must not: a plan first met
  // during a capture is neither surveyed nor tuned (it keeps the heuristic's choice).
  cudaStreamCaptureStatus capture = cudaStreamCaptureStatusNone;
  if (tune_ || survey_enabled_) ROOFLINE_CUDA_CHECK(cudaStreamIsCapturing(stream_, &capture));
  const bool capturing = capture != cudaStreamCaptureStatusNone;
  const bool tune = tune_ && !from_table && !capturing;
  GemmAlgorithmChoice choice;
  if ((survey_enabled_ || tune) && !capturing) {
    const std::vector<TimedAlgorithm> timed = time_candidates(key, plan, a, b, c_in, beta, tune ? 16 : 8, tune ? 7 : 5);
    if (survey_enabled_) add_survey_line(key, timed);
    if (tune && !timed.empty() && timed[0].ms > 0) {
      size_t best = 0;
      for (size_t i = 1; i < timed.size(); ++i)
        if (timed[i].ms > 0 && timed[i].ms < timed[best].ms) best = i;
      const bool clearly_faster = timed[best].ms < 0.97 * timed[0].ms;
      if (clearly_faster) plan.algo = timed[best].algo;  // else the plan keeps the heuristic's first
      choice.ms = timed[clearly_faster ? best : 0].ms;
      choice.heuristic_ms = timed[0].ms;
    }
  }
  if (!tune_ && !keep_choices_) return;  // the heuristic alone: nothing to record
  if (from_table) return;                // chosen_ already holds it, with its recorded timings
  choice.algorithm = bytes_to_hex(&plan.algo, sizeof(plan.algo));
  chosen_.choices[form_name(key)] = choice;
}

std::string LtGemm::form_name(const Key& k) {
  return fmt::format("M{} N{} K{} lda{} ldb{} ldc{} {}{} ab{} c{} bias{}:{} align{} gelu{}:{} rowsums{}", k.M, k.N,
                     k.K, k.lda, k.ldb, k.ldc, k.ta ? "T" : "N", k.tb ? "T" : "N", k.ab_type, k.c_type, int(k.bias),
                     k.bias_type, k.align, k.gelu, k.aux_ld, int(k.a_row_sums));
}

std::string LtGemm::library_id() { return fmt::format("cublasLt {}", cublasLtGetVersion()); }

std::string LtGemm::device_id() {
  int device = 0;
  ROOFLINE_CUDA_CHECK(cudaGetDevice(&device));
  cudaDeviceProp prop{};
  ROOFLINE_CUDA_CHECK(cudaGetDeviceProperties(&prop, device));
  return fmt::format("{}, sm_{}{}, {} SMs", prop.name, prop.major, prop.minor, prop.multiProcessorCount);
}

bool LtGemm::use_algorithms(const GemmAlgorithmTable& table) {
  ROOFLINE_CHECK(plans_.empty(), "gemm: kept algorithms must be given before the first product");
  if (!table.made_by(library_id(), device_id())) return false;
  for (const auto& [form, choice] : table.choices) {
    cublasLtMatmulAlgo_t algo{};
    ROOFLINE_CHECK(hex_to_bytes(choice.algorithm, &algo, sizeof(algo)),
                   "gemm: the kept algorithm for {} is not {} bytes of hex", form, sizeof(algo));
  }
  chosen_ = table;  // forms this process never meets are kept too, for the next save
  keep_choices_ = true;
  return true;
}

GemmAlgorithmTable LtGemm::algorithms() const {
  GemmAlgorithmTable table = chosen_;
  table.library = library_id();
  table.device = device_id();
  return table;
}

std::string LtGemm::survey() const {
  if (survey_lines_.empty()) return {};
  std::string out = "cuBLASLt candidates per GEMM form (M N K, transposes of A B, C type; median of 5):\n";
  for (const std::string& line : survey_lines_) out += line + "\n";
  return out;
}

void LtGemm::run(int64_t M, int64_t N, int64_t K, GemmOperand a, GemmOperand b, void* c, cudaDataType c_type,
                    int64_t ldc, float beta, const void* c_in, const void* bias, cudaDataType bias_type,
                    GemmGelu gelu, float* a_row_sums) {
  if (M == 0 || N == 0) return;
  ROOFLINE_CHECK(a.type == b.type, "gemm: A and B must have one type (got {} and {})", int(a.type), int(b.type));
  if (!c_in) c_in = c;
  const size_t c_size = c_type == CUDA_R_32F ? 4 : 2, ab_size = a.type == CUDA_R_32F ? 4 : 2;
  // The alignment every operand meets (pointers and row strides), which the plan may assume.
  uint32_t align = std::min({alignment_of(a.data), alignment_of(b.data), alignment_of(c), alignment_of(c_in)});
  if (a_row_sums) align = std::min(align, alignment_of(a_row_sums));
  if (gelu.kind != GemmGelu::Kind::None) {
    ROOFLINE_CHECK(gelu.aux && gelu.ld % 8 == 0 && gelu.ld >= N, "gemm: GELU aux stride {} (N {})", gelu.ld, N);
    align = std::min(align, alignment_of(gelu.aux));
  }
  for (uint64_t stride_bytes : {uint64_t(a.ld) * ab_size, uint64_t(b.ld) * ab_size, uint64_t(ldc) * c_size})
    while (align > 1 && stride_bytes % align != 0) align /= 2;
  const int64_t aux_ld = gelu.kind == GemmGelu::Kind::None ? 0 : gelu.ld;
  const Key key{M, N, K, a.ld, b.ld, ldc, a.transposed, b.transposed, bias != nullptr, int(a.type), int(c_type),
                int(bias_type), align, int(gelu.kind), aux_ld, a_row_sums != nullptr};
  const bool first_use = plans_.find(key) == plans_.end();
  bool from_table = false;
  Plan& plan = plan_for(key, &from_table);
  if (bias) set_attribute(plan.desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, bias);
  if (a_row_sums) set_attribute(plan.desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, static_cast<const void*>(a_row_sums));
  if (gelu.kind != GemmGelu::Kind::None) set_attribute(plan.desc, CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_POINTER, gelu.aux);
  if (first_use) choose(key, plan, from_table, a.data, b.data, c_in, beta);  // with the pointers set above
  const float alpha = 1.0f;
  LT_CUBLAS_CHECK(cublasLtMatmul(handle_, plan.desc, &alpha, b.data, plan.a, a.data, plan.b, &beta, c_in, plan.c, c,
                                    plan.c, &plan.algo, workspace_, workspace_bytes_, stream_));
}

}  // namespace roofline::cuda
