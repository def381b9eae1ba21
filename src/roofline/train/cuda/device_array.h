// Owning device and pinned-host arrays for the training model (freed on destruction; no copies).
#pragma once
#include <cuda_runtime_api.h>

#include <cstddef>
#include <utility>

#include "roofline/backend/cuda/cuda_check.h"
#include "roofline/core/error.h"

namespace roofline::train::cuda {

template <typename T, bool Pinned = false>
class DeviceArray {
 public:
  DeviceArray() = default;
  explicit DeviceArray(size_t n) { resize(n); }
  ~DeviceArray() { release(); }
  DeviceArray(const DeviceArray&) = delete;
  DeviceArray& operator=(const DeviceArray&) = delete;
  DeviceArray(DeviceArray&& o) noexcept : ptr_(std::exchange(o.ptr_, nullptr)), n_(std::exchange(o.n_, 0)) {}

  // Contents are not kept.
  void resize(size_t n) {
    if (n == n_) return;
    release();
    if (n == 0) return;
    void* p = nullptr;
    if constexpr (Pinned) ROOFLINE_CUDA_CHECK(cudaMallocHost(&p, n * sizeof(T)));
    else if (const cudaError_t e = cudaMalloc(&p, n * sizeof(T)); e == cudaErrorMemoryAllocation) {
      (void)cudaGetLastError();
      size_t free_bytes = 0, total_bytes = 0;
      cudaMemGetInfo(&free_bytes, &total_bytes);
      constexpr double kGiB = double(1 << 30);
      fail("training: out of GPU memory allocating {:.2f} GiB ({:.2f} GiB free of {:.2f}); a smaller --batch or "
           "--checkpoint-activations needs less (roofline estimate --workload train shows the budget)",
           double(n * sizeof(T)) / kGiB, double(free_bytes) / kGiB, double(total_bytes) / kGiB);
    } else {
      ROOFLINE_CUDA_CHECK(e);
    }
    ptr_ = static_cast<T*>(p);
    n_ = n;
  }
  T* get() const { return ptr_; }
  size_t size() const { return n_; }
  size_t bytes() const { return n_ * sizeof(T); }

 private:
  void release() {
    if (ptr_) {
      if constexpr (Pinned) cudaFreeHost(ptr_);
      else cudaFree(ptr_);
    }
    ptr_ = nullptr;
    n_ = 0;
  }
  T* ptr_ = nullptr;
  size_t n_ = 0;
};

template <typename T>
using PinnedArray = DeviceArray<T, true>;

}  // namespace roofline::train::cuda
