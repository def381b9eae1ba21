// Warp and block reductions in f32. Block versions need blockDim.x a multiple of 32 (at most 1024), are
// called by every thread of the block, and return the result to every thread; `scratch` is a
// __shared__ float[32] that the caller may reuse after the call returns.
#pragma once
#include <cuda_runtime.h>

namespace roofline::cuda::device {

constexpr unsigned kFullMask = 0xffffffffu;

__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
  for (int offset = 16; offset > 0; offset >>= 1) v += __shfl_xor_sync(kFullMask, v, offset);
  return v;
}

__device__ __forceinline__ float warp_max(float v) {
#pragma unroll
  for (int offset = 16; offset > 0; offset >>= 1) v = fmaxf(v, __shfl_xor_sync(kFullMask, v, offset));
  return v;
}

template <typename Op>
__device__ __forceinline__ float block_reduce(float v, float* scratch, Op op) {
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, warps = blockDim.x / 32;
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  float total = scratch[0];
  for (int w = 1; w < warps; ++w) total = op(total, scratch[w]);  // fixed order: deterministic
  __syncthreads();
  return total;
}

__device__ __forceinline__ float block_sum(float v, float* scratch) {
  return block_reduce(warp_sum(v), scratch, [](float a, float b) { return a + b; });
}

__device__ __forceinline__ float block_max(float v, float* scratch) {
  return block_reduce(warp_max(v), scratch, [](float a, float b) { return fmaxf(a, b); });
}

}  // namespace roofline::cuda::device
