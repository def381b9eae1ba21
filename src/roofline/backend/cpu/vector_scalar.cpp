// Portable vector kernels (attention inner loops, activations, streaming read): the reference for the
// SIMD levels. silu and gelu are written as x * sigmoid(.), which has no cancellation for any x
// (0.5 * (1 + tanh(u)) == sigmoid(2u)).
#include <cmath>
#include <cstring>

#include "roofline/backend/cpu/kernels.h"

namespace roofline::cpu {
namespace {

constexpr float kGeluC = 0.7978845608028654f;  // sqrt(2 / pi)

void dot_rows(float* scores, const float* q, const float* k, int64_t k_stride, int64_t count, int64_t d) {
  for (int64_t j = 0; j < count; ++j) {
    const float* kj = k + j * k_stride;
    float s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    int64_t i = 0;
    for (; i + 4 <= d; i += 4) {
      s0 += q[i] * kj[i];
      s1 += q[i + 1] * kj[i + 1];
      s2 += q[i + 2] * kj[i + 2];
      s3 += q[i + 3] * kj[i + 3];
    }
    for (; i < d; ++i) s0 += q[i] * kj[i];
    scores[j] = (s0 + s1) + (s2 + s3);
  }
}

void axpy_rows(float* acc, const float* p, const float* v, int64_t v_stride, int64_t count, int64_t d) {
  for (int64_t j = 0; j < count; ++j) {
    const float* vj = v + j * v_stride;
    for (int64_t i = 0; i < d; ++i) acc[i] += p[j] * vj[i];
  }
}

float exp_shifted(float* x, int64_t n, float shift) {
  float sum = 0;
  for (int64_t i = 0; i < n; ++i) {
    x[i] = std::exp(x[i] - shift);
    sum += x[i];
  }
  return sum;
}

void silu_mul(float* out, const float* gate, const float* up, int64_t n) {
  for (int64_t i = 0; i < n; ++i) out[i] = gate[i] / (1.0f + std::exp(-gate[i])) * up[i];
}

void gelu_tanh(float* x, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    const float v = x[i];
    const float u = kGeluC * (v + 0.044715f * v * v * v);
    x[i] = v / (1.0f + std::exp(-2.0f * u));
  }
}

float read_sum(const void* data, size_t bytes, int) {  // one stream: no SIMD, no prefetch
  const auto* p = static_cast<const uint64_t*>(data);
  uint64_t a = 0, b = 0, c = 0, e = 0;
  for (size_t i = 0; i < bytes / 8; i += 4) {
    a += p[i];
    b += p[i + 1];
    c += p[i + 2];
    e += p[i + 3];
  }
  return float((a ^ b) + (c ^ e));
}

}  // namespace

VectorKernels vector_kernels_scalar() {
  VectorKernels k;
  k.dot_rows = dot_rows;
  k.axpy_rows = axpy_rows;
  k.exp_shifted = exp_shifted;
  k.silu_mul = silu_mul;
  k.gelu_tanh = gelu_tanh;
  k.read_sum = read_sum;
  return k;
}

}  // namespace roofline::cpu
