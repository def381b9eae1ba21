// The row kernel of the fused LM-head cross-entropy (the model runs the two GEMMs around it, chunk by
// chunk, so logits exist for one chunk of rows at a time, in bf16): per row an online max / sum of
// exponentials in one pass over the logits, then the loss and, in place, dlogits in a second pass. Where a row
// fits in shared memory (GPT-2: yes; Llama 3's 128k vocabulary: no), it is read from memory only once.
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

// The same row kernel with the row held in shared memory (V * 2 bytes, 98 KiB for GPT-2's vocabulary) between
// its passes: the logits are read from memory once instead of twice, in 16-byte vectors (V % 8 == 0).
__global__ void cross_entropy_cached_kernel(bf16* logits, const int32_t* targets, float* losses, int64_t V,
                                            float grad_scale, bool write_grad) {
  extern __shared__ uint4 cached[];  // [V / 8]: 8 logits each
  __shared__ float scratch[32];
  const int64_t r = blockIdx.x, vectors = V / 8;
  uint4* row = reinterpret_cast<uint4*>(logits + r * V);
  const int32_t target = targets[r];
#pragma unroll 4
  for (int64_t i = threadIdx.x; i < vectors; i += blockDim.x) cached[i] = row[i];
  float m = -INFINITY, s = 0.0f;
  for (int64_t i = threadIdx.x; i < vectors; i += blockDim.x) {
    const uint4 packed = cached[i];
    const bf16* e = reinterpret_cast<const bf16*>(&packed);
    float x[8], local_max = -INFINITY;
    for (int k = 0; k < 8; ++k) {
      x[k] = __bfloat162float(e[k]);
      local_max = fmaxf(local_max, x[k]);
    }
    if (local_max > m) {
      s *= __expf(m - local_max);  // m = -inf: s is 0 and stays 0
      m = local_max;
    }
    for (int k = 0; k < 8; ++k) s += __expf(x[k] - m);
  }
  const float row_max = block_max(m, scratch);  // its barriers also make every thread's cached writes visible
  const float total = block_sum(m == -INFINITY ? 0.0f : s * __expf(m - row_max), scratch);
  const float lse = row_max + logf(total);
  const bf16* cached_logits = reinterpret_cast<const bf16*>(cached);
  if (threadIdx.x == 0) losses[r] = target >= 0 ? lse - __bfloat162float(cached_logits[target]) : 0.0f;
  if (!write_grad) return;
  const float scale = target >= 0 ? grad_scale : 0.0f;
  for (int64_t i = threadIdx.x; i < vectors; i += blockDim.x) {
    const uint4 packed = cached[i];
    const bf16* e = reinterpret_cast<const bf16*>(&packed);
    uint4 out;
    bf16* o = reinterpret_cast<bf16*>(&out);
    for (int k = 0; k < 8; ++k) {
      const float p = __expf(__bfloat162float(e[k]) - lse);
      o[k] = __float2bfloat16((p - (i * 8 + k == target ? 1.0f : 0.0f)) * scale);
    }
    row[i] = out;
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
  const size_t row_bytes = size_t(V) * sizeof(bf16);
  int device = 0, max_smem = 0;
  ROOFLINE_CUDA_CHECK(cudaGetDevice(&device));
  ROOFLINE_CUDA_CHECK(cudaDeviceGetAttribute(&max_smem, cudaDevAttrMaxSharedMemoryPerBlockOptin, device));
  // Rows must be 16-byte vectors, and leave room for two blocks per multiprocessor (1 KiB each reserved).
  if (V % 8 == 0 && reinterpret_cast<uintptr_t>(logits) % 16 == 0 && row_bytes + 1024 <= size_t(max_smem) / 2) {
    if (row_bytes > 48 * 1024)
      ROOFLINE_CUDA_CHECK(cudaFuncSetAttribute(cross_entropy_cached_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                               int(row_bytes)));
    cross_entropy_cached_kernel<<<unsigned(rows), kThreads, row_bytes, stream>>>(logits, targets, losses, V,
                                                                                  grad_scale, write_grad);
  } else {
    cross_entropy_kernel<<<unsigned(rows), kThreads, 0, stream>>>(logits, targets, losses, V, grad_scale, write_grad);
  }
  ROOFLINE_CUDA_CHECK_LAUNCH();
}

void sum_in_order(const float* values, int64_t n, double* out, cudaStream_t stream) {
  sum_in_order_kernel<<<1, 1024, 0, stream>>>(values, n, out);
  ROOFLINE_CUDA_CHECK_LAUNCH();
}

}  // namespace roofline::train::cuda
