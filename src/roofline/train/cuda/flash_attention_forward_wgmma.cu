// Training flash-attention forward on Hopper's warpgroup tensor cores (wgmma, sm_90a): the function of
// flash_attention_forward.cu (same arguments, masks, out and lse), for head_dim 64 or 128.
//   out[b, t, h] = sum_j softmax_j(scale * q[b, t, h] . k[b, j, h / G]) v[b, j, h / G],  j visible from t
//   lse[b, h, t] = log sum_j exp(scale * q . k_j)   (natural log, what the backward consumes)
// The kernel is the inference prefill kernel's (backend/cuda/paged_attention_prefill_wgmma.cu) on the training
// layouts: token-major rows with a row stride (dense, or column views of one fused qkv row), no paging. A CTA is
// two warpgroups (256 threads); each owns 64 consecutive query rows of one query head of one sequence, so a CTA
// covers kBlockM = 128 rows and walks the key blocks of BN keys its rows can see. Per key block, per warpgroup:
//   S = Q K^T   wgmma m64nBNk16, A = Q and B = K from shared memory (K-major descriptors), f32 in registers
//   online softmax in registers (raw-unit max, one FFMA + exp2 per probability, O rescaled only on growth)
//   O += P V    wgmma m64nDk16, A = P from registers (S accumulators of two n8 tiles = one k16 A fragment),
//               B = V from shared memory, N-major (transposed)
// S of block j and P V of block j - 1 are issued together and the softmax of j runs while the tensor cores
// finish P V of j - 1 (FlashAttention-3's intra-warpgroup overlap). Tiles live in shared memory in the
// 128-byte-swizzled layout the descriptors describe (device/wgmma.cuh, "SW128 rows"): Q [128 x D], K [BN x D] in
// two stages, V [BN x D] in three (V of j - 1 is read while V of j + 1 lands); copies, descriptors and issue are
// the prefill kernel's (device/wgmma_attention_tiles.cuh). Each block starts with cp.async.wait_group 0,
// fence.proxy.async (cp.async writes through the generic proxy, wgmma reads through the async proxy) and a
// barrier, which also tells every warpgroup that the stages the next copies overwrite are free again. Rows past
// T are zero-filled on load and never stored; keys past the CTA's last visible key are zero-filled and masked
// (as the mma.sync kernel).
#include <nvtx3/nvtx3.hpp>

#include <cmath>

#include "roofline/backend/cuda/cuda_check.h"
#include "roofline/backend/cuda/device/wgmma.cuh"
#include "roofline/backend/cuda/device/wgmma_attention.cuh"
#include "roofline/backend/cuda/device/wgmma_attention_tiles.cuh"
#include "roofline/core/error.h"
#include "roofline/train/cuda/flash_attention_tiles.cuh"

namespace roofline::train::cuda::detail {

namespace {

// Three V stages: the overlapped loop reads V one block late.
template <int D, int BN>
using WgTiles = dev::WgForwardTiles<D, BN, 3>;

template <int D, int BN, int kMinBlocks>
__global__ void __launch_bounds__(dev::kForwardThreads, kMinBlocks)
    flash_forward_wgmma_kernel(Problem p, const bf16* __restrict__ q, const bf16* __restrict__ k,
                               const bf16* __restrict__ v, bf16* __restrict__ out, float* __restrict__ lse) {
  using T = WgTiles<D, BN>;
  constexpr int kBlockM = T::kBlockM;
  constexpr int kNTiles = BN / 8;  // n8 tiles of the score accumulator
  extern __shared__ unsigned char smem_raw[];
  const dev::ForwardTileAddresses tiles = T::addresses(smem_raw);

  // Last query blocks first: under the causal mask they have the most keys.
  const int m0 = int(gridDim.x - 1 - blockIdx.x) * kBlockM;
  const int head = int(blockIdx.y), b = int(blockIdx.z), kv_head = head / (p.Hq / p.Hkv);
  const int tid = int(threadIdx.x);
  const int warp_group = tid / 128, warp = (tid / 32) % 4, lane = tid % 32;
  const int g = lane / 4, t4 = lane % 4;
  const bf16* qh = q + int64_t(b) * p.T * p.ld_q + head * D;
  const bf16* kh = k + int64_t(b) * p.T * p.ld_kv + kv_head * D;
  const bf16* vh = v + int64_t(b) * p.T * p.ld_kv + kv_head * D;

  // Keys this CTA's rows can see: [kv_begin, kv_end).
  const int q_last = min(m0 + kBlockM, p.T) - 1;
  const int kv_begin = p.window > 0 ? max(0, m0 - p.window + 1) : 0;
  const int kv_end = q_last + 1;
  const int n_first = kv_begin / BN * BN;

  const int chunk = tid % T::kChunks, first_row = tid / T::kChunks;
  T::load_q(tiles, qh, p.ld_q, m0, p.T, first_row, chunk);
  // Block j holds keys n_first + j BN ..; keys from kv_end on are zero-filled.
  auto load_block = [&](int j) {
    const int n0 = n_first + j * BN;
    T::load_kv_block(tiles, j, kh, vh, p.ld_kv, first_row, chunk, [&](int, int r, int& row) {
      row = n0 + r;
      return row < kv_end;
    });
  };
  load_block(0);
  const dev::ForwardDescriptors desc = T::descriptors(tiles, warp_group);

  float o[D / 2];  // O: this warpgroup's 64 x D accumulator (layout in device/wgmma.cuh)
#pragma unroll
  for (int i = 0; i < D / 2; ++i) o[i] = 0.0f;
  float row_max[2] = {-INFINITY, -INFINITY}, row_sum[2] = {0.0f, 0.0f};  // rows g and g + 8; raw score units
  const float scale_log2 = p.scale_log2;
  const int row0 = warp_group * 64 + warp * 16 + g;  // this thread's first row within the CTA tile (and row0 + 8)
  float s[BN / 2];          // S, then P in f32, of the current block
  uint32_t pf[BN / 16][4];  // P as A fragments of the block whose P V is issued next

  // Top of block j: its K and V have landed and are visible to the tensor cores for every thread; every
  // warpgroup is done with the stages the next loads overwrite.
  auto enter_block = [&] { dev::await_tiles(); };
  // The next block's loads (into stages no product of block j reads): after block j's products are issued, so
  // that the copies run under the tensor cores; with two CTAs per multiprocessor (128 registers) before them,
  // as the inference kernel does (held across the products, their registers would spill).
  constexpr bool kLoadsAfterIssue = kMinBlocks == 1;
  auto prefetch = [&](bool after_issue, int j, int n0) {
    if (after_issue != kLoadsAfterIssue) return;
    if (n0 + BN < kv_end) load_block(j + 1);
  };
  // The first k-step of S overwrites s (scale-d = 0); zeroed once so that no register a wgmma reads is undefined.
#pragma unroll
  for (int i = 0; i < BN / 2; ++i) s[i] = 0.0f;
  auto issue_scores = [&](int j) { T::issue_scores(s, desc, j); };
  auto issue_values = [&](int j) { T::issue_values(o, pf, desc, j); };
  // Masks s (keys n0 ..: the diagonal and window edges only) and runs the block's online softmax.
  auto softmax = [&](int n0, float (&correction)[2]) {
    const bool needs_mask = n0 + BN - 1 > m0 || (p.window > 0 && n0 <= q_last - p.window);
    if (needs_mask) {
#pragma unroll
      for (int j = 0; j < kNTiles; ++j)
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          const int row = m0 + row0 + (e / 2) * 8, key = n0 + j * 8 + t4 * 2 + (e % 2);
          if (!visible(row, key, p.window)) s[4 * j + e] = -INFINITY;
        }
    }
    return dev::online_softmax<BN>(s, row_max, row_sum, scale_log2, correction);
  };
  dev::overlapped_key_blocks<D, BN>(n_first, kv_end, s, o, pf, enter_block, prefetch, issue_scores, issue_values,
                                    softmax);

