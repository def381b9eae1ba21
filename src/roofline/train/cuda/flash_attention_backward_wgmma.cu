// Training flash-attention backward on Hopper's warpgroup tensor cores (wgmma.mma_async, sm_90a): the same
// function, the same three kernels and the same determinism as flash_attention_backward.cu (mma.sync), with
// every matrix product of the dK/dV and dQ kernels on wgmma. The delta kernel (rowsum(dO * O)) is shared.
//   dK, dV: a CTA of kWG warpgroups owns 64 kWG keys of one kv head (64 per warpgroup, the wgmma M) and walks
//     every query block of 64 rows that can see them, for each query head of the group. Per step and warpgroup:
//       S^T  = K Q^T    m64n64k16, A = K, B = Q, both K-major from shared memory      (D / 16 k-steps)
//       dP^T = V dO^T   m64n64k16, A = V, B = dO                                       (D / 16 k-steps)
//       P^T = exp2(S^T scale log2e - lse log2e), dS^T = P^T (dP^T - delta), in registers (columns = queries)
//       dV  += P^T dO   m64nDk16, A = P^T from registers, B = dO N-major (transposed) from shared memory
//       dK  += dS^T Q   m64nDk16, A = dS^T from registers, B = Q N-major                 (4 k-steps each)
//     dK and dV stay in registers (f32) and are written once.
//   dQ: a CTA of kWG warpgroups owns 64 kWG query rows of one query head and walks the key blocks of 64 they
//     see: S = Q K^T and dP = dO V^T (ss, K-major), dS in registers, dQ += dS K (A = dS, B = K N-major).
// Why a separate dQ pass and no f32 atomics (FlashAttention-3 adds dQ through atomics from the dK/dV kernel):
// flash_attention.h promises bitwise-reproducible gradients (exact training resume), which unordered atomics
// break, and the ordered in-kernel accumulation measured slower than recomputing (branch attn-bwd-dq: the
// f32 adds through L2, ~430 MB a layer, cost more than the recompute). The recompute is 2 of 7 products.
// Tiles live in shared memory in the 128-byte-swizzled "SW128 rows" layout of device/wgmma.cuh (the
// conventions the wgmma prefill kernel proved: K-major operands with SBO 1024, N-major B with LBO = rows * 128
// and k-steps 2048 bytes apart), copied with cp.async, double-buffered: the tiles of step n + 1 land during
// step n. Each step starts with cp.async.wait_group 0, fence.proxy.async (the copies are generic-proxy writes,
// wgmma reads through the async proxy) and a barrier, which also proves every warpgroup has waited for its
// products of step n - 1, so their buffers may be refilled. Products are issued, committed and waited within
// the step (no cross-step overlap; the other warpgroups' work fills the gaps). Within a step (kOverlap, the
// default; the serial order is a lab variant) S and dP are two commit groups: the exponentials of P run while
// the tensor cores finish dP, and in the dK/dV kernel dV += P^T dO is issued before dS^T is formed, so dS^T
// is computed under it.
// Rows past T are zero-filled and get lse = +inf (P = 0); keys past T are masked (they are after every query).
#include <cmath>

#include "roofline/backend/cuda/cuda_check.h"
#include "roofline/backend/cuda/device/wgmma.cuh"
#include "roofline/backend/cuda/device/wgmma_attention.cuh"
#include "roofline/backend/cuda/device/wgmma_attention_tiles.cuh"
#include "roofline/core/error.h"
#include "roofline/train/cuda/flash_attention_tiles.cuh"

