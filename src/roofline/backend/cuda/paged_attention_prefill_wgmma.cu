// Paged varlen prefill attention on Hopper's warpgroup tensor cores (wgmma, sm_90a): the function of
// paged_attention_prefill.cu (same arguments, masks and rules), for bf16 pools and head_dim 64 or 128.
//   out[t, h, :] = sum_j softmax_j(scale * q[t, h, :] . k[j, h / G, :]) v[j, h / G, :],  j in visible(t)
// A CTA is two warpgroups (256 threads); each owns 64 consecutive query rows of one query head, so a CTA covers
// kBlockM = 128 rows and walks the key blocks of BN keys its rows can see. Per key block, per warpgroup:
//   S = Q K^T   wgmma m64nBNk16, A = Q and B = K both from shared memory (K-major descriptors), f32 in registers
//   online softmax in registers (as the mma.sync kernel: raw-unit max, one FFMA + exp2 per probability, O and l
//   rescaled only when some row's max grew)
//   O += P V    wgmma m64nDk16, A = P from registers (the S accumulators of two n8 tiles are exactly the A
//               fragment of one k16 step, see device/wgmma.cuh), B = V from shared memory, N-major (transposed)
// The score matrix never leaves registers. By default (kOverlap) S of block j and P V of block j - 1 are issued
// together and the softmax of j runs while the tensor cores finish P V of j - 1 (FlashAttention-3's
// intra-warpgroup pipelining); the serial form waits for each product. Tiles live in shared memory in the
// 128-byte-swizzled layout the descriptors describe (device/wgmma.cuh, "SW128 rows"): Q [kBlockM x D], K
// [BN x D] in two stages and V [BN x D] in two (serial) or three (overlapped: V of j - 1 is read while V of
// j + 1 lands); copies, descriptors and issue are the training forward's (device/wgmma_attention_tiles.cuh).
// Shared memory, hd 128 / 128 keys overlapped: 32 + 64 + 96 KB, one CTA per multiprocessor.
// Every thread copies its 16-byte chunks with cp.async, one pool row at a time through the block table (pages
// are 16 rows, so a tile is many pages); the block's pool rows are looked up one block ahead into registers,
// and K/V of block i + 1 load while block i is computed (issued right after block i's products, so the copies
// run under them). Each block starts with cp.async.wait_group 0, a fence.proxy.async (cp.async writes through
// the generic proxy, wgmma reads through the async proxy) and a barrier, which also tells every warpgroup that
// the stages the next copies overwrite are free again.
// Rule (as the mma.sync kernel): pool rows outside the keys the CTA may see are never read (zero-filled), so
// stale rows, NaN or other sequences in the pool cannot leak in. Query rows past the sequence are zero-filled
// and never written.
#include <nvtx3/nvtx3.hpp>

#include <cmath>
#include <cstdlib>

#include "roofline/backend/cuda/cuda_check.h"
#include "roofline/backend/cuda/device/convert.cuh"
#include "roofline/backend/cuda/device/mma.cuh"
#include "roofline/backend/cuda/device/reduce.cuh"
#include "roofline/backend/cuda/device/wgmma.cuh"
#include "roofline/backend/cuda/device/wgmma_attention.cuh"
#include "roofline/backend/cuda/device/wgmma_attention_tiles.cuh"
#include "roofline/backend/cuda/kernels.h"
#include "roofline/backend/cuda/paged_attention.cuh"
#include "roofline/core/error.h"

