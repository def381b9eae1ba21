// Device-side view of one sequence of a paged attention batch (PagedAttentionArgs in kernels.h), shared by
// the decode and prefill kernels. Lengths come from the device arrays, so a recorded launch reads the lengths
// of the step it replays; without arrays (a contiguous cache) they come from the fixed fields.
#pragma once
#include <cuda_runtime.h>

#include <cstdint>

#include "roofline/backend/cuda/kernels.h"

namespace roofline::cuda {

constexpr float kLog2e = 1.4426950408889634f;

struct SequenceView {
  int q_begin;            // first q row (global)
  int n;                  // query rows
  int context;            // keys: positions 0 .. context - 1; query row i sits at context - n + i
  const int32_t* blocks;  // this sequence's block table row; null: position p is pool row p
};

__device__ __forceinline__ SequenceView load_sequence(const PagedAttentionArgs& a, int b) {
  if (a.query_start == nullptr) return {0, a.fixed_query_rows, a.fixed_context_len, nullptr};
  const int q0 = __ldg(a.query_start + b), q1 = __ldg(a.query_start + b + 1);
  return {q0, q1 - q0, __ldg(a.context_len + b), a.block_table + int64_t(b) * a.table_pitch};
}

// Pool row (block * block_size + offset) holding position p of the sequence.
__device__ __forceinline__ int pool_row(const SequenceView& s, int p, int block_size) {
  if (s.blocks == nullptr) return p;
  return __ldg(s.blocks + p / block_size) * block_size + p % block_size;
}

// First key a query at position pos sees.
__device__ __forceinline__ int first_visible(int pos, int window) { return window > 0 ? max(0, pos - window + 1) : 0; }

}  // namespace roofline::cuda
