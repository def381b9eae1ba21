// Training flash-attention backward (flash_attention.h), FlashAttention-2 style, deterministic.
// With S = scale Q K^T and P = exp(S - lse) recomputed from the forward's lse:
//   dV = P^T dO,  dP = dO V^T,  dS = P * (dP - delta)  with  delta = rowsum(dO * O),
//   dQ = scale dS K,  dK = scale dS^T Q.
// Three kernels, in stream order:
//   1. delta: rowsum(dO * O) per (b, h, t), f32, into the workspace.
//   2. dK, dV: a CTA owns kBlockN keys of one kv head (16 per warp) and walks every query block that can see
//      them, for each query head of the group in turn; dK and dV stay in registers (rows = keys) and are
//      written once. Q and dO tiles are double-buffered through shared memory with cp.async.
//   3. dQ: a CTA owns 64 query rows of one query head and walks the key blocks they see, recomputing S and dP;
//      dQ stays in registers (rows = queries) and is written once. K and V tiles are double-buffered.
// Pipelines: the tiles of step n + 1 load during all of step n, and one barrier per step suffices: the barrier
// at the top of step n proves every warp is done with step n - 1, whose buffer is refilled right after it.
// Every output element has one writer and a fixed summation order, so the result is bitwise reproducible
// (no atomics). The price is recomputing Q K^T and dO V^T in the dQ kernel: 7 matrix products instead of 5.
// These mma.sync kernels are the fallback (ROOFLINE_TRAIN_ATTN_BWD_WGMMA=0) and the lab's baseline; the default
// is the wgmma pair of flash_attention_backward_wgmma.cu (same kernels' structure, same bits every run).
#include <nvtx3/nvtx3.hpp>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>

#include "roofline/backend/cuda/cuda_check.h"
#include "roofline/backend/cuda/device/convert.cuh"
#include "roofline/core/env.h"
#include "roofline/core/error.h"
#include "roofline/train/cuda/flash_attention_lab.h"
#include "roofline/train/cuda/flash_attention_tiles.cuh"
#include "roofline/train/scratch_sizes.h"

