// Decode attention (a few query rows against a long cache), flash-decoding style (AttentionArgs in
// kernels.h). The keys a sequence's rows can see are cut into chunks; CTA (chunk c, head group, query row t)
// attends up to kHeads query heads that share one kv head over the keys j of its chunk that row t sees,
// with scores in log2 units (s_j = scale log2(e) q . k_j):
//   m_c = max_j s_j,   l_c = sum_j exp2(s_j - m_c),   o_c = sum_j exp2(s_j - m_c) v_j
// and a second kernel combines the chunks: M = max_c m_c, out = sum_c exp2(m_c - M) o_c / sum_c exp2(m_c - M) l_c.
// Inside a CTA, K and V tiles of kTileKeys rows stream through a kStages-deep cp.async ring in shared
// memory (the loads of later tiles are in flight while a tile is used). A key row is handled by D / 8
// lanes (16 bytes each), a "slot"; each slot keeps its own online softmax (m, l, o per head) over its keys
// of every tile, and the slots are merged at the end. Cache rows outside the visible keys are never read.
// With a single chunk the split kernel writes the output itself.
#include <nvtx3/nvtx3.hpp>

#include <algorithm>
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
constexpr int kStages = 4;         // K/V tiles in flight per CTA
constexpr int kTileBytes = 8192;   // one K (or V) tile: kTileKeys rows of D bf16
constexpr int kMinChunk = 64;      // keys per CTA, at least
constexpr int kMaxChunks = 1024;   // chunks per row, at most (the combine kernel's shared weights)
constexpr float kLog2e = 1.4426950408889634f;

template <int D, int HEADS>
struct DecodeShape {
  static_assert(D % 8 == 0 && 32 % (D / 8) == 0, "a key row is read by a power-of-two part of one warp");
  static constexpr int kLanesPerKey = D / 8;                  // 16-byte chunks of one key row
  static constexpr int kKeySlots = kThreads / kLanesPerKey;   // keys handled side by side
  static constexpr int kTileKeys = kTileBytes / (D * 2);      // rows per K (V) tile
  static constexpr int kKeysPerSlot = kTileKeys / kKeySlots;  // keys of a tile per slot
  static_assert(kTileKeys % kKeySlots == 0 && kMinChunk % kTileKeys == 0, "tiles split evenly over the slots");
  static_assert((kTileKeys * kLanesPerKey) % kThreads == 0, "tile loads split evenly over the CTA");
  // Shared memory: the ring [kStages][K, V][kTileKeys][D]; after the loop it holds the per-warp results.
  static constexpr size_t kSmemBytes = size_t(kStages) * 2 * kTileBytes;
  static_assert(size_t(kWarps) * HEADS * (D + 2) * sizeof(float) <= kSmemBytes, "merge buffers fit the ring");
};

// Partial results in the workspace, per (row t, query head h, chunk c):
//   o: [T, Hq, chunks, D] f32, then m, l: [T, Hq, chunks] f32 each.
struct Partials {
  float* o;
  float* m;
  float* l;
  __host__ __device__ static Partials at(void* workspace, const AttentionArgs& a, int chunks) {
    float* base = static_cast<float*>(workspace);
    const int64_t n = int64_t(a.T) * a.Hq * chunks;
    return {base, base + n * a.D, base + n * a.D + n};
  }
};

// Merges online-softmax state (m2, l2, o2) into (m, l, o); m = -inf means "nothing seen yet".
template <int N>
__device__ __forceinline__ void merge_state(float& m, float& l, float (&o)[N], float m2, float l2, const float (&o2)[N]) {
  const float mx = fmaxf(m, m2);
  const float base = mx == -INFINITY ? 0.0f : mx;
  const float c1 = exp2f(m - base), c2 = exp2f(m2 - base);
  m = mx;
  l = l * c1 + l2 * c2;
#pragma unroll
  for (int i = 0; i < N; ++i) o[i] = o[i] * c1 + o2[i] * c2;
}

