// Paged decode attention (a few query rows per sequence against long contexts), flash-decoding style
// (PagedAttentionArgs in kernels.h). The keys a query row sees, (p - window, p] or [0, p], are cut into chunks
// of plan.chunk_len keys counted from the first visible one. CTA (row slot, chunk, head group) attends up to
// HEADS query heads that share one kv head over its chunk's keys j, with scores in log2 units
// (s_j = scale log2(e) q . k_j):
//   m_c = max_j s_j,   l_c = sum_j exp2(s_j - m_c),   o_c = sum_j exp2(s_j - m_c) v_j
// and a second kernel combines the chunks: M = max_c m_c, out = sum_c exp2(m_c - M) o_c / sum_c exp2(m_c - M) l_c.
// With a single chunk (the plan says so, from the bounds) the split kernel writes the output itself.
// head_dim 64 and 128 (every real model) run the tensor-core split kernel (paged_attention_decode_mma.cu): the
// CTA's query heads are the rows of mma.sync products, so the work per key is a few tensor-core instructions
// whatever the GQA group, and the kernel keeps up with the copies better (bf16 and fp8 alike). The small head
// dims of the test models run the scalar kernel described next.
// Inside a CTA, K and V tiles of kTileKeys rows stream through a kStages-deep cp.async ring; each key row is
// fetched through the block table, and the pool rows of a tile are looked up one tile before its copies are
// issued, so the table reads never stall the copies. A key row is handled by D / 8 lanes (16 bytes each), a
// "slot"; each slot keeps its own online softmax over its keys, and the slots are merged at the end.
// F8E4M3 pools (kv_fp8.cuh) run the same kernel with 8-byte pieces (8 codes) and the f32 scale of each key
// row beside its tile; the scale multiplies the finished dot product (K) and the probability (V), so
// dequantizing costs a conversion per element and two multiplies per key. Tiles keep their key count, so the
// fp8 ring holds twice as many stages in the same shared memory (more bytes in flight per byte of the pool).
// Rule: only pool rows of visible keys are read (others are zero-filled), so whatever the pool holds elsewhere
// (stale rows, NaN, other sequences) cannot leak in. Rows and chunks past the real lengths exit at once.
#include <nvtx3/nvtx3.hpp>

#include <algorithm>
#include <cmath>
#include <cstdlib>

#include "roofline/backend/cuda/chained_launch.cuh"
#include "roofline/backend/cuda/cuda_check.h"
#include "roofline/backend/cuda/device/convert.cuh"
#include "roofline/backend/cuda/device/mma.cuh"
#include "roofline/backend/cuda/device/reduce.cuh"
#include "roofline/backend/cuda/kernels.h"
#include "roofline/backend/cuda/kv_fp8.cuh"
#include "roofline/backend/cuda/paged_attention.cuh"
#include "roofline/backend/cuda/paged_attention_decode.cuh"
#include "roofline/core/error.h"