namespace roofline::train::cuda {

namespace {

using namespace detail;

// ---- 1. delta = rowsum(dO * O) ------------------------------------------------------------------------

// D / 8 lanes per (row, head), 16 bytes each; items are ordered (b, t, h) so a warp reads whole rows.
template <int D>
__global__ void __launch_bounds__(256) flash_delta_kernel(Problem p, const bf16* __restrict__ out,
                                                          const bf16* __restrict__ dout, float* __restrict__ delta) {
  constexpr int kLanes = D / 8;
  const int64_t item = (int64_t(blockIdx.x) * blockDim.x + threadIdx.x) / kLanes;  // (b * T + t) * Hq + h
  const int part = int(threadIdx.x) % kLanes;
  const int64_t items = int64_t(p.B) * p.T * p.Hq;
  float sum = 0.0f;
  const int64_t row = item / p.Hq;
  const int h = int(item % p.Hq);
  if (item < items) {
    float o[8], d[8];
    dev::load8(out + row * p.ld_o + h * D + part * 8, o);
    dev::load8(dout + row * p.ld_o + h * D + part * 8, d);
#pragma unroll
    for (int i = 0; i < 8; ++i) sum = fmaf(o[i], d[i], sum);
  }
#pragma unroll
  for (int offset = kLanes / 2; offset > 0; offset >>= 1) sum += __shfl_xor_sync(dev::kFullMask, sum, offset);
  if (item < items && part == 0) {
    const int64_t b = row / p.T, t = row % p.T;
    delta[(b * p.Hq + h) * p.T + t] = sum;
  }
}

// ---- 2. dK, dV ----------------------------------------------------------------------------------------

template <int D, int WARPS>
struct DkDvTiles {
  static constexpr int kThreads = 32 * WARPS;
  static constexpr int kBlockN = 16 * WARPS;        // keys per CTA, 16 per warp
  static constexpr int kBlockM = D > 64 ? 32 : 64;  // query rows per step: S and dP (16 x kBlockM) sit beside dK, dV
  static constexpr int kStride = D + kPad;
  static constexpr bool kKVInRegisters = D <= 64;  // K and V A-fragments held, else re-read per step
  // Shared memory: K, V [kBlockN][kStride]; Q, dO [2][kBlockM][kStride]; lse (log2 units), delta [2][kBlockM].
  static constexpr size_t kTileBytes = size_t(2 * kBlockN + 4 * kBlockM) * kStride * sizeof(bf16);
  static constexpr size_t kSmemBytes = kTileBytes + 4 * kBlockM * sizeof(float);
};

template <int D, int WARPS>
__global__ void __launch_bounds__(32 * WARPS) flash_dkdv_kernel(Problem p, const bf16* __restrict__ q,
                                                              const bf16* __restrict__ k, const bf16* __restrict__ v,
                                                              const bf16* __restrict__ dout,
                                                              const float* __restrict__ lse,
                                                              const float* __restrict__ delta, bf16* __restrict__ dk,
                                                              bf16* __restrict__ dv) {
  using Tl = DkDvTiles<D, WARPS>;
  constexpr int kThreads = Tl::kThreads;
  constexpr int kBlockM = Tl::kBlockM, kBlockN = Tl::kBlockN, kStride = Tl::kStride;
  constexpr int kQTiles = kBlockM / 8, kDTiles = D / 8, kKSteps = D / 16;
  extern __shared__ __align__(16) unsigned char smem_raw[];
  bf16* sK = reinterpret_cast<bf16*>(smem_raw);  // [kBlockN][kStride]
  bf16* sV = sK + kBlockN * kStride;             // [kBlockN][kStride]
  bf16* sQ = sV + kBlockN * kStride;             // [2][kBlockM][kStride]
  bf16* sdO = sQ + 2 * kBlockM * kStride;        // [2][kBlockM][kStride]
  float* sLse = reinterpret_cast<float*>(smem_raw + Tl::kTileBytes);  // [2][kBlockM], lse * log2(e)
  float* sDelta = sLse + 2 * kBlockM;                                  // [2][kBlockM]

  // Key blocks in order: the first ones see the most query rows, so they start first.
  const int n0 = int(blockIdx.x) * kBlockN;
  const int kv_head = int(blockIdx.y), b = int(blockIdx.z), group = p.Hq / p.Hkv;
  const int warp = int(threadIdx.x) / 32, lane = int(threadIdx.x) % 32, g = lane / 4, t4 = lane % 4;
  const int tid = int(threadIdx.x);
  const bf16* kh = k + int64_t(b) * p.T * p.ld_kv + kv_head * D;
  const bf16* vh = v + int64_t(b) * p.T * p.ld_kv + kv_head * D;

  // Query rows that see some key of this block: [m_first, m_end), in blocks of kBlockM, for each query head.
  const int key_last = min(n0 + kBlockN, p.T) - 1;
  const int m_end = p.window > 0 ? min(p.T, key_last + p.window) : p.T;
  const int m_first = n0 / kBlockM * kBlockM;
  const int blocks_per_head = (m_end - m_first + kBlockM - 1) / kBlockM;
  const int steps = group * blocks_per_head;
  auto step_head = [&](int step) { return kv_head * group + step / blocks_per_head; };
  auto step_row0 = [&](int step) { return m_first + (step % blocks_per_head) * kBlockM; };
  auto issue_tiles = [&](int step, int buf) {
    const int h = step_head(step), m0 = step_row0(step);
    load_tile_async<kBlockM, D, kThreads>(sQ + buf * kBlockM * kStride, q + int64_t(b) * p.T * p.ld_q + h * D, p.ld_q,
                                          m0, p.T);
    load_tile_async<kBlockM, D, kThreads>(sdO + buf * kBlockM * kStride, dout + int64_t(b) * p.T * p.ld_o + h * D,
                                          p.ld_o, m0, p.T);
  };
  // lse (log2 units) and delta of row tid of a step; rows past T get lse = +inf, so P = 0 there.
  auto load_stats = [&](int step, float& lse2, float& dlt) {
    const int row = step_row0(step) + tid;
    const int64_t at = (int64_t(b) * p.Hq + step_head(step)) * p.T + row;
    lse2 = row < p.T ? lse[at] * kLog2e : INFINITY;
    dlt = row < p.T ? delta[at] : 0.0f;
  };

  load_tile_async<kBlockN, D, kThreads>(sK, kh, p.ld_kv, n0, p.T);
  load_tile_async<kBlockN, D, kThreads>(sV, vh, p.ld_kv, n0, p.T);
  issue_tiles(0, 0);
  dev::cp_async_commit();
  if (tid < kBlockM) load_stats(0, sLse[tid], sDelta[tid]);

  float dk_acc[kDTiles][4] = {}, dv_acc[kDTiles][4] = {};  // rows g, g + 8 of the warp's 16 keys
  uint32_t kf[Tl::kKVInRegisters ? kKSteps : 1][4], vf[Tl::kKVInRegisters ? kKSteps : 1][4];
  const int key_row0 = warp * 16;  // the warp's keys within the tile

  for (int step = 0; step < steps; ++step) {
    const int buf = step & 1;
    const bool more = step + 1 < steps;
    dev::cp_async_wait<0>();  // this step's Q and dO (and K, V the first time) have landed
    __syncthreads();          // ... for every thread; every warp is done with step - 1 and its buffers
    float next_lse = 0.0f, next_delta = 0.0f;
    if (more) {
      issue_tiles(step + 1, buf ^ 1);
      dev::cp_async_commit();
      if (tid < kBlockM) load_stats(step + 1, next_lse, next_delta);
    }
    if constexpr (Tl::kKVInRegisters) {
      if (step == 0) {
#pragma unroll
        for (int kk = 0; kk < kKSteps; ++kk) {
          load_a(kf[kk], sK, kStride, key_row0, kk * 16);
          load_a(vf[kk], sV, kStride, key_row0, kk * 16);
        }
      }
    }
    const bf16* sQb = sQ + buf * kBlockM * kStride;
    const bf16* sdOb = sdO + buf * kBlockM * kStride;
    const float* sLseb = sLse + buf * kBlockM;
    const float* sDeltab = sDelta + buf * kBlockM;
    const int m0 = step_row0(step);

    // S^T = K Q^T and dP^T = V dO^T: 16 keys x kBlockM query rows per warp.
    float s[kQTiles][4] = {}, dp[kQTiles][4] = {};
#pragma unroll
    for (int kk = 0; kk < kKSteps; ++kk) {
      uint32_t ak[4], av[4];
      if constexpr (Tl::kKVInRegisters) {
#pragma unroll
        for (int e = 0; e < 4; ++e) ak[e] = kf[kk][e], av[e] = vf[kk][e];
      } else {
        load_a(ak, sK, kStride, key_row0, kk * 16);
        load_a(av, sV, kStride, key_row0, kk * 16);
      }
#pragma unroll
      for (int nj = 0; nj < kQTiles / 2; ++nj) {
        uint32_t bq[4], bo[4];
        load_b_n_rows(bq, sQb, kStride, nj * 16, kk * 16);
        load_b_n_rows(bo, sdOb, kStride, nj * 16, kk * 16);
        dev::mma_bf16_16816(s[2 * nj], ak, bq[0], bq[1]);
        dev::mma_bf16_16816(s[2 * nj + 1], ak, bq[2], bq[3]);
        dev::mma_bf16_16816(dp[2 * nj], av, bo[0], bo[1]);
        dev::mma_bf16_16816(dp[2 * nj + 1], av, bo[2], bo[3]);
      }
    }

    // P^T = exp(S - lse) and dS^T = P^T * (dP^T - delta); column j * 8 + 2 t4 + (e % 2) is a query row,
    // row g + 8 (e / 2) a key. Masked only where a (query, key) pair of the block may be invisible.
    const bool needs_mask = m0 < n0 + kBlockN - 1 || (p.window > 0 && m0 + kBlockM - 1 >= n0 + p.window);
#pragma unroll
    for (int j = 0; j < kQTiles; ++j) {
      const float2 l2 = *reinterpret_cast<const float2*>(sLseb + j * 8 + 2 * t4);
      const float2 dl = *reinterpret_cast<const float2*>(sDeltab + j * 8 + 2 * t4);
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        float prob = exp2f(fmaf(s[j][e], p.scale_log2, -(e % 2 ? l2.y : l2.x)));
        if (needs_mask) {
          const int query = m0 + j * 8 + 2 * t4 + (e % 2), key = n0 + key_row0 + g + 8 * (e / 2);
          if (!visible(query, key, p.window)) prob = 0.0f;
        }
        s[j][e] = prob;
        dp[j][e] = prob * (dp[j][e] - (e % 2 ? dl.y : dl.x));
      }
    }

    // dV += P^T dO and dK += dS^T Q: k runs over the step's query rows.
#pragma unroll
    for (int kk = 0; kk < kBlockM / 16; ++kk) {
      uint32_t ap[4], ads[4];
      accumulators_to_a(ap, s[2 * kk], s[2 * kk + 1]);
      accumulators_to_a(ads, dp[2 * kk], dp[2 * kk + 1]);
#pragma unroll
      for (int dj = 0; dj < kDTiles / 2; ++dj) {
        uint32_t bo[4], bq[4];
        load_b_k_rows(bo, sdOb, kStride, kk * 16, dj * 16);
        load_b_k_rows(bq, sQb, kStride, kk * 16, dj * 16);
        dev::mma_bf16_16816(dv_acc[2 * dj], ap, bo[0], bo[1]);
        dev::mma_bf16_16816(dv_acc[2 * dj + 1], ap, bo[2], bo[3]);
        dev::mma_bf16_16816(dk_acc[2 * dj], ads, bq[0], bq[1]);
        dev::mma_bf16_16816(dk_acc[2 * dj + 1], ads, bq[2], bq[3]);
      }
    }

    // The next step's row statistics: read after the next barrier; nobody reads this half any more.
    if (more && tid < kBlockM) {
      sLse[(buf ^ 1) * kBlockM + tid] = next_lse;
      sDelta[(buf ^ 1) * kBlockM + tid] = next_delta;
    }
  }