template <int D, int HEADS>
__global__ void __launch_bounds__(kThreads) decode_split_kernel(AttentionArgs a, DecodePlan plan, void* workspace) {
  using S = DecodeShape<D, HEADS>;
  extern __shared__ __align__(16) unsigned char smem_raw[];
  bf16* ring = reinterpret_cast<bf16*>(smem_raw);  // [kStages][2][kTileKeys][D]

  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int slot = threadIdx.x / S::kLanesPerKey, dim0 = (threadIdx.x % S::kLanesPerKey) * 8;
  const int chunk = blockIdx.x, t = blockIdx.z;
  const int group = a.Hq / a.Hkv, per_kv = (group + HEADS - 1) / HEADS;
  const int kv_head = blockIdx.y / per_kv;
  const int first_in_group = (blockIdx.y % per_kv) * HEADS;
  const int head0 = kv_head * group + first_in_group;
  const int heads = min(HEADS, group - first_in_group);

  // Keys [j0, j0 + n) of this chunk that row t sees.
  const int pos = a.start_pos + t;
  const int visible_begin = a.window > 0 ? max(0, pos - a.window + 1) : 0;
  const int chunk_begin = plan.kv_begin + chunk * plan.chunk_len;
  const int j0 = max(chunk_begin, visible_begin);
  const int n = max(0, min(chunk_begin + plan.chunk_len, pos + 1) - j0);
  const int tiles = (n + S::kTileKeys - 1) / S::kTileKeys;

  const int64_t kv_pitch = int64_t(a.Hkv) * D;
  const bf16* k = static_cast<const bf16*>(a.k) + int64_t(j0) * kv_pitch + int64_t(kv_head) * D;
  const bf16* v = static_cast<const bf16*>(a.v) + int64_t(j0) * kv_pitch + int64_t(kv_head) * D;
  // Tile i of K and V into ring stage i % kStages; rows past n are zero-filled, not read.
  auto load_tile = [&](int i) {
    bf16* sk = ring + (i % kStages) * 2 * (S::kTileKeys * D);
    bf16* sv = sk + S::kTileKeys * D;
#pragma unroll
    for (int c = 0; c < S::kTileKeys * S::kLanesPerKey / kThreads; ++c) {
      const int piece = int(threadIdx.x) + c * kThreads;
      const int r = piece / S::kLanesPerKey, col = (piece % S::kLanesPerKey) * 8;
      const int j = i * S::kTileKeys + r;
      const bool valid = j < n;
      const int64_t offset = valid ? int64_t(j) * kv_pitch + col : 0;
      device::cp_async_16(sk + r * D + col, k + offset, valid);
      device::cp_async_16(sv + r * D + col, v + offset, valid);
    }
  };
#pragma unroll
  for (int i = 0; i < kStages - 1; ++i) {
    if (i < tiles) load_tile(i);
    device::cp_async_commit();  // possibly empty: keeps the group count per iteration fixed
  }

  // This lane's 8 dims of every head's q, pre-scaled into log2 units.
  float q[HEADS][8];
#pragma unroll
  for (int h = 0; h < HEADS; ++h) {
    if (h < heads) {
      device::load8(static_cast<const bf16*>(a.q) + (int64_t(t) * a.Hq + head0 + h) * D + dim0, q[h]);
#pragma unroll
      for (int i = 0; i < 8; ++i) q[h][i] *= a.scale * kLog2e;
    } else {
#pragma unroll
      for (int i = 0; i < 8; ++i) q[h][i] = 0.0f;
    }
  }

  float m[HEADS], l[HEADS], o[HEADS][8];  // this slot's online softmax state
#pragma unroll
  for (int h = 0; h < HEADS; ++h) {
    m[h] = -INFINITY, l[h] = 0.0f;
#pragma unroll
    for (int i = 0; i < 8; ++i) o[h][i] = 0.0f;
  }

  for (int i = 0; i < tiles; ++i) {
    device::cp_async_wait<kStages - 2>();  // tile i has landed (for this thread's copies) ...
    __syncthreads();                       // ... for all; and every slot is done with tile i - 1
    if (i + kStages - 1 < tiles) load_tile(i + kStages - 1);  // into the stage tile i - 1 used
    device::cp_async_commit();
    const bf16* sk = ring + (i % kStages) * 2 * (S::kTileKeys * D);
    const bf16* sv = sk + S::kTileKeys * D;

    // Scores of this slot's keys of the tile: s[u][h], -inf past n.
    float s[S::kKeysPerSlot][HEADS];
#pragma unroll
    for (int u = 0; u < S::kKeysPerSlot; ++u) {
      const int r = u * S::kKeySlots + slot;
      float kk[8];
      device::load8(sk + r * D + dim0, kk);
      const bool valid = i * S::kTileKeys + r < n;
#pragma unroll
      for (int h = 0; h < HEADS; ++h) {
        float dot = 0.0f;
#pragma unroll
        for (int e = 0; e < 8; ++e) dot += q[h][e] * kk[e];
#pragma unroll
        for (int offset = S::kLanesPerKey / 2; offset > 0; offset >>= 1)
          dot += __shfl_xor_sync(device::kFullMask, dot, offset);
        s[u][h] = valid ? dot : -INFINITY;
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
      float vv[8];
      device::load8(sv + (u * S::kKeySlots + slot) * D + dim0, vv);
#pragma unroll
      for (int h = 0; h < HEADS; ++h)
#pragma unroll
        for (int e = 0; e < 8; ++e) o[h][e] += s[u][h] * vv[e];
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

  const bool single = plan.num_chunks == 1;
  const Partials part = Partials::at(workspace, a, plan.num_chunks);
  for (int idx = threadIdx.x; idx < heads * D; idx += kThreads) {
    const int h = idx / D, d = idx % D;
    float mx = warp_m[h], sum = warp_l[h], out = warp_o[h * D + d];
#pragma unroll
    for (int w = 1; w < kWarps; ++w) {
      float o1[1] = {out};
      const float o2[1] = {warp_o[(w * HEADS + h) * D + d]};
      merge_state(mx, sum, o1, warp_m[w * HEADS + h], warp_l[w * HEADS + h], o2);
      out = o1[0];
    }
    const int64_t row_head = int64_t(t) * a.Hq + head0 + h;
    if (single) {
      static_cast<bf16*>(a.out)[row_head * D + d] = __float2bfloat16_rn(sum > 0.0f ? out / sum : 0.0f);
    } else {
      const int64_t at = row_head * plan.num_chunks + chunk;
      part.o[at * D + d] = out;
      if (d == 0) part.m[at] = mx, part.l[at] = sum;  // n == 0: -inf and 0
    }
  }
}

// One CTA per (row t, query head h): out[t, h, :] from the partials of every chunk.
__global__ void __launch_bounds__(kThreads) decode_combine_kernel(AttentionArgs a, DecodePlan plan, void* workspace) {
  __shared__ float weight[kMaxChunks];  // exp2(m_c - M) / L, 0 for empty chunks
  __shared__ float scratch[32];
  const Partials part = Partials::at(workspace, a, plan.num_chunks);
  const int64_t row_head = blockIdx.x;  // t * Hq + h
  const int chunks = plan.num_chunks;
  const float* m = part.m + row_head * chunks;
  const float* l = part.l + row_head * chunks;
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
  const float* o = part.o + row_head * chunks * a.D;
  for (int d = threadIdx.x; d < a.D; d += blockDim.x) {
    float sum = 0.0f;
#pragma unroll 8
    for (int c = 0; c < chunks; ++c) sum += o[int64_t(c) * a.D + d] * weight[c];
    static_cast<bf16*>(a.out)[row_head * a.D + d] = __float2bfloat16_rn(sum * inv_total);
  }
}

template <int D, int HEADS>
void launch_split(const AttentionArgs& a, const DecodePlan& plan, void* workspace, cudaStream_t stream) {
  constexpr size_t smem = DecodeShape<D, HEADS>::kSmemBytes;
  ROOFLINE_CUDA_CHECK(
      cudaFuncSetAttribute(decode_split_kernel<D, HEADS>, cudaFuncAttributeMaxDynamicSharedMemorySize, int(smem)));
  const int group = a.Hq / a.Hkv;
  const dim3 grid(unsigned(plan.num_chunks), unsigned(a.Hkv * ((group + HEADS - 1) / HEADS)), unsigned(a.T));
  decode_split_kernel<D, HEADS><<<grid, kThreads, smem, stream>>>(a, plan, workspace);
  ROOFLINE_CUDA_CHECK_LAUNCH();
}

// Query heads per CTA: a GQA group of up to 4 in one CTA, larger groups 8 at a time.
int heads_per_cta(const AttentionArgs& a) { return a.Hq / std::max(a.Hkv, 1) <= 4 ? 4 : 8; }

template <int D>
void launch_decode(const AttentionArgs& a, const DecodePlan& plan, void* workspace, cudaStream_t stream) {
  if (heads_per_cta(a) == 4)
    launch_split<D, 4>(a, plan, workspace, stream);
  else
    launch_split<D, 8>(a, plan, workspace, stream);
  if (plan.num_chunks > 1) {
    decode_combine_kernel<<<unsigned(a.T * a.Hq), kThreads, 0, stream>>>(a, plan, workspace);
    ROOFLINE_CUDA_CHECK_LAUNCH();
  }
}

}  // namespace

DecodePlan plan_attention_decode(const AttentionArgs& a, int multiprocessors) {
  DecodePlan plan;
  const int kv_end = a.start_pos + a.T;  // one past the last key of the last row
  plan.kv_begin = a.window > 0 ? std::max(0, a.start_pos - a.window + 1) : 0;
  const int keys = std::max(1, kv_end - plan.kv_begin);
  // About two CTAs per multiprocessor over all (chunk, head group, row) triples.
  const int group = a.Hkv > 0 ? a.Hq / a.Hkv : 1;
  const int heads = heads_per_cta(a);
  const int ctas_per_chunk = std::max(1, a.Hkv * ((group + heads - 1) / heads) * a.T);
  const int wanted_chunks = std::clamp(2 * std::max(1, multiprocessors) / ctas_per_chunk, 1, kMaxChunks);
  int chunk = (keys + wanted_chunks - 1) / wanted_chunks;
  plan.chunk_len = std::max(kMinChunk, (chunk + kMinChunk - 1) / kMinChunk * kMinChunk);
  plan.num_chunks = (keys + plan.chunk_len - 1) / plan.chunk_len;
  const size_t partials = size_t(a.T) * size_t(a.Hq) * size_t(plan.num_chunks);
  plan.workspace_bytes = plan.num_chunks > 1 ? partials * (size_t(a.D) + 2) * sizeof(float) : 0;
  return plan;
}

void launch_attention_decode(const AttentionArgs& a, const DecodePlan& plan, void* workspace, cudaStream_t stream) {
  nvtx3::scoped_range range("cuda::attention_decode");
  ROOFLINE_CHECK(a.Hkv > 0 && a.Hq % a.Hkv == 0, "attention_decode: Hq {} must be a multiple of Hkv {}", a.Hq, a.Hkv);
  ROOFLINE_CHECK(a.T <= kDecodeMaxRows, "attention_decode: {} query rows, at most {} (use the prefill kernel)", a.T,
                 kDecodeMaxRows);
  ROOFLINE_CHECK(plan.num_chunks >= 1 && plan.num_chunks <= kMaxChunks && (plan.num_chunks == 1 || workspace),
                 "attention_decode: a plan of {} chunks needs a workspace and at most {} chunks", plan.num_chunks,
                 kMaxChunks);
  if (a.T <= 0) return;
  switch (a.D) {
    case 64: launch_decode<64>(a, plan, workspace, stream); break;
    case 128: launch_decode<128>(a, plan, workspace, stream); break;
    default: fail("attention_decode: head_dim {} has no CUDA kernel (64 and 128 do)", a.D);
  }
}

}  // namespace roofline::cuda
