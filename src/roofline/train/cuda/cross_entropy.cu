// The row kernel of the fused LM-head cross-entropy (the model runs the two GEMMs around it, chunk by
// chunk, so logits exist for one chunk of rows at a time, in bf16): per row an online max / sum of
// exponentials in one pass over the logits, then the loss and, in place, dlogits in a second pass.
#include "roofline/backend/cuda/cuda_check.h"
#include "roofline/train/cuda/block_reduce.cuh"
#include "roofline/train/cuda/kernels.h"

namespace roofline::train::cuda {
namespace {

constexpr int kThreads = 512;

__global__ void cross_entropy_kernel(bf16* logits, const int32_t* targets, float* losses, int64_t V,
                                     float grad_scale, bool write_grad) {
  __shared__ float scratch[32];
  const int64_t r = blockIdx.x;
  bf16* row = logits + r * V;
  const int32_t target = targets[r];
  float m = -INFINITY, s = 0.0f;
  for (int64_t i = threadIdx.x; i < V; i += blockDim.x) {
    const float x = __bfloat162float(row[i]);
    if (x > m) {
      s = s * __expf(m - x) + 1.0f;
      m = x;
    } else {
      s += __expf(x - m);
    }
  }
  const float row_max = block_max(m, scratch);
  const float total = block_sum(m == -INFINITY ? 0.0f : s * __expf(m - row_max), scratch);
  const float lse = row_max + logf(total);
  if (threadIdx.x == 0) losses[r] = target >= 0 ? lse - __bfloat162float(row[target]) : 0.0f;
  if (!write_grad) return;
  __syncthreads();  // row[target] is read above before it is overwritten below
  const float scale = target >= 0 ? grad_scale : 0.0f;
  for (int64_t i = threadIdx.x; i < V; i += blockDim.x) {
    const float p = __expf(__bfloat162float(row[i]) - lse);
    row[i] = __float2bfloat16((p - (i == target ? 1.0f : 0.0f)) * scale);
  }
}

__global__ void sum_in_order_kernel(const float* values, int64_t n, double* out) {
  __shared__ double scratch[32];
  double s = 0.0;
  for (int64_t i = threadIdx.x; i < n; i += blockDim.x) s += double(values[i]);
  s = block_sum(s, scratch);
  if (threadIdx.x == 0) *out = s;
}

}  // namespace

void cross_entropy_rows(bf16* logits, const int32_t* targets, float* losses, int64_t rows, int64_t V,
                        float grad_scale, bool write_grad, cudaStream_t stream) {
  if (rows == 0) return;
  cross_entropy_kernel<<<unsigned(rows), kThreads, 0, stream>>>(logits, targets, losses, V, grad_scale, write_grad);
  ROOFLINE_CUDA_CHECK_LAUNCH();
}

void sum_in_order(const float* values, int64_t n, double* out, cudaStream_t stream) {
  sum_in_order_kernel<<<1, 1024, 0, stream>>>(values, n, out);
  ROOFLINE_CUDA_CHECK_LAUNCH();
}

}  // namespace roofline::train::cuda