  // out = O / l, rows g and g + 8 of each warp's 16, pairs of columns per lane; lse = m * scale + ln l (every
  // valid row sees at least itself, so l >= 1).
  bf16* oh = out + int64_t(b) * p.T * p.ld_o + head * D;
  float* lse_row = lse + (int64_t(b) * p.Hq + head) * p.T;
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    float l = row_sum[r];
    l += __shfl_xor_sync(dev::kFullMask, l, 1);
    l += __shfl_xor_sync(dev::kFullMask, l, 2);
    const int row = m0 + row0 + r * 8;
    if (row >= p.T) continue;
    const float inv = 1.0f / l;
    if (t4 == 0) lse_row[row] = row_max[r] * p.scale + logf(l);
#pragma unroll
    for (int dj = 0; dj < D / 8; ++dj) {
      const __nv_bfloat162 pair = __floats2bfloat162_rn(o[4 * dj + 2 * r] * inv, o[4 * dj + 2 * r + 1] * inv);
      *reinterpret_cast<__nv_bfloat162*>(oh + int64_t(row) * p.ld_o + dj * 8 + t4 * 2) = pair;
    }
  }
}

template <int D, int BN, int kMinBlocks>
void launch(const Problem& p, const bf16* q, const bf16* k, const bf16* v, bf16* out, float* lse,
            cudaStream_t stream) {
  using T = WgTiles<D, BN>;
  auto kernel = flash_forward_wgmma_kernel<D, BN, kMinBlocks>;
  ROOFLINE_CUDA_CHECK(
      cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(T::kSmemBytes)));
  const dim3 grid(unsigned((p.T + T::kBlockM - 1) / T::kBlockM), unsigned(p.Hq), unsigned(p.B));
  kernel<<<grid, dev::kForwardThreads, T::kSmemBytes, stream>>>(p, q, k, v, out, lse);
  ROOFLINE_CUDA_CHECK_LAUNCH();
}

}  // namespace

void launch_forward_wgmma(const Problem& p, const bf16* q, const bf16* k, const bf16* v, bf16* out, float* lse,
                          int block_keys, cudaStream_t stream) {
  nvtx3::scoped_range range("train::cuda::flash_attention_forward_wgmma");
  ROOFLINE_CHECK(block_keys == 64 || block_keys == 128, "flash_attention_forward: wgmma takes 64 or 128 keys per "
                 "block, not {}", block_keys);
  // head_dim 64 with 64-key blocks fits two CTAs per multiprocessor (57 KB of shared memory, <= 128 registers).
  if (p.D == 64 && block_keys == 64) launch<64, 64, 2>(p, q, k, v, out, lse, stream);
  else if (p.D == 64) launch<64, 128, 1>(p, q, k, v, out, lse, stream);
  else if (block_keys == 64) launch<128, 64, 1>(p, q, k, v, out, lse, stream);
  else launch<128, 128, 1>(p, q, k, v, out, lse, stream);
}

}  // namespace roofline::train::cuda::detail
