// Paged varlen prefill attention, FlashAttention-2 style (PagedAttentionArgs in kernels.h). bf16 pools of
// head_dim 64 run on the Hopper wgmma kernel instead (paged_attention_prefill_wgmma.cu; prefill_kernel_for
// says why 128 does not yet); ROOFLINE_PREFILL_WGMMA=0/1 or the caller (PrefillKernel) can force either
// where it applies. fp8 pools and head_dim 16/32 always run here.
//   out[t, h, :] = sum_j softmax_j(scale * q[t, h, :] . k[j, h / G, :]) v[j, h / G, :],  j in visible(t)
//   visible(t) = (p - window, p] (window > 0) or [0, p], p = context_len[b] - n + i for row i of sequence b.
// A CTA of kWarps warps owns kBlockM query rows of one query head of one sequence (16 * MT rows per warp:
// MT m16 tiles, so every K/V fragment read from shared memory feeds MT tensor-core products) and walks the
// key blocks of kBlockN keys its rows can see. Per key block, in registers of each warp:
//   S = Q K^T                      (16 MT x kBlockN, mma.sync m16n8k16 bf16 -> f32)
//   m' = max(m, rowmax(S)); P = exp2(S - m'); l = l exp2(m - m') + rowsum(P); O = O exp2(m - m') + P V
// and at the end out = O / l. The max is kept in raw score units and scale * log2(e) is folded into one FFMA
// per probability before exp2 (so scale must be > 0); O is rescaled only when a row's max grew. The score
// matrix never leaves registers. K and V tiles stream through shared memory with
// cp.async: V of this block loads while S is computed, K of the next block while P V is computed. Each key
// row is fetched through the block table: the pool rows of the next block are looked up while S of this one
// is computed and kept in shared memory (double-buffered), so table reads never stall the copies.
// F8E4M3 pools (kv_fp8.cuh): K and V tiles go through registers instead of cp.async (each thread loads its 8
// codes and the row's scale, and stores 8 bf16 values), so the tensor-core loop is the same; the loads are
// issued where the copies were, but their latency is no longer hidden behind the math (prefill is compute-bound).
// Rule: pool rows outside the keys the CTA may see are never read (zero-filled instead), so whatever the
// pool holds there (stale rows, NaN, other sequences) cannot leak in. Tiles past a sequence's rows exit.
#include <nvtx3/nvtx3.hpp>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdlib>
#include <cstring>

#include "roofline/backend/cuda/cuda_check.h"
#include "roofline/backend/cuda/device/convert.cuh"
#include "roofline/backend/cuda/device/mma.cuh"
#include "roofline/backend/cuda/device/reduce.cuh"
#include "roofline/backend/cuda/kernels.h"
#include "roofline/backend/cuda/kv_fp8.cuh"
#include "roofline/backend/cuda/paged_attention.cuh"
#include "roofline/core/error.h"