  const int row0 = n0 + key_row0;
  store_rows<kDTiles>(dv + int64_t(b) * p.T * p.ld_kv + kv_head * D + int64_t(row0) * p.ld_kv, p.ld_kv, row0, p.T,
                      dv_acc, 1.0f);
  store_rows<kDTiles>(dk + int64_t(b) * p.T * p.ld_kv + kv_head * D + int64_t(row0) * p.ld_kv, p.ld_kv, row0, p.T,
                      dk_acc, p.scale);
}

// ---- 3. dQ ---------------------------------------------------------------------------------------------

template <int D, int WARPS>
struct DqTiles {
  static constexpr int kThreads = 32 * WARPS;
  static constexpr int kBlockM = 16 * WARPS;   // query rows per CTA, 16 per warp
  static constexpr int kBlockN = 64;           // keys per step
  static constexpr int kStride = D + kPad;
  static constexpr bool kQInRegisters = D <= 64;  // Q and dO A-fragments held, else re-read per key block
  // Shared memory: Q, dO [kBlockM][kStride]; K, V [2][kBlockN][kStride].
  static constexpr size_t kSmemBytes = size_t(2 * kBlockM + 4 * kBlockN) * kStride * sizeof(bf16);
};

template <int D, int WARPS>
__global__ void __launch_bounds__(32 * WARPS) flash_dq_kernel(Problem p, const bf16* __restrict__ q,
                                                            const bf16* __restrict__ k, const bf16* __restrict__ v,
                                                            const bf16* __restrict__ dout,
                                                            const float* __restrict__ lse,
                                                            const float* __restrict__ delta, bf16* __restrict__ dq) {
  using Tl = DqTiles<D, WARPS>;
  constexpr int kThreads = Tl::kThreads;
  constexpr int kBlockM = Tl::kBlockM, kBlockN = Tl::kBlockN, kStride = Tl::kStride;
  constexpr int kNTiles = kBlockN / 8, kDTiles = D / 8, kKSteps = D / 16;
  extern __shared__ __align__(16) unsigned char smem_raw[];
  bf16* sQ = reinterpret_cast<bf16*>(smem_raw);  // [kBlockM][kStride]
  bf16* sdO = sQ + kBlockM * kStride;            // [kBlockM][kStride]
  bf16* sK = sdO + kBlockM * kStride;            // [2][kBlockN][kStride]
  bf16* sV = sK + 2 * kBlockN * kStride;         // [2][kBlockN][kStride]

  const int m0 = int(gridDim.x - 1 - blockIdx.x) * kBlockM;  // longest (last) query blocks first
  const int head = int(blockIdx.y), b = int(blockIdx.z), kv_head = head / (p.Hq / p.Hkv);
  const int warp = int(threadIdx.x) / 32, lane = int(threadIdx.x) % 32, g = lane / 4, t4 = lane % 4;
  const int warp_row0 = warp * 16;
  const bf16* kh = k + int64_t(b) * p.T * p.ld_kv + kv_head * D;
  const bf16* vh = v + int64_t(b) * p.T * p.ld_kv + kv_head * D;

  const int q_last = min(m0 + kBlockM, p.T) - 1;
  const int kv_begin = p.window > 0 ? max(0, m0 - p.window + 1) : 0;
  const int kv_end = q_last + 1;
  const int n_first = kv_begin / kBlockN * kBlockN;

  load_tile_async<kBlockM, D, kThreads>(sQ, q + int64_t(b) * p.T * p.ld_q + head * D, p.ld_q, m0, p.T);
  load_tile_async<kBlockM, D, kThreads>(sdO, dout + int64_t(b) * p.T * p.ld_o + head * D, p.ld_o, m0, p.T);
  load_tile_async<kBlockN, D, kThreads>(sK, kh, p.ld_kv, n_first, kv_end);
  load_tile_async<kBlockN, D, kThreads>(sV, vh, p.ld_kv, n_first, kv_end);
  dev::cp_async_commit();

  float lse2[2], dlt[2];  // rows g and g + 8 of the warp; rows past T: P = 0
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    const int row = m0 + warp_row0 + g + 8 * r;
    const int64_t at = (int64_t(b) * p.Hq + head) * p.T + row;
    lse2[r] = row < p.T ? lse[at] * kLog2e : INFINITY;
    dlt[r] = row < p.T ? delta[at] : 0.0f;
  }

