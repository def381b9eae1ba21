// Portable micro-kernel (4 x 16); the compiler vectorises the inner loops at the baseline ISA.
#include "roofline/train/kernels/gemm_blocked.h"

namespace roofline::train {
namespace {

struct ScalarKernel {
  static constexpr int MR = 4, NR = 16;
  static void run(int64_t kc, const float* a, const float* b, float* c, int64_t ldc, float beta, int rows, int cols) {
    float acc[MR][NR] = {};
    for (int64_t k = 0; k < kc; ++k) {
      const float* bk = b + k * NR;
      const float* ak = a + k * MR;
      for (int i = 0; i < MR; ++i) {
        const float ai = ak[i];
        for (int j = 0; j < NR; ++j) acc[i][j] += ai * bk[j];
      }
    }
    for (int i = 0; i < rows; ++i)
      for (int j = 0; j < cols; ++j) c[i * ldc + j] = beta == 0.0f ? acc[i][j] : c[i * ldc + j] + acc[i][j];
  }
};

}  // namespace

void gemm_scalar(ThreadPool* pool, const GemmArgs& args) { detail::gemm_blocked<ScalarKernel>(pool, args); }
GemmPacking gemm_scalar_packing() { return detail::packing<ScalarKernel>(); }

}  // namespace roofline::train
