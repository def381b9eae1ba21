// Row norms over the last dimension: RMSNorm (Llama) and LayerNorm (GPT-2). Row statistics accumulate in
// double (rows are a few thousand wide; the norms are far from the hot path), the output is f32.
// The weights are converted to f32 once per call into the backend's scratch. out may alias x: each row
// is read completely before it is written.
#include <cmath>

#include "roofline/backend/cpu/cpu_ops.h"
#include "roofline/core/error.h"

namespace roofline::cpu {

namespace {
// Checks a norm's operands and returns the row width H.
int64_t check_norm(const char* op, const Tensor& out, const Tensor& x, const Tensor& weight, const char* name) {
  check_f32(op, x, "x");
  check_f32(op, out, "out");
  check_float_dtype(op, weight, name);
  ROOFLINE_CHECK(x.rank() >= 1, "{}: x must have at least one dimension", op);
  ROOFLINE_CHECK(out.shape() == x.shape(), "{}: out {} must have the shape of x {}", op, shape_to_string(out.shape()),
                 shape_to_string(x.shape()));
  const int64_t hidden = x.dim(-1);
  ROOFLINE_CHECK(weight.rank() == 1 && weight.dim(0) == hidden, "{}: {} {} must be [{}]", op, name,
                 shape_to_string(weight.shape()), hidden);
  return hidden;
}
}  // namespace

void rms_norm(CpuContext& ctx, Tensor& out, const Tensor& x, const Tensor& weight, float eps) {
  const int64_t hidden = check_norm("rms_norm", out, x, weight, "weight");
  float* w = static_cast<float*>(ctx.scratch.ensure(size_t(hidden) * 4));
  convert_to_f32(weight.dtype(), weight.data(), w, size_t(hidden));
  const float* src = x.ptr<float>();
  float* dst = out.ptr<float>();
  parallel_rows(ctx.pool, rows_of(x), hidden, [&](int64_t b, int64_t e) {
    for (int64_t r = b; r < e; ++r) {
      const float* xr = src + r * hidden;
      double s0 = 0, s1 = 0;
      int64_t i = 0;
      for (; i + 2 <= hidden; i += 2) {
        s0 += double(xr[i]) * xr[i];
        s1 += double(xr[i + 1]) * xr[i + 1];
      }
      if (i < hidden) s0 += double(xr[i]) * xr[i];
      const float scale = float(1.0 / std::sqrt((s0 + s1) / double(hidden) + double(eps)));
      float* yr = dst + r * hidden;
      for (i = 0; i < hidden; ++i) yr[i] = xr[i] * scale * w[i];
    }
  });
}

void layer_norm(CpuContext& ctx, Tensor& out, const Tensor& x, const Tensor& weight, const Tensor& bias, float eps) {
  const int64_t hidden = check_norm("layer_norm", out, x, weight, "weight");
  check_float_dtype("layer_norm", bias, "bias");
  ROOFLINE_CHECK(bias.rank() == 1 && bias.dim(0) == hidden, "layer_norm: bias {} must be [{}]",
                 shape_to_string(bias.shape()), hidden);
  float* w = static_cast<float*>(ctx.scratch.ensure(size_t(hidden) * 8));
  float* b = w + hidden;
  convert_to_f32(weight.dtype(), weight.data(), w, size_t(hidden));
  convert_to_f32(bias.dtype(), bias.data(), b, size_t(hidden));
  const float* src = x.ptr<float>();
  float* dst = out.ptr<float>();
  parallel_rows(ctx.pool, rows_of(x), hidden, [&](int64_t rb, int64_t re) {
    for (int64_t r = rb; r < re; ++r) {
      const float* xr = src + r * hidden;
      double sum = 0;
      for (int64_t i = 0; i < hidden; ++i) sum += xr[i];
      const double mean = sum / double(hidden);
      double sq = 0;
      for (int64_t i = 0; i < hidden; ++i) sq += (xr[i] - mean) * (xr[i] - mean);
      const double rstd = 1.0 / std::sqrt(sq / double(hidden) + double(eps));
      float* yr = dst + r * hidden;
      for (int64_t i = 0; i < hidden; ++i) yr[i] = float((xr[i] - mean) * rstd) * w[i] + b[i];
    }
  });
}

}  // namespace roofline::cpu
