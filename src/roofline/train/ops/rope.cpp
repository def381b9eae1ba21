#include "roofline/train/ops/rope.h"

#include <cmath>

#include "roofline/model/decoder.h"
#include "roofline/train/ops/reduce.h"

namespace roofline::train {

RopeTables make_rope_tables(const ModelSpec& spec, int64_t positions) {
  const int64_t dim = spec.head_dim, half = dim / 2;
  // The same frequencies as inference (rounding as HF does, every scaling variant).
  const std::vector<double> inv = rope_inverse_frequencies(spec);
  RopeTables t;
  t.positions = positions;
  t.half = half;
  t.cos.resize(size_t(positions * half));
  t.sin.resize(size_t(positions * half));
  for (int64_t p = 0; p < positions; ++p)
    for (int64_t i = 0; i < half; ++i) {
      const double angle = double(p) * inv[size_t(i)];
      t.cos[size_t(p * half + i)] = float(std::cos(angle));
      t.sin[size_t(p * half + i)] = float(std::sin(angle));
    }
  return t;
}

namespace {

// sign +1: forward rotation, -1: its inverse (the transpose), which is the backward pass.
void rotate(ThreadPool& pool, float* x, const RopeTables& t, int64_t B, int64_t T, int64_t heads, int64_t D,
            float sign) {
  const int64_t half = D / 2;
  for_rows(pool, B * T, 16, [&](int64_t m0, int64_t m1) {
    for (int64_t m = m0; m < m1; ++m) {
      const float* c = t.cos.data() + (m % T) * half;
      const float* s = t.sin.data() + (m % T) * half;
      for (int64_t h = 0; h < heads; ++h) {
        float* v = x + (m * heads + h) * D;
        for (int64_t i = 0; i < half; ++i) {
          const float a = v[i], b = v[i + half], sn = sign * s[i];
          v[i] = a * c[i] - b * sn;
          v[i + half] = b * c[i] + a * sn;
        }
      }
    }
  });
}

}  // namespace

void rope_forward(ThreadPool& pool, float* x, const RopeTables& t, int64_t B, int64_t T, int64_t heads, int64_t D) {
  rotate(pool, x, t, B, T, heads, D, 1.0f);
}

void rope_backward(ThreadPool& pool, float* dx, const RopeTables& t, int64_t B, int64_t T, int64_t heads, int64_t D) {
  rotate(pool, dx, t, B, T, heads, D, -1.0f);
}

}  // namespace roofline::train
