// RMSNorm and LayerNorm over the rows of [rows, width], optionally fused with the residual add before
// them (see NormArgs in kernels.h). One block per row; each thread keeps up to kChunksPerThread chunks of
// 8 elements in registers, so the row is read once and written once, and the statistics are two-pass
// exact (mean first, then the centred sum of squares) in f32.
// Rule: the residual is stored rounded to its own type (the activation type, or f32 for a residual stream
// kept in f32) and the statistics are taken over that rounded value.
#include <nvtx3/nvtx3.hpp>

#include "roofline/backend/cuda/chained_launch.cuh"
#include "roofline/backend/cuda/cuda_check.h"
#include "roofline/backend/cuda/device/reduce.cuh"
#include "roofline/backend/cuda/dispatch.cuh"
#include "roofline/backend/cuda/kernels.h"
#include "roofline/core/error.h"

namespace roofline::cuda {

namespace {

using device::load8;
using device::store8;

constexpr int kChunksPerThread = 4;  // 8-element chunks per thread: 32 floats of registers
constexpr int kMaxThreads = 1024;
static_assert(kMaxThreads % 32 == 0 && kMaxThreads <= 1024, "a block reduction needs whole warps");

// Act: x's type; Res: the residual's; Out: out's (an f32 x and residual may normalise into bf16 / f16).
template <typename Act, typename W, typename Res, typename Out>
__global__ void __launch_bounds__(kMaxThreads) norm_kernel(NormArgs a) {
  __shared__ float scratch[32];
  device::enter_chain();
  const int64_t row = blockIdx.x;
  const int64_t chunks = a.width / 8;
  const Act* x = static_cast<const Act*>(a.x) + row * a.width;                         // [width]
  Res* residual = a.residual ? static_cast<Res*>(a.residual) + row * a.width : nullptr;  // [width]
  Out* out = static_cast<Out*>(a.out) + row * a.width;                                 // [width]
  const W* weight = static_cast<const W*>(a.weight);                                   // [width]
  const W* bias = static_cast<const W*>(a.bias);                                       // [width] or null

  // y = x (+ residual), kept in registers: chunk c of this thread covers elements 8 * (tid + c * blockDim).
  float y[kChunksPerThread][8];
  float sum = 0.0f;
#pragma unroll
  for (int c = 0; c < kChunksPerThread; ++c) {
    const int64_t chunk = threadIdx.x + int64_t(c) * blockDim.x;
    if (chunk >= chunks) continue;
    load8(x + 8 * chunk, y[c]);
    if (residual) {
      float r[8];
      load8(residual + 8 * chunk, r);
#pragma unroll
      for (int i = 0; i < 8; ++i) y[c][i] = device::round_to<Res>(r[i] + y[c][i]);
      store8(residual + 8 * chunk, y[c]);
    }
#pragma unroll
    for (int i = 0; i < 8; ++i) sum += a.layer_norm ? y[c][i] : y[c][i] * y[c][i];
  }
  const float inv_width = 1.0f / float(a.width);
  float mean = 0.0f, rstd;
  if (a.layer_norm) {
    mean = device::block_sum(sum, scratch) * inv_width;
    float centred = 0.0f;
#pragma unroll
    for (int c = 0; c < kChunksPerThread; ++c) {
      if (threadIdx.x + int64_t(c) * blockDim.x >= chunks) continue;
#pragma unroll
      for (int i = 0; i < 8; ++i) centred += (y[c][i] - mean) * (y[c][i] - mean);
    }
    rstd = rsqrtf(device::block_sum(centred, scratch) * inv_width + a.eps);
  } else {
    rstd = rsqrtf(device::block_sum(sum, scratch) * inv_width + a.eps);
  }

#pragma unroll
  for (int c = 0; c < kChunksPerThread; ++c) {
    const int64_t chunk = threadIdx.x + int64_t(c) * blockDim.x;
    if (chunk >= chunks) continue;
    float w[8], b[8] = {};
    load8(weight + 8 * chunk, w);
    if (bias) load8(bias + 8 * chunk, b);
#pragma unroll
    for (int i = 0; i < 8; ++i) y[c][i] = (y[c][i] - mean) * rstd * w[i] + b[i];
    store8(out + 8 * chunk, y[c]);
  }
}

}  // namespace

int64_t norm_max_width() { return int64_t(kChunksPerThread) * kMaxThreads * 8; }

void launch_norm(const NormArgs& a, cudaStream_t stream) {
  nvtx3::scoped_range range(a.layer_norm ? "cuda::layer_norm" : "cuda::rms_norm");
  ROOFLINE_CHECK(a.width % 8 == 0 && a.width <= norm_max_width(), "norm: width {} must be a multiple of 8, at most {}",
                 a.width, norm_max_width());
  ROOFLINE_CHECK(aligned16(a.out) && aligned16(a.x) && aligned16(a.weight) &&
                     (!a.residual || aligned16(a.residual)) && (!a.bias || aligned16(a.bias)),
                 "norm: every tensor must start on a 16-byte boundary");
  ROOFLINE_CHECK(!a.layer_norm || a.bias, "layer_norm: bias is required");
  if (a.rows <= 0) return;
  const int64_t chunks = a.width / 8;
  const int threads = int(std::min<int64_t>(kMaxThreads, (chunks + 31) / 32 * 32));
  dispatch(a.act, [&](auto act_tag) {
    dispatch(a.weight_type, [&](auto weight_tag) {
      using Act = decltype(act_tag);
      using W = decltype(weight_tag);
      auto kernel = norm_kernel<Act, W, Act, Act>;
      if (a.act == Elem::F32 && a.out_type == Elem::BF16)
        kernel = norm_kernel<float, W, float, device::bf16>;
      else if (a.act == Elem::F32 && a.out_type == Elem::F16)
        kernel = norm_kernel<float, W, float, device::f16>;
      else if (a.residual && a.residual_type == Elem::F32 && a.act != Elem::F32)
        kernel = norm_kernel<Act, W, float, Act>;
      launch_chained(kernel, unsigned(a.rows), threads, 0, stream, a);
    });
  });
}

}  // namespace roofline::cuda
