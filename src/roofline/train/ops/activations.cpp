#include "roofline/train/ops/activations.h"

#include <cmath>

#include "roofline/train/ops/reduce.h"

namespace roofline::train {
namespace {
constexpr float kSqrt2OverPi = 0.7978845608028654f;
constexpr float kGeluCoef = 0.044715f;
constexpr int64_t kGrain = 4096;
}  // namespace

void gelu_forward(ThreadPool& pool, const float* x, float* y, int64_t n) {
  for_rows(pool, n, kGrain, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) {
      const float v = x[i];
      y[i] = 0.5f * v * (1.0f + std::tanh(kSqrt2OverPi * (v + kGeluCoef * v * v * v)));
    }
  });
}

void gelu_backward(ThreadPool& pool, const float* dy, const float* x, float* dx, int64_t n) {
  for_rows(pool, n, kGrain, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) {
      const float v = x[i];
      const float t = std::tanh(kSqrt2OverPi * (v + kGeluCoef * v * v * v));
      const float dinner = kSqrt2OverPi * (1.0f + 3.0f * kGeluCoef * v * v);
      dx[i] = dy[i] * (0.5f * (1.0f + t) + 0.5f * v * (1.0f - t * t) * dinner);
    }
  });
}

void swiglu_forward(ThreadPool& pool, const float* gate, const float* up, float* h, int64_t n) {
  for_rows(pool, n, kGrain, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) {
      const float g = gate[i];
      h[i] = g / (1.0f + std::exp(-g)) * up[i];
    }
  });
}

void swiglu_backward(ThreadPool& pool, const float* dh, const float* gate, const float* up, float* dgate,
                     float* dup, int64_t n) {
  for_rows(pool, n, kGrain, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) {
      const float g = gate[i];
      const float sig = 1.0f / (1.0f + std::exp(-g));
      const float silu = g * sig;
      dgate[i] = dh[i] * up[i] * sig * (1.0f + g * (1.0f - sig));
      dup[i] = dh[i] * silu;
    }
  });
}

}  // namespace roofline::train