  float dq_acc[kDTiles][4] = {};
  uint32_t qf[Tl::kQInRegisters ? kKSteps : 1][4], of[Tl::kQInRegisters ? kKSteps : 1][4];
  int buf = 0;
  for (int n0 = n_first; n0 < kv_end; n0 += kBlockN, buf ^= 1) {
    dev::cp_async_wait<0>();  // this block's K and V (and Q, dO the first time) have landed
    __syncthreads();          // ... for every thread; every warp is done with the last block and its buffer
    if (n0 + kBlockN < kv_end) {
      load_tile_async<kBlockN, D, kThreads>(sK + (buf ^ 1) * kBlockN * kStride, kh, p.ld_kv, n0 + kBlockN, kv_end);
      load_tile_async<kBlockN, D, kThreads>(sV + (buf ^ 1) * kBlockN * kStride, vh, p.ld_kv, n0 + kBlockN, kv_end);
      dev::cp_async_commit();
    }
    if constexpr (Tl::kQInRegisters) {
      if (n0 == n_first) {
#pragma unroll
        for (int kk = 0; kk < kKSteps; ++kk) {
          load_a(qf[kk], sQ, kStride, warp_row0, kk * 16);
          load_a(of[kk], sdO, kStride, warp_row0, kk * 16);
        }
      }
    }
    const bf16* sKb = sK + buf * kBlockN * kStride;
    const bf16* sVb = sV + buf * kBlockN * kStride;

    // S = Q K^T and dP = dO V^T: 16 query rows x kBlockN keys per warp.
    float s[kNTiles][4] = {}, dp[kNTiles][4] = {};
#pragma unroll
    for (int kk = 0; kk < kKSteps; ++kk) {
      uint32_t aq[4], ao[4];
      if constexpr (Tl::kQInRegisters) {
#pragma unroll
        for (int e = 0; e < 4; ++e) aq[e] = qf[kk][e], ao[e] = of[kk][e];
      } else {
        load_a(aq, sQ, kStride, warp_row0, kk * 16);
        load_a(ao, sdO, kStride, warp_row0, kk * 16);
      }
#pragma unroll
      for (int nj = 0; nj < kNTiles / 2; ++nj) {
        uint32_t bk[4], bv[4];
        load_b_n_rows(bk, sKb, kStride, nj * 16, kk * 16);
        load_b_n_rows(bv, sVb, kStride, nj * 16, kk * 16);
        dev::mma_bf16_16816(s[2 * nj], aq, bk[0], bk[1]);
        dev::mma_bf16_16816(s[2 * nj + 1], aq, bk[2], bk[3]);
        dev::mma_bf16_16816(dp[2 * nj], ao, bv[0], bv[1]);
        dev::mma_bf16_16816(dp[2 * nj + 1], ao, bv[2], bv[3]);
      }
    }

    // dS = P * (dP - delta); row g + 8 (e / 2) is a query, column j * 8 + 2 t4 + (e % 2) a key.
    const bool needs_mask = n0 + kBlockN - 1 > m0 || (p.window > 0 && n0 <= q_last - p.window);
#pragma unroll
    for (int j = 0; j < kNTiles; ++j)
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        float prob = exp2f(fmaf(s[j][e], p.scale_log2, -lse2[e / 2]));
        if (needs_mask) {
          const int query = m0 + warp_row0 + g + 8 * (e / 2), key = n0 + j * 8 + 2 * t4 + (e % 2);
          if (!visible(query, key, p.window)) prob = 0.0f;
        }
        dp[j][e] = prob * (dp[j][e] - dlt[e / 2]);
      }

