// Row-wise copies and elementwise ops: embedding, add, add_row, silu_mul, gelu_tanh.
// Weights (embedding table, position rows) are converted from their stored dtype as they are read.
#include <algorithm>

#include "roofline/backend/cpu/cpu_ops.h"
#include "roofline/core/error.h"

namespace roofline::cpu {

namespace {
// Flat element count of a tensor split into chunks of this size for the pool.
constexpr int64_t kChunk = 16384;

const uint8_t* row_ptr(const Tensor& t, int64_t row) {
  return static_cast<const uint8_t*>(t.data()) + size_t(row) * size_t(t.dim(-1)) * dtype_size(t.dtype());
}

void check_same_shape(const char* op, const Tensor& a, const char* a_name, const Tensor& b, const char* b_name) {
  ROOFLINE_CHECK(a.shape() == b.shape(), "{}: {} {} and {} {} must have the same shape", op, a_name,
                 shape_to_string(a.shape()), b_name, shape_to_string(b.shape()));
}
}  // namespace

void embedding(CpuContext& ctx, Tensor& out, const Tensor& table, const int32_t* ids, int64_t count) {
  const char* op = "embedding";
  check_float_dtype(op, table, "table");
  check_f32(op, out, "out");
  ROOFLINE_CHECK(table.rank() == 2, "embedding: table must be [vocab, hidden], got {}", shape_to_string(table.shape()));
  const int64_t vocab = table.dim(0), hidden = table.dim(1);
  ROOFLINE_CHECK(count >= 0 && (count == 0 || ids != nullptr), "embedding: {} ids but no id array", count);
  ROOFLINE_CHECK(out.rank() >= 1 && out.dim(-1) == hidden && rows_of(out) == count,
                 "embedding: out {} must hold [{}, {}]", shape_to_string(out.shape()), count, hidden);
  for (int64_t t = 0; t < count; ++t)
    ROOFLINE_CHECK(ids[t] >= 0 && ids[t] < vocab, "embedding: id {} at position {} is outside the table [0, {})",
                   ids[t], t, vocab);
  float* dst = out.ptr<float>();
  parallel_rows(ctx.pool, count, hidden, [&](int64_t b, int64_t e) {
    for (int64_t t = b; t < e; ++t) convert_to_f32(table.dtype(), row_ptr(table, ids[t]), dst + t * hidden, size_t(hidden));
  });
}

void add(CpuContext& ctx, Tensor& inout, const Tensor& x) {
  check_f32("add", inout, "inout");
  check_f32("add", x, "x");
  check_same_shape("add", inout, "inout", x, "x");
  float* a = inout.ptr<float>();
  const float* b = x.ptr<float>();
  const int64_t n = inout.numel();
  parallel_rows(ctx.pool, (n + kChunk - 1) / kChunk, kChunk, [&](int64_t cb, int64_t ce) {
    for (int64_t i = cb * kChunk, end = std::min(n, ce * kChunk); i < end; ++i) a[i] += b[i];
  });
}

void add_row(CpuContext&, Tensor& inout, int64_t t, const Tensor& table, int64_t row) {
  const char* op = "add_row";
  check_f32(op, inout, "inout");
  check_float_dtype(op, table, "table");
  ROOFLINE_CHECK(inout.rank() >= 1 && table.rank() == 2 && table.dim(1) == inout.dim(-1),
                 "add_row: table {} rows must match the last dimension of inout {}", shape_to_string(table.shape()),
                 shape_to_string(inout.shape()));
  const int64_t n = inout.dim(-1);
  ROOFLINE_CHECK(t >= 0 && t < rows_of(inout), "add_row: row {} of inout {} is out of range", t,
                 shape_to_string(inout.shape()));
  ROOFLINE_CHECK(row >= 0 && row < table.dim(0), "add_row: table row {} is outside [0, {})", row, table.dim(0));
  float* dst = inout.ptr<float>() + t * n;
  const size_t elem = dtype_size(table.dtype());
  float buf[256];
  for (int64_t i = 0; i < n; i += 256) {  // convert 256 at a time into a stack buffer
    const int64_t len = std::min<int64_t>(256, n - i);
    convert_to_f32(table.dtype(), row_ptr(table, row) + size_t(i) * elem, buf, size_t(len));
    for (int64_t j = 0; j < len; ++j) dst[i + j] += buf[j];
  }
}

void silu_mul(CpuContext& ctx, Tensor& out, const Tensor& gate, const Tensor& up) {
  check_f32("silu_mul", out, "out");
  check_f32("silu_mul", gate, "gate");
  check_f32("silu_mul", up, "up");
  check_same_shape("silu_mul", gate, "gate", up, "up");
  check_same_shape("silu_mul", out, "out", gate, "gate");
  const int64_t n = out.numel();
  float* o = out.ptr<float>();
  const float* g = gate.ptr<float>();
  const float* u = up.ptr<float>();
  auto kernel = ctx.kernels.vector.silu_mul;
  parallel_rows(ctx.pool, (n + kChunk - 1) / kChunk, kChunk, [&](int64_t cb, int64_t ce) {
    const int64_t begin = cb * kChunk, end = std::min(n, ce * kChunk);
    kernel(o + begin, g + begin, u + begin, end - begin);
  });
}

void gelu_tanh(CpuContext& ctx, Tensor& x) {
  check_f32("gelu_tanh", x, "x");
  const int64_t n = x.numel();
  float* p = x.ptr<float>();
  auto kernel = ctx.kernels.vector.gelu_tanh;
  parallel_rows(ctx.pool, (n + kChunk - 1) / kChunk, kChunk, [&](int64_t cb, int64_t ce) {
    const int64_t begin = cb * kChunk, end = std::min(n, ce * kChunk);
    kernel(p + begin, end - begin);
  });
}

}  // namespace roofline::cpu