namespace roofline::train::cuda::detail {

namespace {

constexpr int kBlock = 64;  // rows per warpgroup (the wgmma M) and the inner block (queries or keys) per step

// Copies rows row0 .. row0 + ROWS - 1 of one head into an SW128 tile of ROWS rows at shared address `tile`;
// rows >= row_end are zero-filled without being read.
template <int ROWS, int D, int THREADS>
__device__ __forceinline__ void load_tile_sw128(uint32_t tile, const bf16* base, int64_t ld, int row0, int row_end) {
  constexpr int kChunks = D / 8, kTotal = ROWS * kChunks;
#pragma unroll
  for (int i = 0; i < (kTotal + THREADS - 1) / THREADS; ++i) {
    const int item = int(threadIdx.x) + i * THREADS;
    if (kTotal % THREADS != 0 && item >= kTotal) break;
    const int r = item / kChunks, chunk = item % kChunks;
    const bool valid = row0 + r < row_end;
    const bf16* from = base + (valid ? int64_t(row0 + r) * ld + chunk * 8 : 0);
    dev::cp_async_16(tile + dev::sw128_offset(ROWS, r, chunk), from, valid);
  }
}

// acc (+)= A B^T over D: A rows (64, this warpgroup's) and B rows (64) both K-major SW128 tiles of a_rows and
// b_rows rows; a_desc and b_desc already point at the first row used. Issued only.
template <int D>
__device__ __forceinline__ void issue_ss(float (&acc)[32], uint64_t a_desc, int a_rows, uint64_t b_desc, int b_rows) {
#pragma unroll
  for (int kk = 0; kk < D / 16; ++kk) {
    const uint32_t a_at = (kk / 4) * a_rows * 128 + (kk % 4) * 32, b_at = (kk / 4) * b_rows * 128 + (kk % 4) * 32;
    dev::wgmma_m64n64k16_ss(acc, a_desc + (a_at >> 4), b_desc + (b_at >> 4), kk > 0);
  }
}

// S and dP (or their transposes) as two commit groups, so that the exponentials of P can start while dP is still
// on the tensor cores: s (+)= A_s B_s^T, dp (+)= A_dp B_dp^T over D (issue_ss); the B operands' stage starts
// b_stage_at (16-byte units) past their descriptors. Fences first: the accumulators were last written by the
// previous step's math.
template <int D>
__device__ __forceinline__ void issue_score_pair(float (&s)[32], float (&dp)[32], uint64_t a_s_desc,
                                                 uint64_t a_dp_desc, int a_rows, uint64_t b_s_desc,
                                                 uint64_t b_dp_desc, int b_rows, uint32_t b_stage_at) {
  dev::fence_registers(s);
  dev::fence_registers(dp);
  dev::wgmma_fence();
  issue_ss<D>(s, a_s_desc, a_rows, b_s_desc + b_stage_at, b_rows);
  dev::wgmma_commit();
  issue_ss<D>(dp, a_dp_desc, a_rows, b_dp_desc + b_stage_at, b_rows);
  dev::wgmma_commit();
}

// Row statistics of query row block_row + offset of head `head` of sequence b: lse in log2 units (+inf past T,
// so that P = 0) and delta (0 past T). The row is summed here rather than passed whole: a whole row (a plain
// argument) turns the bounds compare around when this is compiled on its own, which reorders the callers' SASS.
__device__ __forceinline__ void load_row_statistics(const Problem& p, const float* lse, const float* delta, int b,
                                                    int head, int block_row, int offset, float& lse2, float& dlt) {
  const int row = block_row + offset;
  const int64_t at = (int64_t(b) * p.Hq + head) * p.T + row;
  lse2 = row < p.T ? lse[at] * kLog2e : INFINITY;
  dlt = row < p.T ? delta[at] : 0.0f;
}

// acc += A B over 64 rows of B: A as register fragments (k-step kk = B rows 16kk ..), B an N-major SW128 tile
// of 64 rows x D whose descriptor has LBO = 64 * 128. Issued only.
template <int D>
__device__ __forceinline__ void issue_rs(float (&acc)[D / 2], const uint32_t (&a)[kBlock / 16][4], uint64_t b_desc) {
#pragma unroll
  for (int kk = 0; kk < kBlock / 16; ++kk) {
    if constexpr (D == 128)
      dev::wgmma_m64n128k16_rs_bt(acc, a[kk], b_desc + ((kk * 2048) >> 4));
    else
      dev::wgmma_m64n64k16_rs_bt(acc, a[kk], b_desc + ((kk * 2048) >> 4));
  }
}

// The dK/dV kernels' step, per warpgroup: S^T and dP^T of its 64 keys (key0 ..) against 64 query rows
// (m0 ..); element 4j + e of an accumulator is key key0 + 16 warp + g + 8 (e / 2), query m0 + 8j + 2 t4 + (e % 2).
// P^T in place of S^T: exp2(s scale log2(e) - lse), lse in log2 units per query row; 0 where the key is not
// visible from the query (masked only on the blocks of the diagonal and the window's edge).
__device__ __forceinline__ void transposed_probabilities(float (&s)[32], const float* lse, const Problem& p, int m0,
                                                         int key0, int warp, int g, int t4) {
  const bool needs_mask = m0 < key0 + kBlock - 1 || (p.window > 0 && m0 + kBlock - 1 >= key0 + p.window);
#pragma unroll
  for (int j = 0; j < kBlock / 8; ++j) {
    const float2 l2 = *reinterpret_cast<const float2*>(lse + j * 8 + 2 * t4);
#pragma unroll
    for (int e = 0; e < 4; ++e) {
      float prob = exp2f(fmaf(s[4 * j + e], p.scale_log2, -(e % 2 ? l2.y : l2.x)));
      if (needs_mask) {
        const int query = m0 + j * 8 + 2 * t4 + (e % 2), key = key0 + 16 * warp + g + 8 * (e / 2);
        if (!visible(query, key, p.window)) prob = 0.0f;
      }
      s[4 * j + e] = prob;
    }
  }
}

// dS^T = P^T (dP^T - delta) in place of dP^T, same layout; prob(i) is element i of P^T.
template <typename Prob>
__device__ __forceinline__ void transposed_score_gradients(float (&dp)[32], const float* delta, int t4, Prob&& prob) {
#pragma unroll
  for (int j = 0; j < kBlock / 8; ++j) {
    const float2 dl = *reinterpret_cast<const float2*>(delta + j * 8 + 2 * t4);
#pragma unroll
    for (int e = 0; e < 4; ++e) dp[4 * j + e] = prob(4 * j + e) * (dp[4 * j + e] - (e % 2 ? dl.y : dl.x));
  }
}

// Stores a warpgroup's 64 x D accumulator times `factor` as bf16 rows row0 + (16 warp + g (+ 8)); rows >=
// row_end are skipped. dst points at row row0, column 0.
template <int D>
__device__ __forceinline__ void store_accumulator(bf16* dst, int64_t ld, int row0, int row_end,
                                                  const float (&acc)[D / 2], float factor) {
  const int warp = (int(threadIdx.x) / 32) % 4, lane = int(threadIdx.x) % 32, g = lane / 4, t4 = lane % 4;
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    const int row = 16 * warp + g + 8 * r;
    if (row0 + row >= row_end) continue;
#pragma unroll
    for (int j = 0; j < D / 8; ++j)
      *reinterpret_cast<__nv_bfloat162*>(dst + int64_t(row) * ld + j * 8 + t4 * 2) =
          __floats2bfloat162_rn(acc[4 * j + 2 * r] * factor, acc[4 * j + 2 * r + 1] * factor);
  }
}

// ---- dK, dV ----------------------------------------------------------------------------------------------

template <int D, int kWG>
struct WgDkDvTiles {
  static constexpr int kThreads = 128 * kWG;
  static constexpr int kBlockN = kBlock * kWG;  // keys per CTA
  static constexpr int kBlockM = kBlock;        // query rows per step
  static constexpr uint32_t kKvBytes = kBlockN * D * 2, kRowBytes = kBlockM * D * 2;
  // K, V; Q, dO [2 stages]: multiples of 8 KB, so each starts 1024-byte aligned; then lse, delta [2][kBlockM].
  static constexpr uint32_t kTileBytes = 2 * kKvBytes + 4 * kRowBytes;
  static constexpr size_t kSmemBytes = kTileBytes + 4 * kBlockM * sizeof(float) + 1024;
};

template <int D, int kWG, int kMinBlocks, bool kOverlap>
__global__ void __launch_bounds__(128 * kWG, kMinBlocks)
    flash_dkdv_wgmma_kernel(Problem p, const bf16* __restrict__ q, const bf16* __restrict__ k,
                            const bf16* __restrict__ v, const bf16* __restrict__ dout, const float* __restrict__ lse,
                            const float* __restrict__ delta, bf16* __restrict__ dk, bf16* __restrict__ dv) {
  using Tl = WgDkDvTiles<D, kWG>;
  constexpr int kThreads = Tl::kThreads, kBlockM = Tl::kBlockM, kBlockN = Tl::kBlockN;
  extern __shared__ unsigned char smem_raw[];
  const uint32_t base = (dev::smem_address(smem_raw) + 1023u) & ~1023u;
  const uint32_t sK = base, sV = sK + Tl::kKvBytes, sQ = sV + Tl::kKvBytes, sdO = sQ + 2 * Tl::kRowBytes;
  float* sLse = reinterpret_cast<float*>(smem_raw + (base - dev::smem_address(smem_raw)) + Tl::kTileBytes);
  float* sDelta = sLse + 2 * kBlockM;  // sLse [2][kBlockM] in log2 units, sDelta [2][kBlockM]

  const int n0 = int(blockIdx.x) * kBlockN;
  const int kv_head = int(blockIdx.y), b = int(blockIdx.z), group = p.Hq / p.Hkv;
  const int tid = int(threadIdx.x), wg = tid / 128, warp = (tid / 32) % 4, lane = tid % 32;
  const int g = lane / 4, t4 = lane % 4;
  const bf16* kh = k + int64_t(b) * p.T * p.ld_kv + kv_head * D;
  const bf16* vh = v + int64_t(b) * p.T * p.ld_kv + kv_head * D;

  // Query rows that see some key of this CTA: [m_first, m_end), in blocks of kBlockM, for each query head.
  const int key_last = min(n0 + kBlockN, p.T) - 1;
  const int m_end = p.window > 0 ? min(p.T, key_last + p.window) : p.T;
  const int m_first = n0 / kBlockM * kBlockM;
  const int blocks_per_head = (m_end - m_first + kBlockM - 1) / kBlockM;
  const int steps = group * blocks_per_head;
  auto step_head = [&](int step) { return kv_head * group + step / blocks_per_head; };
  auto step_row0 = [&](int step) { return m_first + (step % blocks_per_head) * kBlockM; };
  auto issue_tiles = [&](int step, int buf) {
    const int h = step_head(step), m0 = step_row0(step);
    load_tile_sw128<kBlockM, D, kThreads>(sQ + buf * Tl::kRowBytes, q + int64_t(b) * p.T * p.ld_q + h * D, p.ld_q,
                                          m0, p.T);
    load_tile_sw128<kBlockM, D, kThreads>(sdO + buf * Tl::kRowBytes, dout + int64_t(b) * p.T * p.ld_o + h * D,
                                          p.ld_o, m0, p.T);
  };
  auto load_stats = [&](int step, float& lse2, float& dlt) {
    load_row_statistics(p, lse, delta, b, step_head(step), step_row0(step), tid, lse2, dlt);
  };

  load_tile_sw128<kBlockN, D, kThreads>(sK, kh, p.ld_kv, n0, p.T);
  load_tile_sw128<kBlockN, D, kThreads>(sV, vh, p.ld_kv, n0, p.T);
  issue_tiles(0, 0);
  dev::cp_async_commit();
  if (tid < kBlockM) load_stats(0, sLse[tid], sDelta[tid]);

  // Descriptors: this warpgroup's 64 rows of K and V (A, K-major), Q and dO as B: K-major for S^T and dP^T,
  // N-major (LBO = next 64 dims = kBlockM * 128 bytes) for dV and dK.
  const uint64_t k_desc = dev::sw128_descriptor(sK + wg * kBlock * 128, 16, 1024);
  const uint64_t v_desc = dev::sw128_descriptor(sV + wg * kBlock * 128, 16, 1024);
  const uint64_t q_desc = dev::sw128_descriptor(sQ, 16, 1024), do_desc = dev::sw128_descriptor(sdO, 16, 1024);
  const uint64_t q_desc_t = dev::sw128_descriptor(sQ, kBlockM * 128, 1024);
  const uint64_t do_desc_t = dev::sw128_descriptor(sdO, kBlockM * 128, 1024);
  const int key0 = n0 + wg * kBlock;  // this warpgroup's first key

  float dk_acc[D / 2], dv_acc[D / 2], s[32], dp[32];
#pragma unroll
  for (int i = 0; i < D / 2; ++i) dk_acc[i] = dv_acc[i] = 0.0f;
#pragma unroll
  for (int i = 0; i < 32; ++i) s[i] = dp[i] = 0.0f;
  uint32_t pf[kBlock / 16][4], dsf[kBlock / 16][4];

  for (int step = 0; step < steps; ++step) {
    const int buf = step & 1;
    const bool more = step + 1 < steps;
    dev::await_tiles();
    float next_lse = 0.0f, next_delta = 0.0f;
    if (more) {
      issue_tiles(step + 1, buf ^ 1);
      dev::cp_async_commit();
      if (tid < kBlockM) load_stats(step + 1, next_lse, next_delta);
    }
    // A warpgroup whose 64 keys no query of the block sees (all after the block's last query, or all out of
    // its window) skips the step: P^T = 0. The branch is uniform per warpgroup, as wgmma needs.
    const int m0 = step_row0(step);
    const bool idle = key0 > m0 + kBlockM - 1 || (p.window > 0 && m0 >= key0 + kBlock - 1 + p.window);
    if (!idle) {
      const uint32_t tile_at = (buf * Tl::kRowBytes) >> 4;
      issue_score_pair<D>(s, dp, k_desc, v_desc, kBlockN, q_desc, do_desc, kBlockM, tile_at);
      // kOverlap: P^T is computed while dP^T is still on the tensor cores, and dS^T while dV is.
      if constexpr (kOverlap) dev::wgmma_wait<1>();
      else dev::wgmma_wait<0>();
      dev::fence_registers(s);

      const float* sLseb = sLse + buf * kBlockM;
      const float* sDeltab = sDelta + buf * kBlockM;
      transposed_probabilities(s, sLseb, p, m0, key0, warp, g, t4);
      dev::pack_a_fragments<kBlock>(pf, s);
      dev::fence_fragments(pf);
      if constexpr (kOverlap) {
        dev::fence_registers(dv_acc);
        dev::wgmma_fence();
        issue_rs<D>(dv_acc, pf, do_desc_t + tile_at);
        dev::wgmma_commit();
        dev::wgmma_wait<1>();  // dP^T (the dV product may still run)
      }
      dev::fence_registers(dp);

      transposed_score_gradients(dp, sDeltab, t4, [&](int i) { return s[i]; });
      dev::pack_a_fragments<kBlock>(dsf, dp);
      dev::fence_fragments(dsf);
      if constexpr (!kOverlap) dev::fence_registers(dv_acc);
      dev::fence_registers(dk_acc);
      dev::wgmma_fence();
      if constexpr (!kOverlap) issue_rs<D>(dv_acc, pf, do_desc_t + tile_at);
      issue_rs<D>(dk_acc, dsf, q_desc_t + tile_at);
      dev::wgmma_commit();
      dev::wgmma_wait<0>();
      dev::fence_registers(dv_acc);
      dev::fence_registers(dk_acc);
    }

    // The next step's row statistics: read after the next barrier; nobody reads this half any more.
    if (more && tid < kBlockM) {
      sLse[(buf ^ 1) * kBlockM + tid] = next_lse;
      sDelta[(buf ^ 1) * kBlockM + tid] = next_delta;
    }
  }

  const int64_t at = int64_t(b) * p.T * p.ld_kv + kv_head * D + int64_t(key0) * p.ld_kv;
  store_accumulator<D>(dv + at, p.ld_kv, key0, p.T, dv_acc, 1.0f);
  store_accumulator<D>(dk + at, p.ld_kv, key0, p.T, dk_acc, p.scale);
}

// ---- dK, dV at head_dim 64, pipelined across steps (lab variants) ------------------------------------------
// One warpgroup per CTA (64 keys), three Q/dO stages. The default kernel above waits for each step's dK
// product, then passes a barrier, then issues the next step's S^T and dP^T: the tensor cores idle through the
// wait, the barrier and the copies' issue, and that chain is per step. Here step n + 1's S^T and dP^T are issued
// right behind step n's dK (the tensor cores run dV(n), dK(n), S^T(n + 1), dP^T(n + 1) back to back) and the
// barrier and the copies of step n + 2 happen while dK(n) runs. Commit groups complete in order, so waiting for
// S^T(n + 1) also proves dV(n) and dK(n) done: their A fragments (pf, dsf) may then be overwritten, and the
// barrier before S^T(n + 1) proves every reader of stage (n - 1) % 3 finished, so step n + 2's tiles may land there.
// kLean: dS^T = P^T (dP^T - delta) takes P^T from its bf16 fragments (as dV uses it), so the f32 P^T dies at the
// packing; with kMinBlocks = 3 the compiler is asked for <= 168 registers (three CTAs per multiprocessor).
struct PipeDkDvTiles {
  static constexpr int D = 64, kThreads = 128, kStages = 3;
  static constexpr uint32_t kKvBytes = kBlock * D * 2, kRowBytes = kBlock * D * 2;
  static constexpr uint32_t kTileBytes = 2 * kKvBytes + 2 * kStages * kRowBytes;  // K, V; Q[3], dO[3]
  static constexpr size_t kSmemBytes = kTileBytes + 2 * kStages * kBlock * sizeof(float) + 1024;
};

// The f32 value of element i (4j + e order) of a 64 x 64 accumulator packed by pack_a_fragments.
__device__ __forceinline__ float unpack_fragment(const uint32_t (&f)[kBlock / 16][4], int i) {
  const uint32_t word = f[i / 8][(i % 8) / 2];
  return __uint_as_float(i % 2 ? word & 0xFFFF0000u : word << 16);
}

template <int kMinBlocks, bool kLean>
__global__ void __launch_bounds__(128, kMinBlocks)
    flash_dkdv_wgmma_pipelined_kernel(Problem p, const bf16* __restrict__ q, const bf16* __restrict__ k,
                                      const bf16* __restrict__ v, const bf16* __restrict__ dout,
                                      const float* __restrict__ lse, const float* __restrict__ delta,
                                      bf16* __restrict__ dk, bf16* __restrict__ dv) {
  using Tl = PipeDkDvTiles;
  constexpr int D = Tl::D, kThreads = Tl::kThreads, kStages = Tl::kStages;
  extern __shared__ unsigned char smem_raw[];
  const uint32_t base = (dev::smem_address(smem_raw) + 1023u) & ~1023u;
  const uint32_t sK = base, sV = sK + Tl::kKvBytes, sQ = sV + Tl::kKvBytes, sdO = sQ + kStages * Tl::kRowBytes;
  float* sLse = reinterpret_cast<float*>(smem_raw + (base - dev::smem_address(smem_raw)) + Tl::kTileBytes);
  float* sDelta = sLse + kStages * kBlock;

  const int n0 = int(blockIdx.x) * kBlock;
  const int kv_head = int(blockIdx.y), b = int(blockIdx.z), group = p.Hq / p.Hkv;
  const int tid = int(threadIdx.x), warp = tid / 32, lane = tid % 32;
  const int g = lane / 4, t4 = lane % 4;
  const bf16* kh = k + int64_t(b) * p.T * p.ld_kv + kv_head * D;
  const bf16* vh = v + int64_t(b) * p.T * p.ld_kv + kv_head * D;

  // Query rows that see some key of this CTA: [n0, m_end), in blocks of 64, for each query head. With one
  // warpgroup of 64 keys and 64-row blocks no step is idle.
  const int key_last = min(n0 + kBlock, p.T) - 1;
  const int m_end = p.window > 0 ? min(p.T, key_last + p.window) : p.T;
  const int blocks_per_head = (m_end - n0 + kBlock - 1) / kBlock;
  const int steps = group * blocks_per_head;
  auto step_head = [&](int step) { return kv_head * group + step / blocks_per_head; };
  auto step_row0 = [&](int step) { return n0 + (step % blocks_per_head) * kBlock; };
  // Tiles of `step` into stage step % 3; its row statistics into registers (stored by store_stats once the
  // scores that follow are queued, so the load's latency is not in front of them; the stage's last reader
  // finished before the barrier that precedes both).
  float next_lse = 0.0f, next_delta = 0.0f;
  auto issue_step_loads = [&](int step) {
    const int h = step_head(step), m0 = step_row0(step), stage = step % kStages;
    load_tile_sw128<kBlock, D, kThreads>(sQ + stage * Tl::kRowBytes, q + int64_t(b) * p.T * p.ld_q + h * D, p.ld_q,
                                         m0, p.T);
    load_tile_sw128<kBlock, D, kThreads>(sdO + stage * Tl::kRowBytes, dout + int64_t(b) * p.T * p.ld_o + h * D,
                                         p.ld_o, m0, p.T);
    dev::cp_async_commit();
    if (tid < kBlock) load_row_statistics(p, lse, delta, b, h, m0, tid, next_lse, next_delta);
  };
  auto store_stats = [&](int step) {
    if (tid < kBlock) {
      sLse[(step % kStages) * kBlock + tid] = next_lse;
      sDelta[(step % kStages) * kBlock + tid] = next_delta;
    }
  };

  const uint64_t k_desc = dev::sw128_descriptor(sK, 16, 1024), v_desc = dev::sw128_descriptor(sV, 16, 1024);
  const uint64_t q_desc = dev::sw128_descriptor(sQ, 16, 1024), do_desc = dev::sw128_descriptor(sdO, 16, 1024);
  const uint64_t q_desc_t = dev::sw128_descriptor(sQ, kBlock * 128, 1024);
  const uint64_t do_desc_t = dev::sw128_descriptor(sdO, kBlock * 128, 1024);
  const int key0 = n0;

  float dk_acc[D / 2], dv_acc[D / 2], s[32], dp[32];
#pragma unroll
  for (int i = 0; i < D / 2; ++i) dk_acc[i] = dv_acc[i] = 0.0f;
#pragma unroll
  for (int i = 0; i < 32; ++i) s[i] = dp[i] = 0.0f;
  uint32_t pf[kBlock / 16][4], dsf[kBlock / 16][4];

  auto issue_scores = [&](int step) {
    const uint32_t tile_at = ((step % kStages) * Tl::kRowBytes) >> 4;
    issue_score_pair<D>(s, dp, k_desc, v_desc, kBlock, q_desc, do_desc, kBlock, tile_at);
  };

  load_tile_sw128<kBlock, D, kThreads>(sK, kh, p.ld_kv, n0, p.T);
  load_tile_sw128<kBlock, D, kThreads>(sV, vh, p.ld_kv, n0, p.T);
  issue_step_loads(0);
  store_stats(0);
  dev::await_tiles();
  if (steps > 1) {
    issue_step_loads(1);
    store_stats(1);
  }
  // The zeroed dK and dV stay before the first product (moved behind it, they count as accumulator writes
  // while a product runs, and the compiler serializes every product: ptxas C7514 / C7517).
  dev::fence_registers(dk_acc);
  dev::fence_registers(dv_acc);
  issue_scores(0);

  // Step `step` from its scores on: P^T, dV issued, dS^T, dK issued (neither waited).
  auto finish_step = [&](int step) {
    const int stage = step % kStages;
    const uint32_t tile_at = (stage * Tl::kRowBytes) >> 4;
    dev::wgmma_wait<1>();  // S^T(step), and with it everything of step - 1
    dev::fence_registers(s);

    const int m0 = step_row0(step);
    const float* sLseb = sLse + stage * kBlock;
    const float* sDeltab = sDelta + stage * kBlock;
    transposed_probabilities(s, sLseb, p, m0, key0, warp, g, t4);
    dev::pack_a_fragments<kBlock>(pf, s);
    dev::fence_fragments(pf);
    dev::fence_registers(dv_acc);
    dev::wgmma_fence();
    issue_rs<D>(dv_acc, pf, do_desc_t + tile_at);
    dev::wgmma_commit();
    dev::wgmma_wait<1>();  // dP^T (dV may still run)
    dev::fence_registers(dp);

    // kLean: P^T read back from its bf16 fragments (fewer registers live across the step).
    transposed_score_gradients(dp, sDeltab, t4, [&](int i) { return kLean ? unpack_fragment(pf, i) : s[i]; });
    dev::pack_a_fragments<kBlock>(dsf, dp);
    dev::fence_fragments(dsf);
    dev::fence_registers(dk_acc);
    dev::wgmma_fence();
    issue_rs<D>(dk_acc, dsf, q_desc_t + tile_at);
    dev::wgmma_commit();
  };

  // The loop leaves right after the last step's dK is issued, so every path into the loop's head and out of it
  // has S^T and dP^T defined by wgmma alone (a conditional issue, or a peeled last step, makes the compiler copy
  // the accumulators while products run, and it then serializes every product: ptxas C7514 / C7515).
  for (int step = 0;; ++step) {
    finish_step(step);
    if (step + 1 == steps) break;
    // While dV(step) and dK(step) run: the barrier for step + 1's tiles (its readers of stage (step - 1) % 3,
    // dV and dK of step - 1, finished before this thread's waits in finish_step), step + 2's copies, and step
    // + 1's scores, queued behind dK on the tensor cores.
    dev::await_tiles();
    if (step + 2 < steps) issue_step_loads(step + 2);
    issue_scores(step + 1);
    if (step + 2 < steps) store_stats(step + 2);
  }
  dev::wgmma_wait<0>();
  dev::fence_registers(dv_acc);
  dev::fence_registers(dk_acc);

  const int64_t at = int64_t(b) * p.T * p.ld_kv + kv_head * D + int64_t(key0) * p.ld_kv;
  store_accumulator<D>(dv + at, p.ld_kv, key0, p.T, dv_acc, 1.0f);
  store_accumulator<D>(dk + at, p.ld_kv, key0, p.T, dk_acc, p.scale);
}

// ---- dQ ------------------------------------------------------------------------------------------------

template <int D, int kWG>
struct WgDqTiles {
  static constexpr int kThreads = 128 * kWG;
  static constexpr int kBlockM = kBlock * kWG;  // query rows per CTA
  static constexpr int kBlockN = kBlock;        // keys per step
  static constexpr uint32_t kRowBytes = kBlockM * D * 2, kKvBytes = kBlockN * D * 2;
  // Q, dO; K, V [2 stages]: multiples of 8 KB.
  static constexpr size_t kSmemBytes = 2 * size_t(kRowBytes) + 4 * size_t(kKvBytes) + 1024;
};

template <int D, int kWG, int kMinBlocks, bool kOverlap>
__global__ void __launch_bounds__(128 * kWG, kMinBlocks)
    flash_dq_wgmma_kernel(Problem p, const bf16* __restrict__ q, const bf16* __restrict__ k,
                          const bf16* __restrict__ v, const bf16* __restrict__ dout, const float* __restrict__ lse,
                          const float* __restrict__ delta, bf16* __restrict__ dq) {
  using Tl = WgDqTiles<D, kWG>;
  constexpr int kThreads = Tl::kThreads, kBlockM = Tl::kBlockM, kBlockN = Tl::kBlockN;
  extern __shared__ unsigned char smem_raw[];
  const uint32_t base = (dev::smem_address(smem_raw) + 1023u) & ~1023u;
  const uint32_t sQ = base, sdO = sQ + Tl::kRowBytes, sK = sdO + Tl::kRowBytes, sV = sK + 2 * Tl::kKvBytes;

  const int m0 = int(gridDim.x - 1 - blockIdx.x) * kBlockM;  // longest (last) query blocks first
  const int head = int(blockIdx.y), b = int(blockIdx.z), kv_head = head / (p.Hq / p.Hkv);
  const int tid = int(threadIdx.x), wg = tid / 128, warp = (tid / 32) % 4, lane = tid % 32;
  const int g = lane / 4, t4 = lane % 4;
  const bf16* kh = k + int64_t(b) * p.T * p.ld_kv + kv_head * D;
  const bf16* vh = v + int64_t(b) * p.T * p.ld_kv + kv_head * D;

  const int q_last = min(m0 + kBlockM, p.T) - 1;
  const int kv_begin = p.window > 0 ? max(0, m0 - p.window + 1) : 0;
  const int kv_end = q_last + 1;
  const int n_first = kv_begin / kBlockN * kBlockN;

  load_tile_sw128<kBlockM, D, kThreads>(sQ, q + int64_t(b) * p.T * p.ld_q + head * D, p.ld_q, m0, p.T);
  load_tile_sw128<kBlockM, D, kThreads>(sdO, dout + int64_t(b) * p.T * p.ld_o + head * D, p.ld_o, m0, p.T);
  load_tile_sw128<kBlockN, D, kThreads>(sK, kh, p.ld_kv, n_first, kv_end);
  load_tile_sw128<kBlockN, D, kThreads>(sV, vh, p.ld_kv, n_first, kv_end);
  dev::cp_async_commit();

  const int q0 = m0 + wg * kBlock;  // this warpgroup's first query row
  float lse2[2], dlt[2];            // rows g and g + 8 of the warp; rows past T: P = 0
#pragma unroll
  for (int r = 0; r < 2; ++r) load_row_statistics(p, lse, delta, b, head, q0 + 16 * warp + g, 8 * r, lse2[r], dlt[r]);

  const uint64_t q_desc = dev::sw128_descriptor(sQ + wg * kBlock * 128, 16, 1024);
  const uint64_t do_desc = dev::sw128_descriptor(sdO + wg * kBlock * 128, 16, 1024);
  const uint64_t k_desc = dev::sw128_descriptor(sK, 16, 1024), v_desc = dev::sw128_descriptor(sV, 16, 1024);
  const uint64_t k_desc_t = dev::sw128_descriptor(sK, kBlockN * 128, 1024);

  float dq_acc[D / 2], s[32], dp[32];
#pragma unroll
  for (int i = 0; i < D / 2; ++i) dq_acc[i] = 0.0f;
#pragma unroll
  for (int i = 0; i < 32; ++i) s[i] = dp[i] = 0.0f;
  uint32_t dsf[kBlock / 16][4];
  int buf = 0;
  for (int n0 = n_first; n0 < kv_end; n0 += kBlockN, buf ^= 1) {
    dev::await_tiles();
    if (n0 + kBlockN < kv_end) {
      load_tile_sw128<kBlockN, D, kThreads>(sK + (buf ^ 1) * Tl::kKvBytes, kh, p.ld_kv, n0 + kBlockN, kv_end);
      load_tile_sw128<kBlockN, D, kThreads>(sV + (buf ^ 1) * Tl::kKvBytes, vh, p.ld_kv, n0 + kBlockN, kv_end);
      dev::cp_async_commit();
    }
    // A warpgroup none of whose rows sees a key of the block skips it (uniform per warpgroup).
    const bool idle = n0 > q0 + kBlock - 1 || (p.window > 0 && q0 >= n0 + kBlockN - 1 + p.window);
    if (idle) continue;
    const uint32_t stage_at = (buf * Tl::kKvBytes) >> 4;
    issue_score_pair<D>(s, dp, q_desc, do_desc, kBlockM, k_desc, v_desc, kBlockN, stage_at);
    // kOverlap: P is computed while dP is still on the tensor cores.
    if constexpr (kOverlap) dev::wgmma_wait<1>();
    else dev::wgmma_wait<0>();
    dev::fence_registers(s);

    // P, then dS = P (dP - delta): s[4j + e] is query q0 + 16 warp + g + 8 (e / 2), key n0 + 8j + 2 t4 + (e % 2).
    const bool needs_mask = n0 + kBlockN - 1 > q0 || (p.window > 0 && n0 <= q0 + kBlock - 1 - p.window);
#pragma unroll
    for (int j = 0; j < kBlockN / 8; ++j)
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        float prob = exp2f(fmaf(s[4 * j + e], p.scale_log2, -lse2[e / 2]));
        if (needs_mask) {
          const int query = q0 + 16 * warp + g + 8 * (e / 2), key = n0 + j * 8 + 2 * t4 + (e % 2);
          if (!visible(query, key, p.window)) prob = 0.0f;
        }
        s[4 * j + e] = prob;
      }
    if constexpr (kOverlap) dev::wgmma_wait<0>();
    dev::fence_registers(dp);
#pragma unroll
    for (int i = 0; i < 32; ++i) dp[i] = s[i] * (dp[i] - dlt[(i % 4) / 2]);
    dev::pack_a_fragments<kBlock>(dsf, dp);
    dev::fence_fragments(dsf);
    dev::fence_registers(dq_acc);
    dev::wgmma_fence();
    issue_rs<D>(dq_acc, dsf, k_desc_t + stage_at);
    dev::wgmma_commit();
    dev::wgmma_wait<0>();
    dev::fence_registers(dq_acc);
  }

