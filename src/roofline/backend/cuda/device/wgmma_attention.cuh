// The register-level half of a Hopper flash-attention forward, shared by the inference prefill kernel
// (paged_attention_prefill_wgmma.cu) and the training forward (train/cuda/flash_attention_forward_wgmma.cu),
// which differ only in where Q, K and V come from (pages or strided rows) and in what they write at the end.
// A warpgroup owns 64 query rows; per key block of BN keys:
//   S = Q K^T (wgmma_scores), an online softmax over S in registers (online_softmax), O rescaled only where a
//   row's max grew (rescale_rows), P packed as A fragments (pack_a_fragments), O += P V (wgmma_values).
// Each thread holds rows g and g + 8 of its warp's 16 (r = 0, 1), two adjacent columns per n8 tile (layout in
// wgmma.cuh); the four lanes of a quad share a row.
#pragma once
#include <cuda_bf16.h>

#include <cmath>
#include <cstdint>

#include "roofline/backend/cuda/device/convert.cuh"
#include "roofline/backend/cuda/device/reduce.cuh"
#include "roofline/backend/cuda/device/wgmma.cuh"

namespace roofline::cuda::device {

// S (64 x BN per warpgroup) from shared Q and K (K-major descriptors); accumulate = false overwrites s.
template <int BN>
__device__ __forceinline__ void wgmma_scores(float (&s)[BN / 2], uint64_t q_desc, uint64_t k_desc, bool accumulate) {
  static_assert(BN == 64 || BN == 128, "64 or 128 keys per block");
  if constexpr (BN == 128)
    wgmma_m64n128k16_ss(s, q_desc, k_desc, accumulate);
  else
    wgmma_m64n64k16_ss(s, q_desc, k_desc, accumulate);
}

// O (64 x D per warpgroup) += P (16 keys, A fragments in registers) V (shared, N-major).
template <int D>
__device__ __forceinline__ void wgmma_values(float (&o)[D / 2], const uint32_t (&p)[4], uint64_t v_desc) {
  static_assert(D == 64 || D == 128, "head_dim 64 or 128");
  if constexpr (D == 128)
    wgmma_m64n128k16_rs_bt(o, p, v_desc);
  else
    wgmma_m64n64k16_rs_bt(o, p, v_desc);
}

// One block of the online softmax, after masking (invisible scores are -inf): exponentiates s in place into
// unnormalized probabilities, updates row_max (raw score units: scale > 0 keeps the order, so each probability
// is one FFMA and one exp2) and row_sum, and returns in correction[r] the factor O's row r must be scaled by
// (1 when its max did not grow). Returns whether any row of the warp grew.
template <int BN>
__device__ __forceinline__ bool online_softmax(float (&s)[BN / 2], float (&row_max)[2], float (&row_sum)[2],
                                               float scale_log2, float (&correction)[2]) {
  constexpr int kNTiles = BN / 8;
  bool any_grew = false;
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    float block_max = -INFINITY;
#pragma unroll
    for (int j = 0; j < kNTiles; ++j) block_max = fmaxf(block_max, fmaxf(s[4 * j + 2 * r], s[4 * j + 2 * r + 1]));
    block_max = fmaxf(block_max, __shfl_xor_sync(kFullMask, block_max, 1));
    block_max = fmaxf(block_max, __shfl_xor_sync(kFullMask, block_max, 2));
    const float new_max = fmaxf(row_max[r], block_max);
    const bool grew = new_max > row_max[r];
    correction[r] = grew ? exp2f((row_max[r] - new_max) * scale_log2) : 1.0f;  // 0 from -inf
    any_grew |= grew;
    row_max[r] = new_max;
    row_sum[r] *= correction[r];
    const float neg_base = new_max == -INFINITY ? 0.0f : -new_max * scale_log2;  // nothing visible yet: p = 0
#pragma unroll
    for (int j = 0; j < kNTiles; ++j) {
      s[4 * j + 2 * r] = exp2f(fmaf(s[4 * j + 2 * r], scale_log2, neg_base));
      s[4 * j + 2 * r + 1] = exp2f(fmaf(s[4 * j + 2 * r + 1], scale_log2, neg_base));
      row_sum[r] += s[4 * j + 2 * r] + s[4 * j + 2 * r + 1];
    }
  }
  return __any_sync(kFullMask, any_grew);
}

