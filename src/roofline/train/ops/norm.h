// LayerNorm (GPT-2) and RMSNorm (Llama family; also Qwen3's per-head q/k norm, rows = tokens x heads).
// Forward saves per-row statistics; backward accumulates parameter gradients (+=) and writes or
// accumulates dx. Shapes: x, y, dy, dx [rows, dim]; w, b, dw, db [dim]; mean, rstd [rows].
#pragma once
#include <cstdint>

#include "roofline/core/thread_pool.h"

namespace roofline::train {

void layernorm_forward(ThreadPool& pool, const float* x, const float* w, const float* b, float* y, float* mean,
                       float* rstd, int64_t rows, int64_t dim, float eps);
void layernorm_backward(ThreadPool& pool, const float* dy, const float* x, const float* w, const float* mean,
                        const float* rstd, float* dx, bool accumulate_dx, float* dw, float* db, int64_t rows,
                        int64_t dim);

// HF's RMSNorm: y = w * (x / sqrt(mean(x^2) + eps)).
void rmsnorm_forward(ThreadPool& pool, const float* x, const float* w, float* y, float* rstd, int64_t rows,
                     int64_t dim, float eps);
void rmsnorm_backward(ThreadPool& pool, const float* dy, const float* x, const float* w, const float* rstd,
                      float* dx, bool accumulate_dx, float* dw, int64_t rows, int64_t dim);

}  // namespace roofline::train
