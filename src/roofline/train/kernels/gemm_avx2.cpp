// AVX2 + FMA micro-kernel: 6 x 16 (12 ymm accumulators). Compiled with -mavx2 -mfma; entered only by
// gemm()'s run-time dispatch.
#include <immintrin.h>

#include "roofline/train/kernels/gemm_blocked.h"

namespace roofline::train {
namespace {

struct Avx2Kernel {
  static constexpr int MR = 6, NR = 16;
  static void run(int64_t kc, const float* a, const float* b, float* c, int64_t ldc, float beta, int rows, int cols) {
    __m256 acc[MR][2];
    for (int i = 0; i < MR; ++i) acc[i][0] = acc[i][1] = _mm256_setzero_ps();
    for (int64_t k = 0; k < kc; ++k) {
      const __m256 b0 = _mm256_loadu_ps(b + k * NR), b1 = _mm256_loadu_ps(b + k * NR + 8);
      const float* ak = a + k * MR;
      for (int i = 0; i < MR; ++i) {
        const __m256 ai = _mm256_broadcast_ss(ak + i);
        acc[i][0] = _mm256_fmadd_ps(ai, b0, acc[i][0]);
        acc[i][1] = _mm256_fmadd_ps(ai, b1, acc[i][1]);
      }
    }
    if (rows == MR && cols == NR) {
      for (int i = 0; i < MR; ++i) {
        float* ci = c + i * ldc;
        if (beta != 0.0f) {
          acc[i][0] = _mm256_add_ps(_mm256_loadu_ps(ci), acc[i][0]);
          acc[i][1] = _mm256_add_ps(_mm256_loadu_ps(ci + 8), acc[i][1]);
        }
        _mm256_storeu_ps(ci, acc[i][0]);
        _mm256_storeu_ps(ci + 8, acc[i][1]);
      }
      return;
    }
    alignas(32) float tile[MR][NR];
    for (int i = 0; i < MR; ++i) {
      _mm256_store_ps(tile[i], acc[i][0]);
      _mm256_store_ps(tile[i] + 8, acc[i][1]);
    }
    for (int i = 0; i < rows; ++i)
      for (int j = 0; j < cols; ++j) c[i * ldc + j] = beta == 0.0f ? tile[i][j] : c[i * ldc + j] + tile[i][j];
  }
};

}  // namespace

void gemm_avx2(ThreadPool* pool, const GemmArgs& args) { detail::gemm_blocked<Avx2Kernel>(pool, args); }
GemmPacking gemm_avx2_packing() { return detail::packing<Avx2Kernel>(); }

}  // namespace roofline::train
