// Causal prefill attention, FlashAttention-2 style, for one sequence (AttentionArgs in kernels.h):
//   out[t, h, :] = sum_j softmax_j(scale * q[t, h, :] . k[j, h / G, :]) v[j, h / G, :],  j in visible(t)
//   visible(t) = (p - window, p] (window > 0) or [0, p], p = start_pos + t;  G = Hq / Hkv.
// A CTA of kWarps warps owns kBlockM query rows of one query head (16 rows per warp) and walks the key
// blocks of kBlockN keys its rows can see. Per key block, in registers of each warp:
//   S = Q K^T                      (16 x kBlockN, mma.sync m16n8k16 bf16 -> f32)
//   m' = max(m, rowmax(S)); P = exp2(S - m'); l = l exp2(m - m') + rowsum(P); O = O exp2(m - m') + P V
// and at the end out = O / l. Scores are in log2 units (scale * log2(e) folded in), so exp2 is one
// instruction; the score matrix never leaves registers. K and V tiles stream through shared memory with
// cp.async: V of this block loads while S is computed, K of the next block while P V is computed.
// Cache rows outside the keys the CTA may see are never read (zero-filled instead), so whatever the
// cache holds there (stale values, NaN) cannot leak in.
#include <nvtx3/nvtx3.hpp>

#include <cmath>

#include "roofline/backend/cuda/cuda_check.h"
#include "roofline/backend/cuda/device/convert.cuh"
#include "roofline/backend/cuda/device/mma.cuh"
#include "roofline/backend/cuda/device/reduce.cuh"
#include "roofline/backend/cuda/kernels.h"
#include "roofline/core/error.h"

