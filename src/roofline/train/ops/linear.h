// A linear layer y = x W^T + b with W [out, in] (the Hugging Face nn.Linear layout; GPT-2's Conv1D
// weights are transposed at import and export). Shapes: x [M, in], y [M, out], b [out].
// Backward: dx = dy W (written, or accumulated when accumulate_dx), dW += dy^T x, db += sum over rows dy.
#pragma once
#include <cstdint>

#include "roofline/core/thread_pool.h"

namespace roofline::train {

void linear_forward(ThreadPool& pool, const float* x, const float* w, const float* b, float* y, int64_t M,
                    int64_t in, int64_t out);
void linear_backward(ThreadPool& pool, const float* dy, const float* x, const float* w, float* dx,
                     bool accumulate_dx, float* dw, float* db, int64_t M, int64_t in, int64_t out);

}  // namespace roofline::train
