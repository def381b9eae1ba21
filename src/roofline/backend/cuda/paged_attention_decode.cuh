// Pieces shared by the paged decode attention kernels: paged_attention_decode.cu (the plan, the scalar split
// kernel for head_dim 16 and 32, the combine kernel) and paged_attention_decode_mma.cu (the tensor-core split
// kernel for head_dim 64 and 128). Each CTA has kThreads threads; the split kernels end the same way.
#pragma once
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdint>

#include "roofline/backend/cuda/cuda_check.h"
#include "roofline/backend/cuda/device/convert.cuh"
#include "roofline/backend/cuda/kernels.h"
#include "roofline/backend/cuda/paged_attention.cuh"

namespace roofline::cuda::paged_decode {

using device::bf16;

constexpr int kWarps = 4;
constexpr int kThreads = kWarps * 32;
constexpr int kMmaRows = 16;  // query heads per CTA of the tensor-core kernel: the m16 rows of its products

// How K/V elements are stored: bf16, or e4m3 codes with an f32 scale per (pool row, kv head).
struct Bf16Kv {
  static constexpr int kBytes = 2;
  static constexpr bool kScaled = false;
};
struct Fp8Kv {
  static constexpr int kBytes = 1;
  static constexpr bool kScaled = true;
};

// Partial results in the workspace, per (row slot r = b * max_query_len + i, query head h, chunk c):
//   o: [slots, Hq, chunks, D] f32, then m, l: [slots, Hq, chunks] f32 each.
struct Partials {
  float* o;
  float* m;
  float* l;
  __host__ __device__ static Partials at(void* workspace, const PagedAttentionArgs& a, int chunks) {
    float* base = static_cast<float*>(workspace);
    const int64_t n = int64_t(a.num_seqs) * a.max_query_len * a.Hq * chunks;
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

// The query row of a row slot, or n = 0 when the slot is past its sequence's rows.
struct DecodeRow {
  int t = 0;              // global q row
  int pos = 0;            // its position
  int visible_begin = 0;  // first key it sees
  bool valid = false;
};

__device__ __forceinline__ DecodeRow decode_row(const PagedAttentionArgs& a, int slot_row, SequenceView& seq) {
  const int b = slot_row / a.max_query_len, i = slot_row % a.max_query_len;
  seq = load_sequence(a, b);
  DecodeRow r;
  r.pos = seq.context - seq.n + i;
  r.valid = i < seq.n && r.pos >= 0;
  r.t = seq.q_begin + i;
  r.visible_begin = first_visible(r.pos, a.window);
  return r;
}

// The work of split-kernel CTA (blockIdx.x = row slot * chunks + chunk, blockIdx.y = head group) with up to
// heads_per_cta query heads of one kv head: keys [j0, j0 + n) of its row's visible keys. valid is false when
// the row slot is past its sequence's rows or the chunk holds no keys (the combine kernel reads only chunks
// that hold keys): the CTA has nothing to do.
struct SplitCta {
  int chunk, slot_row;
  SequenceView seq;
  DecodeRow row;
  int j0, n;
  int group, kv_head, head0, heads;  // GQA group size; the kv head; the CTA's first query head and count
  bool valid;
};

__device__ __forceinline__ SplitCta split_cta(const PagedAttentionArgs& a, const PagedDecodePlan& plan,
                                              int heads_per_cta) {
  SplitCta c;
  c.chunk = blockIdx.x % plan.num_chunks, c.slot_row = blockIdx.x / plan.num_chunks;
  c.row = decode_row(a, c.slot_row, c.seq);
  c.j0 = c.row.visible_begin + c.chunk * plan.chunk_len;
  c.n = min(plan.chunk_len, c.row.pos + 1 - c.j0);
  c.valid = c.row.valid && c.n > 0;
  c.group = a.Hq / a.Hkv;
  const int per_kv = (c.group + heads_per_cta - 1) / heads_per_cta;
  c.kv_head = blockIdx.y / per_kv;
  const int first_in_group = (blockIdx.y % per_kv) * heads_per_cta;
  c.head0 = c.kv_head * c.group + first_in_group;
  c.heads = min(heads_per_cta, c.group - first_in_group);
  return c;
}

// The CTA's end: each warp's online-softmax state of `heads` query heads (warp w's head h in row
// w * rows_per_warp + h of warp_o [.., D], warp_m and warp_l, in shared memory) merged over the warps, then
// written: the output row itself when the row has one chunk, else this chunk's partial.
template <int D>
__device__ void merge_warps_and_write(const float* warp_o, const float* warp_m, const float* warp_l,
                                      int rows_per_warp, int heads, const PagedAttentionArgs& a,
                                      const PagedDecodePlan& plan, void* workspace, const DecodeRow& row,
                                      int head0, int slot_row, int chunk) {
  const bool single = plan.num_chunks == 1;
  const Partials part = Partials::at(workspace, a, plan.num_chunks);
  for (int idx = threadIdx.x; idx < heads * D; idx += kThreads) {
    const int h = idx / D, d = idx % D;
    float mx = warp_m[h], sum = warp_l[h], out = warp_o[h * D + d];
#pragma unroll
    for (int w = 1; w < kWarps; ++w) {
      float o1[1] = {out};
      const float o2[1] = {warp_o[(w * rows_per_warp + h) * D + d]};
      merge_state(mx, sum, o1, warp_m[w * rows_per_warp + h], warp_l[w * rows_per_warp + h], o2);
      out = o1[0];
    }
    if (single) {
      static_cast<bf16*>(a.out)[(int64_t(row.t) * a.Hq + head0 + h) * D + d] =
          __float2bfloat16_rn(sum > 0.0f ? out / sum : 0.0f);
    } else {
      const int64_t at = (int64_t(slot_row) * a.Hq + head0 + h) * plan.num_chunks + chunk;
      part.o[at * D + d] = out;
      if (d == 0) part.m[at] = mx, part.l[at] = sum;
    }
  }
}

// Resident CTAs of a split kernel per multiprocessor (its register and shared-memory limits): a property of the
// compiled kernel and the architecture, so callers ask once per kernel.
template <typename Kernel>
int resident_ctas(Kernel kernel, size_t smem) {
  ROOFLINE_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(smem)));
  int n = 0;
  ROOFLINE_CUDA_CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&n, kernel, kThreads, smem));
  return std::max(n, 1);
}

// paged_attention_decode_mma.cu (head_dim 64 or 128): the split launch over head_groups CTAs per row slot and
// chunk, and its resident CTAs per multiprocessor.
void launch_mma(const PagedAttentionArgs& a, const PagedDecodePlan& plan, unsigned head_groups, void* workspace,
                cudaStream_t stream);
int resident_mma_ctas(int D, bool fp8);

}  // namespace roofline::cuda::paged_decode
