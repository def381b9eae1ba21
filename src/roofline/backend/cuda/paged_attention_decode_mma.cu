// The tensor-core split kernel of paged decode attention (head_dim 64 and 128). The CTA (row slot, chunk, head
// group), the chunks, the ring and the rules are the scalar split kernel's (paged_attention_decode.cu, whose file
// comment they are in), and so are the results; the scores and the weighted values are tensor-core products
// (mma.sync m16n8k16, bf16 in, f32 accumulators): the up to 16 query heads of the CTA are the m16 rows (rows past
// the group's heads are zero), keys the n (Q K^T) and k (P V) dimensions. A tile holds 16 keys per warp; warp w
// takes rows 16w .. 16w + 15 of every tile:
//   S = Q K^T (16 x 16, log2 units after one multiply per score), online softmax per row (a quad holds a row),
//   O += P V (16 x D)
// and the warps' states are merged at the end as the scalar kernel merges its slots. The work per key no longer
// grows with the heads of the group, so the kernel keeps up with the copies.
// F8E4M3 pools: the codes stay bytes in shared memory and ldmatrix moves them as 16-bit pairs. For K, lane
// (g, t) of a k16 step gets codes 4t .. 4t + 3 of key g; taking them as the fragment's columns 2t, 2t + 1,
// 2t + 8, 2t + 9 permutes the head dimension, which a dot product does not see, as long as Q's fragments are
// loaded with the same permutation. For V the transposing ldmatrix gives lane (g, t) two keys (2t, 2t + 1) of
// dims 2g and 2g + 1: a byte permute splits them into the B fragments of two n8 tiles, one of the even dims and
// one of the odd ones, so the output columns of a 32-dim block are interleaved (mma_out_dim). Codes widen to
// bf16 exactly (e4m3 has 3 mantissa bits); the K scale multiplies the finished score and the V scale the
// probability (in f32, before it is rounded to bf16).
// Measured on H100 (bench/micro/gpu_attention_bench --quick --decode-only, 32 query / 8 kv heads, block_size 16,
// share of copy bandwidth, against the scalar kernel): hd 128 bf16 B=1 ctx 32k 73% (68%), B=64 ctx 4096 90%
// (87%), B=256 ctx 1536 90% (85%), B=64 ctx 512 67% (58%); fp8 1.36x / 1.51x / 1.42x / 1.21x faster than bf16
// (0.92x / 0.97x / 1.01x / 1.30x). What is left is the access pattern: a CTA reads one kv head's slice of each
// pool row (256 bytes bf16, 128 fp8), and the shorter the slice the further from the copy rate (hd 64 fp8: 51%).
#include <nvtx3/nvtx3.hpp>

#include "roofline/backend/cuda/chained_launch.cuh"
#include "roofline/backend/cuda/cuda_check.h"
#include "roofline/backend/cuda/device/convert.cuh"
#include "roofline/backend/cuda/device/mma.cuh"
#include "roofline/backend/cuda/device/reduce.cuh"
#include "roofline/backend/cuda/kv_fp8.cuh"
#include "roofline/backend/cuda/paged_attention_decode.cuh"
#include "roofline/core/error.h"