namespace roofline::cuda {

namespace {

using device::bf16;

constexpr int kWarps = 4;
constexpr int kThreads = kWarps * 32;
constexpr int kPad = 8;  // bf16 per shared row of padding (16 bytes): conflict-free ldmatrix

template <int D, int MT>
struct Tiles {
  static_assert(D % 16 == 0 && D >= 16 && D <= 256, "head_dim must be a multiple of 16 in [16, 256]");
  static_assert(MT == 1 || MT == 2, "one or two m16 tiles per warp");
  static constexpr int kBlockM = 16 * MT * kWarps;  // query rows per CTA
  // Keys per step: 64, or 32 where two m16 tiles of 128-wide rows would otherwise not fit in registers.
  static constexpr int kBlockN = MT * D > 128 ? 32 : 64;
  static_assert(kBlockN % 16 == 0 && kBlockN <= kThreads, "P V consumes keys 16 at a time; one lookup per thread");
  static constexpr int kStride = D + kPad;          // elements per shared-memory row
  static constexpr int kChunksPerRow = D / 8;       // 16-byte chunks per row
  // Q fragments stay in registers when they fit next to the accumulators; else they are re-read from
  // shared memory for every key block.
  static constexpr bool kQInRegisters = MT * D <= 128;
  static_assert((kBlockM * kChunksPerRow) % kThreads == 0 && (kBlockN * kChunksPerRow) % kThreads == 0,
                "tile loads split evenly over the CTA");
  // Shared memory: Q [kBlockM, D], K [kBlockN, D], V [kBlockN, D], rows padded to kStride; then the pool
  // rows of two key blocks [2][kBlockN] int32.
  static constexpr size_t kTileBytes = size_t(kBlockM + 2 * kBlockN) * kStride * sizeof(bf16);
  static constexpr size_t kSmemBytes = kTileBytes + 2 * kBlockN * sizeof(int);
};

// Copies ROWS rows of one head into tile[ROWS][kStride]; rows[r] is the source row index (its elements
// start at base + rows[r] * pitch), < 0 for a row to zero-fill without reading. The kChunksPerRow threads of
// group gi (16 bytes each) copy rows gi * kPasses .. gi * kPasses + kPasses - 1, so a thread's row indices are
// consecutive (vector shared loads); each instruction still moves whole rows.
template <int ROWS, int D, int MT>
__device__ __forceinline__ void load_rows_async(bf16* tile, const bf16* base, int64_t pitch, const int* rows) {
  using T = Tiles<D, MT>;
  constexpr int kPasses = ROWS * T::kChunksPerRow / kThreads;
  const int first = int(threadIdx.x) / T::kChunksPerRow * kPasses, col = (int(threadIdx.x) % T::kChunksPerRow) * 8;
  int mine[kPasses];
  if constexpr (kPasses % 4 == 0) {
#pragma unroll
    for (int i = 0; i < kPasses / 4; ++i) {
      const int4 v = reinterpret_cast<const int4*>(rows + first)[i];
      mine[4 * i] = v.x, mine[4 * i + 1] = v.y, mine[4 * i + 2] = v.z, mine[4 * i + 3] = v.w;
    }
  } else {
#pragma unroll
    for (int i = 0; i < kPasses; ++i) mine[i] = rows[first + i];
  }
#pragma unroll
  for (int i = 0; i < kPasses; ++i) {
    const bool valid = mine[i] >= 0;
    device::cp_async_16(tile + (first + i) * T::kStride + col, base + (valid ? int64_t(mine[i]) * pitch + col : 0),
                        valid);
  }
}

// The same from an F8E4M3 pool: base and scales point at the kv head's codes and scales of pool row 0; rows
// are pitch bytes (codes) and scale_pitch floats (scales) apart. Values are rounded to bf16 in registers.
template <int ROWS, int D, int MT>
__device__ __forceinline__ void load_rows_fp8(bf16* tile, const uint8_t* base, int64_t pitch, const float* scales,
                                              int64_t scale_pitch, const int* rows) {
  using T = Tiles<D, MT>;
  constexpr int kPasses = ROWS * T::kChunksPerRow / kThreads;
  const int first = int(threadIdx.x) / T::kChunksPerRow * kPasses, col = (int(threadIdx.x) % T::kChunksPerRow) * 8;
  uint2 codes[kPasses];
  float scale[kPasses];
#pragma unroll
  for (int i = 0; i < kPasses; ++i) {  // every load issued before the first use
    const int row = rows[first + i];
    codes[i] = row >= 0 ? __ldg(reinterpret_cast<const uint2*>(base + int64_t(row) * pitch + col)) : make_uint2(0u, 0u);
    scale[i] = row >= 0 ? __ldg(scales + int64_t(row) * scale_pitch) : 0.0f;
  }
#pragma unroll
  for (int i = 0; i < kPasses; ++i) {
    float x[8];
    device::unpack_e4m3x8(codes[i], x);
    uint4 packed;
    packed.x = device::pack_bf16x2(x[0] * scale[i], x[1] * scale[i]);
    packed.y = device::pack_bf16x2(x[2] * scale[i], x[3] * scale[i]);
    packed.z = device::pack_bf16x2(x[4] * scale[i], x[5] * scale[i]);
    packed.w = device::pack_bf16x2(x[6] * scale[i], x[7] * scale[i]);
    *reinterpret_cast<uint4*>(tile + (first + i) * T::kStride + col) = packed;
  }
}

// The same for the query tile: rows row0 .. row0 + ROWS - 1 of q, those >= valid_end zero-filled.
template <int ROWS, int D, int MT>
__device__ __forceinline__ void load_q_async(bf16* tile, const bf16* base, int64_t pitch, int row0, int valid_end) {
  using T = Tiles<D, MT>;
#pragma unroll
  for (int i = 0; i < ROWS * T::kChunksPerRow / kThreads; ++i) {
    const int chunk = int(threadIdx.x) + i * kThreads;
    const int r = chunk / T::kChunksPerRow, col = (chunk % T::kChunksPerRow) * 8;
    const bool valid = row0 + r < valid_end;
    device::cp_async_16(tile + r * T::kStride + col, base + (valid ? int64_t(row0 + r) * pitch + col : 0), valid);
  }
}

template <int D, int MT, bool FP8>
__global__ void __launch_bounds__(kThreads) paged_prefill_kernel(PagedAttentionArgs a) {
  using T = Tiles<D, MT>;
  constexpr int kBlockM = T::kBlockM, kBlockN = T::kBlockN;
  constexpr int kNTiles = kBlockN / 8;  // n8 score tiles per m16 tile
  constexpr int kDTiles = D / 8;        // n8 output tiles
  constexpr int kKSteps = D / 16;       // k16 steps of Q K^T
  extern __shared__ __align__(16) unsigned char smem_raw[];
  bf16* sQ = reinterpret_cast<bf16*>(smem_raw);                  // [kBlockM][kStride]
  bf16* sK = sQ + kBlockM * T::kStride;                          // [kBlockN][kStride]
  bf16* sV = sK + kBlockN * T::kStride;                          // [kBlockN][kStride]
  int* sRows = reinterpret_cast<int*>(smem_raw + T::kTileBytes);  // [2][kBlockN] pool rows of key blocks

  const SequenceView seq = load_sequence(a, int(blockIdx.z));
  // Longest (last) query blocks first: under the causal mask they have the most keys.
  const int m0 = int(gridDim.x - 1 - blockIdx.x) * kBlockM;
  if (m0 >= seq.n || seq.context < seq.n) return;

  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int g = lane / 4, t4 = lane % 4;  // fragment row / column group (see mma.cuh)
  const int warp_row0 = warp * 16 * MT;   // first row of this warp within the tile
  const int head = blockIdx.y, kv_head = head / (a.Hq / a.Hkv);
  const int64_t q_pitch = int64_t(a.Hq) * D, kv_pitch = int64_t(a.Hkv) * D;
  const bf16* q = static_cast<const bf16*>(a.q) + int64_t(seq.q_begin) * q_pitch + int64_t(head) * D;
  const bf16* k = static_cast<const bf16*>(a.k_pool) + int64_t(kv_head) * D;
  const bf16* v = static_cast<const bf16*>(a.v_pool) + int64_t(kv_head) * D;
  // The K (V) rows of a key block into sK (sV): bf16 by cp.async, F8E4M3 through registers (dequantized).
  auto load_keys = [&](bf16* tile, bool values, const int* rows) {
    if constexpr (FP8) {
      const uint8_t* codes = static_cast<const uint8_t*>(values ? a.v_pool : a.k_pool) + int64_t(kv_head) * D;
      load_rows_fp8<T::kBlockN, D, MT>(tile, codes, kv_pitch, (values ? a.v_scale : a.k_scale) + kv_head, a.Hkv, rows);
    } else {
      load_rows_async<T::kBlockN, D, MT>(tile, values ? v : k, kv_pitch, rows);
    }
  };

  // Keys this CTA's rows can see: [kv_begin, kv_end).
  const int start_pos = seq.context - seq.n;  // position of query row 0
  const int q_first = start_pos + m0;
  const int q_last = start_pos + min(m0 + kBlockM, seq.n) - 1;
  const int kv_begin = first_visible(q_first, a.window);
  const int kv_end = q_last + 1;
  const int n_first = kv_begin / kBlockN * kBlockN;
  // Pool row of key position p, or -1 outside [kv_begin, kv_end).
  auto lookup = [&](int p) { return p >= kv_begin && p < kv_end ? pool_row(seq, p, a.block_size) : -1; };

  if (threadIdx.x < kBlockN) sRows[threadIdx.x] = lookup(n_first + int(threadIdx.x));
  load_q_async<kBlockM, D, MT>(sQ, q, q_pitch, m0, seq.n);
  __syncthreads();  // the first block's pool rows
  load_keys(sK, false, sRows);
  device::cp_async_commit();

  float o[MT][kDTiles][4] = {};  // O: 16 MT x D per warp
  float row_max[MT][2], row_sum[MT][2];  // rows g and g + 8 of each m16 tile, log2 units; this thread's part of l
#pragma unroll
  for (int mt = 0; mt < MT; ++mt)
    row_max[mt][0] = row_max[mt][1] = -INFINITY, row_sum[mt][0] = row_sum[mt][1] = 0.0f;
  uint32_t qf[T::kQInRegisters ? MT : 1][T::kQInRegisters ? kKSteps : 1][4];  // Q as A fragments when held
  const float scale_log2 = a.scale * kLog2e;

  int buffer = 0;  // sRows half holding this block's pool rows
  for (int n0 = n_first; n0 < kv_end; n0 += kBlockN, buffer ^= 1) {
    // The next block's pool rows: the table read is in flight while S is computed.
    const int next_row = threadIdx.x < kBlockN ? lookup(n0 + kBlockN + int(threadIdx.x)) : -1;
    device::cp_async_wait<0>();  // K of this block (and Q, the first time) has landed
    __syncthreads();             // ... for every thread; and every warp is done with V of the last block
    if constexpr (T::kQInRegisters) {
      if (n0 == n_first) {
#pragma unroll
        for (int mt = 0; mt < MT; ++mt)
#pragma unroll
          for (int kk = 0; kk < kKSteps; ++kk)
            device::ldmatrix_x4(qf[mt][kk],
                                sQ + (warp_row0 + mt * 16 + lane % 16) * T::kStride + kk * 16 + (lane / 16) * 8);
      }
    }
    load_keys(sV, true, sRows + buffer * kBlockN);
    device::cp_async_commit();

    // S = Q K^T: (16 MT x kBlockN) per warp. ldmatrix x4 on K rows gives B fragments of two n8 tiles.
    float s[MT][kNTiles][4] = {};
#pragma unroll
    for (int kk = 0; kk < kKSteps; ++kk) {
      uint32_t af[MT][4];
#pragma unroll
      for (int mt = 0; mt < MT; ++mt) {
        if constexpr (T::kQInRegisters) {
#pragma unroll
          for (int e = 0; e < 4; ++e) af[mt][e] = qf[mt][kk][e];
        } else {
          device::ldmatrix_x4(af[mt], sQ + (warp_row0 + mt * 16 + lane % 16) * T::kStride + kk * 16 + (lane / 16) * 8);
        }
      }
#pragma unroll
      for (int nj = 0; nj < kNTiles / 2; ++nj) {
        uint32_t b[4];
        device::ldmatrix_x4(b, sK + (nj * 16 + (lane / 16) * 8 + lane % 8) * T::kStride + kk * 16 + ((lane / 8) % 2) * 8);
#pragma unroll
        for (int mt = 0; mt < MT; ++mt) {
          device::mma_bf16_16816(s[mt][2 * nj], af[mt], b[0], b[1]);
          device::mma_bf16_16816(s[mt][2 * nj + 1], af[mt], b[2], b[3]);
        }
      }
    }

    // Mask only where some (row, key) pair of the block is not visible: the diagonal and window edges.
    const bool needs_mask = n0 + kBlockN - 1 > q_first || (a.window > 0 && n0 <= q_last - a.window);
    if (needs_mask) {
#pragma unroll
      for (int mt = 0; mt < MT; ++mt)
#pragma unroll
        for (int j = 0; j < kNTiles; ++j)
#pragma unroll
          for (int e = 0; e < 4; ++e) {
            const int pos = q_first + warp_row0 + mt * 16 + g + (e / 2) * 8;
            const int key = n0 + j * 8 + t4 * 2 + (e % 2);
            const bool visible = key <= pos && (a.window <= 0 || key > pos - a.window);
            if (!visible) s[mt][j][e] = -INFINITY;
          }
    }

    // Online softmax, rows g (e = 0, 1) and g + 8 (e = 2, 3); the four lanes of a quad share a row. The max is
    // kept in raw score units (scale > 0 keeps the order), so each probability is one FFMA and one exp2:
    // p = exp2(s * scale_log2 - m * scale_log2). O and l are rescaled only when the max of some row of the
    // warp's m16 tile grew (a warp vote), which after the first key blocks is rare.
#pragma unroll
    for (int mt = 0; mt < MT; ++mt)
#pragma unroll
      for (int r = 0; r < 2; ++r) {
        float block_max = -INFINITY;
#pragma unroll
        for (int j = 0; j < kNTiles; ++j) block_max = fmaxf(block_max, fmaxf(s[mt][j][2 * r], s[mt][j][2 * r + 1]));
        block_max = fmaxf(block_max, __shfl_xor_sync(device::kFullMask, block_max, 1));
        block_max = fmaxf(block_max, __shfl_xor_sync(device::kFullMask, block_max, 2));
        const float new_max = fmaxf(row_max[mt][r], block_max);
        const bool grew = new_max > row_max[mt][r];
        if (__any_sync(device::kFullMask, grew)) {
          const float correction = grew ? exp2f((row_max[mt][r] - new_max) * scale_log2) : 1.0f;  // 0 from -inf
          row_max[mt][r] = new_max;
          row_sum[mt][r] *= correction;
#pragma unroll
          for (int dj = 0; dj < kDTiles; ++dj) o[mt][dj][2 * r] *= correction, o[mt][dj][2 * r + 1] *= correction;
        }
        const float neg_base = new_max == -INFINITY ? 0.0f : -new_max * scale_log2;  // nothing visible yet: p = 0
#pragma unroll
        for (int j = 0; j < kNTiles; ++j) {
          s[mt][j][2 * r] = exp2f(fmaf(s[mt][j][2 * r], scale_log2, neg_base));
          s[mt][j][2 * r + 1] = exp2f(fmaf(s[mt][j][2 * r + 1], scale_log2, neg_base));
          row_sum[mt][r] += s[mt][j][2 * r] + s[mt][j][2 * r + 1];
        }
      }
    // P as A fragments: the accumulators of n8 tiles 2kk and 2kk+1 are exactly the A layout of keys
    // 16kk .. 16kk + 15.
    uint32_t pf[MT][kBlockN / 16][4];
#pragma unroll
    for (int mt = 0; mt < MT; ++mt)
#pragma unroll
      for (int kk = 0; kk < kBlockN / 16; ++kk) {
        pf[mt][kk][0] = device::pack_bf16x2(s[mt][2 * kk][0], s[mt][2 * kk][1]);
        pf[mt][kk][1] = device::pack_bf16x2(s[mt][2 * kk][2], s[mt][2 * kk][3]);
        pf[mt][kk][2] = device::pack_bf16x2(s[mt][2 * kk + 1][0], s[mt][2 * kk + 1][1]);
        pf[mt][kk][3] = device::pack_bf16x2(s[mt][2 * kk + 1][2], s[mt][2 * kk + 1][3]);
      }

    if (threadIdx.x < kBlockN) sRows[(buffer ^ 1) * kBlockN + threadIdx.x] = next_row;
    device::cp_async_wait<0>();  // V of this block has landed
    __syncthreads();             // ... for every thread; every warp is done reading K; the next pool rows are in
    if (n0 + kBlockN < kv_end) {
      load_keys(sK, false, sRows + (buffer ^ 1) * kBlockN);
      device::cp_async_commit();
    }

    // O += P V: V rows are keys, so ldmatrix .trans gives B fragments (k = key, n = dim) of two n8 tiles.
#pragma unroll
    for (int kk = 0; kk < kBlockN / 16; ++kk) {
#pragma unroll
      for (int dj = 0; dj < kDTiles / 2; ++dj) {
        uint32_t b[4];
        device::ldmatrix_x4_trans(b, sV + (kk * 16 + lane % 8 + ((lane / 8) % 2) * 8) * T::kStride + dj * 16 + (lane / 16) * 8);
#pragma unroll
        for (int mt = 0; mt < MT; ++mt) {
          device::mma_bf16_16816(o[mt][2 * dj], pf[mt][kk], b[0], b[1]);
          device::mma_bf16_16816(o[mt][2 * dj + 1], pf[mt][kk], b[2], b[3]);
        }
      }
    }
  }

  // out = O / l, rows g and g + 8 of each m16 tile, pairs of columns per lane.
  bf16* out = static_cast<bf16*>(a.out) + int64_t(seq.q_begin) * q_pitch + int64_t(head) * D;
#pragma unroll
  for (int mt = 0; mt < MT; ++mt)
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      float l = row_sum[mt][r];
      l += __shfl_xor_sync(device::kFullMask, l, 1);
      l += __shfl_xor_sync(device::kFullMask, l, 2);
      const float inv = l > 0.0f ? 1.0f / l : 0.0f;
      const int row = m0 + warp_row0 + mt * 16 + g + r * 8;
      if (row >= seq.n) continue;
#pragma unroll
      for (int dj = 0; dj < kDTiles; ++dj) {
        const __nv_bfloat162 pair = __floats2bfloat162_rn(o[mt][dj][2 * r] * inv, o[mt][dj][2 * r + 1] * inv);
        *reinterpret_cast<__nv_bfloat162*>(out + row * q_pitch + dj * 8 + t4 * 2) = pair;
      }
    }
}

template <int D, int MT, bool FP8>
void launch_prefill_kv(const PagedAttentionArgs& a, cudaStream_t stream) {
  using T = Tiles<D, MT>;
  constexpr size_t smem = T::kSmemBytes;
  ROOFLINE_CUDA_CHECK(
      cudaFuncSetAttribute(paged_prefill_kernel<D, MT, FP8>, cudaFuncAttributeMaxDynamicSharedMemorySize, int(smem)));
  const dim3 grid(unsigned((a.max_query_len + T::kBlockM - 1) / T::kBlockM), unsigned(a.Hq), unsigned(a.num_seqs));
  paged_prefill_kernel<D, MT, FP8><<<grid, kThreads, smem, stream>>>(a);
  ROOFLINE_CUDA_CHECK_LAUNCH();
}

template <int D, int MT>
void launch_prefill(const PagedAttentionArgs& a, cudaStream_t stream) {
  if (a.kv_fp8)
    launch_prefill_kv<D, MT, true>(a, stream);
  else
    launch_prefill_kv<D, MT, false>(a, stream);
}

// Query rows per warp: 32 (two m16 tiles share every K/V fragment, but a CTA holds 128 rows and fewer CTAs fit
// on a multiprocessor) once the grid is many waves deep, else 16. Measured on H100 (bench/micro, 32 query
// heads): 32 rows win from 16k keys at head_dim 128 (283 against 274 TFLOP/s) and from 8k at 64 (230 / 222);
// 16 rows win below (hd 128, 4k: 233 / 213).
int warp_rows(const PagedAttentionArgs& a, int D, int multiprocessors) {
  if (a.prefill_warp_rows == 16 || a.prefill_warp_rows == 32) return a.prefill_warp_rows;
  const int64_t tall_ctas = int64_t((a.max_query_len + 127) / 128) * a.Hq * a.num_seqs;
  const int64_t waves = D >= 128 ? 12 : 6;  // of two resident 128-row CTAs per multiprocessor
  return a.max_query_len > 64 && tall_ctas >= waves * 2 * std::max(1, multiprocessors) ? 32 : 16;
}

template <int D>
void launch_prefill_d(const PagedAttentionArgs& a, int multiprocessors, cudaStream_t stream) {
  if (warp_rows(a, D, multiprocessors) == 16)
    launch_prefill<D, 1>(a, stream);
  else
    launch_prefill<D, 2>(a, stream);
}

// ROOFLINE_PREFILL_WGMMA=0 or 1 forces one kernel for every shape it can run; unset (Auto), the shape picks.
PrefillKernel environment_prefill_kernel() {
  static const PrefillKernel from_env = [] {
    const char* v = std::getenv("ROOFLINE_PREFILL_WGMMA");
    if (v != nullptr && std::strcmp(v, "0") == 0) return PrefillKernel::MmaSync;
    if (v != nullptr && std::strcmp(v, "1") == 0) return PrefillKernel::Wgmma;
    return PrefillKernel::Auto;
  }();
  return from_env;
}

// The kernel for a batch when nothing forces one. Measured on an H100 (docs/performance.md, session 6;
// causal, GQA 4:1, 1k-16k): at head_dim 64 the wgmma kernel with 64-key blocks (two CTAs per
// multiprocessor) runs 1.20-1.34x the mma.sync kernel; at head_dim 128 none of its forms gained (0.91-1.03x:
// one CTA of two warpgroups per multiprocessor, loads and softmax not yet overlapped across warpgroups), so
// head_dim 128 stays on mma.sync until the wgmma kernel gets a producer warpgroup.
PrefillKernel prefill_kernel_for_shape(const PagedAttentionArgs& a) {
  return a.D == 64 ? PrefillKernel::Wgmma : PrefillKernel::MmaSync;
}

std::atomic<PrefillKernel> process_prefill_kernel{PrefillKernel::Auto};  // Auto: the environment's choice

// Keys per block of the wgmma kernel, unless the lab sets them: 64 at head_dim 64 (two CTAs per
// multiprocessor: measured 1.4-1.7x the 128-key form, which fits one), 128 at head_dim 128 (each K/V tile
// feeds twice the products per barrier; both forms fit one CTA there). The softmax overlaps the previous
// block's P V unless the lab turns it off.
int wgmma_keys_per_block(const PagedAttentionArgs& a) {
  if (a.prefill_keys_per_block == 64 || a.prefill_keys_per_block == 128) return a.prefill_keys_per_block;
  return a.D == 64 ? 64 : 128;
}

}  // namespace

