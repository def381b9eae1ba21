// Owning device and pinned-host arrays for the training model (freed on destruction; no copies). Every device
// array names its DeviceMemoryCategory, and the live bytes of each category are counted, so the trainer can
// say exactly what it holds next to what cudaMemGetInfo reports.
#pragma once
#include <cuda_runtime_api.h>

#include <array>
#include <atomic>
#include <cstddef>
#include <utility>

#include "roofline/backend/cuda/cuda_check.h"
#include "roofline/core/error.h"
#include "roofline/train/device_memory_plan.h"

namespace roofline::train::cuda {

// Live bytes of the training allocations by category in this process: every device DeviceArray, plus the
// NotedDeviceBytes of allocations made elsewhere (the cuBLASLt workspace).
inline std::array<std::atomic<size_t>, kDeviceMemoryCategories>& device_bytes_by_category() {
  static std::array<std::atomic<size_t>, kDeviceMemoryCategories> bytes{};
  return bytes;
}

// Counts `bytes` allocated outside DeviceArray under `category` while it lives.
class NotedDeviceBytes {
 public:
  NotedDeviceBytes(DeviceMemoryCategory category, size_t bytes) : category_(category), bytes_(bytes) {
    device_bytes_by_category()[size_t(category_)] += bytes_;
  }
  ~NotedDeviceBytes() { device_bytes_by_category()[size_t(category_)] -= bytes_; }
  NotedDeviceBytes(const NotedDeviceBytes&) = delete;
  NotedDeviceBytes& operator=(const NotedDeviceBytes&) = delete;

 private:
  DeviceMemoryCategory category_;
  size_t bytes_;
};

template <typename T, bool Pinned = false>
class DeviceArray {
 public:
  // Without a category (tests, kernel scratch): counted as Workspace.
  DeviceArray() = default;
  explicit DeviceArray(size_t n) { resize(n); }
  explicit DeviceArray(DeviceMemoryCategory category) requires(!Pinned) : category_(category) {}
  DeviceArray(DeviceMemoryCategory category, size_t n) requires(!Pinned) : category_(category) { resize(n); }
  ~DeviceArray() { release(); }
  DeviceArray(const DeviceArray&) = delete;
  DeviceArray& operator=(const DeviceArray&) = delete;
  DeviceArray(DeviceArray&& o) noexcept
      : ptr_(std::exchange(o.ptr_, nullptr)), n_(std::exchange(o.n_, 0)), category_(o.category_) {}

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
    if constexpr (!Pinned) device_bytes_by_category()[size_t(category_)] += bytes();
  }
  T* get() const { return ptr_; }
  size_t size() const { return n_; }
  size_t bytes() const { return n_ * sizeof(T); }

 private:
  void release() {
    if (ptr_) {
      if constexpr (Pinned) cudaFreeHost(ptr_);
      else {
        cudaFree(ptr_);
        device_bytes_by_category()[size_t(category_)] -= bytes();
      }
    }
    ptr_ = nullptr;
    n_ = 0;
  }
  T* ptr_ = nullptr;
  size_t n_ = 0;
  DeviceMemoryCategory category_ = DeviceMemoryCategory::Workspace;  // unused when Pinned
};

template <typename T>
using PinnedArray = DeviceArray<T, true>;

}  // namespace roofline::train::cuda
