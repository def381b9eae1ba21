// Training flash-attention forward (flash_attention.h), FlashAttention-2 style:
//   out[b, t, h] = sum_j softmax_j(scale * q[b, t, h] . k[b, j, h / G]) v[b, j, h / G],  j visible from t
//   lse[b, h, t] = log sum_j exp(scale * q . k_j)   (natural log; the backward recomputes P = exp(S - lse))
// A CTA of kWarps warps owns kBlockM query rows of one query head of one sequence (16 * MT rows per warp, so
// each K/V fragment read from shared memory feeds MT tensor-core products) and walks the key blocks of
// kBlockN keys those rows can see. Per key block, in each warp's registers:
//   S = Q K^T (mma.sync m16n8k16 bf16 -> f32); m' = max(m, rowmax S); P = exp2(S - m'); l = l 2^(m-m') + rowsum P;
//   O = O 2^(m-m') + P V
// and at the end out = O / l. The max is kept in raw score units with scale * log2(e) folded into one FFMA per
// probability; O is rescaled only when some row's max grew. K and V stream through two shared-memory buffers
// with cp.async: block n + 1 loads during all of block n's work, and one barrier per block suffices (the
// barrier at the top of block n proves every warp is done with block n - 1, whose buffer is refilled next).
// Rows past T are zero-filled on load and never stored; keys past the rows' last visible key are zero-filled
// and masked.
#include <nvtx3/nvtx3.hpp>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>

#include "roofline/backend/cuda/cuda_check.h"
#include "roofline/core/env.h"
#include "roofline/core/error.h"
#include "roofline/train/cuda/flash_attention_lab.h"
#include "roofline/train/cuda/flash_attention_tiles.cuh"