PrefillKernel set_prefill_kernel(PrefillKernel kernel) { return process_prefill_kernel.exchange(kernel); }

PrefillKernel prefill_kernel_default() {
  const PrefillKernel set = process_prefill_kernel.load();
  return set == PrefillKernel::Auto ? environment_prefill_kernel() : set;
}

PrefillKernel prefill_kernel_for(const PagedAttentionArgs& a) {
  PrefillKernel kernel = a.prefill_kernel == PrefillKernel::Auto ? prefill_kernel_default() : a.prefill_kernel;
  if (kernel == PrefillKernel::Auto) kernel = prefill_kernel_for_shape(a);
  return kernel == PrefillKernel::Wgmma && paged_prefill_wgmma_supported(a) ? kernel : PrefillKernel::MmaSync;
}

void launch_paged_prefill(const PagedAttentionArgs& a, int multiprocessors, cudaStream_t stream) {
  ROOFLINE_CHECK(a.Hkv > 0 && a.Hq % a.Hkv == 0, "paged_attention: Hq {} must be a multiple of Hkv {}", a.Hq, a.Hkv);
  ROOFLINE_CHECK(a.num_seqs <= 65535, "paged_attention: {} sequences in one batch, at most 65535", a.num_seqs);
  if (a.num_seqs <= 0 || a.max_query_len <= 0 || a.Hq <= 0) return;
  ROOFLINE_CHECK(a.scale > 0.0f, "paged_attention: scale {} must be > 0", a.scale);
  if (prefill_kernel_for(a) == PrefillKernel::Wgmma) {
    launch_paged_prefill_wgmma(a, wgmma_keys_per_block(a), a.prefill_overlap != 0, stream);
    return;
  }
  nvtx3::scoped_range range("cuda::paged_attention_prefill");
  switch (a.D) {
    case 16: launch_prefill_d<16>(a, multiprocessors, stream); break;
    case 32: launch_prefill_d<32>(a, multiprocessors, stream); break;
    case 64: launch_prefill_d<64>(a, multiprocessors, stream); break;
    case 128: launch_prefill_d<128>(a, multiprocessors, stream); break;
    default: fail("paged_attention: head_dim {} has no CUDA kernel (16, 32, 64 and 128 do)", a.D);
  }
}

}  // namespace roofline::cuda
