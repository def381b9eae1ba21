// The language-model head fused with the cross-entropy over the vocabulary. Rows are processed in chunks:
// logits for one chunk [rows, V] (never the whole batch), then per row max, log-sum-exp, the loss and, in
// place, dlogits = (softmax - onehot(target)) * grad_scale; then dh = dlogits W and dW += dlogits^T h for
// that chunk before the next one reuses the buffer.
// Shapes: h [M, H] (the final-normed hidden states), W [V, H], targets [M] (-1: no loss at that row),
// dh [M, H] (written), dW [V, H] (accumulated).
#pragma once
#include <cstdint>
#include <vector>

#include "roofline/core/thread_pool.h"

namespace roofline::train {

struct CrossEntropyResult {
  double loss_sum = 0;  // sum of -log p(target) over the rows with a target
  int64_t count = 0;    // rows with a target
};

// Rows of one chunk of logits: about 32 MiB of f32 logits, at least 16 rows (so `scratch` holds
// lm_head_chunk_rows(M, V) x V floats, even when M is smaller).
int64_t lm_head_chunk_rows(int64_t M, int64_t V);

// dh == nullptr: loss only (eval, score). Rows with targets[m] < 0 contribute nothing.
CrossEntropyResult lm_head_cross_entropy(ThreadPool& pool, const float* h, const float* W, const int32_t* targets,
                                         int64_t M, int64_t H, int64_t V, float grad_scale, float* dh, float* dW,
                                         std::vector<float>& scratch);

}  // namespace roofline::train