namespace roofline::train::cuda {

namespace detail {

Problem resolve(const FlashAttentionShape& s, const char* op, const void* const* pointers, int num_pointers) {
  ROOFLINE_CHECK(s.B >= 0 && s.T >= 0 && s.Hq > 0 && s.Hkv > 0, "{}: bad shape B {} T {} Hq {} Hkv {}", op, s.B, s.T,
                 s.Hq, s.Hkv);
  ROOFLINE_CHECK(s.Hq % s.Hkv == 0, "{}: Hq {} must be a multiple of Hkv {}", op, s.Hq, s.Hkv);
  ROOFLINE_CHECK(s.D == 64 || s.D == 128, "{}: head_dim {} has no CUDA kernel (64 and 128 do)", op, s.D);
  ROOFLINE_CHECK(s.window >= 0, "{}: window {} must be >= 0 (0: full causal)", op, s.window);
  ROOFLINE_CHECK(s.T < (int64_t(1) << 30) && s.B <= 65535 && s.Hq <= 65535, "{}: B {} T {} Hq {} too large", op, s.B,
                 s.T, s.Hq);
  Problem p{};
  p.B = int(s.B), p.T = int(s.T), p.Hq = int(s.Hq), p.Hkv = int(s.Hkv), p.D = int(s.D);
  p.window = int(std::min<int64_t>(s.window, s.T + 1));  // a window past T sees everything: same as causal
  p.ld_q = s.ld_q ? s.ld_q : s.Hq * s.D;
  p.ld_kv = s.ld_kv ? s.ld_kv : s.Hkv * s.D;
  p.ld_o = s.ld_o ? s.ld_o : s.Hq * s.D;
  ROOFLINE_CHECK(p.ld_q >= s.Hq * s.D && p.ld_kv >= s.Hkv * s.D && p.ld_o >= s.Hq * s.D,
                 "{}: row strides ld_q {} ld_kv {} ld_o {} are shorter than the rows ({}, {}, {})", op, p.ld_q, p.ld_kv,
                 p.ld_o, s.Hq * s.D, s.Hkv * s.D, s.Hq * s.D);
  ROOFLINE_CHECK(p.ld_q % 8 == 0 && p.ld_kv % 8 == 0 && p.ld_o % 8 == 0,
                 "{}: row strides ld_q {} ld_kv {} ld_o {} must be multiples of 8 elements (16-byte rows)", op, p.ld_q,
                 p.ld_kv, p.ld_o);
  for (int i = 0; i < num_pointers; ++i)
    ROOFLINE_CHECK(reinterpret_cast<uintptr_t>(pointers[i]) % 16 == 0, "{}: operand {} is not 16-byte aligned", op, i);
  p.scale = float(1.0 / std::sqrt(double(s.D)));
  p.scale_log2 = p.scale * kLog2e;
  return p;
}

}  // namespace detail

namespace {

using namespace detail;

// WARPS warps of MT m16 tiles of query rows each, BN keys per step (S is 16 MT x BN per warp, beside O
// 16 MT x D). More rows per CTA: each K/V tile fetched from L2 serves more rows.
template <int D, int MT, int BN, int WARPS>
struct ForwardTiles {
  static constexpr int kWarps = WARPS, kThreads = 32 * WARPS;
  static_assert(MT == 1 || MT == 2, "one or two m16 tiles per warp");
  static_assert(BN % 16 == 0, "P V consumes keys 16 at a time");
  static constexpr int kBlockM = 16 * MT * kWarps;      // query rows per CTA
  static constexpr int kBlockN = BN;                    // keys per step
  static constexpr int kStride = D + kPad;
  static constexpr bool kQInRegisters = MT * D <= 128;  // else Q fragments are re-read per key block
  // Shared memory: Q [kBlockM][kStride]; K, V [2][kBlockN][kStride] (two buffers each).
  static constexpr size_t kSmemBytes = size_t(kBlockM + 4 * kBlockN) * kStride * sizeof(bf16);
};

template <int D, int MT, int BN, int WARPS>
__global__ void __launch_bounds__(32 * WARPS) flash_forward_kernel(Problem p, const bf16* __restrict__ q,
                                                                 const bf16* __restrict__ k,
                                                                 const bf16* __restrict__ v, bf16* __restrict__ out,
                                                                 float* __restrict__ lse) {
  using Tl = ForwardTiles<D, MT, BN, WARPS>;
  constexpr int kThreads = Tl::kThreads;
  constexpr int kBlockM = Tl::kBlockM, kBlockN = Tl::kBlockN, kStride = Tl::kStride;
  constexpr int kNTiles = kBlockN / 8, kDTiles = D / 8, kKSteps = D / 16;
  extern __shared__ __align__(16) unsigned char smem_raw[];
  bf16* sQ = reinterpret_cast<bf16*>(smem_raw);     // [kBlockM][kStride]
  bf16* sK_all = sQ + kBlockM * kStride;            // [2][kBlockN][kStride]
  bf16* sV_all = sK_all + 2 * kBlockN * kStride;    // [2][kBlockN][kStride]

  // Last query blocks first: under the causal mask they have the most keys.
  const int m0 = int(gridDim.x - 1 - blockIdx.x) * kBlockM;
  const int head = int(blockIdx.y), b = int(blockIdx.z), kv_head = head / (p.Hq / p.Hkv);
  const int warp = int(threadIdx.x) / 32, lane = int(threadIdx.x) % 32, g = lane / 4, t4 = lane % 4;
  const int warp_row0 = warp * 16 * MT;
  const bf16* qh = q + int64_t(b) * p.T * p.ld_q + head * D;
  const bf16* kh = k + int64_t(b) * p.T * p.ld_kv + kv_head * D;
  const bf16* vh = v + int64_t(b) * p.T * p.ld_kv + kv_head * D;

  const int q_last = min(m0 + kBlockM, p.T) - 1;
  const int kv_begin = p.window > 0 ? max(0, m0 - p.window + 1) : 0;
  const int kv_end = q_last + 1;  // keys [kv_begin, kv_end) are all the rows of this CTA can see
  const int n_first = kv_begin / kBlockN * kBlockN;

  load_tile_async<kBlockM, D, kThreads>(sQ, qh, p.ld_q, m0, p.T);
  load_tile_async<kBlockN, D, kThreads>(sK_all, kh, p.ld_kv, n_first, kv_end);
  load_tile_async<kBlockN, D, kThreads>(sV_all, vh, p.ld_kv, n_first, kv_end);
  dev::cp_async_commit();

  float o[MT][kDTiles][4] = {};                       // O: 16 MT x D per warp
  float row_max[MT][2], row_sum[MT][2];               // rows g, g + 8; raw score units; this lane's part of l
#pragma unroll
  for (int mt = 0; mt < MT; ++mt)
    row_max[mt][0] = row_max[mt][1] = -INFINITY, row_sum[mt][0] = row_sum[mt][1] = 0.0f;
  uint32_t qf[Tl::kQInRegisters ? MT : 1][Tl::kQInRegisters ? kKSteps : 1][4];

  int buf = 0;
  for (int n0 = n_first; n0 < kv_end; n0 += kBlockN, buf ^= 1) {
    dev::cp_async_wait<0>();  // K, V of this block (and Q the first time) have landed
    __syncthreads();          // ... for every thread; every warp is done with the last block and its buffer
    if (n0 + kBlockN < kv_end) {
      load_tile_async<kBlockN, D, kThreads>(sK_all + (buf ^ 1) * kBlockN * kStride, kh, p.ld_kv, n0 + kBlockN, kv_end);
      load_tile_async<kBlockN, D, kThreads>(sV_all + (buf ^ 1) * kBlockN * kStride, vh, p.ld_kv, n0 + kBlockN, kv_end);
      dev::cp_async_commit();
    }
    const bf16* sK = sK_all + buf * kBlockN * kStride;
    const bf16* sV = sV_all + buf * kBlockN * kStride;
    if constexpr (Tl::kQInRegisters) {
      if (n0 == n_first) {
#pragma unroll
        for (int mt = 0; mt < MT; ++mt)
#pragma unroll
          for (int kk = 0; kk < kKSteps; ++kk) load_a(qf[mt][kk], sQ, kStride, warp_row0 + mt * 16, kk * 16);
      }
    }

    // S = Q K^T: (16 MT x kBlockN) per warp.
    float s[MT][kNTiles][4] = {};
#pragma unroll
    for (int kk = 0; kk < kKSteps; ++kk) {
      uint32_t af[MT][4];
#pragma unroll
      for (int mt = 0; mt < MT; ++mt) {
        if constexpr (Tl::kQInRegisters) {
#pragma unroll
          for (int e = 0; e < 4; ++e) af[mt][e] = qf[mt][kk][e];
        } else {
          load_a(af[mt], sQ, kStride, warp_row0 + mt * 16, kk * 16);
        }
      }
#pragma unroll
      for (int nj = 0; nj < kNTiles / 2; ++nj) {
        uint32_t bk[4];
        load_b_n_rows(bk, sK, kStride, nj * 16, kk * 16);
#pragma unroll
        for (int mt = 0; mt < MT; ++mt) {
          dev::mma_bf16_16816(s[mt][2 * nj], af[mt], bk[0], bk[1]);
          dev::mma_bf16_16816(s[mt][2 * nj + 1], af[mt], bk[2], bk[3]);
        }
      }
    }

    // Mask only blocks that hold an invisible (row, key) pair: the diagonal (and keys past it, zero-filled),
    // and the window's trailing edge.
    const bool needs_mask = n0 + kBlockN - 1 > m0 || (p.window > 0 && n0 <= q_last - p.window);
    if (needs_mask) {
#pragma unroll
      for (int mt = 0; mt < MT; ++mt)
#pragma unroll
        for (int j = 0; j < kNTiles; ++j)
#pragma unroll
          for (int e = 0; e < 4; ++e) {
            const int row = m0 + warp_row0 + mt * 16 + g + (e / 2) * 8, key = n0 + j * 8 + t4 * 2 + (e % 2);
            if (!visible(row, key, p.window)) s[mt][j][e] = -INFINITY;
          }
    }

    // Online softmax; the four lanes of a quad share rows g (e = 0, 1) and g + 8 (e = 2, 3).
#pragma unroll
    for (int mt = 0; mt < MT; ++mt)
#pragma unroll
      for (int r = 0; r < 2; ++r) {
        float block_max = -INFINITY;
#pragma unroll
        for (int j = 0; j < kNTiles; ++j) block_max = fmaxf(block_max, fmaxf(s[mt][j][2 * r], s[mt][j][2 * r + 1]));
        block_max = fmaxf(block_max, __shfl_xor_sync(dev::kFullMask, block_max, 1));
        block_max = fmaxf(block_max, __shfl_xor_sync(dev::kFullMask, block_max, 2));
        const float new_max = fmaxf(row_max[mt][r], block_max);
        const bool grew = new_max > row_max[mt][r];
        if (__any_sync(dev::kFullMask, grew)) {
          const float correction = grew ? exp2f((row_max[mt][r] - new_max) * p.scale_log2) : 1.0f;  // 0 from -inf
          row_max[mt][r] = new_max;
          row_sum[mt][r] *= correction;
#pragma unroll
          for (int dj = 0; dj < kDTiles; ++dj) o[mt][dj][2 * r] *= correction, o[mt][dj][2 * r + 1] *= correction;
        }
        const float neg_base = new_max == -INFINITY ? 0.0f : -new_max * p.scale_log2;  // nothing visible yet: p = 0
#pragma unroll
        for (int j = 0; j < kNTiles; ++j) {
          s[mt][j][2 * r] = exp2f(fmaf(s[mt][j][2 * r], p.scale_log2, neg_base));
          s[mt][j][2 * r + 1] = exp2f(fmaf(s[mt][j][2 * r + 1], p.scale_log2, neg_base));
          row_sum[mt][r] += s[mt][j][2 * r] + s[mt][j][2 * r + 1];
        }
      }
    uint32_t pf[MT][kBlockN / 16][4];
#pragma unroll
    for (int mt = 0; mt < MT; ++mt)
#pragma unroll
      for (int kk = 0; kk < kBlockN / 16; ++kk) accumulators_to_a(pf[mt][kk], s[mt][2 * kk], s[mt][2 * kk + 1]);

    // O += P V.
#pragma unroll
    for (int kk = 0; kk < kBlockN / 16; ++kk)
#pragma unroll
      for (int dj = 0; dj < kDTiles / 2; ++dj) {
        uint32_t bv[4];
        load_b_k_rows(bv, sV, kStride, kk * 16, dj * 16);
#pragma unroll
        for (int mt = 0; mt < MT; ++mt) {
          dev::mma_bf16_16816(o[mt][2 * dj], pf[mt][kk], bv[0], bv[1]);
          dev::mma_bf16_16816(o[mt][2 * dj + 1], pf[mt][kk], bv[2], bv[3]);
        }
      }
  }

  // out = O / l; lse = m * scale + ln l (every valid row sees at least itself, so l >= 1).
  bf16* oh = out + int64_t(b) * p.T * p.ld_o + head * D;
  float* lse_row = lse + (int64_t(b) * p.Hq + head) * p.T;
#pragma unroll
  for (int mt = 0; mt < MT; ++mt) {
    float inv[2];
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      float l = row_sum[mt][r];
      l += __shfl_xor_sync(dev::kFullMask, l, 1);
      l += __shfl_xor_sync(dev::kFullMask, l, 2);
      inv[r] = 1.0f / l;
      const int row = m0 + warp_row0 + mt * 16 + g + 8 * r;
      if (t4 == 0 && row < p.T) lse_row[row] = row_max[mt][r] * p.scale + logf(l);
    }
#pragma unroll
    for (int dj = 0; dj < kDTiles; ++dj)
#pragma unroll
      for (int e = 0; e < 4; ++e) o[mt][dj][e] *= inv[e / 2];
    const int row0 = m0 + warp_row0 + mt * 16;
    store_rows<kDTiles>(oh + int64_t(row0) * p.ld_o, p.ld_o, row0, p.T, o[mt], 1.0f);
  }
}

template <int D, int MT, int BN, int WARPS>
void launch_forward(const Problem& p, const bf16* q, const bf16* k, const bf16* v, bf16* out, float* lse,
                    cudaStream_t stream) {
  using Tl = ForwardTiles<D, MT, BN, WARPS>;
  ROOFLINE_CUDA_CHECK(cudaFuncSetAttribute(flash_forward_kernel<D, MT, BN, WARPS>,
                                           cudaFuncAttributeMaxDynamicSharedMemorySize,
                                           int(Tl::kSmemBytes)));
  const dim3 grid(unsigned((p.T + Tl::kBlockM - 1) / Tl::kBlockM), unsigned(p.Hq), unsigned(p.B));
  flash_forward_kernel<D, MT, BN, WARPS><<<grid, Tl::kThreads, Tl::kSmemBytes, stream>>>(p, q, k, v, out, lse);
  ROOFLINE_CUDA_CHECK_LAUNCH();
}

}  // namespace