namespace roofline::cuda {

namespace {

using device::bf16;

// The overlapped loop reads V one block late: three V stages instead of two.
template <int D, int BN, bool kOverlap>
using WgTiles = device::WgForwardTiles<D, BN, kOverlap ? 3 : 2>;

template <int D, int BN, bool kOverlap, int kMinBlocks>
__global__ void __launch_bounds__(device::kForwardThreads, kMinBlocks)
    paged_prefill_wgmma_kernel(PagedAttentionArgs a) {
  using T = WgTiles<D, BN, kOverlap>;
  constexpr int kBlockM = T::kBlockM;
  constexpr int kNTiles = BN / 8;  // n8 tiles of the score accumulator
  extern __shared__ unsigned char smem_raw[];
  const device::ForwardTileAddresses tiles = T::addresses(smem_raw);

  const SequenceView seq = load_sequence(a, int(blockIdx.z));
  // Longest (last) query blocks first: under the causal mask they have the most keys.
  const int m0 = int(gridDim.x - 1 - blockIdx.x) * kBlockM;
  if (m0 >= seq.n || seq.context < seq.n) return;

  const int tid = int(threadIdx.x);
  const int warp_group = tid / 128, warp = (tid / 32) % 4, lane = tid % 32;
  const int g = lane / 4, t4 = lane % 4;
  const int head = blockIdx.y, kv_head = head / (a.Hq / a.Hkv);
  const int64_t q_pitch = int64_t(a.Hq) * D, kv_pitch = int64_t(a.Hkv) * D;
  const bf16* q = static_cast<const bf16*>(a.q) + int64_t(seq.q_begin) * q_pitch + int64_t(head) * D;
  const bf16* k = static_cast<const bf16*>(a.k_pool) + int64_t(kv_head) * D;
  const bf16* v = static_cast<const bf16*>(a.v_pool) + int64_t(kv_head) * D;

  // Keys this CTA's rows can see: [kv_begin, kv_end).
  const int start_pos = seq.context - seq.n;  // position of query row 0
  const int q_first = start_pos + m0;
  const int q_last = start_pos + min(m0 + kBlockM, seq.n) - 1;
  const int kv_begin = first_visible(q_first, a.window);
  const int kv_end = q_last + 1;
  const int n_first = kv_begin / BN * BN;
  // Pool row of key position p, or -1 outside [kv_begin, kv_end) (never read). Block sizes that are powers of
  // two (16 as served) take shifts instead of an integer division: a thread looks up 2-8 rows per block.
  const bool pow2_blocks = seq.blocks != nullptr && (a.block_size & (a.block_size - 1)) == 0;
  const int block_shift = __ffs(a.block_size) - 1;
  auto lookup = [&](int p) {
    if (p < kv_begin || p >= kv_end) return -1;
    if (pow2_blocks) return (__ldg(seq.blocks + (p >> block_shift)) << block_shift) | (p & (a.block_size - 1));
    return pool_row(seq, p, a.block_size);
  };

  const int chunk = tid % T::kChunks, first_row = tid / T::kChunks;
  T::load_q(tiles, q, q_pitch, m0, seq.n, first_row, chunk);
  int pool_rows[T::kKvPasses];  // of the next key block to copy
  auto lookup_block = [&](int n0) {
#pragma unroll
    for (int i = 0; i < T::kKvPasses; ++i) pool_rows[i] = lookup(n0 + first_row + i * T::kRowsPerPass);
  };
  // Block j from the pool rows looked up for it (-1: zero-filled, never read).
  auto load_block = [&](int j) {
    T::load_kv_block(tiles, j, k, v, kv_pitch, first_row, chunk, [&](int i, int, int& row) {
      row = pool_rows[i];
      return row >= 0;
    });
  };
  lookup_block(n_first);
  load_block(0);
  lookup_block(n_first + BN);  // in flight while the first block lands

  const device::ForwardDescriptors desc = T::descriptors(tiles, warp_group);

  float o[D / 2];  // O: this warpgroup's 64 x D accumulator (layout in device/wgmma.cuh)
#pragma unroll
  for (int i = 0; i < D / 2; ++i) o[i] = 0.0f;
  float row_max[2] = {-INFINITY, -INFINITY}, row_sum[2] = {0.0f, 0.0f};  // rows g and g + 8; log2 units
  const float scale_log2 = a.scale * kLog2e;
  const int row0 = warp_group * 64 + warp * 16 + g;  // this thread's first row within the CTA tile (and row0 + 8)
  float s[BN / 2];                 // S, then P in f32, of the current block
  uint32_t pf[BN / 16][4];         // P as A fragments of the block whose P V is issued next

  // Top of block j: its K and V have landed and are visible to the tensor cores for every thread; every
  // warpgroup is done with the stages the next loads overwrite.
  auto enter_block = [&] { device::await_tiles(); };
  // The next block's loads (into stages no product of block j reads), issued once block j's products are: the
  // copies and table reads then run under the tensor cores instead of between two blocks' products. With two
  // CTAs per multiprocessor (128 registers) they are issued before the products instead: held across the
  // products, their registers would spill.
  constexpr bool kLoadsAfterIssue = kMinBlocks == 1;
  auto prefetch = [&](bool after_issue, int j, int n0) {
    if (after_issue != kLoadsAfterIssue) return;
    if (n0 + BN < kv_end) {
      load_block(j + 1);
      lookup_block(n0 + 2 * BN);
    }
  };
  // The first k-step of S overwrites s (scale-d = 0), so s needs no clearing per block; it is zeroed once so that
  // no register a wgmma reads is undefined, before the first wgmma.fence (the fence rule: every register a
  // wgmma accesses is written before the fence that precedes it; the softmax writes of a block precede the next
  // block's fence).
#pragma unroll
  for (int i = 0; i < BN / 2; ++i) s[i] = 0.0f;
  auto issue_scores = [&](int j) { T::issue_scores(s, desc, j); };
  auto issue_values = [&](int j) { T::issue_values(o, pf, desc, j); };
  // Masks and exponentiates s in place (block of keys n0 ..), updates row_max and row_sum, and returns in
  // correction[r] the factor O's row r must be scaled by (1 when its max did not grow) and whether any row of
  // the warp grew.
  auto softmax = [&](int n0, float (&correction)[2]) {
    // Mask only where some (row, key) pair of the block is not visible: the diagonal and window edges.
    const bool needs_mask = n0 + BN - 1 > q_first || (a.window > 0 && n0 <= q_last - a.window);
    if (needs_mask) {
#pragma unroll
      for (int j = 0; j < kNTiles; ++j)
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          const int pos = q_first + row0 + (e / 2) * 8;
          const int key = n0 + j * 8 + t4 * 2 + (e % 2);
          const bool visible = key <= pos && (a.window <= 0 || key > pos - a.window);
          if (!visible) s[4 * j + e] = -INFINITY;
        }
    }
    return device::online_softmax<BN>(s, row_max, row_sum, scale_log2, correction);
  };
  if constexpr (!kOverlap) {
    // Per block: S (wait), softmax, P V (wait).
    int j = 0;
    for (int n0 = n_first; n0 < kv_end; n0 += BN, ++j) {
      enter_block();
      prefetch(false, j, n0);
      device::fence_registers(s);
      device::wgmma_fence();
      issue_scores(j);
      device::wgmma_commit();
      prefetch(true, j, n0);
      device::wgmma_wait<0>();
      device::fence_registers(s);
      float correction[2];
      const bool any_grew = softmax(n0, correction);
      device::rescale_rows<D>(o, correction, any_grew);
      device::pack_a_fragments<BN>(pf, s);
      device::fence_fragments(pf);
      device::fence_registers(o);
      device::wgmma_fence();
      issue_values(j);
      device::wgmma_commit();
      device::wgmma_wait<0>();
      device::fence_registers(o);
    }
  } else {
    device::overlapped_key_blocks<D, BN>(n_first, kv_end, s, o, pf, enter_block, prefetch, issue_scores, issue_values,
                                         softmax);
  }

