// Token (and learned position) embedding. out[m] = wte[tokens[m]] (+ wpe[m % T]) for m in [0, B*T).
// Backward accumulates rows into dwte (and dwpe), in token order so that repeated tokens sum the same
// way every run. Shapes: wte [V, H], wpe [P, H], out/dout [B*T, H].
#pragma once
#include <cstdint>

#include "roofline/core/thread_pool.h"

namespace roofline::train {

void embedding_forward(ThreadPool& pool, const int32_t* tokens, const float* wte, const float* wpe, float* out,
                       int64_t B, int64_t T, int64_t H);
void embedding_backward(ThreadPool& pool, const int32_t* tokens, const float* dout, float* dwte, float* dwpe,
                        int64_t B, int64_t T, int64_t H);

}  // namespace roofline::train