namespace roofline::cuda::paged_decode {

namespace {

constexpr int kMmaTileKeys = 16 * kWarps;      // keys per tile: 16 per warp
// The ring of a CTA, at most: 3 CTAs per multiprocessor (74 KB), except bf16 at head_dim 128, whose 34 KB stages
// would leave 2 in a 3-CTA ring: 3 stages and 2 CTAs there. Measured on H100 (hd 128, B=64): bf16 ctx 512 75%
// of copy bandwidth against 67%, ctx 4096 92% / 90%; fp8 and hd 64 are faster with 3 CTAs (fp8 ctx 4096: 71% /
// 66% with a 110 KB ring; hd 64 bf16: 84% / 77%).
constexpr int mma_ring_bytes(int D, bool scaled) { return D == 128 && !scaled ? 110000 : 75776; }

template <int D, typename KV>
struct MmaDecodeShape {
  static_assert(D % 32 == 0, "head_dim is a multiple of 32");
  // A shared row: D codes and 16 bytes of padding, so the 8 rows an ldmatrix phase reads hit distinct banks.
  static constexpr int kRowBytes = D * KV::kBytes + 16;
  static constexpr int kCodeBytes = kMmaTileKeys * kRowBytes;
  static constexpr int kStageBytes = 2 * kCodeBytes + (KV::kScaled ? 2 * kMmaTileKeys * int(sizeof(float)) : 0);
  static constexpr int kRingBudget = mma_ring_bytes(D, KV::kScaled);
  static constexpr int kStages = kRingBudget / kStageBytes < 2 ? 2 : kRingBudget / kStageBytes > 8 ? 8 : kRingBudget / kStageBytes;
  static constexpr int kPiecesPerRow = D * KV::kBytes / 16;                       // 16-byte copies per row
  static constexpr int kRowsPerPass = kThreads / kPiecesPerRow;                   // rows one pass of the CTA copies
  static constexpr int kPieces = kMmaTileKeys / kRowsPerPass;                     // copies per thread per tile
  static_assert(kThreads % kPiecesPerRow == 0 && kMmaTileKeys % kRowsPerPass == 0, "tile copies split evenly");
  static constexpr int kDTiles = D / 8;   // n8 tiles of the output
  static constexpr int kKSteps = D / 16;  // k16 steps of Q K^T
  static constexpr size_t kMergeBytes = size_t(kWarps) * kMmaRows * (D + 2) * sizeof(float);
  static constexpr size_t kRingBytes = size_t(kStages) * kStageBytes;
  static constexpr size_t kSmemBytes = kRingBytes > kMergeBytes ? kRingBytes : kMergeBytes;
};

// Two e4m3 codes (the low 16 bits, low byte first) -> bf16x2, exact.
__device__ __forceinline__ uint32_t e4m3x2_to_bf16x2(uint32_t two_codes) {
  const float2 f = device::e4m3x2_to_float2(two_codes);
  return device::pack_bf16x2(f.x, f.y);
}

// The head dimension of output accumulator e (0 or 1: columns 2t, 2t + 1) of n8 tile dt, for lane column t.
template <typename KV>
__device__ __forceinline__ int mma_out_dim(int dt, int t, int e) {
  if constexpr (KV::kScaled)  // 32-dim block dt / 4, half (dt / 2) % 2, even or odd dims (dt % 2)
    return (dt / 4) * 32 + ((dt / 2) % 2) * 16 + 4 * t + 2 * e + dt % 2;
  else
    return dt * 8 + 2 * t + e;
}

template <int D, typename KV>
__global__ void __launch_bounds__(kThreads) paged_decode_mma_kernel(PagedAttentionArgs a, PagedDecodePlan plan,
                                                                    void* workspace) {
  using S = MmaDecodeShape<D, KV>;
  constexpr int kStages = S::kStages;
  extern __shared__ __align__(16) unsigned char smem_raw[];
  unsigned char* ring = smem_raw;  // [kStages][stage: K rows, V rows, K scales, V scales]
  device::enter_chain();

  const SplitCta cta = split_cta(a, plan, kMmaRows);
  if (!cta.valid) return;
  const int chunk = cta.chunk, slot_row = cta.slot_row, j0 = cta.j0, n = cta.n;  // keys [j0, j0 + n)
  const SequenceView& seq = cta.seq;
  const DecodeRow& row = cta.row;

  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int g = lane / 4, t4 = lane % 4;  // fragment row / column group (mma.cuh)
  const int kv_head = cta.kv_head, head0 = cta.head0, heads = cta.heads;
  const int tiles = (n + kMmaTileKeys - 1) / kMmaTileKeys;
  const bool upper_rows = heads > 8;  // rows g + 8 hold heads (else they are zero and skipped)

  // This thread copies 16-byte piece piece_col of tile rows copy_row0 + c * kRowsPerPass.
  const int copy_row0 = threadIdx.x / S::kPiecesPerRow, piece_col = threadIdx.x % S::kPiecesPerRow;
  const int64_t kv_pitch = int64_t(a.Hkv) * D * KV::kBytes;  // bytes per pool row
  const int64_t head_at = int64_t(kv_head) * D * KV::kBytes + piece_col * 16;
  const unsigned char* k_base = static_cast<const unsigned char*>(a.k_pool) + head_at;
  const unsigned char* v_base = static_cast<const unsigned char*>(a.v_pool) + head_at;
  auto stage_k = [&](int tile) { return ring + (tile % kStages) * S::kStageBytes; };
  auto stage_v = [&](int tile) { return stage_k(tile) + S::kCodeBytes; };
  auto stage_k_scale = [&](int tile) { return reinterpret_cast<float*>(stage_k(tile) + 2 * S::kCodeBytes); };
  auto stage_v_scale = [&](int tile) { return stage_k_scale(tile) + kMmaTileKeys; };
  auto lookup_tile = [&](int tile, int (&rows)[S::kPieces]) {
#pragma unroll
    for (int c = 0; c < S::kPieces; ++c) {
      const int j = tile * kMmaTileKeys + copy_row0 + c * S::kRowsPerPass;
      rows[c] = j < n ? pool_row(seq, j0 + j, a.block_size) : -1;
    }
  };
  auto issue_tile = [&](int tile, const int (&rows)[S::kPieces]) {
    unsigned char* sk = stage_k(tile);
    unsigned char* sv = stage_v(tile);
#pragma unroll
    for (int c = 0; c < S::kPieces; ++c) {
      const int r = copy_row0 + c * S::kRowsPerPass;
      const bool valid = rows[c] >= 0;
      const int64_t offset = valid ? int64_t(rows[c]) * kv_pitch : 0;
      const int at = r * S::kRowBytes + piece_col * 16;
      device::cp_async_16(sk + at, k_base + offset, valid);
      device::cp_async_16(sv + at, v_base + offset, valid);
      if constexpr (KV::kScaled) {
        if (piece_col == 0) {  // one thread per key row fetches its scales
          const int64_t scale_at = valid ? int64_t(rows[c]) * a.Hkv + kv_head : 0;
          device::cp_async_4(stage_k_scale(tile) + r, a.k_scale + scale_at, valid);
          device::cp_async_4(stage_v_scale(tile) + r, a.v_scale + scale_at, valid);
        }
      }
    }
  };
  int rows[S::kPieces];
#pragma unroll
  for (int i = 0; i < kStages - 1; ++i) {
    if (i < tiles) {
      lookup_tile(i, rows);
      issue_tile(i, rows);
    }
    device::cp_async_commit();  // possibly empty: keeps the group count per iteration fixed
  }
  if (kStages - 1 < tiles) lookup_tile(kStages - 1, rows);  // rows now holds the next tile to issue

  // Q as A fragments of every k16 step: rows g (heads g) and g + 8, zero past the CTA's heads. For fp8 the
  // columns 2t, 2t + 1, 2t + 8, 2t + 9 of a step are dims 4t .. 4t + 3 (the permutation K's fragments have).
  uint32_t qa[S::kKSteps][4];
  {
    const bf16* q_rows = static_cast<const bf16*>(a.q) + (int64_t(row.t) * a.Hq + head0) * D;
#pragma unroll
    for (int kk = 0; kk < S::kKSteps; ++kk)
#pragma unroll
      for (int half = 0; half < 2; ++half) {
        const int h = g + 8 * half;
        uint32_t lo = 0, hi = 0;
        if (h < heads) {
          const bf16* qh = q_rows + int64_t(h) * D + kk * 16;
          if constexpr (KV::kScaled) {
            const uint2 w = *reinterpret_cast<const uint2*>(qh + 4 * t4);
            lo = w.x, hi = w.y;
          } else {
            lo = *reinterpret_cast<const uint32_t*>(qh + 2 * t4);
            hi = *reinterpret_cast<const uint32_t*>(qh + 2 * t4 + 8);
          }
        }
        qa[kk][half] = lo, qa[kk][half + 2] = hi;
      }
  }
  const float scale_log2 = a.scale * kLog2e;

  float o[S::kDTiles][4];  // O: rows g (e 0, 1) and g + 8 (e 2, 3)
#pragma unroll
  for (int dt = 0; dt < S::kDTiles; ++dt) o[dt][0] = o[dt][1] = o[dt][2] = o[dt][3] = 0.0f;
  float m[2] = {-INFINITY, -INFINITY}, l[2] = {0.0f, 0.0f};  // rows g, g + 8; l: this thread's keys only

  // ldmatrix row addresses of this lane within the warp's 16 keys (mma.cuh): K (B of Q K^T) and V (.trans).
  const int k_ld = ((lane / 16) * 8 + lane % 8) * S::kRowBytes + ((lane / 8) % 2) * 16;
  const int v_ld = (lane % 8 + ((lane / 8) % 2) * 8) * S::kRowBytes + (lane / 16) * 16;
  const int warp_rows = warp * 16 * S::kRowBytes;

  for (int i = 0; i < tiles; ++i) {
    device::cp_async_wait<kStages - 2>();  // tile i has landed (for this thread's copies) ...
    __syncthreads();                       // ... for all; and every warp is done with tile i - 1
    const int ahead = i + kStages - 1;
    if (ahead < tiles) issue_tile(ahead, rows);  // into the stage tile i - 1 used
    device::cp_async_commit();
    if (ahead + 1 < tiles) lookup_tile(ahead + 1, rows);  // used one iteration later: the latency hides
    const unsigned char* sk = stage_k(i) + warp_rows;
    const unsigned char* sv = stage_v(i) + warp_rows;

    // S = Q K^T: n8 tiles 0 and 1 are keys 16 w + 0..7 and 16 w + 8..15.
    float s[2][4] = {};
    if constexpr (KV::kScaled) {
#pragma unroll
      for (int kb = 0; kb < D / 32; ++kb) {  // 32 codes per key: k16 steps 2 kb and 2 kb + 1
        uint32_t r[4];
        device::ldmatrix_x4(r, sk + k_ld + kb * 32);
        device::mma_bf16_16816(s[0], qa[2 * kb], e4m3x2_to_bf16x2(r[0]), e4m3x2_to_bf16x2(r[0] >> 16));
        device::mma_bf16_16816(s[0], qa[2 * kb + 1], e4m3x2_to_bf16x2(r[1]), e4m3x2_to_bf16x2(r[1] >> 16));
        device::mma_bf16_16816(s[1], qa[2 * kb], e4m3x2_to_bf16x2(r[2]), e4m3x2_to_bf16x2(r[2] >> 16));
        device::mma_bf16_16816(s[1], qa[2 * kb + 1], e4m3x2_to_bf16x2(r[3]), e4m3x2_to_bf16x2(r[3] >> 16));
      }
    } else {
#pragma unroll
      for (int kk = 0; kk < S::kKSteps; ++kk) {
        uint32_t r[4];
        device::ldmatrix_x4(r, sk + k_ld + kk * 32);
        device::mma_bf16_16816(s[0], qa[kk], r[0], r[1]);
        device::mma_bf16_16816(s[1], qa[kk], r[2], r[3]);
      }
    }
    // Log2 units (and the K scales); keys past n get -inf.
    const int key0 = warp * 16 + 2 * t4;  // this lane's first key of n8 tile 0 within the tile
    float k_mul[2][2], v_mul[2][2];
#pragma unroll
    for (int nt = 0; nt < 2; ++nt)
#pragma unroll
      for (int e = 0; e < 2; ++e) {
        const int key = key0 + nt * 8 + e;
        const bool valid = i * kMmaTileKeys + key < n;
        k_mul[nt][e] = valid ? scale_log2 * (KV::kScaled ? stage_k_scale(i)[key] : 1.0f) : 0.0f;
        v_mul[nt][e] = KV::kScaled ? stage_v_scale(i)[key] : 1.0f;
        s[nt][e] = valid ? s[nt][e] * k_mul[nt][e] : -INFINITY;
        s[nt][e + 2] = valid ? s[nt][e + 2] * k_mul[nt][e] : -INFINITY;
      }
    // Online softmax per row; the four lanes of a quad share a row. O and l are rescaled only when the max of
    // some row of the warp grew (a warp vote), which after the first tiles is rare.
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      if (r == 1 && !upper_rows) break;
      float tile_max = fmaxf(fmaxf(s[0][2 * r], s[0][2 * r + 1]), fmaxf(s[1][2 * r], s[1][2 * r + 1]));
      tile_max = fmaxf(tile_max, __shfl_xor_sync(device::kFullMask, tile_max, 1));
      tile_max = fmaxf(tile_max, __shfl_xor_sync(device::kFullMask, tile_max, 2));
      const float new_max = fmaxf(m[r], tile_max);
      const bool grew = new_max > m[r];
      if (__any_sync(device::kFullMask, grew)) {
        const float correction = grew ? exp2f(m[r] - new_max) : 1.0f;  // 0 from -inf
        m[r] = new_max;
        l[r] *= correction;
#pragma unroll
        for (int dt = 0; dt < S::kDTiles; ++dt) o[dt][2 * r] *= correction, o[dt][2 * r + 1] *= correction;
      }
      const float base = new_max == -INFINITY ? 0.0f : new_max;  // nothing visible yet: p = 0
#pragma unroll
      for (int nt = 0; nt < 2; ++nt)
#pragma unroll
        for (int e = 0; e < 2; ++e) {
          s[nt][2 * r + e] = exp2f(s[nt][2 * r + e] - base);
          l[r] += s[nt][2 * r + e];
        }
    }
    // P (times the V scales) as the A fragment of keys 16 w .. 16 w + 15: the accumulators of n8 tiles 0 and 1
    // are exactly its layout.
    uint32_t pa[4];
    pa[0] = device::pack_bf16x2(s[0][0] * v_mul[0][0], s[0][1] * v_mul[0][1]);
    pa[1] = upper_rows ? device::pack_bf16x2(s[0][2] * v_mul[0][0], s[0][3] * v_mul[0][1]) : 0u;
    pa[2] = device::pack_bf16x2(s[1][0] * v_mul[1][0], s[1][1] * v_mul[1][1]);
    pa[3] = upper_rows ? device::pack_bf16x2(s[1][2] * v_mul[1][0], s[1][3] * v_mul[1][1]) : 0u;

    // O += P V.
    if constexpr (KV::kScaled) {
#pragma unroll
      for (int db = 0; db < D / 32; ++db) {  // dims 32 db ..: n8 tiles 4 db + (0 even, 1 odd; 2, 3 the same + 16)
        uint32_t r[4];
        device::ldmatrix_x4_trans(r, sv + v_ld + db * 32);
        device::mma_bf16_16816(o[4 * db], pa, e4m3x2_to_bf16x2(__byte_perm(r[0], 0, 0x20)),
                               e4m3x2_to_bf16x2(__byte_perm(r[1], 0, 0x20)));
        device::mma_bf16_16816(o[4 * db + 1], pa, e4m3x2_to_bf16x2(__byte_perm(r[0], 0, 0x31)),
                               e4m3x2_to_bf16x2(__byte_perm(r[1], 0, 0x31)));
        device::mma_bf16_16816(o[4 * db + 2], pa, e4m3x2_to_bf16x2(__byte_perm(r[2], 0, 0x20)),
                               e4m3x2_to_bf16x2(__byte_perm(r[3], 0, 0x20)));
        device::mma_bf16_16816(o[4 * db + 3], pa, e4m3x2_to_bf16x2(__byte_perm(r[2], 0, 0x31)),
                               e4m3x2_to_bf16x2(__byte_perm(r[3], 0, 0x31)));
      }
    } else {
#pragma unroll
      for (int dj = 0; dj < D / 16; ++dj) {
        uint32_t r[4];
        device::ldmatrix_x4_trans(r, sv + v_ld + dj * 32);
        device::mma_bf16_16816(o[2 * dj], pa, r[0], r[1]);
        device::mma_bf16_16816(o[2 * dj + 1], pa, r[2], r[3]);
      }
    }
  }
  device::cp_async_wait<0>();
  __syncthreads();  // the ring is free: reuse it for the merge