  store_accumulator<D>(dq + int64_t(b) * p.T * p.ld_q + head * D + int64_t(q0) * p.ld_q, p.ld_q, q0, p.T, dq_acc,
                       p.scale);
}

template <typename Kernel>
void allow_smem(Kernel kernel, size_t bytes) {
  ROOFLINE_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(bytes)));
}

// kPipe (lab, head_dim 64, one dK/dV warpgroup): 0 the kernel above; 2 the pipelined dK/dV kernel, two CTAs
// per multiprocessor; 3 the pipelined kernel with P^T from its bf16 fragments, three CTAs per multiprocessor.
template <int D, int DKDV_WG, int DQ_WG, bool kOverlap, int kPipe = 0>
void launch(const Problem& p, const bf16* q, const bf16* k, const bf16* v, const bf16* dout, const float* lse,
            const float* delta, bf16* dq, bf16* dk, bf16* dv, int part, cudaStream_t stream) {
  // CTAs per multiprocessor asked of the compiler (registers: 64K per SM). ptxas -v, CUDA 13.0: dK/dV at
  // head_dim 64 holds dK, dV, S^T and dP^T (4 x 32 f32): 168 registers with 3 warpgroups (one CTA), 200 with
  // one (two CTAs; asked for three, <= 168, it spilled 48 bytes), 192 with two (one CTA; asked for two,
  // <= 128, it spilled 512 bytes). dQ at head_dim 64 fits 128 registers: two CTAs of two warpgroups.
  constexpr int kDkDvMinBlocks = D == 64 && DKDV_WG == 1 ? 2 : 1;
  constexpr int kDqMinBlocks = D == 64 && DQ_WG == 2 ? 2 : 1;
  if constexpr (kPipe != 0) {
    static_assert(D == 64 && DKDV_WG == 1 && kOverlap, "the pipelined dK/dV kernel: head_dim 64, one warpgroup");
    if (part != 2) {
      using Tl = PipeDkDvTiles;
      auto kernel = flash_dkdv_wgmma_pipelined_kernel<kPipe, kPipe == 3>;
      allow_smem(kernel, Tl::kSmemBytes);
      const dim3 grid(unsigned((p.T + kBlock - 1) / kBlock), unsigned(p.Hkv), unsigned(p.B));
      kernel<<<grid, Tl::kThreads, Tl::kSmemBytes, stream>>>(p, q, k, v, dout, lse, delta, dk, dv);
      ROOFLINE_CUDA_CHECK_LAUNCH();
    }
  } else if (part != 2) {
    using Tl = WgDkDvTiles<D, DKDV_WG>;
    auto kernel = flash_dkdv_wgmma_kernel<D, DKDV_WG, kDkDvMinBlocks, kOverlap>;
    allow_smem(kernel, Tl::kSmemBytes);
    const dim3 grid(unsigned((p.T + Tl::kBlockN - 1) / Tl::kBlockN), unsigned(p.Hkv), unsigned(p.B));
    kernel<<<grid, Tl::kThreads, Tl::kSmemBytes, stream>>>(p, q, k, v, dout, lse, delta, dk, dv);
    ROOFLINE_CUDA_CHECK_LAUNCH();
  }
  if (part != 1) {
    using Tl = WgDqTiles<D, DQ_WG>;
    auto kernel = flash_dq_wgmma_kernel<D, DQ_WG, kDqMinBlocks, kOverlap>;
    allow_smem(kernel, Tl::kSmemBytes);
    const dim3 grid(unsigned((p.T + Tl::kBlockM - 1) / Tl::kBlockM), unsigned(p.Hq), unsigned(p.B));
    kernel<<<grid, Tl::kThreads, Tl::kSmemBytes, stream>>>(p, q, k, v, dout, lse, delta, dq);
    ROOFLINE_CUDA_CHECK_LAUNCH();
  }
}

}  // namespace