  // out = O / l, rows g and g + 8 of each warp's 16, pairs of columns per lane.
  bf16* out = static_cast<bf16*>(a.out) + int64_t(seq.q_begin) * q_pitch + int64_t(head) * D;
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    float l = row_sum[r];
    l += __shfl_xor_sync(device::kFullMask, l, 1);
    l += __shfl_xor_sync(device::kFullMask, l, 2);
    const float inv = l > 0.0f ? 1.0f / l : 0.0f;
    const int row = m0 + row0 + r * 8;
    if (row >= seq.n) continue;
#pragma unroll
    for (int dj = 0; dj < D / 8; ++dj) {
      const __nv_bfloat162 pair = __floats2bfloat162_rn(o[4 * dj + 2 * r] * inv, o[4 * dj + 2 * r + 1] * inv);
      *reinterpret_cast<__nv_bfloat162*>(out + row * q_pitch + dj * 8 + t4 * 2) = pair;
    }
  }
}

template <int D, int BN, bool kOverlap, int kMinBlocks>
void launch(const PagedAttentionArgs& a, cudaStream_t stream) {
  using T = WgTiles<D, BN, kOverlap>;
  constexpr size_t smem = T::kSmemBytes;
  auto kernel = paged_prefill_wgmma_kernel<D, BN, kOverlap, kMinBlocks>;
  ROOFLINE_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(smem)));
  const dim3 grid(unsigned((a.max_query_len + T::kBlockM - 1) / T::kBlockM), unsigned(a.Hq), unsigned(a.num_seqs));
  kernel<<<grid, device::kForwardThreads, smem, stream>>>(a);
  ROOFLINE_CUDA_CHECK_LAUNCH();
}