  float* warp_o = reinterpret_cast<float*>(smem_raw);  // [kWarps][kMmaRows][D]
  float* warp_m = warp_o + kWarps * kMmaRows * D;       // [kWarps][kMmaRows]
  float* warp_l = warp_m + kWarps * kMmaRows;           // [kWarps][kMmaRows]
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    l[r] += __shfl_xor_sync(device::kFullMask, l[r], 1);
    l[r] += __shfl_xor_sync(device::kFullMask, l[r], 2);
    const int h = g + 8 * r;
    if (h < heads) {
      float* wo = warp_o + (warp * kMmaRows + h) * D;
#pragma unroll
      for (int dt = 0; dt < S::kDTiles; ++dt)
#pragma unroll
        for (int e = 0; e < 2; ++e) wo[mma_out_dim<KV>(dt, t4, e)] = o[dt][2 * r + e];
      if (t4 == 0) warp_m[warp * kMmaRows + h] = m[r], warp_l[warp * kMmaRows + h] = l[r];
    }
  }
  __syncthreads();

  merge_warps_and_write<D>(warp_o, warp_m, warp_l, kMmaRows, heads, a, plan, workspace, row, head0, slot_row, chunk);
}

template <int D, typename KV>
void launch_mma_kv(const PagedAttentionArgs& a, const PagedDecodePlan& plan, unsigned head_groups, void* workspace,
                   cudaStream_t stream) {
  constexpr size_t smem = MmaDecodeShape<D, KV>::kSmemBytes;
  ROOFLINE_CUDA_CHECK(cudaFuncSetAttribute(paged_decode_mma_kernel<D, KV>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                           int(smem)));
  const dim3 grid(unsigned(int64_t(a.num_seqs) * a.max_query_len * plan.num_chunks), head_groups);
  launch_chained(paged_decode_mma_kernel<D, KV>, grid, kThreads, smem, stream, a, plan, workspace);
}

