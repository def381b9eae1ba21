// A strided-free, row-major tensor: dtype, shape, a data pointer and (optionally) the storage that owns
// it. Views into mmapped weights own nothing; activations own 64-byte aligned host memory or device memory.
#pragma once
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <string>
#include <vector>

#include "roofline/core/dtype.h"

namespace roofline {

enum class Device : uint8_t { CPU, CUDA };

using Shape = std::vector<int64_t>;

std::string shape_to_string(const Shape& shape);
int64_t shape_numel(const Shape& shape);

class Tensor {
 public:
  Tensor() = default;
  // A view over memory owned elsewhere (mmapped weights, another tensor's rows).
  Tensor(DType dtype, Shape shape, void* data, Device device = Device::CPU,
         std::shared_ptr<void> storage = nullptr)
      : dtype_(dtype), shape_(std::move(shape)), data_(data), device_(device), storage_(std::move(storage)) {}

  // Allocates 64-byte aligned host memory (uninitialised).
  static Tensor empty(DType dtype, Shape shape);
  static Tensor zeros(DType dtype, Shape shape);

  DType dtype() const { return dtype_; }
  const Shape& shape() const { return shape_; }
  int64_t dim(int i) const { return shape_[size_t(i < 0 ? int(shape_.size()) + i : i)]; }
  int rank() const { return int(shape_.size()); }
  int64_t numel() const { return shape_numel(shape_); }
  size_t nbytes() const { return size_t(numel()) * dtype_size(dtype_); }
  Device device() const { return device_; }
  bool defined() const { return data_ != nullptr; }

  void* data() { return data_; }
  const void* data() const { return data_; }
  template <typename T> T* ptr() { return static_cast<T*>(data_); }
  template <typename T> const T* ptr() const { return static_cast<const T*>(data_); }

  // Same storage, new shape with the same element count.
  Tensor reshape(Shape shape) const;
  // Rows [begin, end) of the first dimension, sharing storage.
  Tensor rows(int64_t begin, int64_t end) const;

 private:
  DType dtype_ = DType::F32;
  Shape shape_;
  void* data_ = nullptr;
  Device device_ = Device::CPU;
  std::shared_ptr<void> storage_;
};

}  // namespace roofline