template <int D>
void launch_d(const PagedAttentionArgs& a, int keys_per_block, bool overlap, cudaStream_t stream) {
  if (keys_per_block == 128) {
    if (overlap)
      launch<D, 128, true, 1>(a, stream);
    else
      launch<D, 128, false, 1>(a, stream);
  } else {
    // head_dim 64 with 64-key blocks fits two CTAs per multiprocessor (registers <= 128, shared memory < 114 KB).
    if (overlap)
      launch<D, 64, true, D == 64 ? 2 : 1>(a, stream);
    else
      launch<D, 64, false, D == 64 ? 2 : 1>(a, stream);
  }
}

// The layout probe (tests): one warpgroup, the prefill kernel's shared-memory layout, descriptors, k-steps
// and register fragments on a plain product. !kNMajor: c = a b^T with a [64, K] and b [N, K] (S = Q K^T: both
// operands from shared memory, K-major). kNMajor: c = a b with b [K, N] (O = P V: a from registers as A
// fragments, b N-major from shared memory). c [64, N] f32 row-major, written from the accumulator layout.
template <int N, int K, bool kNMajor>
__global__ void __launch_bounds__(128) wgmma_probe_kernel(float* c, const bf16* a, const bf16* b) {
  extern __shared__ unsigned char smem_raw[];
  const uint32_t sA = (device::smem_address(smem_raw) + 1023u) & ~1023u;
  const uint32_t sB = sA + 64 * K * 2;
  const int tid = int(threadIdx.x), warp = tid / 32, lane = tid % 32, g = lane / 4, t4 = lane % 4;
  // Shared tiles through ordinary stores, in SW128 rows: a as 64 rows of K; b as N rows of K (K-major) or K rows
  // of N (N-major).
  constexpr int kBRows = kNMajor ? K : N, kBCols = kNMajor ? N : K;
  for (int i = tid; i < 64 * (K / 8); i += 128) {
    const int r = i / (K / 8), ch = i % (K / 8);
    const uint4 x = *reinterpret_cast<const uint4*>(a + r * K + ch * 8);
    asm volatile("st.shared.v4.b32 [%0], {%1, %2, %3, %4};\n" ::"r"(sA + device::sw128_offset(64, r, ch)), "r"(x.x),
                 "r"(x.y), "r"(x.z), "r"(x.w));
  }
  for (int i = tid; i < kBRows * (kBCols / 8); i += 128) {
    const int r = i / (kBCols / 8), ch = i % (kBCols / 8);
    const uint4 x = *reinterpret_cast<const uint4*>(b + r * kBCols + ch * 8);
    asm volatile("st.shared.v4.b32 [%0], {%1, %2, %3, %4};\n" ::"r"(sB + device::sw128_offset(kBRows, r, ch)),
                 "r"(x.x), "r"(x.y), "r"(x.z), "r"(x.w));
  }
  device::fence_proxy_async_shared();
  __syncthreads();
  float acc[N / 2];
#pragma unroll
  for (int i = 0; i < N / 2; ++i) acc[i] = 0.0f;
  if constexpr (!kNMajor) {
    const uint64_t a_desc = device::sw128_descriptor(sA, 16, 1024), b_desc = device::sw128_descriptor(sB, 16, 1024);
    device::fence_registers(acc);
    device::wgmma_fence();
#pragma unroll
    for (int kk = 0; kk < K / 16; ++kk) {
      const uint32_t a_at = (kk / 4) * 64 * 128 + (kk % 4) * 32, b_at = (kk / 4) * N * 128 + (kk % 4) * 32;
      device::wgmma_scores<N>(acc, a_desc + (a_at >> 4), b_desc + (b_at >> 4), kk > 0);
    }
  } else {
    uint32_t frag[K / 16][4];  // rows 16 warp + g (+ 8), columns 16 kk + 2 t4 (+ 8): the A fragment layout
#pragma unroll
    for (int kk = 0; kk < K / 16; ++kk)
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int row = 16 * warp + g + 8 * (e % 2), col = 16 * kk + 2 * t4 + 8 * (e / 2);
        frag[kk][e] = *reinterpret_cast<const uint32_t*>(a + row * K + col);
      }
    const uint64_t b_desc = device::sw128_descriptor(sB, K * 128, 1024);
    device::fence_fragments(frag);
    device::fence_registers(acc);
    device::wgmma_fence();
#pragma unroll
    for (int kk = 0; kk < K / 16; ++kk) device::wgmma_values<N>(acc, frag[kk], b_desc + ((kk * 2048) >> 4));
  }
  device::wgmma_commit();
  device::wgmma_wait<0>();
  device::fence_registers(acc);
