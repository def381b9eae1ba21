#include "roofline/core/tensor.h"

#include <cstdlib>
#include <cstring>

#include "roofline/core/error.h"

namespace roofline {

std::string shape_to_string(const Shape& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

int64_t shape_numel(const Shape& shape) {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

Tensor Tensor::empty(DType dtype, Shape shape) {
  for (int64_t d : shape) ROOFLINE_CHECK(d >= 0, "Tensor::empty: negative dimension in {}", shape_to_string(shape));
  size_t bytes = size_t(shape_numel(shape)) * dtype_size(dtype);
  size_t rounded = (bytes + 63) / 64 * 64;
  void* p = std::aligned_alloc(64, rounded == 0 ? 64 : rounded);
  if (!p) fail("out of host memory allocating {} bytes for tensor {}", bytes, shape_to_string(shape));
  std::shared_ptr<void> storage(p, [](void* q) { std::free(q); });
  return Tensor(dtype, std::move(shape), p, Device::CPU, std::move(storage));
}

Tensor Tensor::zeros(DType dtype, Shape shape) {
  Tensor t = empty(dtype, std::move(shape));
  std::memset(t.data(), 0, t.nbytes());
  return t;
}

Tensor Tensor::reshape(Shape shape) const {
  ROOFLINE_CHECK(shape_numel(shape) == numel(), "reshape {} -> {}: element count differs", shape_to_string(shape_),
                 shape_to_string(shape));
  return Tensor(dtype_, std::move(shape), data_, device_, storage_);
}

Tensor Tensor::rows(int64_t begin, int64_t end) const {
  ROOFLINE_CHECK(rank() >= 1 && begin >= 0 && begin <= end && end <= shape_[0], "rows [{}, {}) out of range for {}",
                 begin, end, shape_to_string(shape_));
  Shape s = shape_;
  s[0] = end - begin;
  size_t row_bytes = shape_[0] == 0 ? 0 : nbytes() / size_t(shape_[0]);
  return Tensor(dtype_, std::move(s), static_cast<uint8_t*>(data_) + size_t(begin) * row_bytes, device_, storage_);
}

}  // namespace roofline