namespace roofline::cuda {

namespace {

using device::bf16;

constexpr int kWarps = 4;
constexpr int kThreads = kWarps * 32;
constexpr int kBlockM = 16 * kWarps;  // query rows per CTA: one m16 tile per warp
constexpr int kBlockN = 64;           // keys per step
constexpr int kPad = 8;               // bf16 per shared row of padding (16 bytes): conflict-free ldmatrix
constexpr float kLog2e = 1.4426950408889634f;
static_assert(kBlockN % 16 == 0, "P V consumes keys 16 at a time");

template <int D>
struct Tiles {
  static_assert(D % 16 == 0 && D >= 16 && D <= 256, "head_dim must be a multiple of 16 in [16, 256]");
  static constexpr int kStride = D + kPad;  // elements per shared-memory row
  static constexpr int kChunksPerRow = D / 8;  // 16-byte chunks per row
  static_assert((kBlockM * kChunksPerRow) % kThreads == 0 && (kBlockN * kChunksPerRow) % kThreads == 0,
                "tile loads split evenly over the CTA");
  // Shared memory: Q [kBlockM, D], K [kBlockN, D], V [kBlockN, D], rows padded to kStride.
  static constexpr size_t kSmemBytes = size_t(kBlockM + 2 * kBlockN) * kStride * sizeof(bf16);
};

// Copies rows row0 .. row0 + ROWS - 1 of one head of a [rows, heads, D] tensor into tile[ROWS][kStride];
// rows outside [valid_begin, valid_end) are zero-filled without being read.
template <int ROWS, int D>
__device__ __forceinline__ void load_tile_async(bf16* tile, const bf16* head_base, int64_t row_pitch, int row0,
                                                int valid_begin, int valid_end) {
  using T = Tiles<D>;
#pragma unroll
  for (int i = 0; i < ROWS * T::kChunksPerRow / kThreads; ++i) {
    const int chunk = int(threadIdx.x) + i * kThreads;
    const int r = chunk / T::kChunksPerRow, col = (chunk % T::kChunksPerRow) * 8;
    const int row = row0 + r;
    const bool valid = row >= valid_begin && row < valid_end;
    const bf16* src = head_base + (valid ? int64_t(row) * row_pitch + col : 0);
    device::cp_async_16(tile + r * T::kStride + col, src, valid);
  }
}

__device__ __forceinline__ uint32_t pack_bf16(float lo, float hi) {
  const __nv_bfloat162 p = __floats2bfloat162_rn(lo, hi);
  return *reinterpret_cast<const uint32_t*>(&p);
}

template <int D>
__global__ void __launch_bounds__(kThreads) attention_prefill_kernel(AttentionArgs a) {
  using T = Tiles<D>;
  constexpr int kNTiles = kBlockN / 8;  // n8 score tiles per warp row block
  constexpr int kDTiles = D / 8;        // n8 output tiles
  extern __shared__ __align__(16) unsigned char smem_raw[];
  bf16* sQ = reinterpret_cast<bf16*>(smem_raw);  // [kBlockM][kStride]
  bf16* sK = sQ + kBlockM * T::kStride;          // [kBlockN][kStride]
  bf16* sV = sK + kBlockN * T::kStride;          // [kBlockN][kStride]

  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int g = lane / 4, t4 = lane % 4;  // fragment row / column group (see mma.cuh)
  // Longest (last) query blocks first: under the causal mask they have the most keys.
  const int m0 = int(gridDim.x - 1 - blockIdx.x) * kBlockM;
  const int head = blockIdx.y, kv_head = head / (a.Hq / a.Hkv);
  const bf16* q = static_cast<const bf16*>(a.q) + int64_t(head) * D;      // row pitch Hq * D
  const bf16* k = static_cast<const bf16*>(a.k) + int64_t(kv_head) * D;   // row pitch Hkv * D
  const bf16* v = static_cast<const bf16*>(a.v) + int64_t(kv_head) * D;
  const int64_t q_pitch = int64_t(a.Hq) * D, kv_pitch = int64_t(a.Hkv) * D;

  // Keys this CTA's rows can see: [kv_begin, kv_end).
  const int q_first = a.start_pos + m0;
  const int q_last = a.start_pos + min(m0 + kBlockM, a.T) - 1;
  const int kv_begin = a.window > 0 ? max(0, q_first - a.window + 1) : 0;
  const int kv_end = q_last + 1;
  const int n_first = kv_begin / kBlockN * kBlockN;

  load_tile_async<kBlockM, D>(sQ, q, q_pitch, m0, 0, a.T);
  load_tile_async<kBlockN, D>(sK, k, kv_pitch, n_first, kv_begin, kv_end);
  device::cp_async_commit();

  float o[kDTiles][4] = {};                  // O: 16 x D per warp
  float row_max[2] = {-INFINITY, -INFINITY};  // rows g and g + 8, log2 units
  float row_sum[2] = {0.0f, 0.0f};            // this thread's part of l (summed over the quad at the end)
  uint32_t qf[D / 16][4];                     // Q as A fragments, loaded once
  const float scale_log2 = a.scale * kLog2e;

  for (int n0 = n_first; n0 < kv_end; n0 += kBlockN) {
    device::cp_async_wait<0>();  // K of this block (and Q, the first time) has landed
    __syncthreads();             // ... for every thread; and every warp is done with V of the last block
    if (n0 == n_first) {
#pragma unroll
      for (int kk = 0; kk < D / 16; ++kk)
        device::ldmatrix_x4(qf[kk], sQ + (warp * 16 + lane % 16) * T::kStride + kk * 16 + (lane / 16) * 8);
    }
    load_tile_async<kBlockN, D>(sV, v, kv_pitch, n0, kv_begin, kv_end);
    device::cp_async_commit();

    // S = Q K^T: (16 x kBlockN) per warp. ldmatrix x4 on K rows gives B fragments of two n8 tiles.
    float s[kNTiles][4] = {};
#pragma unroll
    for (int kk = 0; kk < D / 16; ++kk) {
#pragma unroll
      for (int nj = 0; nj < kNTiles / 2; ++nj) {
        uint32_t b[4];
        device::ldmatrix_x4(b, sK + (nj * 16 + (lane / 16) * 8 + lane % 8) * T::kStride + kk * 16 + ((lane / 8) % 2) * 8);
        device::mma_bf16_16816(s[2 * nj], qf[kk], b[0], b[1]);
        device::mma_bf16_16816(s[2 * nj + 1], qf[kk], b[2], b[3]);
      }
    }

    // Mask only where some (row, key) pair of the block is not visible: the diagonal and window edges.
    const bool needs_mask = n0 + kBlockN - 1 > q_first || (a.window > 0 && n0 <= q_last - a.window);
#pragma unroll
    for (int j = 0; j < kNTiles; ++j)
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        s[j][e] *= scale_log2;
        if (needs_mask) {
          const int pos = a.start_pos + m0 + warp * 16 + g + (e / 2) * 8;
          const int key = n0 + j * 8 + t4 * 2 + (e % 2);
          const bool visible = key <= pos && (a.window <= 0 || key > pos - a.window);
          if (!visible) s[j][e] = -INFINITY;
        }
      }

    // Online softmax, rows g (e = 0, 1) and g + 8 (e = 2, 3); the four lanes of a quad share a row.
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      float block_max = -INFINITY;
#pragma unroll
      for (int j = 0; j < kNTiles; ++j) block_max = fmaxf(block_max, fmaxf(s[j][2 * r], s[j][2 * r + 1]));
      block_max = fmaxf(block_max, __shfl_xor_sync(device::kFullMask, block_max, 1));
      block_max = fmaxf(block_max, __shfl_xor_sync(device::kFullMask, block_max, 2));
      const float new_max = fmaxf(row_max[r], block_max);
      const float base = new_max == -INFINITY ? 0.0f : new_max;  // a row with nothing visible yet stays 0
      const float correction = exp2f(row_max[r] - base);
      row_max[r] = new_max;
      row_sum[r] *= correction;
#pragma unroll
      for (int dj = 0; dj < kDTiles; ++dj) o[dj][2 * r] *= correction, o[dj][2 * r + 1] *= correction;
#pragma unroll
      for (int j = 0; j < kNTiles; ++j) {
        s[j][2 * r] = exp2f(s[j][2 * r] - base);
        s[j][2 * r + 1] = exp2f(s[j][2 * r + 1] - base);
        row_sum[r] += s[j][2 * r] + s[j][2 * r + 1];
      }
    }