namespace lab {

void flash_attention_forward(const FlashAttentionShape& s, const __nv_bfloat16* q, const __nv_bfloat16* k,
                             const __nv_bfloat16* v, __nv_bfloat16* out, float* lse, ForwardVariant variant,
                             cudaStream_t stream) {
  nvtx3::scoped_range range("train::cuda::flash_attention_forward");
  const void* pointers[] = {q, k, v, out};  // lse is written one float at a time
  const Problem p = resolve(s, "flash_attention_forward", pointers, 4);
  if (p.B == 0 || p.T == 0) return;
  // Default tiles: 4 warps of 32 query rows (two m16 tiles share every K/V fragment read from shared
  // memory), 64 keys per step at head_dim 64 and 32 at 128 (what fits beside O in registers). Measured on H100
  // (bench/micro/gpu_train_attention_bench, 16k tokens, T 1024..4096) against the other variants: +5-20% over
  // 16-row warps; 8-warp CTAs (half the K/V traffic from L2) were 7-19% slower.
  if (variant.wgmma) {
    ROOFLINE_CHECK(variant.warps == 8 && variant.warp_rows == 16, "flash_attention_forward: the wgmma kernel runs 8 "
                   "warps of 16 query rows, not {} of {}", variant.warps, variant.warp_rows);
    launch_forward_wgmma(p, q, k, v, out, lse, variant.block_keys, stream);
    return;
  }
  if (variant.warps == 0) variant = p.D == 64 ? ForwardVariant{4, 32, 64} : ForwardVariant{4, 32, 32};
  auto is = [&](int d, int warps, int rows, int keys) {
    return p.D == d && variant.warps == warps && variant.warp_rows == rows && variant.block_keys == keys;
  };
  if (is(64, 4, 16, 64)) launch_forward<64, 1, 64, 4>(p, q, k, v, out, lse, stream);
  else if (is(64, 4, 16, 128)) launch_forward<64, 1, 128, 4>(p, q, k, v, out, lse, stream);
  else if (is(64, 4, 32, 64)) launch_forward<64, 2, 64, 4>(p, q, k, v, out, lse, stream);
  else if (is(64, 8, 16, 64)) launch_forward<64, 1, 64, 8>(p, q, k, v, out, lse, stream);
  else if (is(64, 8, 16, 128)) launch_forward<64, 1, 128, 8>(p, q, k, v, out, lse, stream);
  else if (is(64, 8, 32, 64)) launch_forward<64, 2, 64, 8>(p, q, k, v, out, lse, stream);
  else if (is(128, 4, 16, 64)) launch_forward<128, 1, 64, 4>(p, q, k, v, out, lse, stream);
  else if (is(128, 4, 32, 32)) launch_forward<128, 2, 32, 4>(p, q, k, v, out, lse, stream);
  else if (is(128, 8, 16, 64)) launch_forward<128, 1, 64, 8>(p, q, k, v, out, lse, stream);
  else if (is(128, 8, 32, 32)) launch_forward<128, 2, 32, 8>(p, q, k, v, out, lse, stream);
  else
    fail("flash_attention_forward: no kernel for head_dim {} with {} warps of {} query rows and {} keys per step",
         p.D, variant.warps, variant.warp_rows, variant.block_keys);
}

}  // namespace lab

// The wgmma kernel is the default: on H100 (session 8, roofline_gpu_train_attention_bench, causal, 16k tokens)
// 114.9 us against the mma.sync kernel's 143.5 at head_dim 64, 465.0 against 618.9 at 128.
// ROOFLINE_TRAIN_ATTN_WGMMA=0 (read once) keeps the mma.sync kernels.
static bool environment_wants_wgmma() {
  static const bool wants = env_switch("ROOFLINE_TRAIN_ATTN_WGMMA", true);
  return wants;
}

void flash_attention_forward(const FlashAttentionShape& s, const __nv_bfloat16* q, const __nv_bfloat16* k,
                             const __nv_bfloat16* v, __nv_bfloat16* out, float* lse, cudaStream_t stream) {
  lab::ForwardVariant variant{};
  if ((s.D == 64 || s.D == 128) && environment_wants_wgmma())
    variant = s.D == 64 ? lab::kForwardWgmma64 : lab::kForwardWgmma128;
  lab::flash_attention_forward(s, q, k, v, out, lse, variant, stream);
}

}  // namespace roofline::train::cuda