namespace roofline::cuda {

namespace {

using namespace paged_decode;

constexpr int kRingBytes = 65536;  // the K/V ring of a CTA
constexpr int kTileBytes = 8192;   // one bf16 K (or V) tile: kTileKeys rows of D bf16
constexpr int kMinChunk = 64;       // keys per CTA, at least
constexpr int kChunkAlign = 16;     // chunk lengths are multiples of this
constexpr int kMaxChunks = 1024;    // chunks per row, at most (the combine kernel's shared weights)
constexpr double kWaveFill = 0.9;   // the plan's target fill of the last wave of CTAs
constexpr int kContiguousCtasPerSm = 2;  // a contiguous cache's one-wave plan: CTAs per multiprocessor
// No split (no partials, no combine launch) once every multiprocessor has a CTA and either the rows are short
// (at most kUnsplitSpan keys) or the CTAs fill at least kUnsplitWaves waves (plan_paged_decode says why).
constexpr int kUnsplitSpan = 1024;
constexpr int kUnsplitWaves = 4;

template <int D, int HEADS, typename KV>
struct DecodeShape {
  static_assert(D % 8 == 0 && 32 % (D / 8) == 0, "a key row is read by a power-of-two part of one warp");
  static constexpr int kLanesPerKey = D / 8;                  // pieces of 8 elements of one key row
  static constexpr int kKeySlots = kThreads / kLanesPerKey;   // keys handled side by side
  static constexpr int kTileKeys = kTileBytes / (D * 2);      // rows per K (V) tile
  static constexpr int kKeysPerSlot = kTileKeys / kKeySlots;  // keys of a tile per slot
  static constexpr int kPieces = kTileKeys * kLanesPerKey / kThreads;  // piece copies per thread per tile
  static_assert(kTileKeys % kKeySlots == 0, "tiles split evenly over the slots");
  static_assert(kTileKeys * kLanesPerKey % kThreads == 0, "tile loads split evenly over the CTA");
  // One stage of the ring: K codes [kTileKeys][D], V codes [kTileKeys][D], then (fp8) K and V scales [kTileKeys].
  static constexpr int kCodeBytes = kTileKeys * D * KV::kBytes;
  static constexpr int kStageBytes = 2 * kCodeBytes + (KV::kScaled ? 2 * kTileKeys * int(sizeof(float)) : 0);
  // K/V tiles in flight per CTA. fp8: 6 stages (50 KB) fit 4 CTAs per multiprocessor, as many as the registers
  // allow at 4 heads (128 per thread), with as many bytes in flight per multiprocessor as 8 stages in 3 CTAs.
  static constexpr int kStages = KV::kScaled ? 6 : 4;
  static_assert(kStages * kStageBytes <= kRingBytes + kStages * 2 * kTileKeys * int(sizeof(float)), "ring size");
  // Shared memory: the ring [kStages][stage]; after the loop it holds the per-warp results.
  static constexpr size_t kSmemBytes = size_t(kStages) * kStageBytes;
  static_assert(size_t(kWarps) * HEADS * (D + 2) * sizeof(float) <= kSmemBytes, "merge buffers fit the ring");
};


// This lane's 8 elements of a key (value) row in shared memory, unscaled.
template <typename KV>
__device__ __forceinline__ void load_piece(const unsigned char* p, float (&out)[8]) {
  if constexpr (KV::kScaled)
    device::unpack_e4m3x8(*reinterpret_cast<const uint2*>(p), out);
  else
    device::load8(reinterpret_cast<const bf16*>(p), out);
}

template <int D, int HEADS, typename KV>
__global__ void __launch_bounds__(kThreads) paged_decode_split_kernel(PagedAttentionArgs a, PagedDecodePlan plan,
                                                                      void* workspace) {
  using S = DecodeShape<D, HEADS, KV>;
  constexpr int kStages = S::kStages;
  extern __shared__ __align__(16) unsigned char smem_raw[];
  unsigned char* ring = smem_raw;  // [kStages][stage: K codes, V codes, K scales, V scales]
  device::enter_chain();

  const SplitCta cta = split_cta(a, plan, HEADS);
  if (!cta.valid) return;
  const int chunk = cta.chunk, slot_row = cta.slot_row, j0 = cta.j0, n = cta.n;  // keys [j0, j0 + n)
  const SequenceView& seq = cta.seq;
  const DecodeRow& row = cta.row;

  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int slot = threadIdx.x / S::kLanesPerKey, dim0 = (threadIdx.x % S::kLanesPerKey) * 8;
  const int kv_head = cta.kv_head, head0 = cta.head0, heads = cta.heads;
  const int tiles = (n + S::kTileKeys - 1) / S::kTileKeys;

  const int64_t kv_pitch = int64_t(a.Hkv) * D * KV::kBytes;  // bytes per pool row
  const unsigned char* k_base = static_cast<const unsigned char*>(a.k_pool) + (int64_t(kv_head) * D + dim0) * KV::kBytes;
  const unsigned char* v_base = static_cast<const unsigned char*>(a.v_pool) + (int64_t(kv_head) * D + dim0) * KV::kBytes;
  auto stage_k = [&](int tile) { return ring + (tile % kStages) * S::kStageBytes; };
  auto stage_v = [&](int tile) { return stage_k(tile) + S::kCodeBytes; };
  auto stage_k_scale = [&](int tile) { return reinterpret_cast<float*>(stage_k(tile) + 2 * S::kCodeBytes); };
  auto stage_v_scale = [&](int tile) { return stage_k_scale(tile) + S::kTileKeys; };
  // This thread copies piece c of every tile: tile row slot + c * kKeySlots, dims dim0 .. dim0 + 7.
  auto lookup_tile = [&](int tile, int (&rows)[S::kPieces]) {
#pragma unroll
    for (int c = 0; c < S::kPieces; ++c) {
      const int j = tile * S::kTileKeys + slot + c * S::kKeySlots;
      rows[c] = j < n ? pool_row(seq, j0 + j, a.block_size) : -1;
    }
  };
  auto issue_tile = [&](int tile, const int (&rows)[S::kPieces]) {
    unsigned char* sk = stage_k(tile);
    unsigned char* sv = stage_v(tile);
#pragma unroll
    for (int c = 0; c < S::kPieces; ++c) {
      const int r = slot + c * S::kKeySlots;
      const bool valid = rows[c] >= 0;
      const int64_t offset = valid ? int64_t(rows[c]) * kv_pitch : 0;
      const int at = (r * D + dim0) * KV::kBytes;
      if constexpr (KV::kScaled) {
        device::cp_async_8(sk + at, k_base + offset, valid);
        device::cp_async_8(sv + at, v_base + offset, valid);
        if (dim0 == 0) {  // one lane per key row fetches its scales
          const int64_t scale_at = valid ? int64_t(rows[c]) * a.Hkv + kv_head : 0;
          device::cp_async_4(stage_k_scale(tile) + r, a.k_scale + scale_at, valid);
          device::cp_async_4(stage_v_scale(tile) + r, a.v_scale + scale_at, valid);
        }
      } else {
        device::cp_async_16(sk + at, k_base + offset, valid);
        device::cp_async_16(sv + at, v_base + offset, valid);
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

  // This lane's 8 dims of every head's q, pre-scaled into log2 units.
  float q[HEADS][8];
#pragma unroll
  for (int h = 0; h < HEADS; ++h) {
    if (h < heads) {
      device::load8(static_cast<const bf16*>(a.q) + (int64_t(row.t) * a.Hq + head0 + h) * D + dim0, q[h]);
#pragma unroll
      for (int e = 0; e < 8; ++e) q[h][e] *= a.scale * kLog2e;
    } else {
#pragma unroll
      for (int e = 0; e < 8; ++e) q[h][e] = 0.0f;
    }
  }

  float m[HEADS], l[HEADS], o[HEADS][8];  // this slot's online softmax state
#pragma unroll
  for (int h = 0; h < HEADS; ++h) {
    m[h] = -INFINITY, l[h] = 0.0f;
#pragma unroll
    for (int e = 0; e < 8; ++e) o[h][e] = 0.0f;
  }

  for (int i = 0; i < tiles; ++i) {
    device::cp_async_wait<kStages - 2>();  // tile i has landed (for this thread's copies) ...
    __syncthreads();                       // ... for all; and every slot is done with tile i - 1
    const int ahead = i + kStages - 1;
    if (ahead < tiles) issue_tile(ahead, rows);  // into the stage tile i - 1 used
    device::cp_async_commit();
    if (ahead + 1 < tiles) lookup_tile(ahead + 1, rows);  // used one iteration later: the latency hides
    const unsigned char* sk = stage_k(i);
    const unsigned char* sv = stage_v(i);
    const float* sk_scale = stage_k_scale(i);
    const float* sv_scale = stage_v_scale(i);

    // Scores of this slot's keys of the tile: s[u][h], -inf past n.
    float s[S::kKeysPerSlot][HEADS];
#pragma unroll
    for (int u = 0; u < S::kKeysPerSlot; ++u) {
      const int r = u * S::kKeySlots + slot;
      float kk[8];
      load_piece<KV>(sk + (r * D + dim0) * KV::kBytes, kk);
      const bool valid = i * S::kTileKeys + r < n;
      const float k_scale = KV::kScaled ? sk_scale[r] : 1.0f;
#pragma unroll
      for (int h = 0; h < HEADS; ++h) {
        float dot = 0.0f;
#pragma unroll
        for (int e = 0; e < 8; ++e) dot += q[h][e] * kk[e];
#pragma unroll
        for (int offset = S::kLanesPerKey / 2; offset > 0; offset >>= 1)
          dot += __shfl_xor_sync(device::kFullMask, dot, offset);
        s[u][h] = valid ? dot * k_scale : -INFINITY;
      }
    }
    // Online softmax, once per tile: rescale by exp2(m_old - m_new), then add exp2(s - m_new).
#pragma unroll
    for (int h = 0; h < HEADS; ++h) {
      float tile_max = s[0][h];
#pragma unroll
      for (int u = 1; u < S::kKeysPerSlot; ++u) tile_max = fmaxf(tile_max, s[u][h]);
      const float new_max = fmaxf(m[h], tile_max);
      const float base = new_max == -INFINITY ? 0.0f : new_max;
      const float correction = exp2f(m[h] - base);
      m[h] = new_max;
      l[h] *= correction;
#pragma unroll
      for (int e = 0; e < 8; ++e) o[h][e] *= correction;
#pragma unroll
      for (int u = 0; u < S::kKeysPerSlot; ++u) {
        s[u][h] = exp2f(s[u][h] - base);
        l[h] += s[u][h];
      }
    }
#pragma unroll
    for (int u = 0; u < S::kKeysPerSlot; ++u) {
      const int r = u * S::kKeySlots + slot;
      float vv[8];
      load_piece<KV>(sv + (r * D + dim0) * KV::kBytes, vv);
      const float v_scale = KV::kScaled ? sv_scale[r] : 1.0f;
#pragma unroll
      for (int h = 0; h < HEADS; ++h) {
        const float p = s[u][h] * v_scale;
#pragma unroll
        for (int e = 0; e < 8; ++e) o[h][e] += p * vv[e];
      }
    }
  }
  device::cp_async_wait<0>();
  __syncthreads();  // the ring is free: reuse it for the merge

  // Merge the slots of a warp (lanes kLanesPerKey apart), then the warps through shared memory.
#pragma unroll
  for (int offset = S::kLanesPerKey; offset < 32; offset <<= 1)
#pragma unroll
    for (int h = 0; h < HEADS; ++h) {
      float o2[8];
#pragma unroll
      for (int e = 0; e < 8; ++e) o2[e] = __shfl_xor_sync(device::kFullMask, o[h][e], offset);
      const float m2 = __shfl_xor_sync(device::kFullMask, m[h], offset);
      const float l2 = __shfl_xor_sync(device::kFullMask, l[h], offset);
      merge_state(m[h], l[h], o[h], m2, l2, o2);
    }
  float* warp_o = reinterpret_cast<float*>(smem_raw);  // [kWarps][HEADS][D]
  float* warp_m = warp_o + kWarps * HEADS * D;          // [kWarps][HEADS]
  float* warp_l = warp_m + kWarps * HEADS;              // [kWarps][HEADS]
  if (lane < S::kLanesPerKey) {
#pragma unroll
    for (int h = 0; h < HEADS; ++h) {
#pragma unroll
      for (int e = 0; e < 8; ++e) warp_o[(warp * HEADS + h) * D + dim0 + e] = o[h][e];
      if (lane == 0) warp_m[warp * HEADS + h] = m[h], warp_l[warp * HEADS + h] = l[h];
    }
  }
  __syncthreads();

  merge_warps_and_write<D>(warp_o, warp_m, warp_l, HEADS, heads, a, plan, workspace, row, head0, slot_row, chunk);
}


// One CTA per (row slot, query head): out[t, h, :] from the partials of the chunks that hold keys. Warp w
// sums chunks w, w + kWarps, ... (each lane its dims d = lane, lane + 32, ...: coalesced, all loads independent),
// then the warps' sums are added through shared memory.
template <int D>
__global__ void __launch_bounds__(kThreads) paged_decode_combine_kernel(PagedAttentionArgs a, PagedDecodePlan plan,
                                                                        void* workspace) {
  constexpr int kDimsPerLane = (D + 31) / 32;
  __shared__ float weight[kMaxChunks];  // exp2(m_c - M)
  __shared__ float scratch[32];
  __shared__ float warp_sum[kWarps][D];
  device::enter_chain();
  const int head = blockIdx.x % a.Hq, slot_row = blockIdx.x / a.Hq;
  SequenceView seq;
  const DecodeRow row = decode_row(a, slot_row, seq);
  if (!row.valid) return;
  const int span = row.pos + 1 - row.visible_begin;
  const int chunks = min(plan.num_chunks, (span + plan.chunk_len - 1) / plan.chunk_len);
  const Partials part = Partials::at(workspace, a, plan.num_chunks);
  const int64_t at0 = (int64_t(slot_row) * a.Hq + head) * plan.num_chunks;
  const float* m = part.m + at0;
  const float* l = part.l + at0;
  float mx = -INFINITY;
  for (int c = threadIdx.x; c < chunks; c += blockDim.x) mx = fmaxf(mx, m[c]);
  mx = device::block_max(mx, scratch);
  float total = 0.0f;
  for (int c = threadIdx.x; c < chunks; c += blockDim.x) {
    weight[c] = l[c] > 0.0f ? exp2f(m[c] - mx) : 0.0f;
    total += weight[c] * l[c];
  }
  total = device::block_sum(total, scratch);  // also orders the weight writes before the reads below
  const float inv_total = total > 0.0f ? 1.0f / total : 0.0f;

  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const float* o = part.o + at0 * D;
  float acc[kDimsPerLane] = {};
  for (int c = warp; c < chunks; c += kWarps) {
    const float w = weight[c];
#pragma unroll
    for (int i = 0; i < kDimsPerLane; ++i)
      if (lane + 32 * i < D) acc[i] += o[int64_t(c) * D + lane + 32 * i] * w;
  }
#pragma unroll
  for (int i = 0; i < kDimsPerLane; ++i)
    if (lane + 32 * i < D) warp_sum[warp][lane + 32 * i] = acc[i];
  __syncthreads();
  bf16* out = static_cast<bf16*>(a.out) + (int64_t(row.t) * a.Hq + head) * D;
  for (int d = threadIdx.x; d < D; d += blockDim.x) {
    float sum = 0.0f;
#pragma unroll
    for (int w = 0; w < kWarps; ++w) sum += warp_sum[w][d];
    out[d] = __float2bfloat16_rn(sum * inv_total);
  }
}

// head_dim 64 and 128 take the tensor-core kernel; the small head dims of the test models the one above.
bool uses_mma(const PagedAttentionArgs& a) { return a.D == 64 || a.D == 128; }

// Query heads per CTA. Tensor-core kernel: a whole GQA group up to kMmaRows. The other: the smallest power of
// two that holds a group, at most 8. Larger groups take several CTAs per kv head.
int heads_per_cta(const PagedAttentionArgs& a) {
  const int group = a.Hq / std::max(a.Hkv, 1);
  if (uses_mma(a)) return kMmaRows;
  return group <= 1 ? 1 : group <= 2 ? 2 : group <= 4 ? 4 : 8;
}

int head_groups(const PagedAttentionArgs& a) {
  const int group = a.Hq / std::max(a.Hkv, 1), heads = heads_per_cta(a);
  return a.Hkv * ((group + heads - 1) / heads);
}

template <int D, int HEADS, typename KV>
void launch_split_kv(const PagedAttentionArgs& a, const PagedDecodePlan& plan, void* workspace, cudaStream_t stream) {
  constexpr size_t smem = DecodeShape<D, HEADS, KV>::kSmemBytes;
  ROOFLINE_CUDA_CHECK(cudaFuncSetAttribute(paged_decode_split_kernel<D, HEADS, KV>,
                                           cudaFuncAttributeMaxDynamicSharedMemorySize, int(smem)));
  const dim3 grid(unsigned(int64_t(a.num_seqs) * a.max_query_len * plan.num_chunks), unsigned(head_groups(a)));
  launch_chained(paged_decode_split_kernel<D, HEADS, KV>, grid, kThreads, smem, stream, a, plan, workspace);
}

template <int D, int HEADS>
void launch_split(const PagedAttentionArgs& a, const PagedDecodePlan& plan, void* workspace, cudaStream_t stream) {
  if (a.kv_fp8)
    launch_split_kv<D, HEADS, Fp8Kv>(a, plan, workspace, stream);
  else
    launch_split_kv<D, HEADS, Bf16Kv>(a, plan, workspace, stream);
}

template <int D, int HEADS, typename KV>
int resident_split_ctas() {
  static const int resident =
      resident_ctas(paged_decode_split_kernel<D, HEADS, KV>, DecodeShape<D, HEADS, KV>::kSmemBytes);
  return resident;
}

template <int D, typename KV>
int resident_split_ctas_d(int heads) {
  switch (heads) {
    case 1: return resident_split_ctas<D, 1, KV>();
    case 2: return resident_split_ctas<D, 2, KV>();
    case 4: return resident_split_ctas<D, 4, KV>();
    default: return resident_split_ctas<D, 8, KV>();
  }
}

template <typename KV>
int resident_split_ctas_kv(const PagedAttentionArgs& a) {
  switch (a.D) {
    case 16: return resident_split_ctas_d<16, KV>(heads_per_cta(a));
    case 32: return resident_split_ctas_d<32, KV>(heads_per_cta(a));
    case 64: return resident_mma_ctas(64, KV::kScaled);
    case 128: return resident_mma_ctas(128, KV::kScaled);
    default: return 1;  // the launcher rejects the head_dim
  }
}

int resident_split_ctas(const PagedAttentionArgs& a) {
  return a.kv_fp8 ? resident_split_ctas_kv<Fp8Kv>(a) : resident_split_ctas_kv<Bf16Kv>(a);
}

template <int D>
void launch_decode(const PagedAttentionArgs& a, const PagedDecodePlan& plan, void* workspace, cudaStream_t stream) {
  if constexpr (D == 64 || D == 128) {  // uses_mma
    launch_mma(a, plan, unsigned(head_groups(a)), workspace, stream);
  } else {
    switch (heads_per_cta(a)) {
      case 1: launch_split<D, 1>(a, plan, workspace, stream); break;
      case 2: launch_split<D, 2>(a, plan, workspace, stream); break;
      case 4: launch_split<D, 4>(a, plan, workspace, stream); break;
      default: launch_split<D, 8>(a, plan, workspace, stream); break;
    }
  }
  if (plan.num_chunks > 1) {
    const unsigned ctas = unsigned(int64_t(a.num_seqs) * a.max_query_len * a.Hq);
    launch_chained(paged_decode_combine_kernel<D>, ctas, kThreads, 0, stream, a, plan, workspace);
  }
}

// ROOFLINE_DECODE_CHUNKS=N (lab A/B, read once) forces N chunks per row, within [1, the span's most]; unset or
// 0, the plan below chooses.
int environment_decode_chunks() {
  static const int forced = [] {
    const char* v = std::getenv("ROOFLINE_DECODE_CHUNKS");
    return v != nullptr ? std::max(0, std::atoi(v)) : 0;
  }();
  return forced;
}

}  // namespace

PagedDecodePlan plan_paged_decode(const PagedAttentionArgs& a, int multiprocessors) {
  PagedDecodePlan plan;
  // The most keys one query row sees.
  const int span = std::max(1, a.window > 0 ? std::min(a.max_context_len, a.window) : a.max_context_len);
  // How many chunks. CTAs of equal work run in waves of resident CTAs, and the kernel takes as many rounds as
  // its fullest wave, so the chunk count is the smallest that fills the last wave to kWaveFill (else the best
  // fill). A contiguous cache (no block table) streams best from one wave of kContiguousCtasPerSm CTAs per
  // multiprocessor when the rows and heads give fewer. Measured on H100 (bench/micro/gpu_attention_bench, hd 128,
  // 8 kv heads, share of copy bandwidth): contiguous, one row, 128k keys: 94% with 2 CTAs per multiprocessor,
  // 87% with 2.7; paged (block_size 16): 80% with 2.7 (the fill rule), 76% with 2; 16 rows of 8k keys: 85% / 77%.
  const int64_t ctas_per_chunk = std::max<int64_t>(1, int64_t(a.num_seqs) * a.max_query_len * head_groups(a));
  const int64_t sms = std::max(1, multiprocessors);
  const int max_chunks = std::clamp((span + kMinChunk - 1) / kMinChunk, 1, kMaxChunks);
  int chunks = 1;
  if (a.block_table == nullptr && ctas_per_chunk <= kContiguousCtasPerSm * sms) {
    chunks = int(std::clamp<int64_t>(kContiguousCtasPerSm * sms / ctas_per_chunk, 1, max_chunks));
  } else {
    const int64_t slots = int64_t(resident_split_ctas(a)) * sms;
    // The fill rule pays for its chunks with partial writes and a combine launch; where each CTA's wave is short
    // or there are many waves, one chunk per row is faster. Measured on H100 (session 9, paged bs16, 8 kv heads,
    // one chunk against the fill rule's): B 64, ctx 512: 35.1 us against 42.2 (hd 64), 56.8 / 57.6 (hd 128),
    // 47.9 / 54.2 (hd 128 fp8); B 256, ctx 1536, hd 128 fp8 (5 waves): 387.5 / 410.4; but B 64, ctx 4096 (1.3
    // waves of long rows): 247.1 / 205.9 (hd 64), 298.9 / 254.7 (fp8); a line through the hd-64 points puts
    // the crossover near 850 keys. Recorded decode steps bound the context at the next power of two, so a span
    // of 1024 holds 513-1024 real keys (mean 768): the 1B B=64 step at 513-544 keys (bound 1024) took 2.156 ms
    // with one chunk against 2.199. One sequence (8 CTAs) at ctx 160 lost: the 1B B=1 step 1.040 ms / 1.009.
    const bool unsplit =
        ctas_per_chunk >= sms && (span <= kUnsplitSpan || ctas_per_chunk >= int64_t(kUnsplitWaves) * slots);
    double best_fill = 0.0;
    for (int c = 1; !unsplit && c <= max_chunks; ++c) {
      const int64_t ctas = c * ctas_per_chunk, waves = (ctas + slots - 1) / slots;
      const double fill = double(ctas) / double(waves * slots);
      if (fill > best_fill + 1e-9) chunks = c, best_fill = fill;
      if (fill >= kWaveFill) break;
    }
  }
  if (environment_decode_chunks() > 0) chunks = std::min(environment_decode_chunks(), max_chunks);
  const int chunk = (span + chunks - 1) / chunks;
  plan.chunk_len = (chunk + kChunkAlign - 1) / kChunkAlign * kChunkAlign;
  plan.num_chunks = (span + plan.chunk_len - 1) / plan.chunk_len;
  const size_t partials = size_t(a.num_seqs) * size_t(a.max_query_len) * size_t(a.Hq) * size_t(plan.num_chunks);
  plan.workspace_bytes = plan.num_chunks > 1 ? partials * (size_t(a.D) + 2) * sizeof(float) : 0;
  return plan;
}

void launch_paged_decode(const PagedAttentionArgs& a, const PagedDecodePlan& plan, void* workspace,
                         cudaStream_t stream) {
  nvtx3::scoped_range range("cuda::paged_attention_decode");
  ROOFLINE_CHECK(a.Hkv > 0 && a.Hq % a.Hkv == 0, "paged_attention: Hq {} must be a multiple of Hkv {}", a.Hq, a.Hkv);
  ROOFLINE_CHECK(a.max_query_len <= kPagedDecodeMaxQueryLen,
                 "paged_attention: the decode kernel takes at most {} query rows per sequence, not {}",
                 kPagedDecodeMaxQueryLen, a.max_query_len);
  ROOFLINE_CHECK(plan.num_chunks >= 1 && plan.num_chunks <= kMaxChunks && plan.chunk_len > 0 &&
                     (plan.num_chunks == 1 || workspace),
                 "paged_attention: a decode plan of {} chunks needs a workspace and at most {} chunks",
                 plan.num_chunks, kMaxChunks);
  if (a.num_seqs <= 0 || a.max_query_len <= 0 || a.Hq <= 0) return;
  ROOFLINE_CHECK(int64_t(a.num_seqs) * a.max_query_len * std::max(plan.num_chunks, a.Hq) < (int64_t(1) << 31),
                 "paged_attention: {} sequences x {} rows is too large a decode grid", a.num_seqs, a.max_query_len);
  switch (a.D) {
    case 16: launch_decode<16>(a, plan, workspace, stream); break;
    case 32: launch_decode<32>(a, plan, workspace, stream); break;
    case 64: launch_decode<64>(a, plan, workspace, stream); break;
    case 128: launch_decode<128>(a, plan, workspace, stream); break;
    default: fail("paged_attention: head_dim {} has no CUDA kernel (16, 32, 64 and 128 do)", a.D);
  }
}

}  // namespace roofline::cuda