    // P as A fragments: the accumulators of n8 tiles 2kk and 2kk+1 are exactly the A layout of keys
    // 16kk .. 16kk + 15.
    uint32_t pf[kBlockN / 16][4];
#pragma unroll
    for (int kk = 0; kk < kBlockN / 16; ++kk) {
      pf[kk][0] = pack_bf16(s[2 * kk][0], s[2 * kk][1]);
      pf[kk][1] = pack_bf16(s[2 * kk][2], s[2 * kk][3]);
      pf[kk][2] = pack_bf16(s[2 * kk + 1][0], s[2 * kk + 1][1]);
      pf[kk][3] = pack_bf16(s[2 * kk + 1][2], s[2 * kk + 1][3]);
    }

    device::cp_async_wait<0>();  // V of this block has landed
    __syncthreads();             // ... for every thread; and every warp is done reading K
    if (n0 + kBlockN < kv_end) {
      load_tile_async<kBlockN, D>(sK, k, kv_pitch, n0 + kBlockN, kv_begin, kv_end);
      device::cp_async_commit();
    }

    // O += P V: V rows are keys, so ldmatrix .trans gives B fragments (k = key, n = dim) of two n8 tiles.
#pragma unroll
    for (int kk = 0; kk < kBlockN / 16; ++kk) {
#pragma unroll
      for (int dj = 0; dj < kDTiles / 2; ++dj) {
        uint32_t b[4];
        device::ldmatrix_x4_trans(b, sV + (kk * 16 + lane % 8 + ((lane / 8) % 2) * 8) * T::kStride + dj * 16 + (lane / 16) * 8);
        device::mma_bf16_16816(o[2 * dj], pf[kk], b[0], b[1]);
        device::mma_bf16_16816(o[2 * dj + 1], pf[kk], b[2], b[3]);
      }
    }
  }

  // out = O / l, rows g and g + 8 of this warp, pairs of columns per lane.
  bf16* out = static_cast<bf16*>(a.out) + int64_t(head) * D;
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    float l = row_sum[r];
    l += __shfl_xor_sync(device::kFullMask, l, 1);
    l += __shfl_xor_sync(device::kFullMask, l, 2);
    const float inv = l > 0.0f ? 1.0f / l : 0.0f;
    const int row = m0 + warp * 16 + g + r * 8;
    if (row >= a.T) continue;
#pragma unroll
    for (int dj = 0; dj < kDTiles; ++dj) {
      const __nv_bfloat162 pair = __floats2bfloat162_rn(o[dj][2 * r] * inv, o[dj][2 * r + 1] * inv);
      *reinterpret_cast<__nv_bfloat162*>(out + row * q_pitch + dj * 8 + t4 * 2) = pair;
    }
  }
}

template <int D>
void launch_prefill(const AttentionArgs& a, cudaStream_t stream) {
  constexpr size_t smem = Tiles<D>::kSmemBytes;
  ROOFLINE_CUDA_CHECK(cudaFuncSetAttribute(attention_prefill_kernel<D>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                           int(smem)));
  const dim3 grid(unsigned((a.T + kBlockM - 1) / kBlockM), unsigned(a.Hq));
  attention_prefill_kernel<D><<<grid, kThreads, smem, stream>>>(a);
  ROOFLINE_CUDA_CHECK_LAUNCH();
}

}  // namespace

void launch_attention_prefill(const AttentionArgs& a, cudaStream_t stream) {
  nvtx3::scoped_range range("cuda::attention_prefill");
  ROOFLINE_CHECK(a.Hkv > 0 && a.Hq % a.Hkv == 0, "attention_prefill: Hq {} must be a multiple of Hkv {}", a.Hq, a.Hkv);
  if (a.T <= 0) return;
  switch (a.D) {
    case 64: launch_prefill<64>(a, stream); break;
    case 128: launch_prefill<128>(a, stream); break;
    default: fail("attention_prefill: head_dim {} has no CUDA kernel (64 and 128 do)", a.D);
  }
}

}  // namespace roofline::cuda
