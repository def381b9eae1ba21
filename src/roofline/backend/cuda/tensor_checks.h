// Precondition checks shared by the CudaBackend's op files (internal to backend/cuda): each throws
// roofline::Error naming the op and the argument.
#pragma once
#include <cstdint>

#include "roofline/backend/cuda/kernels.h"
#include "roofline/core/error.h"
#include "roofline/core/tensor.h"

namespace roofline::cuda {

inline void check_on_device(const char* op, const Tensor& t, const char* what) {
  ROOFLINE_CHECK(t.defined(), "{}: {} is not allocated", op, what);
  ROOFLINE_CHECK(t.device() == Device::CUDA,
                 "{}: {} is a host tensor, but the CUDA backend runs on device tensors (use CudaBackend::upload or "
                 "CudaBackend::alloc)",
                 op, what);
}

inline void check_dtype(const char* op, const Tensor& t, DType dtype, const char* what) {
  ROOFLINE_CHECK(t.dtype() == dtype, "{}: {} must be {}, got {}", op, what, dtype_name(dtype), dtype_name(t.dtype()));
}

inline Elem float_elem(const char* op, const Tensor& t, const char* what) {
  switch (t.dtype()) {
    case DType::F32: return Elem::F32;
    case DType::F16: return Elem::F16;
    case DType::BF16: return Elem::BF16;
    default: fail("{}: {} has dtype {}; the CUDA kernels take F32, F16 or BF16", op, what, dtype_name(t.dtype()));
  }
}

}  // namespace roofline::cuda