#pragma unroll
  for (int j = 0; j < N / 8; ++j)
#pragma unroll
    for (int e = 0; e < 4; ++e) c[(16 * warp + g + 8 * (e / 2)) * N + 8 * j + 2 * t4 + (e % 2)] = acc[4 * j + e];
}

template <int N, int K, bool kNMajor>
void launch_probe(float* c, const void* a, const void* b, cudaStream_t stream) {
  constexpr int smem = 64 * K * 2 + N * K * 2 + 1024;
  auto kernel = wgmma_probe_kernel<N, K, kNMajor>;
  ROOFLINE_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, smem));
  kernel<<<1, 128, smem, stream>>>(c, static_cast<const bf16*>(a), static_cast<const bf16*>(b));
  ROOFLINE_CUDA_CHECK_LAUNCH();
}

}  // namespace

void launch_wgmma_layout_probe(float* c, const void* a, const void* b, int n, int k, bool b_n_major,
                               cudaStream_t stream) {
  ROOFLINE_CHECK((n == 64 || n == 128) && (k == 64 || k == 128), "wgmma probe: n {} and k {} must be 64 or 128", n, k);
  const int which = (n == 128 ? 4 : 0) + (k == 128 ? 2 : 0) + (b_n_major ? 1 : 0);
  switch (which) {
    case 0: launch_probe<64, 64, false>(c, a, b, stream); break;
    case 1: launch_probe<64, 64, true>(c, a, b, stream); break;
    case 2: launch_probe<64, 128, false>(c, a, b, stream); break;
    case 3: launch_probe<64, 128, true>(c, a, b, stream); break;
    case 4: launch_probe<128, 64, false>(c, a, b, stream); break;
    case 5: launch_probe<128, 64, true>(c, a, b, stream); break;
    case 6: launch_probe<128, 128, false>(c, a, b, stream); break;
    default: launch_probe<128, 128, true>(c, a, b, stream); break;
  }
}

bool paged_prefill_wgmma_supported(const PagedAttentionArgs& a) { return !a.kv_fp8 && (a.D == 64 || a.D == 128); }

void launch_paged_prefill_wgmma(const PagedAttentionArgs& a, int keys_per_block, bool overlap, cudaStream_t stream) {
  nvtx3::scoped_range range("cuda::paged_attention_prefill_wgmma");
  ROOFLINE_CHECK(paged_prefill_wgmma_supported(a), "paged_attention: the wgmma prefill kernel takes bf16 pools of "
                 "head_dim 64 or 128, not {} head_dim {}", a.kv_fp8 ? "F8_E4M3" : "BF16", a.D);
  ROOFLINE_CHECK(keys_per_block == 64 || keys_per_block == 128, "paged_attention: {} keys per block (64 or 128)",
                 keys_per_block);
  if (a.D == 128)
    launch_d<128>(a, keys_per_block, overlap, stream);
  else
    launch_d<64>(a, keys_per_block, overlap, stream);
}

}  // namespace roofline::cuda