// O's rows scaled by correction, only where some row of the warp grew (after the first blocks, rare).
template <int D>
__device__ __forceinline__ void rescale_rows(float (&o)[D / 2], const float (&correction)[2], bool any_grew) {
  if (!any_grew) return;
#pragma unroll
  for (int dj = 0; dj < D / 8; ++dj)
#pragma unroll
    for (int e = 0; e < 4; ++e) o[4 * dj + e] *= correction[e / 2];
}

// An accumulator of BN columns (P, or dS in the backward) rounded to bf16 pairs as A fragments: n8 tiles 2kk
// and 2kk + 1 (columns 16kk .. 16kk + 15) are k-step kk's fragment (wgmma.cuh).
template <int BN>
__device__ __forceinline__ void pack_a_fragments(uint32_t (&pf)[BN / 16][4], const float (&s)[BN / 2]) {
#pragma unroll
  for (int kk = 0; kk < BN / 16; ++kk) {
    pf[kk][0] = pack_bf16x2(s[8 * kk + 0], s[8 * kk + 1]);
    pf[kk][1] = pack_bf16x2(s[8 * kk + 2], s[8 * kk + 3]);
    pf[kk][2] = pack_bf16x2(s[8 * kk + 4], s[8 * kk + 5]);
    pf[kk][3] = pack_bf16x2(s[8 * kk + 6], s[8 * kk + 7]);
  }
}

// The key-block loop with FlashAttention-3's intra-warpgroup overlap: S of block j and P V of block j - 1 are
// issued together, and the softmax of block j runs while the tensor cores finish P V of j - 1. O's rescale for
// block j waits for that P V (O = (O + P_{j-1} V_{j-1}) * c_j); P_j is packed after it, so the A fragments in
// flight are never overwritten. The caller's V ring needs three stages (V_{j-1} is read while V_{j+1} lands).
// Block 0 is peeled, so that the loop has no branch around its wgmma issue. The kernel supplies:
//   enter_block()            block j's K and V have landed for every thread; stages to overwrite are free
//   prefetch(after, j, n0)   the next block's loads, issued where the kernel wants them (before or after
//                            the products of block j are issued)
//   issue_scores(j)          S = Q K^T of block j, issued only (the loop commits and waits)
//   issue_values(j)          O += P V of block j, from pf, issued only
//   softmax(n0, correction)  masks s (keys n0 ..) and runs online_softmax; returns whether any row grew
template <int D, int BN, typename Enter, typename Prefetch, typename Scores, typename Values, typename Softmax>
__device__ __forceinline__ void overlapped_key_blocks(int n_first, int kv_end, float (&s)[BN / 2], float (&o)[D / 2],
                                                      uint32_t (&pf)[BN / 16][4], Enter&& enter_block,
                                                      Prefetch&& prefetch, Scores&& issue_scores,
                                                      Values&& issue_values, Softmax&& softmax) {
  enter_block();
  prefetch(false, 0, n_first);
  fence_registers(s);
  wgmma_fence();
  issue_scores(0);
  wgmma_commit();
  prefetch(true, 0, n_first);
  wgmma_wait<0>();
  fence_registers(s);
  {
    float correction[2];
    softmax(n_first, correction);  // O is still 0: nothing to rescale
  }
  pack_a_fragments<BN>(pf, s);
  int j = 1;
  for (int n0 = n_first + BN; n0 < kv_end; n0 += BN, ++j) {
    enter_block();
    prefetch(false, j, n0);
    fence_registers(s);
    fence_fragments(pf);
    fence_registers(o);
    wgmma_fence();
    issue_scores(j);
    wgmma_commit();
    issue_values(j - 1);
    wgmma_commit();
    prefetch(true, j, n0);
    wgmma_wait<1>();  // S of block j; P V of j - 1 may still run
    fence_registers(s);
    float correction[2];
    const bool any_grew = softmax(n0, correction);
    wgmma_wait<0>();  // P V of j - 1 done: O and the A fragments are free
    fence_registers(o);
    rescale_rows<D>(o, correction, any_grew);
    pack_a_fragments<BN>(pf, s);
  }
  fence_fragments(pf);
  fence_registers(o);
  wgmma_fence();
  issue_values(j - 1);
  wgmma_commit();
  wgmma_wait<0>();
  fence_registers(o);
}

}  // namespace roofline::cuda::device
