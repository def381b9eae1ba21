// Rotary position embedding, rotate-half layout, in place on x[T, heads, head_dim], optionally preceded by
// a per-head RMSNorm (Qwen3's q_norm / k_norm) fused into the same pass (see RopeArgs in kernels.h):
//   (norm)  x[:] = x[:] / sqrt(mean(x^2) + eps) * norm_weight[:]            over the whole head row
//   (rope)  y[i] = x[i] cos[p, i] - x[i + half] sin[p, i]
//           y[i + half] = x[i + half] cos[p, i] + x[i] sin[p, i]            i < half = rotary_dim / 2
// Elements rotary_dim .. head_dim - 1 are only normalised (partial rotary leaves them as they are).
// One warp per head row: the row is staged in shared memory as f32, so the norm and the pairing of i with
// i + half need no assumption on how head_dim splits over lanes.
#include <nvtx3/nvtx3.hpp>

#include <cmath>

#include "roofline/backend/cuda/cuda_check.h"
#include "roofline/backend/cuda/device/reduce.cuh"
#include "roofline/backend/cuda/dispatch.cuh"
#include "roofline/backend/cuda/kernels.h"
#include "roofline/core/error.h"

namespace roofline::cuda {

namespace {

using device::from_float;
using device::to_float;

constexpr int kWarps = 4;            // head rows per block
constexpr int kMaxHeadDim = 512;     // shared-memory row of one warp
static_assert(kMaxHeadDim % 32 == 0, "a head row is spread over whole warps");

template <typename Act, typename W>
__global__ void __launch_bounds__(kWarps * 32) rope_kernel(RopeArgs a) {
  __shared__ float rows[kWarps][kMaxHeadDim];
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int64_t head_row = int64_t(blockIdx.x) * kWarps + warp;  // t * heads + h
  if (head_row >= a.T * a.heads) return;                         // whole warps leave together
  const int64_t t = head_row / a.heads;
  const int D = int(a.head_dim), half = int(a.rotary_dim / 2);
  Act* x = static_cast<Act*>(a.x) + head_row * D;  // [head_dim]
  float* row = rows[warp];

  float sum_sq = 0.0f;
  for (int i = lane; i < D; i += 32) {
    row[i] = to_float(x[i]);
    sum_sq += row[i] * row[i];
  }
  if (a.norm_weight) {
    const float rstd = rsqrtf(device::warp_sum(sum_sq) / float(D) + a.eps);
    const W* w = static_cast<const W*>(a.norm_weight);
    for (int i = lane; i < D; i += 32) row[i] = row[i] * rstd * to_float(w[i]);
  }
  __syncwarp();

  const int64_t pos = a.positions[t];
  const bool valid = pos >= 0 && pos < a.table_rows;
  const float* cos_row = a.cos + (valid ? pos : 0) * half;  // [half]
  const float* sin_row = a.sin + (valid ? pos : 0) * half;  // [half]
  for (int i = lane; i < half; i += 32) {
    const float x1 = row[i], x2 = row[i + half], c = cos_row[i], s = sin_row[i];
    x[i] = from_float<Act>(valid ? x1 * c - x2 * s : NAN);
    x[i + half] = from_float<Act>(valid ? x2 * c + x1 * s : NAN);
  }
  if (a.norm_weight)
    for (int i = 2 * half + lane; i < D; i += 32) x[i] = from_float<Act>(row[i]);
}

}  // namespace

int64_t rope_max_head_dim() { return kMaxHeadDim; }

void launch_rope(const RopeArgs& a, cudaStream_t stream) {
  nvtx3::scoped_range range(a.norm_weight ? "cuda::rope_qk_norm" : "cuda::rope");
  ROOFLINE_CHECK(a.head_dim > 0 && a.head_dim <= kMaxHeadDim, "rope: head_dim {} must be in [1, {}]", a.head_dim,
                 kMaxHeadDim);
  ROOFLINE_CHECK(a.rotary_dim > 0 && a.rotary_dim % 2 == 0 && a.rotary_dim <= a.head_dim,
                 "rope: rotary_dim {} must be even, positive and <= head_dim {}", a.rotary_dim, a.head_dim);
  const int64_t head_rows = a.T * a.heads;
  if (head_rows <= 0) return;
  const unsigned blocks = unsigned((head_rows + kWarps - 1) / kWarps);
  dispatch(a.act, [&](auto act_tag) {
    dispatch(a.norm_weight ? a.norm_type : a.act, [&](auto weight_tag) {
      using Act = decltype(act_tag);
      using W = decltype(weight_tag);
      rope_kernel<Act, W><<<blocks, kWarps * 32, 0, stream>>>(a);
      ROOFLINE_CUDA_CHECK_LAUNCH();
    });
  });
}

}  // namespace roofline::cuda