void launch_backward_wgmma(const Problem& p, const bf16* q, const bf16* k, const bf16* v, const bf16* dout,
                           const float* lse, const float* delta, bf16* dq, bf16* dk, bf16* dv, int dkdv_warpgroups,
                           int dq_warpgroups, bool serial, int dkdv_pipelined, int part, cudaStream_t stream) {
  if (dkdv_pipelined != 0) {
    if (p.D == 64 && dkdv_warpgroups == 1 && dq_warpgroups == 2 && !serial && dkdv_pipelined == 2)
      return launch<64, 1, 2, true, 2>(p, q, k, v, dout, lse, delta, dq, dk, dv, part, stream);
    if (p.D == 64 && dkdv_warpgroups == 1 && dq_warpgroups == 2 && !serial && dkdv_pipelined == 3)
      return launch<64, 1, 2, true, 3>(p, q, k, v, dout, lse, delta, dq, dk, dv, part, stream);
    fail("flash_attention_backward: no pipelined wgmma dK/dV kernel ({}) for head_dim {} with {} dK/dV and {} dQ "
         "warpgroups{}", dkdv_pipelined, p.D, dkdv_warpgroups, dq_warpgroups, serial ? ", serial" : "");
  }
  const int key = p.D * 1000 + dkdv_warpgroups * 100 + dq_warpgroups * 10 + (serial ? 0 : 1);
  switch (key) {
#define ROOFLINE_WGMMA_BACKWARD_CASE(D, A, B, OVERLAP) \
  case D * 1000 + A * 100 + B * 10 + OVERLAP:          \
    launch<D, A, B, OVERLAP>(p, q, k, v, dout, lse, delta, dq, dk, dv, part, stream);  \
    break;
    ROOFLINE_WGMMA_BACKWARD_CASE(64, 1, 2, 1)
    ROOFLINE_WGMMA_BACKWARD_CASE(64, 2, 2, 1)
    ROOFLINE_WGMMA_BACKWARD_CASE(64, 3, 2, 1)
    ROOFLINE_WGMMA_BACKWARD_CASE(64, 2, 3, 1)
    ROOFLINE_WGMMA_BACKWARD_CASE(64, 3, 2, 0)
    ROOFLINE_WGMMA_BACKWARD_CASE(128, 2, 2, 1)
    ROOFLINE_WGMMA_BACKWARD_CASE(128, 2, 2, 0)
#undef ROOFLINE_WGMMA_BACKWARD_CASE
    default:
      fail("flash_attention_backward: no wgmma kernels for head_dim {} with {} dK/dV and {} dQ warpgroups{}", p.D,
           dkdv_warpgroups, dq_warpgroups, serial ? ", serial" : "");
  }
}

}  // namespace roofline::train::cuda::detail
