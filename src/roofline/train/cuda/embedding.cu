// Token (+ learned position) embedding, forward and backward. The embedding tables stay f32 (the master
// weights are read directly: a gather needs no bf16 copy) and the output is the f32 residual stream.
#include "roofline/backend/cuda/cuda_check.h"
#include "roofline/train/cuda/block_reduce.cuh"
#include "roofline/train/cuda/kernels.h"

namespace roofline::train::cuda {
namespace {

__global__ void embedding_forward_kernel(const int32_t* tokens, const float* wte, const float* wpe, float* out,
                                         int64_t T, int64_t H) {
  const int64_t m = blockIdx.x;
  const float* e = wte + int64_t(tokens[m]) * H;
  const float* p = wpe ? wpe + (m % T) * H : nullptr;
  float* o = out + m * H;
  for (int64_t i = threadIdx.x; i < H; i += blockDim.x) o[i] = e[i] + (p ? p[i] : 0.0f);
}

// One block per distinct token: its rows summed in ascending row order.
__global__ void token_grad_kernel(const float* dout, const int32_t* unique_tokens, const int32_t* starts,
                                  const int32_t* rows_by_token, float* dwte, int64_t H) {
  const int64_t u = blockIdx.x;
  float* dst = dwte + int64_t(unique_tokens[u]) * H;
  const int32_t begin = starts[u], end = starts[u + 1];
  for (int64_t i = threadIdx.x; i < H; i += blockDim.x) {
    float s = 0.0f;
    for (int32_t j = begin; j < end; ++j) s += dout[int64_t(rows_by_token[j]) * H + i];
    dst[i] += s;
  }
}

// One block per position t: the batch's rows b*T + t summed in b order.
__global__ void position_grad_kernel(const float* dout, float* dwpe, int64_t B, int64_t T, int64_t H) {
  const int64_t t = blockIdx.x;
  for (int64_t i = threadIdx.x; i < H; i += blockDim.x) {
    float s = 0.0f;
    for (int64_t b = 0; b < B; ++b) s += dout[(b * T + t) * H + i];
    dwpe[t * H + i] += s;
  }
}

}  // namespace

void embedding_forward(const int32_t* tokens, const float* wte, const float* wpe, float* out, int64_t B, int64_t T,
                       int64_t H, cudaStream_t stream) {
  embedding_forward_kernel<<<unsigned(B * T), 256, 0, stream>>>(tokens, wte, wpe, out, T, H);
  ROOFLINE_CUDA_CHECK_LAUNCH();
}

void embedding_backward(const float* dout, const int32_t* unique_tokens, const int32_t* starts,
                        const int32_t* rows_by_token, int64_t unique_count, float* dwte, float* dwpe, int64_t B,
                        int64_t T, int64_t H, cudaStream_t stream) {
  if (unique_count > 0) {
    token_grad_kernel<<<unsigned(unique_count), 256, 0, stream>>>(dout, unique_tokens, starts, rows_by_token, dwte, H);
    ROOFLINE_CUDA_CHECK_LAUNCH();
  }
  if (dwpe) {
    position_grad_kernel<<<unsigned(T), 256, 0, stream>>>(dout, dwpe, B, T, H);
    ROOFLINE_CUDA_CHECK_LAUNCH();
  }
}

}  // namespace roofline::train::cuda
