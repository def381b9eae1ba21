// Causal self-attention with grouped-query heads and an optional sliding window (a query at position i
// sees keys (i - window, i]). Softmax scale 1/sqrt(D).
// Shapes: q, out [B, T, Hq, D]; k, v [B, T, Hkv, D]; lse [B, Hq, T] (log-sum-exp of each score row).
// Backward recomputes the probabilities from q, k and lse (FlashAttention-style: no [T, T] tensor is
// kept), writes dq and accumulates nothing: dk and dv are written too (each (batch, kv head) is one task,
// so every element has one writer and a fixed summation order). Both work on tiles of query rows against the
// keys the tile sees (causal and windowed: the masked keys beyond a tile are never multiplied).
#pragma once
#include <cstddef>
#include <cstdint>

#include "roofline/core/thread_pool.h"

namespace roofline::train {

struct AttentionShape {
  int64_t B = 0, T = 0, Hq = 0, Hkv = 0, D = 0;
  int64_t window = 0;  // 0: full causal
};

// Query rows per tile: the kernels compute the scores of one tile of query rows against the keys it sees at a time.
constexpr int64_t kAttentionRowTile = 64;

// Floats of one tile's score matrix [min(T, tile), T]. Every thread that runs attention keeps its own between calls
// (thread_local): one in the forward, P and dP in the backward.
constexpr size_t attention_scores_floats(int64_t T) {
  return size_t(T < kAttentionRowTile ? T : kAttentionRowTile) * size_t(T);
}

void attention_forward(ThreadPool& pool, const AttentionShape& s, const float* q, const float* k, const float* v,
                       float* out, float* lse);
void attention_backward(ThreadPool& pool, const AttentionShape& s, const float* q, const float* k, const float* v,
                        const float* out, const float* lse, const float* dout, float* dq, float* dk, float* dv);

}  // namespace roofline::train
