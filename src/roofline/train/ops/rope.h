// Rotary position embedding as Hugging Face applies it (rotate_half: dimension i pairs with i + D/2),
// with the rope scaling variants of ModelSpec (linear, llama3). The tables hold cos/sin [T, D/2] for
// positions 0..T-1; every sequence of a batch starts at position 0.
// x [B*T, heads, D] is rotated in place; backward rotates the gradient by the opposite angle.
#pragma once
#include <cstdint>
#include <vector>

#include "roofline/core/thread_pool.h"
#include "roofline/model/model_spec.h"

namespace roofline::train {

struct RopeTables {
  int64_t positions = 0, half = 0;
  std::vector<float> cos, sin;  // [positions, half]
};

// Inverse frequencies as HF computes them (base in float32, scaling in double), then the tables.
RopeTables make_rope_tables(const ModelSpec& spec, int64_t positions);

void rope_forward(ThreadPool& pool, float* x, const RopeTables& tables, int64_t B, int64_t T, int64_t heads,
                  int64_t D);
void rope_backward(ThreadPool& pool, float* dx, const RopeTables& tables, int64_t B, int64_t T, int64_t heads,
                   int64_t D);

}  // namespace roofline::train
