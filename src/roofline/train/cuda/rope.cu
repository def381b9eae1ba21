// Rotary position embedding on bf16 rows (q and k read in place inside the fused qkv projection output),
// forward and backward: backward is the inverse rotation of the gradient (sign -1).
#include "roofline/backend/cuda/cuda_check.h"
#include "roofline/train/cuda/block_reduce.cuh"
#include "roofline/train/cuda/kernels.h"

namespace roofline::train::cuda {
namespace {

// One thread per (row, head, pair i): elements i and i + D/2 of that head.
__global__ void rope_kernel(bf16* x, int64_t ld, const float* cos, const float* sin, int64_t M, int64_t T,
                            int64_t heads, int64_t half, float sign) {
  const int64_t idx = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (idx >= M * heads * half) return;
  const int64_t i = idx % half, h = (idx / half) % heads, m = idx / (half * heads);
  const int64_t t = m % T;
  bf16* v = x + m * ld + h * 2 * half;
  const float c = cos[t * half + i], s = sign * sin[t * half + i];
  const float a = __bfloat162float(v[i]), b = __bfloat162float(v[i + half]);
  v[i] = __float2bfloat16(a * c - b * s);
  v[i + half] = __float2bfloat16(b * c + a * s);
}

}  // namespace

void rope_rotate(bf16* x, int64_t ld, const float* cos, const float* sin, int64_t B, int64_t T, int64_t heads,
                 int64_t D, float sign, cudaStream_t stream) {
  const int64_t n = B * T * heads * (D / 2);
  rope_kernel<<<grid_for(n, 256), 256, 0, stream>>>(x, ld, cos, sin, B * T, T, heads, D / 2, sign);
  ROOFLINE_CUDA_CHECK_LAUNCH();
}

}  // namespace roofline::train::cuda
