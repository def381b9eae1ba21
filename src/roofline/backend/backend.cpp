// Host implementations of the Backend defaults: right for backends whose tensors live in host memory (the
// CPU); a device backend overrides every one of them.
#include "roofline/backend/backend.h"

#include <algorithm>
#include <cstring>
#include <vector>

#include "roofline/core/error.h"

namespace roofline {

namespace {
void check_host(const char* op, const Tensor& t, const char* what) {
  ROOFLINE_CHECK(t.device() == Device::CPU, "{}: {} is not in host memory (backend default needs host tensors)", op,
                 what);
}
void check_ids(const char* op, const Tensor& ids, const char* what) {
  check_host(op, ids, what);
  ROOFLINE_CHECK(ids.dtype() == DType::I32, "{}: {} must be I32, got {}", op, what, dtype_name(ids.dtype()));
}
bool is_float(DType d) { return d == DType::F32 || d == DType::F16 || d == DType::BF16; }

// Converts n elements between float dtypes (same dtype: a copy).
void convert_elements(DType from, const void* src, DType to, void* dst, size_t n) {
  if (from == to) {
    std::memcpy(dst, src, n * dtype_size(from));
    return;
  }
  if (from == DType::F32) {
    convert_from_f32(to, static_cast<const float*>(src), dst, n);
    return;
  }
  if (to == DType::F32) {
    convert_to_f32(from, src, static_cast<float*>(dst), n);
    return;
  }
  std::vector<float> tmp(n);
  convert_to_f32(from, src, tmp.data(), n);
  convert_from_f32(to, tmp.data(), dst, n);
}
}  // namespace

Tensor Backend::upload(const Tensor& host, DType as) {
  check_host("upload", host, "the source");
  ROOFLINE_CHECK(host.dtype() == as || (is_float(host.dtype()) && is_float(as)),
                 "upload: cannot convert {} to {}", dtype_name(host.dtype()), dtype_name(as));
  Tensor out = alloc(as, host.shape());
  convert_elements(host.dtype(), host.data(), as, out.data(), size_t(host.numel()));
  return out;
}

void Backend::upload_into(Tensor& dst, const Tensor& host) {
  check_host("upload", host, "the source");
  check_host("upload", dst, "the destination");
  ROOFLINE_CHECK(dst.numel() == host.numel() && (host.dtype() == dst.dtype() || (is_float(host.dtype()) && is_float(dst.dtype()))),
                 "upload: cannot put {} {} into {} {}", dtype_name(host.dtype()), shape_to_string(host.shape()),
                 dtype_name(dst.dtype()), shape_to_string(dst.shape()));
  convert_elements(host.dtype(), host.data(), dst.dtype(), dst.data(), size_t(host.numel()));
}

void Backend::download(const Tensor& device, Tensor& host) {
  check_host("download", host, "the destination");
  ROOFLINE_CHECK(device.shape() == host.shape(), "download: shapes {} and {} differ", shape_to_string(device.shape()),
                 shape_to_string(host.shape()));
  ROOFLINE_CHECK(device.dtype() == host.dtype() || (host.dtype() == DType::F32 && is_float(device.dtype())),
                 "download: cannot convert {} to {}", dtype_name(device.dtype()), dtype_name(host.dtype()));
  synchronize();
  convert_elements(device.dtype(), device.data(), host.dtype(), host.data(), size_t(host.numel()));
}

void Backend::copy_from_host(Tensor& dst, const void* src) {
  check_host("copy_from_host", dst, "the destination");
  std::memcpy(dst.data(), src, dst.nbytes());
}

void Backend::convert(Tensor& out, const Tensor& in) {
  check_host("convert", in, "in");
  check_host("convert", out, "out");
  ROOFLINE_CHECK(out.numel() == in.numel() && is_float(out.dtype()) && is_float(in.dtype()),
                 "convert: out {} {} and in {} {} must be float tensors of one size", dtype_name(out.dtype()),
                 shape_to_string(out.shape()), dtype_name(in.dtype()), shape_to_string(in.shape()));
  convert_elements(in.dtype(), in.data(), out.dtype(), out.data(), size_t(in.numel()));
}

void Backend::matmul_swiglu(const Tensor& x, const MatmulTarget& gate, const MatmulTarget& up) {
  const MatmulTarget both[] = {gate, up};
  matmul_many(x, both);
  silu_mul(*up.out, *gate.out, *up.out);
}

void Backend::rope_store_kv(Tensor& q, Tensor& k, const Tensor& v, const RotaryStep& r, Tensor& k_pool,
                            Tensor& v_pool, const Tensor& slots, const KvScales& scales) {
  ROOFLINE_CHECK(r.positions && r.cos && r.sin, "rope_store_kv: positions, cos and sin are required");
  rope(q, *r.positions, *r.cos, *r.sin, r.rotary_dim, r.q_norm, r.eps);
  rope(k, *r.positions, *r.cos, *r.sin, r.rotary_dim, r.k_norm, r.eps);
  if (r.q_out != nullptr) convert(*r.q_out, q);
  store_kv(k_pool, v_pool, k, v, slots, scales);
}

void Backend::embedding(Tensor& out, const Tensor& table, const Tensor& ids) {
  check_ids("embedding", ids, "ids");
  embedding(out, table, ids.ptr<int32_t>(), ids.numel());
}

void Backend::add_rows(Tensor& inout, const Tensor& table, const Tensor& rows) {
  check_ids("add_rows", rows, "rows");
  ROOFLINE_CHECK(rows.numel() == inout.dim(0), "add_rows: {} rows for {} activation rows", rows.numel(), inout.dim(0));
  for (int64_t t = 0; t < rows.numel(); ++t) add_row(inout, t, table, rows.ptr<int32_t>()[t]);
}

void Backend::rope(Tensor& x, const Tensor& positions, const Tensor& cos, const Tensor& sin, int rotary_dim,
                   const Tensor* head_norm, float eps) {
  check_ids("rope", positions, "positions");
  ROOFLINE_CHECK(positions.numel() == x.dim(0), "rope: {} positions for {} rows", positions.numel(), x.dim(0));
  if (head_norm != nullptr) {
    Tensor heads = x.reshape({x.numel() / x.dim(-1), x.dim(-1)});
    rms_norm(heads, heads, *head_norm, eps);
  }
  rope(x, positions.ptr<int32_t>(), cos, sin, rotary_dim);
}

void Backend::gather_rows(Tensor& out, const Tensor& x, const Tensor& rows) {
  check_ids("gather_rows", rows, "rows");
  check_host("gather_rows", x, "x");
  ROOFLINE_CHECK(out.dtype() == x.dtype() && out.dim(0) == rows.numel() && out.numel() / out.dim(0) == x.numel() / x.dim(0),
                 "gather_rows: out {} cannot hold {} rows of x {}", shape_to_string(out.shape()), rows.numel(),
                 shape_to_string(x.shape()));
  const size_t row_bytes = x.nbytes() / size_t(x.dim(0));
  for (int64_t i = 0; i < rows.numel(); ++i) {
    const int32_t r = rows.ptr<int32_t>()[i];
    ROOFLINE_CHECK(r >= 0 && r < x.dim(0), "gather_rows: row {} outside [0, {})", r, x.dim(0));
    std::memcpy(static_cast<char*>(out.data()) + size_t(i) * row_bytes,
                static_cast<const char*>(x.data()) + size_t(r) * row_bytes, row_bytes);
  }
}

void Backend::argmax(Tensor& ids, const Tensor& logits) {
  check_ids("argmax", ids, "ids");
  check_host("argmax", logits, "logits");
  ROOFLINE_CHECK(logits.dtype() == DType::F32 && logits.rank() == 2 && ids.numel() == logits.dim(0),
                 "argmax: logits {} must be f32 [rows, V] with ids [rows]", shape_to_string(logits.shape()));
  const int64_t V = logits.dim(1);
  for (int64_t r = 0; r < logits.dim(0); ++r) {
    const float* row = logits.ptr<float>() + r * V;
    ids.ptr<int32_t>()[r] = int32_t(std::max_element(row, row + V) - row);
  }
}

void Backend::sample(Tensor&, const Tensor&, const TokenSampling&) {
  fail("sample: the {} backend samples on the host (engine/sampler.h)", name());
}

}  // namespace roofline
