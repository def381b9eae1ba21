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

#include "roofline/backend/cuda/chained_launch.cuh"
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

// One head row x[head_dim] of token t, by one warp through its shared-memory row: optional RMSNorm, then
// the rotation, written to out (x itself, or another row) and, when copy_to is set, also to copy_to (a KV
// pool row, of the pool's type).
template <typename Act, typename Out, typename W>
__device__ void rope_head_row(const RopeArgs& a, const Act* x, Act* out, Out* copy_to, const void* norm_weight,
                              int64_t t, float* row, int lane) {
  const int D = int(a.head_dim), half = int(a.rotary_dim / 2);
  float sum_sq = 0.0f;
  for (int i = lane; i < D; i += 32) {
    row[i] = to_float(x[i]);
    sum_sq += row[i] * row[i];
  }
  if (norm_weight) {
    const float rstd = rsqrtf(device::warp_sum(sum_sq) / float(D) + a.eps);
    const W* w = static_cast<const W*>(norm_weight);
    for (int i = lane; i < D; i += 32) row[i] = row[i] * rstd * to_float(w[i]);
  }
  __syncwarp();

  const int64_t pos = a.positions[t];
  const bool valid = pos >= 0 && pos < a.table_rows;
  const float* cos_row = a.cos + (valid ? pos : 0) * half;  // [half]
  const float* sin_row = a.sin + (valid ? pos : 0) * half;  // [half]
  for (int i = lane; i < half; i += 32) {
    const float x1 = row[i], x2 = row[i + half], c = cos_row[i], s = sin_row[i];
    row[i] = valid ? x1 * c - x2 * s : NAN;
    row[i + half] = valid ? x2 * c + x1 * s : NAN;
  }
  __syncwarp();
  // Elements past the rotary part keep their (normalised) values; every element is written back, rounded.
  for (int i = lane; i < D; i += 32) {
    if (out) out[i] = from_float<Act>(row[i]);
    if (copy_to) copy_to[i] = from_float<Out>(row[i]);
  }
}

template <typename Act, typename W>
__global__ void __launch_bounds__(kWarps * 32) rope_kernel(RopeArgs a) {
  __shared__ float rows[kWarps][kMaxHeadDim];
  device::enter_chain();
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int64_t head_row = int64_t(blockIdx.x) * kWarps + warp;  // t * heads + h
  if (head_row >= a.T * a.heads) return;                         // whole warps leave together
  Act* x = static_cast<Act*>(a.x) + head_row * a.head_dim;       // [head_dim]
  rope_head_row<Act, Act, W>(a, x, x, static_cast<Act*>(nullptr), a.norm_weight, head_row / a.heads, rows[warp], lane);
}

// Head rows of token t, in order: Hq of q, Hkv of k, Hkv of v. q rows are rotated into q_out (Pool type) or
// in place; k rows are rotated into the pool (and in place when q is, as Backend::rope_store_kv documents);
// v rows are copied to the pool. Act is q/k/v's type: f32 straight from the projections rounds each value
// once, into the pool's type. A slot outside [0, pool_rows) is skipped.
template <typename Act, typename Pool, typename W>
__global__ void __launch_bounds__(kWarps * 32) rope_store_kv_kernel(RopeStoreKvArgs a) {
  __shared__ float rows[kWarps][kMaxHeadDim];
  device::enter_chain();
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int64_t Hq = a.q.heads, Hkv = a.kv_heads, D = a.q.head_dim, per_token = Hq + 2 * Hkv;
  const int64_t head_row = int64_t(blockIdx.x) * kWarps + warp;
  if (head_row >= a.q.T * per_token) return;  // whole warps leave together
  const int64_t t = head_row / per_token, h = head_row % per_token;
  const int32_t slot = a.slots[t];
  const bool store = slot >= 0 && slot < a.pool_rows;
  const bool in_place = a.q_out == nullptr;
  if (h < Hq) {
    Act* q = static_cast<Act*>(a.q.x) + (t * Hq + h) * D;
    Pool* q_out = in_place ? nullptr : static_cast<Pool*>(a.q_out) + (t * Hq + h) * D;
    rope_head_row<Act, Pool, W>(a.q, q, in_place ? q : nullptr, q_out, a.q.norm_weight, t, rows[warp], lane);
  } else if (h < Hq + Hkv) {
    const int64_t kh = h - Hq;
    Act* k = static_cast<Act*>(a.k) + (t * Hkv + kh) * D;
    Pool* pool_row = store ? static_cast<Pool*>(a.k_pool) + (int64_t(slot) * Hkv + kh) * D : nullptr;
    rope_head_row<Act, Pool, W>(a.q, k, in_place ? k : nullptr, pool_row, a.k_norm, t, rows[warp], lane);
  } else if (store) {
    const int64_t vh = h - Hq - Hkv;
    const Act* v = static_cast<const Act*>(a.v) + (t * Hkv + vh) * D;
    Pool* pool_row = static_cast<Pool*>(a.v_pool) + (int64_t(slot) * Hkv + vh) * D;
    for (int64_t i = lane; i < D; i += 32) pool_row[i] = from_float<Pool>(to_float(v[i]));
  }
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
      launch_chained(rope_kernel<Act, W>, blocks, kWarps * 32, 0, stream, a);
    });
  });
}

void launch_rope_store_kv(const RopeStoreKvArgs& a, cudaStream_t stream) {
  nvtx3::scoped_range range("cuda::rope_store_kv");
  ROOFLINE_CHECK(a.q.head_dim > 0 && a.q.head_dim <= kMaxHeadDim, "rope_store_kv: head_dim {} must be in [1, {}]",
                 a.q.head_dim, kMaxHeadDim);
  ROOFLINE_CHECK(a.q.rotary_dim > 0 && a.q.rotary_dim % 2 == 0 && a.q.rotary_dim <= a.q.head_dim,
                 "rope_store_kv: rotary_dim {} must be even, positive and <= head_dim {}", a.q.rotary_dim,
                 a.q.head_dim);
  ROOFLINE_CHECK((a.q.norm_weight == nullptr) == (a.k_norm == nullptr),
                 "rope_store_kv: q and k head norms come together or not at all");
  const int64_t head_rows = a.q.T * (a.q.heads + 2 * a.kv_heads);
  if (head_rows <= 0) return;
  const unsigned blocks = unsigned((head_rows + kWarps - 1) / kWarps);
  ROOFLINE_CHECK(a.q.act == a.pool_type || a.q.act == Elem::F32,
                 "rope_store_kv: q, k and v must have the pools' type or f32");
  dispatch(a.q.act, [&](auto act_tag) {
    dispatch(a.pool_type, [&](auto pool_tag) {
      dispatch(a.q.norm_weight ? a.q.norm_type : a.pool_type, [&](auto weight_tag) {
        using Act = decltype(act_tag);
        using Pool = decltype(pool_tag);
        using W = decltype(weight_tag);
        launch_chained(rope_store_kv_kernel<Act, Pool, W>, blocks, kWarps * 32, 0, stream, a);
      });
    });
  });
}

}  // namespace roofline::cuda