    // dQ += dS K: k runs over the block's keys.
#pragma unroll
    for (int kk = 0; kk < kBlockN / 16; ++kk) {
      uint32_t ads[4];
      accumulators_to_a(ads, dp[2 * kk], dp[2 * kk + 1]);
#pragma unroll
      for (int dj = 0; dj < kDTiles / 2; ++dj) {
        uint32_t bk[4];
        load_b_k_rows(bk, sKb, kStride, kk * 16, dj * 16);
        dev::mma_bf16_16816(dq_acc[2 * dj], ads, bk[0], bk[1]);
        dev::mma_bf16_16816(dq_acc[2 * dj + 1], ads, bk[2], bk[3]);
      }
    }
  }

  const int row0 = m0 + warp_row0;
  store_rows<kDTiles>(dq + int64_t(b) * p.T * p.ld_q + head * D + int64_t(row0) * p.ld_q, p.ld_q, row0, p.T, dq_acc,
                      p.scale);
}

// ---- launch --------------------------------------------------------------------------------------------

size_t delta_bytes(const FlashAttentionShape& s) { return attention_backward_workspace_bytes(s.B, s.Hq, s.T); }

template <typename Kernel>
void allow_smem(Kernel kernel, size_t bytes) {
  ROOFLINE_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(bytes)));
}

