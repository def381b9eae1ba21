// Single-precision GEMM for training: C = beta * C + op(A) * op(B), row-major, where op(X) is X or X^T.
// Shapes: op(A) [M, K], op(B) [K, N], C [M, N]; lda/ldb/ldc are the row strides of the stored matrices.
// The three products of a linear layer are all this one call:
//   forward   y[M, N]  = x[M, K] * W[N, K]^T      (trans_b)
//   input     dx[M, K] = dy[M, N] * W[N, K]
//   weight    dW[N, K] += dy[M, N]^T * x[M, K]     (trans_a, beta 1)
// Deterministic: each C element is summed in the same order whatever the thread count, so a run repeats
// bit for bit (resume depends on this). Blocked GotoBLAS-style (pack B panels of KC x NC, A panels of
// MR x KC, an MR x NR register micro-kernel), at the best ISA the CPU has (ROOFLINE_CPU_ISA can force one).
#pragma once
#include <cstddef>
#include <cstdint>

namespace roofline {
class ThreadPool;

namespace train {

struct GemmArgs {
  bool trans_a = false, trans_b = false;
  int64_t M = 0, N = 0, K = 0;
  const float* A = nullptr;
  int64_t lda = 0;
  const float* B = nullptr;
  int64_t ldb = 0;
  float beta = 0.0f;  // 0: overwrite C (C may hold garbage), 1: accumulate into C
  float* C = nullptr;
  int64_t ldc = 0;
};

void gemm(ThreadPool* pool, const GemmArgs& args);

// Convenience forms for contiguous matrices.
// y[M, N] = x[M, K] * w[N, K]^T (+ y when accumulate)
inline void matmul_nt(ThreadPool* pool, const float* x, const float* w, float* y, int64_t M, int64_t N, int64_t K,
                      bool accumulate = false) {
  gemm(pool, {false, true, M, N, K, x, K, w, K, accumulate ? 1.0f : 0.0f, y, N});
}
// y[M, N] = x[M, K] * w[K, N] (+ y)
inline void matmul_nn(ThreadPool* pool, const float* x, const float* w, float* y, int64_t M, int64_t N, int64_t K,
                      bool accumulate = false) {
  gemm(pool, {false, false, M, N, K, x, K, w, N, accumulate ? 1.0f : 0.0f, y, N});
}
// y[M, N] = x[K, M]^T * w[K, N] (+ y)
inline void matmul_tn(ThreadPool* pool, const float* x, const float* w, float* y, int64_t M, int64_t N, int64_t K,
                      bool accumulate = false) {
  gemm(pool, {true, false, M, N, K, x, M, w, N, accumulate ? 1.0f : 0.0f, y, N});
}

// The packed panels every thread that runs a GEMM keeps between calls (thread_local, sized by the selected
// ISA's blocking whatever the shape): A [MC x KC] and B [NC x KC] floats. The CPU trainer's memory plan counts them.
struct GemmPacking {
  size_t a_floats = 0, b_floats = 0;
};
GemmPacking gemm_packing();

// The ISA-specific entry points (gemm_<isa>.cpp), chosen by gemm(), and their packing sizes.
void gemm_scalar(ThreadPool* pool, const GemmArgs& args);
void gemm_avx2(ThreadPool* pool, const GemmArgs& args);
void gemm_avx512(ThreadPool* pool, const GemmArgs& args);
GemmPacking gemm_scalar_packing();
GemmPacking gemm_avx2_packing();
GemmPacking gemm_avx512_packing();

}  // namespace train
}  // namespace roofline
