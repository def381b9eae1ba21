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
#include <type_traits>

#include "roofline/backend/cuda/chained_launch.cuh"
#include "roofline/backend/cuda/cuda_check.h"
#include "roofline/backend/cuda/device/reduce.cuh"
#include "roofline/backend/cuda/dispatch.cuh"
#include "roofline/backend/cuda/kernels.h"
#include "roofline/backend/cuda/kv_fp8.cuh"
#include "roofline/core/error.h"

namespace roofline::cuda {

namespace {

using device::from_float;
using device::to_float;

constexpr int kWarps = 4;            // head rows per block
constexpr int kMaxHeadDim = 512;     // shared-memory row of one warp
static_assert(kMaxHeadDim % 32 == 0, "a head row is spread over whole warps");

// One head row x[head_dim] of token t into the warp's shared-memory row (f32): optional RMSNorm, then the
// rotation. Elements past the rotary part keep their (normalised) values. Ends with the row complete.
template <typename Act, typename W>
__device__ void rope_head_row(const RopeArgs& a, const Act* x, const void* norm_weight, int64_t t, float* row,
                              int lane) {
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
}

// The warp's finished row, rounded into out[D].
template <typename Out>
__device__ void write_row(Out* out, const float* row, int D, int lane) {
  for (int i = lane; i < D; i += 32) out[i] = from_float<Out>(row[i]);
}

// Pools of e4m3 codes with an f32 scale per (pool row, kv head): the encoding of kv_fp8.cuh (scale =
// max |x| / 448, codes rounded to nearest even and saturated; zero rows scale 0, rows with inf NaN codes),
// applied to the f32 row, so a value is rounded once, into its code.
struct Fp8Pool {};

__device__ void write_row_fp8(uint8_t* codes, float* scale, const float* row, int D, int lane) {
  float amax = 0.0f;
  for (int i = lane; i < D; i += 32) amax = fmaxf(amax, fabsf(row[i]));
  amax = device::warp_max(amax);
  if (!(amax > 0.0f) || isinf(amax)) {
    const uint8_t code = amax > 0.0f ? 0x7f : 0;
    for (int i = lane; i < D; i += 32) codes[i] = code;
    if (lane == 0) *scale = amax > 0.0f ? 1.0f : 0.0f;
    return;
  }
  const float inverse_scale = device::kE4M3Max / amax;
  for (int i = lane; i < D; i += 32)
    codes[i] = uint8_t(__nv_cvt_float_to_fp8(row[i] * inverse_scale, __NV_SATFINITE, __NV_E4M3));
  if (lane == 0) *scale = amax / device::kE4M3Max;
}

// The row into pool row `at` (slot * Hkv + kv head) of a float pool of type Pool, or an fp8 pool.
template <typename Pool>
__device__ void write_pool_row(void* pool, float* scales, int64_t at, const float* row, int D, int lane) {
  if constexpr (std::is_same_v<Pool, Fp8Pool>) {
    write_row_fp8(static_cast<uint8_t*>(pool) + at * D, scales + at, row, D, lane);
  } else {
    write_row(static_cast<Pool*>(pool) + at * D, row, D, lane);
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
  rope_head_row<Act, W>(a, x, a.norm_weight, head_row / a.heads, rows[warp], lane);
  write_row(x, rows[warp], int(a.head_dim), lane);
}

// Head rows of token t, in order: Hq of q, Hkv of k, Hkv of v. q rows are rotated into q_out (type Out) or
// in place; k rows are rotated into the pool (and in place when q is, as Backend::rope_store_kv documents);
// v rows are copied to the pool. Act is q/k/v's type: f32 straight from the projections rounds each value
// once, into q_out's and the pools' types. Pool is Out, or Fp8Pool. A slot outside [0, pool_rows) is skipped.
template <typename Act, typename Out, typename Pool, typename W>
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
  float* row = rows[warp];
  if (h < Hq) {
    Act* q = static_cast<Act*>(a.q.x) + (t * Hq + h) * D;
    rope_head_row<Act, W>(a.q, q, a.q.norm_weight, t, row, lane);
    if (in_place) {
      write_row(q, row, int(D), lane);
    } else {
      write_row(static_cast<Out*>(a.q_out) + (t * Hq + h) * D, row, int(D), lane);
    }
  } else if (h < Hq + Hkv) {
    const int64_t kh = h - Hq;
    Act* k = static_cast<Act*>(a.k) + (t * Hkv + kh) * D;
    rope_head_row<Act, W>(a.q, k, a.k_norm, t, row, lane);
    if (in_place) write_row(k, row, int(D), lane);
    if (store) write_pool_row<Pool>(a.k_pool, a.k_scale, int64_t(slot) * Hkv + kh, row, int(D), lane);
  } else if (store) {
    const int64_t vh = h - Hq - Hkv;
    const Act* v = static_cast<const Act*>(a.v) + (t * Hkv + vh) * D;
    for (int64_t i = lane; i < D; i += 32) row[i] = to_float(v[i]);
    __syncwarp();
    write_pool_row<Pool>(a.v_pool, a.v_scale, int64_t(slot) * Hkv + vh, row, int(D), lane);
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
  ROOFLINE_CHECK(a.q.act == a.out_type || a.q.act == Elem::F32,
                 "rope_store_kv: q, k and v must have q_out's (and the float pools') type, or f32");
  ROOFLINE_CHECK(!a.kv_fp8 || (a.k_scale != nullptr && a.v_scale != nullptr), "rope_store_kv: fp8 pools need scales");
  dispatch(a.q.act, [&](auto act_tag) {
    dispatch(a.out_type, [&](auto out_tag) {
      using Act = decltype(act_tag);
      using Out = decltype(out_tag);
      // Only q/k/v of the output type, or f32, exist: the other pairs are never instantiated.
      if constexpr (std::is_same_v<Act, float> || std::is_same_v<Act, Out>) {
        dispatch(a.q.norm_weight ? a.q.norm_type : a.out_type, [&](auto weight_tag) {
          using W = decltype(weight_tag);
          if (a.kv_fp8) {
            launch_chained(rope_store_kv_kernel<Act, Out, Fp8Pool, W>, blocks, kWarps * 32, 0, stream, a);
          } else {
            launch_chained(rope_store_kv_kernel<Act, Out, Out, W>, blocks, kWarps * 32, 0, stream, a);
          }
        });
      }
    });
  });
}

}  // namespace roofline::cuda
