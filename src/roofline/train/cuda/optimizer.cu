// The fused optimizer step over the flat parameter buffer (the CPU ParamLayout): f32 master weights and
// moments updated in place, the bf16 working copy written in the same pass; and the global gradient norm
// as a fixed-order reduction (per-block partials in double, then one block over them).
#include "roofline/backend/cuda/cuda_check.h"
#include "roofline/train/cuda/block_reduce.cuh"
#include "roofline/train/cuda/kernels.h"
#include "roofline/train/scratch_sizes.h"

namespace roofline::train::cuda {
namespace {

constexpr int kThreads = 256;
constexpr int64_t kSquareBlocks = kGradNormBlocks;

__global__ void f32_to_bf16_kernel(const float* x, bf16* y, int64_t n) {
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < n) y[i] = __float2bfloat16(x[i]);
}

// Block k sums the k-th contiguous slice of g.
__global__ void sum_squares_partials_kernel(const float* g, int64_t n, double* partials) {
  __shared__ double scratch[32];
  const int64_t begin = n * blockIdx.x / gridDim.x, end = n * (blockIdx.x + 1) / gridDim.x;
  double s = 0.0;
  for (int64_t i = begin + threadIdx.x; i < end; i += blockDim.x) s += double(g[i]) * double(g[i]);
  s = block_sum(s, scratch);
  if (threadIdx.x == 0) partials[blockIdx.x] = s;
}

__global__ void sum_doubles_kernel(const double* partials, int64_t n, double* out) {
  __shared__ double scratch[32];
  double s = 0.0;
  for (int64_t i = threadIdx.x; i < n; i += blockDim.x) s += partials[i];
  s = block_sum(s, scratch);
  if (threadIdx.x == 0) *out = s;
}

__global__ void adamw_kernel(float* p, bf16* p_bf16, const float* g, float* m, float* v, const uint8_t* mask,
                             int64_t n, AdamWStep s) {
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= n) return;
  float w = p[i];
  if (mask[i]) w *= 1.0f - s.lr_weight_decay;
  const float grad = g[i] * s.grad_coef;
  const float mi = s.beta1 * m[i] + (1.0f - s.beta1) * grad;
  const float vi = s.beta2 * v[i] + (1.0f - s.beta2) * grad * grad;
  w -= s.step_size * mi / (sqrtf(vi) / s.bias2_sqrt + s.eps);
  m[i] = mi;
  v[i] = vi;
  p[i] = w;
  p_bf16[i] = __float2bfloat16(w);
}

__global__ void sgd_kernel(float* p, bf16* p_bf16, const float* g, const uint8_t* mask, int64_t n, float lr,
                           float lr_weight_decay, float grad_coef) {
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= n) return;
  float w = p[i];
  if (mask[i]) w *= 1.0f - lr_weight_decay;
  w -= lr * (g[i] * grad_coef);
  p[i] = w;
  p_bf16[i] = __float2bfloat16(w);
}

}  // namespace

void f32_to_bf16(const float* x, bf16* y, int64_t n, cudaStream_t stream) {
  f32_to_bf16_kernel<<<grid_for(n, kThreads), kThreads, 0, stream>>>(x, y, n);
  ROOFLINE_CUDA_CHECK_LAUNCH();
}

size_t sum_squares_partials(int64_t) { return size_t(kSquareBlocks); }

void sum_squares(const float* g, int64_t n, double* partials, double* out, cudaStream_t stream) {
  sum_squares_partials_kernel<<<unsigned(kSquareBlocks), kThreads, 0, stream>>>(g, n, partials);
  ROOFLINE_CUDA_CHECK_LAUNCH();
  sum_doubles_kernel<<<1, 1024, 0, stream>>>(partials, kSquareBlocks, out);
  ROOFLINE_CUDA_CHECK_LAUNCH();
}

void adamw_update(float* p, bf16* p_bf16, const float* g, float* m, float* v, const uint8_t* decay_mask, int64_t n,
                  const AdamWStep& s, cudaStream_t stream) {
  adamw_kernel<<<grid_for(n, kThreads), kThreads, 0, stream>>>(p, p_bf16, g, m, v, decay_mask, n, s);
  ROOFLINE_CUDA_CHECK_LAUNCH();
}

void sgd_update(float* p, bf16* p_bf16, const float* g, const uint8_t* decay_mask, int64_t n, float lr,
                float lr_weight_decay, float grad_coef, cudaStream_t stream) {
  sgd_kernel<<<grid_for(n, kThreads), kThreads, 0, stream>>>(p, p_bf16, g, decay_mask, n, lr, lr_weight_decay,
                                                           grad_coef);
  ROOFLINE_CUDA_CHECK_LAUNCH();
}

}  // namespace roofline::train::cuda
