// Run-time element type -> compile-time type, for launchers: dispatch(Elem::BF16, [&](auto tag) {
// using T = decltype(tag); kernel<T><<<...>>>(...); }) instantiates the body for f32, f16 and bf16.
#pragma once
#include "roofline/backend/cuda/device/convert.cuh"
#include "roofline/backend/cuda/kernels.h"

namespace roofline::cuda {

template <typename F>
void dispatch(Elem type, F&& body) {
  switch (type) {
    case Elem::F32: body(float{}); return;
    case Elem::F16: body(device::f16{}); return;
    case Elem::BF16: body(device::bf16{}); return;
  }
}

// Launch geometry for grid-stride loops over `work` items: enough blocks to fill the GPU several times over.
inline unsigned grid_for(int64_t work, int threads) {
  const int64_t blocks = (work + threads - 1) / threads;
  return unsigned(blocks < 1 ? 1 : (blocks > 65535 * 8 ? 65535 * 8 : blocks));
}

__host__ __device__ inline bool aligned16(const void* p) { return (reinterpret_cast<uintptr_t>(p) & 15u) == 0; }

}  // namespace roofline::cuda
