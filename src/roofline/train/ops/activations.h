// MLP activations. GPT-2's gelu_new (tanh approximation) and the Llama family's SwiGLU
// (silu(gate) * up). Shapes are flat [n].
#pragma once
#include <cstdint>

#include "roofline/core/thread_pool.h"

namespace roofline::train {

// y = 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))
void gelu_forward(ThreadPool& pool, const float* x, float* y, int64_t n);
// dx = dy * gelu'(x) (written)
void gelu_backward(ThreadPool& pool, const float* dy, const float* x, float* dx, int64_t n);

// h = silu(gate) * up
void swiglu_forward(ThreadPool& pool, const float* gate, const float* up, float* h, int64_t n);
// dgate = dh * up * silu'(gate), dup = dh * silu(gate) (written)
void swiglu_backward(ThreadPool& pool, const float* dh, const float* gate, const float* up, float* dgate,
                     float* dup, int64_t n);

}  // namespace roofline::train
