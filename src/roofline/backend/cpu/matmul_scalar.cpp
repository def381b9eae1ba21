// Portable matmul: the reference the SIMD levels are tested against, and the path on CPUs without AVX2.
// out[M, N] = x[M, K] · w[N, K]^T (+ bias): each weight row is converted to f32 once (into scratch, [K])
// and dotted with every row of x, accumulating in f32 with four partial sums.
#include "roofline/backend/cpu/kernels.h"

namespace roofline::cpu {
namespace {

size_t no_packing(const MatmulProblem&) { return 0; }
int64_t one_row(const MatmulProblem&) { return 1; }
void pack_nothing(const MatmulProblem&, void*, int64_t, int64_t) {}
size_t one_weight_row(const MatmulProblem& p) { return size_t(p.K); }

void run(const MatmulProblem& p, const void*, float* w_row, int64_t n_begin, int64_t n_end) {
  const int64_t K = p.K;
  const size_t w_row_bytes = size_t(K) * dtype_size(p.w_dtype);
  for (int64_t n = n_begin; n < n_end; ++n) {
    convert_to_f32(p.w_dtype, static_cast<const uint8_t*>(p.w) + size_t(n) * w_row_bytes, w_row, size_t(K));
    float bias = 0.0f;
    if (p.bias) convert_to_f32(p.bias_dtype, static_cast<const uint8_t*>(p.bias) + size_t(n) * dtype_size(p.bias_dtype), &bias, 1);
    for (int64_t m = 0; m < p.M; ++m) {
      const float* x = p.x + m * K;
      float s0 = 0, s1 = 0, s2 = 0, s3 = 0;
      int64_t k = 0;
      for (; k + 4 <= K; k += 4) {
        s0 += x[k] * w_row[k];
        s1 += x[k + 1] * w_row[k + 1];
        s2 += x[k + 2] * w_row[k + 2];
        s3 += x[k + 3] * w_row[k + 3];
      }
      for (; k < K; ++k) s0 += x[k] * w_row[k];
      p.out[m * p.N + n] = (s0 + s1) + (s2 + s3) + bias;
    }
  }
}

}  // namespace

MatmulKernels matmul_kernels_scalar() {
  MatmulPath path;
  path.packed_x_bytes = no_packing;
  path.pack_rows = one_row;
  path.pack_x = pack_nothing;
  path.scratch_floats = one_weight_row;
  path.run = run;
  MatmulKernels k;
  for (int d = 0; d < 3; ++d) k.gemv[d] = k.gemm[d] = path;
  return k;
}

}  // namespace roofline::cpu
