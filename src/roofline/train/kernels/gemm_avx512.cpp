// AVX-512 micro-kernel: 8 x 32 (16 zmm accumulators). Compiled with -mavx512f...; entered only by
// gemm()'s run-time dispatch.
#include <immintrin.h>

#include "roofline/train/kernels/gemm_blocked.h"

namespace roofline::train {
namespace {

struct Avx512Kernel {
  static constexpr int MR = 8, NR = 32;
  static void run(int64_t kc, const float* a, const float* b, float* c, int64_t ldc, float beta, int rows, int cols) {
    __m512 acc[MR][2];
    for (int i = 0; i < MR; ++i) acc[i][0] = acc[i][1] = _mm512_setzero_ps();
    for (int64_t k = 0; k < kc; ++k) {
      const __m512 b0 = _mm512_loadu_ps(b + k * NR), b1 = _mm512_loadu_ps(b + k * NR + 16);
      const float* ak = a + k * MR;
      for (int i = 0; i < MR; ++i) {
        const __m512 ai = _mm512_set1_ps(ak[i]);
        acc[i][0] = _mm512_fmadd_ps(ai, b0, acc[i][0]);
        acc[i][1] = _mm512_fmadd_ps(ai, b1, acc[i][1]);
      }
    }
    if (rows == MR && cols == NR) {
      for (int i = 0; i < MR; ++i) {
        float* ci = c + i * ldc;
        if (beta != 0.0f) {
          acc[i][0] = _mm512_add_ps(_mm512_loadu_ps(ci), acc[i][0]);
          acc[i][1] = _mm512_add_ps(_mm512_loadu_ps(ci + 16), acc[i][1]);
        }
        _mm512_storeu_ps(ci, acc[i][0]);
        _mm512_storeu_ps(ci + 16, acc[i][1]);
      }
      return;
    }
    alignas(64) float tile[MR][NR];
    for (int i = 0; i < MR; ++i) {
      _mm512_store_ps(tile[i], acc[i][0]);
      _mm512_store_ps(tile[i] + 16, acc[i][1]);
    }
    for (int i = 0; i < rows; ++i)
      for (int j = 0; j < cols; ++j) c[i * ldc + j] = beta == 0.0f ? tile[i][j] : c[i * ldc + j] + tile[i][j];
  }
};

}  // namespace

void gemm_avx512(ThreadPool* pool, const GemmArgs& args) { detail::gemm_blocked<Avx512Kernel>(pool, args); }
GemmPacking gemm_avx512_packing() { return detail::packing<Avx512Kernel>(); }

}  // namespace roofline::train
