#include "roofline/train/ops/linear.h"

#include "roofline/train/kernels/gemm.h"
#include "roofline/train/ops/reduce.h"

namespace roofline::train {

void linear_forward(ThreadPool& pool, const float* x, const float* w, const float* b, float* y, int64_t M,
                    int64_t in, int64_t out) {
  matmul_nt(&pool, x, w, y, M, out, in);
  if (b)
    for_rows(pool, M, 64, [&](int64_t r0, int64_t r1) {
      for (int64_t r = r0; r < r1; ++r)
        for (int64_t j = 0; j < out; ++j) y[r * out + j] += b[j];
    });
}

void linear_backward(ThreadPool& pool, const float* dy, const float* x, const float* w, float* dx,
                     bool accumulate_dx, float* dw, float* db, int64_t M, int64_t in, int64_t out) {
  if (dx) matmul_nn(&pool, dy, w, dx, M, in, out, accumulate_dx);  // dx[M, in] (+)= dy[M, out] W[out, in]
  matmul_tn(&pool, dy, x, dw, out, in, M, /*accumulate=*/true);     // dW[out, in] += dy^T x
  if (db)
    reduce_rows(pool, M, out, db, [&](int64_t r0, int64_t r1, float* part) {
      for (int64_t r = r0; r < r1; ++r)
        for (int64_t j = 0; j < out; ++j) part[j] += dy[r * out + j];
    });
}

}  // namespace roofline::train