template <int D, typename KV>
int resident_mma_ctas_of() {
  static const int resident = resident_ctas(paged_decode_mma_kernel<D, KV>, MmaDecodeShape<D, KV>::kSmemBytes);
  return resident;
}

}  // namespace

void launch_mma(const PagedAttentionArgs& a, const PagedDecodePlan& plan, unsigned head_groups, void* workspace,
                cudaStream_t stream) {
  if (a.D == 64) {
    a.kv_fp8 ? launch_mma_kv<64, Fp8Kv>(a, plan, head_groups, workspace, stream)
             : launch_mma_kv<64, Bf16Kv>(a, plan, head_groups, workspace, stream);
  } else {
    ROOFLINE_CHECK(a.D == 128, "paged_attention: the tensor-core decode kernel takes head_dim 64 or 128, not {}", a.D);
    a.kv_fp8 ? launch_mma_kv<128, Fp8Kv>(a, plan, head_groups, workspace, stream)
             : launch_mma_kv<128, Bf16Kv>(a, plan, head_groups, workspace, stream);
  }
}

int resident_mma_ctas(int D, bool fp8) {
  if (D == 64) return fp8 ? resident_mma_ctas_of<64, Fp8Kv>() : resident_mma_ctas_of<64, Bf16Kv>();
  return fp8 ? resident_mma_ctas_of<128, Fp8Kv>() : resident_mma_ctas_of<128, Bf16Kv>();
}

}  // namespace roofline::cuda::paged_decode
