// GELU (tanh form, GPT-2) and SwiGLU (Llama), forward and backward, element-wise on bf16 with f32 math.
#include "roofline/backend/cuda/cuda_check.h"
#include "roofline/train/cuda/block_reduce.cuh"
#include "roofline/train/cuda/kernels.h"

namespace roofline::train::cuda {
namespace {

constexpr float kSqrt2OverPi = 0.7978845608028654f;
constexpr float kGeluCoef = 0.044715f;

__global__ void gelu_forward_kernel(const bf16* x, bf16* y, int64_t n) {
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= n) return;
  const float v = __bfloat162float(x[i]);
  y[i] = __float2bfloat16(0.5f * v * (1.0f + tanhf(kSqrt2OverPi * (v + kGeluCoef * v * v * v))));
}

__global__ void gelu_backward_kernel(const bf16* dy, const bf16* x, bf16* dx, int64_t n) {
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= n) return;
  const float v = __bfloat162float(x[i]);
  const float t = tanhf(kSqrt2OverPi * (v + kGeluCoef * v * v * v));
  const float dinner = kSqrt2OverPi * (1.0f + 3.0f * kGeluCoef * v * v);
  dx[i] = __float2bfloat16(__bfloat162float(dy[i]) * (0.5f * (1.0f + t) + 0.5f * v * (1.0f - t * t) * dinner));
}

__global__ void swiglu_forward_kernel(const bf16* gate_up, bf16* h, int64_t rows, int64_t F) {
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= rows * F) return;
  const int64_t r = i / F, c = i % F;
  const float g = __bfloat162float(gate_up[r * 2 * F + c]), u = __bfloat162float(gate_up[r * 2 * F + F + c]);
  h[i] = __float2bfloat16(g / (1.0f + __expf(-g)) * u);
}

__global__ void swiglu_backward_kernel(const bf16* dh, const bf16* gate_up, bf16* dgate_up, int64_t rows, int64_t F) {
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= rows * F) return;
  const int64_t r = i / F, c = i % F;
  const float g = __bfloat162float(gate_up[r * 2 * F + c]), u = __bfloat162float(gate_up[r * 2 * F + F + c]);
  const float d = __bfloat162float(dh[i]);
  const float sig = 1.0f / (1.0f + __expf(-g));
  dgate_up[r * 2 * F + c] = __float2bfloat16(d * u * sig * (1.0f + g * (1.0f - sig)));
  dgate_up[r * 2 * F + F + c] = __float2bfloat16(d * g * sig);
}

}  // namespace

void gelu_forward(const bf16* x, bf16* y, int64_t n, cudaStream_t stream) {
  gelu_forward_kernel<<<grid_for(n, 256), 256, 0, stream>>>(x, y, n);
  ROOFLINE_CUDA_CHECK_LAUNCH();
}

void gelu_backward(const bf16* dy, const bf16* x, bf16* dx, int64_t n, cudaStream_t stream) {
  gelu_backward_kernel<<<grid_for(n, 256), 256, 0, stream>>>(dy, x, dx, n);
  ROOFLINE_CUDA_CHECK_LAUNCH();
}

void swiglu_forward(const bf16* gate_up, bf16* h, int64_t rows, int64_t F, cudaStream_t stream) {
  swiglu_forward_kernel<<<grid_for(rows * F, 256), 256, 0, stream>>>(gate_up, h, rows, F);
  ROOFLINE_CUDA_CHECK_LAUNCH();
}

void swiglu_backward(const bf16* dh, const bf16* gate_up, bf16* dgate_up, int64_t rows, int64_t F,
                     cudaStream_t stream) {
  swiglu_backward_kernel<<<grid_for(rows * F, 256), 256, 0, stream>>>(dh, gate_up, dgate_up, rows, F);
  ROOFLINE_CUDA_CHECK_LAUNCH();
}

}  // namespace roofline::train::cuda
