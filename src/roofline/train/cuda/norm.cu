// LayerNorm and RMSNorm, forward and backward: f32 residual in, bf16 out (it feeds a GEMM), statistics kept
// per row for backward. Backward adds dx into the f32 residual gradient and accumulates dweight (and dbias)
// through per-block partial sums that one more kernel adds up in block order (no atomics).
#include "roofline/backend/cuda/cuda_check.h"
#include "roofline/core/error.h"
#include "roofline/train/cuda/block_reduce.cuh"
#include "roofline/train/cuda/kernels.h"

namespace roofline::train::cuda {
namespace {

constexpr int kThreads = 256;
constexpr int64_t kRowsPerBlock = 32;  // backward: rows whose dweight contributions one block sums

// One block per row. mean == nullptr: RMSNorm.
__global__ void norm_forward_kernel(const float* x, const float* w, const float* b, bf16* y, float* mean_out,
                                    float* rstd_out, int64_t dim, float eps) {
  __shared__ float scratch[32];
  const int64_t r = blockIdx.x;
  const float* xr = x + r * dim;
  float mu = 0.0f;
  if (mean_out) {
    float s = 0.0f;
    for (int64_t i = threadIdx.x; i < dim; i += blockDim.x) s += xr[i];
    mu = block_sum(s, scratch) / float(dim);
  }
  float ss = 0.0f;
  for (int64_t i = threadIdx.x; i < dim; i += blockDim.x) ss += (xr[i] - mu) * (xr[i] - mu);
  const float rs = rsqrtf(block_sum(ss, scratch) / float(dim) + eps);
  bf16* yr = y + r * dim;
  for (int64_t i = threadIdx.x; i < dim; i += blockDim.x)
    yr[i] = __float2bfloat16((xr[i] - mu) * rs * w[i] + (b ? b[i] : 0.0f));
  if (threadIdx.x == 0) {
    if (mean_out) mean_out[r] = mu;
    rstd_out[r] = rs;
  }
}

// xhat = (x - mean) * rstd, g = dy * w:  dx = rstd * (g - mean(g) - xhat * mean(g * xhat))  (LayerNorm)
//                                         dx = rstd * (g - xhat * mean(g * xhat))            (RMSNorm)
// partials [gridDim.x, 2 * dim]: this block's sum of dy * xhat, then of dy.
__global__ void norm_backward_kernel(const float* dy, const float* x, const float* w, const float* mean,
                                     const float* rstd, float* dx, bool accumulate, bf16* dx_bf16, float* partials,
                                     int64_t rows, int64_t dim) {
  extern __shared__ float column_sums[];  // [2 * dim], column i owned by thread i % blockDim.x
  __shared__ float scratch[32];
  for (int64_t i = threadIdx.x; i < 2 * dim; i += blockDim.x) column_sums[i] = 0.0f;
  const int64_t r0 = blockIdx.x * kRowsPerBlock, r1 = min(rows, r0 + kRowsPerBlock);
  for (int64_t r = r0; r < r1; ++r) {
    const float* xr = x + r * dim;
    const float* dyr = dy + r * dim;
    const float mu = mean ? mean[r] : 0.0f, rs = rstd[r];
    float sg = 0.0f, sgx = 0.0f;
    for (int64_t i = threadIdx.x; i < dim; i += blockDim.x) {
      const float xhat = (xr[i] - mu) * rs, g = dyr[i] * w[i];
      sg += g;
      sgx += g * xhat;
      column_sums[i] += dyr[i] * xhat;
      column_sums[dim + i] += dyr[i];
    }
    const float mg = mean ? block_sum(sg, scratch) / float(dim) : 0.0f;
    const float mgx = block_sum(sgx, scratch) / float(dim);
    float* dxr = dx + r * dim;
    for (int64_t i = threadIdx.x; i < dim; i += blockDim.x) {
      const float xhat = (xr[i] - mu) * rs;
      const float v = rs * (dyr[i] * w[i] - mg - xhat * mgx);
      const float out = accumulate ? dxr[i] + v : v;
      dxr[i] = out;
      if (dx_bf16) dx_bf16[r * dim + i] = __float2bfloat16(out);
    }
  }
  float* out = partials + int64_t(blockIdx.x) * 2 * dim;
  for (int64_t i = threadIdx.x; i < 2 * dim; i += blockDim.x) out[i] = column_sums[i];
}

int64_t backward_blocks(int64_t rows) { return (rows + kRowsPerBlock - 1) / kRowsPerBlock; }

}  // namespace

void layernorm_forward(const float* x, const float* w, const float* b, bf16* y, float* mean, float* rstd,
                       int64_t rows, int64_t dim, float eps, cudaStream_t stream) {
  norm_forward_kernel<<<unsigned(rows), kThreads, 0, stream>>>(x, w, b, y, mean, rstd, dim, eps);
  ROOFLINE_CUDA_CHECK_LAUNCH();
}

void rmsnorm_forward(const float* x, const float* w, bf16* y, float* rstd, int64_t rows, int64_t dim, float eps,
                     cudaStream_t stream) {
  norm_forward_kernel<<<unsigned(rows), kThreads, 0, stream>>>(x, w, nullptr, y, nullptr, rstd, dim, eps);
  ROOFLINE_CUDA_CHECK_LAUNCH();
}

size_t norm_partials_floats(int64_t rows, int64_t dim) { return size_t(backward_blocks(rows) * 2 * dim); }

void norm_backward(const float* dy, const float* x, const float* w, const float* mean, const float* rstd, float* dx,
                   bool accumulate_dx, bf16* dx_bf16, float* dw, float* db, float* partials, int64_t rows,
                   int64_t dim, cudaStream_t stream) {
  ROOFLINE_CHECK(mean || !db, "norm_backward: RMSNorm has no bias");
  const size_t smem = size_t(2 * dim) * sizeof(float);
  if (smem > 48 * 1024)
    ROOFLINE_CUDA_CHECK(cudaFuncSetAttribute(norm_backward_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                             int(smem)));
  const int64_t blocks = backward_blocks(rows);
  norm_backward_kernel<<<unsigned(blocks), kThreads, smem, stream>>>(dy, x, w, mean, rstd, dx, accumulate_dx, dx_bf16,
                                                                     partials, rows, dim);
  ROOFLINE_CUDA_CHECK_LAUNCH();
  add_column_partials(partials, blocks, dim, 2 * dim, dw, stream);
  if (db) add_column_partials(partials + dim, blocks, dim, 2 * dim, db, stream);
}

}  // namespace roofline::train::cuda
