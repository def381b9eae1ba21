#include <algorithm>
#include <cstdlib>

#include "roofline/backend/cpu/cpu_ops.h"
#include "roofline/core/error.h"

namespace roofline::cpu {

void* AlignedBuffer::ensure(size_t bytes) {
  if (bytes > bytes_) {
    const size_t rounded = (bytes + 4095) / 4096 * 4096;
    void* p = std::aligned_alloc(64, rounded);
    if (!p) fail("cpu backend: out of memory allocating {} bytes of scratch", rounded);
    data_ = std::unique_ptr<void, void (*)(void*)>(p, [](void* q) { std::free(q); });
    bytes_ = rounded;
  }
  return data_.get();
}

void check_cpu(const char* op, const Tensor& t, const char* what) {
  ROOFLINE_CHECK(t.defined(), "{}: {} is an empty tensor", op, what);
  ROOFLINE_CHECK(t.device() == Device::CPU, "{}: {} is not in host memory (cpu backend)", op, what);
}

void check_f32(const char* op, const Tensor& t, const char* what) {
  check_cpu(op, t, what);
  ROOFLINE_CHECK(t.dtype() == DType::F32, "{}: {} must be F32 on the cpu backend, got {}", op, what,
                 dtype_name(t.dtype()));
}

void check_float_dtype(const char* op, const Tensor& t, const char* what) {
  check_cpu(op, t, what);
  ROOFLINE_CHECK(t.dtype() == DType::F32 || t.dtype() == DType::F16 || t.dtype() == DType::BF16,
                 "{}: {} must be F32, F16 or BF16, got {}", op, what, dtype_name(t.dtype()));
}

int64_t rows_of(const Tensor& t) {
  const int64_t last = t.rank() == 0 ? 1 : t.dim(-1);
  return last == 0 ? 0 : t.numel() / last;
}

void parallel_rows(ThreadPool& pool, int64_t rows, int64_t row_elements,
                   const std::function<void(int64_t, int64_t)>& body, int64_t min_elements) {
  if (rows <= 0) return;
  const int64_t grain = row_elements <= 0 ? rows : std::max<int64_t>(1, min_elements / row_elements);
  pool.parallel_for(size_t(rows), size_t(grain), [&](size_t b, size_t e) { body(int64_t(b), int64_t(e)); });
}

}  // namespace roofline::cpu