void launch_delta(const Problem& p, const bf16* out, const bf16* dout, float* delta, cudaStream_t stream) {
  const int64_t threads = int64_t(p.B) * p.T * p.Hq * (p.D / 8);
  const unsigned blocks = unsigned((threads + 255) / 256);
  if (p.D == 128)
    flash_delta_kernel<128><<<blocks, 256, 0, stream>>>(p, out, dout, delta);
  else
    flash_delta_kernel<64><<<blocks, 256, 0, stream>>>(p, out, dout, delta);
  ROOFLINE_CUDA_CHECK_LAUNCH();
}

template <int D, int DKDV_WARPS, int DQ_WARPS>
void launch_backward(const Problem& p, const bf16* q, const bf16* k, const bf16* v, const bf16* out, const float* lse,
                     const bf16* dout, bf16* dq, bf16* dk, bf16* dv, float* delta, int part, cudaStream_t stream) {
  launch_delta(p, out, dout, delta, stream);
  if (part != 2) {
    using Tl = DkDvTiles<D, DKDV_WARPS>;
    allow_smem(flash_dkdv_kernel<D, DKDV_WARPS>, Tl::kSmemBytes);
    const dim3 grid(unsigned((p.T + Tl::kBlockN - 1) / Tl::kBlockN), unsigned(p.Hkv), unsigned(p.B));
    flash_dkdv_kernel<D, DKDV_WARPS>
        <<<grid, Tl::kThreads, Tl::kSmemBytes, stream>>>(p, q, k, v, dout, lse, delta, dk, dv);
    ROOFLINE_CUDA_CHECK_LAUNCH();
  }
  if (part != 1) {
    using Tl = DqTiles<D, DQ_WARPS>;
    allow_smem(flash_dq_kernel<D, DQ_WARPS>, Tl::kSmemBytes);
    const dim3 grid(unsigned((p.T + Tl::kBlockM - 1) / Tl::kBlockM), unsigned(p.Hq), unsigned(p.B));
    flash_dq_kernel<D, DQ_WARPS><<<grid, Tl::kThreads, Tl::kSmemBytes, stream>>>(p, q, k, v, dout, lse, delta, dq);
    ROOFLINE_CUDA_CHECK_LAUNCH();
  }
}

}  // namespace

