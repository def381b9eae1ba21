// Rotary position embedding, "rotate half" layout (Llama / HF): within each head, element i pairs with
// element i + rotary_dim/2 for i < rotary_dim/2:
//   y[i]        = x[i] * cos[p][i] - x[i + half] * sin[p][i]
//   y[i + half] = x[i + half] * cos[p][i] + x[i] * sin[p][i]
// Elements from rotary_dim to head_dim (partial rotary, e.g. Phi) are left untouched.
#include "roofline/backend/cpu/cpu_ops.h"
#include "roofline/core/error.h"

namespace roofline::cpu {

namespace {
constexpr int kMaxHalf = 1024;  // rotary_dim / 2 bound for the stack copies of one table row
}

void rope(CpuContext& ctx, Tensor& x, const int32_t* positions, const Tensor& cos, const Tensor& sin, int rotary_dim) {
  const char* op = "rope";
  check_f32(op, x, "x");
  check_float_dtype(op, cos, "cos");
  check_float_dtype(op, sin, "sin");
  ROOFLINE_CHECK(x.rank() == 3, "rope: x must be [T, heads, head_dim], got {}", shape_to_string(x.shape()));
  const int64_t T = x.dim(0), heads = x.dim(1), head_dim = x.dim(2);
  ROOFLINE_CHECK(rotary_dim > 0 && rotary_dim % 2 == 0 && rotary_dim <= head_dim && rotary_dim / 2 <= kMaxHalf,
                 "rope: rotary_dim {} must be even, positive and <= head_dim {}", rotary_dim, head_dim);
  const int64_t half = rotary_dim / 2;
  ROOFLINE_CHECK(cos.rank() == 2 && cos.dim(1) == half && sin.shape() == cos.shape(),
                 "rope: cos {} and sin {} must both be [max_positions, {}]", shape_to_string(cos.shape()),
                 shape_to_string(sin.shape()), half);
  ROOFLINE_CHECK(T == 0 || positions != nullptr, "rope: no positions given for {} rows", T);
  for (int64_t t = 0; t < T; ++t)
    ROOFLINE_CHECK(positions[t] >= 0 && positions[t] < cos.dim(0), "rope: position {} (row {}) is outside the table [0, {})",
                   positions[t], t, cos.dim(0));

  const size_t elem = dtype_size(cos.dtype()), sin_elem = dtype_size(sin.dtype());
  float* data = x.ptr<float>();
  parallel_rows(ctx.pool, T, heads * head_dim, [&](int64_t b, int64_t e) {
    float c[kMaxHalf], s[kMaxHalf];
    for (int64_t t = b; t < e; ++t) {
      const size_t offset = size_t(positions[t]) * size_t(half) * elem;
      convert_to_f32(cos.dtype(), static_cast<const uint8_t*>(cos.data()) + offset, c, size_t(half));
      convert_to_f32(sin.dtype(), static_cast<const uint8_t*>(sin.data()) + offset / elem * sin_elem, s, size_t(half));
      for (int64_t h = 0; h < heads; ++h) {
        float* v = data + (t * heads + h) * head_dim;
        for (int64_t i = 0; i < half; ++i) {
          const float x1 = v[i], x2 = v[i + half];
          v[i] = x1 * c[i] - x2 * s[i];
          v[i + half] = x2 * c[i] + x1 * s[i];
        }
      }
    }
  });
}

}  // namespace roofline::cpu