size_t flash_attention_backward_workspace(const FlashAttentionShape& s) { return delta_bytes(s); }

namespace lab {

// The wgmma pair is the default: on H100 (session 7, roofline_gpu_train_attention_bench, causal, B * T = 16k) it
// takes 387 us against mma.sync's 440 at head_dim 64, T 1024 (GPT-2), 1,241 against 1,406 at T 4096, and
// 1,452 against 2,158 (T 1024) and 4,662 against 7,643 (T 4096) at head_dim 128 (32 / 8 heads).
// ROOFLINE_TRAIN_ATTN_BWD_WGMMA=0 keeps the mma.sync pair (to measure against it).
bool backward_wgmma_by_default() {
  static const bool on = env_switch("ROOFLINE_TRAIN_ATTN_BWD_WGMMA", true);
  return on;
}

bool dkdv_pipelined_by_default() {
  static const bool on = env_switch("ROOFLINE_TRAIN_ATTN_DKDV_PIPELINED", true);
  return on;
}

void flash_attention_backward(const FlashAttentionShape& s, const __nv_bfloat16* q, const __nv_bfloat16* k,
                              const __nv_bfloat16* v, const __nv_bfloat16* out, const float* lse,
                              const __nv_bfloat16* dout, __nv_bfloat16* dq, __nv_bfloat16* dk, __nv_bfloat16* dv,
                              void* workspace, BackwardVariant variant, cudaStream_t stream) {
  nvtx3::scoped_range range("train::cuda::flash_attention_backward");
  const void* pointers[] = {q, k, v, out, dout, dq, dk, dv};
  const Problem p = resolve(s, "flash_attention_backward", pointers, 8);
  if (p.B == 0 || p.T == 0) return;
  ROOFLINE_CHECK(workspace != nullptr, "flash_attention_backward: no workspace ({} bytes needed)",
                 flash_attention_backward_workspace(s));
  // Default: 4 warps in both kernels. Measured on H100 (bench/micro/gpu_train_attention_bench, 16k tokens):
  // 8-warp CTAs, which fetch each Q/dO (or K/V) tile once for twice the rows, were 1-9% slower in either
  // kernel, up to 14% in both.
  if (variant.dkdv_warps == 0) variant.dkdv_warps = 4;
  if (variant.dq_warps == 0) variant.dq_warps = 4;
  float* delta = static_cast<float*>(workspace);
  if (variant.wgmma) {
    launch_delta(p, out, dout, delta, stream);
    const int dkdv_warpgroups = variant.dkdv_warpgroups ? variant.dkdv_warpgroups : p.D == 64 ? 1 : 2;
    const int dq_warpgroups = variant.dq_warpgroups ? variant.dq_warpgroups : 2;
    launch_backward_wgmma(p, q, k, v, dout, lse, delta, dq, dk, dv, dkdv_warpgroups, dq_warpgroups, variant.serial,
                          variant.dkdv_pipelined, variant.part, stream);
    return;
  }
  const int key = p.D * 100 + variant.dkdv_warps * 10 + variant.dq_warps;
  switch (key) {
#define ROOFLINE_BACKWARD_CASE(D, A, B)                                                                  \
  case D * 100 + A * 10 + B:                                                                             \
    launch_backward<D, A, B>(p, q, k, v, out, lse, dout, dq, dk, dv, delta, variant.part, stream); \
    break;
    ROOFLINE_BACKWARD_CASE(64, 4, 4)
    ROOFLINE_BACKWARD_CASE(64, 4, 8)
    ROOFLINE_BACKWARD_CASE(64, 8, 4)
    ROOFLINE_BACKWARD_CASE(64, 8, 8)
    ROOFLINE_BACKWARD_CASE(128, 4, 4)
    ROOFLINE_BACKWARD_CASE(128, 4, 8)
    ROOFLINE_BACKWARD_CASE(128, 8, 4)
    ROOFLINE_BACKWARD_CASE(128, 8, 8)
#undef ROOFLINE_BACKWARD_CASE
    default:
      fail("flash_attention_backward: no kernels for head_dim {} with {} dK/dV warps and {} dQ warps", p.D,
           variant.dkdv_warps, variant.dq_warps);
  }
}

}  // namespace lab

void flash_attention_backward(const FlashAttentionShape& s, const __nv_bfloat16* q, const __nv_bfloat16* k,
                              const __nv_bfloat16* v, const __nv_bfloat16* out, const float* lse,
                              const __nv_bfloat16* dout, __nv_bfloat16* dq, __nv_bfloat16* dk, __nv_bfloat16* dv,
                              void* workspace, cudaStream_t stream) {
  lab::BackwardVariant variant;
  variant.wgmma = lab::backward_wgmma_by_default();
  // head_dim 64 (1 dK/dV warpgroup): the pipelined dK/dV kernel at 2 CTAs per multiprocessor. Measured on H100
  // (session 8, roofline_gpu_train_attention_bench, causal, 16k tokens): 358 us against 390 at T 1024 (GPT-2),
  // 1,134 against 1,247 at T 4096. ROOFLINE_TRAIN_ATTN_DKDV_PIPELINED=0 keeps the plain kernel.
  if (variant.wgmma && s.D == 64 && lab::dkdv_pipelined_by_default()) variant.dkdv_pipelined = 2;
  lab::flash_attention_backward(s, q, k, v, out, lse, dout, dq, dk, dv, workspace, variant, stream);
}

}  // namespace roofline::train::cuda
