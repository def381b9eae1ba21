// Helpers for the CUDA backend tests (label gpu; they run only on a GPU machine): a fixture that FAILS,
// never skips, without a device; random device tensors together with the exact values they hold (for
// float64 references); NaN-poisoned outputs; downloads as doubles; relative L2 error.
#pragma once
#include <cuda_runtime_api.h>
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "roofline/backend/cuda/cuda_backend.h"
#include "roofline/backend/cuda/kernels.h"
#include "roofline/core/dtype.h"
#include "roofline/core/error.h"
#include "roofline/core/tensor.h"

namespace roofline::test {

class GpuTest : public ::testing::Test {
 protected:
  void SetUp() override {
    int count = 0;
    const cudaError_t err = cudaGetDeviceCount(&count);
    ASSERT_TRUE(err == cudaSuccess && count > 0)
        << "no CUDA device is visible (cudaGetDeviceCount: "
        << (err == cudaSuccess ? std::string("0 devices") : std::string(cudaGetErrorString(err)))
        << "). The GPU tests (ctest label gpu) must run on a machine with an NVIDIA Hopper GPU.";
    gpu_ = cuda::make_cuda_backend(0);
  }
  cuda::CudaBackend& gpu() { return *gpu_; }

 private:
  std::unique_ptr<cuda::CudaBackend> gpu_;
};

// Uniform values in [lo, hi), redrawn while |v| < 1e-3 so that no input is (nearly) zero.
inline std::vector<float> random_floats(size_t n, uint32_t seed, float lo = -1.0f, float hi = 1.0f) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(lo, hi);
  std::vector<float> v(n);
  for (auto& x : v) {
    do x = dist(rng);
    while (std::fabs(x) < 1e-3f);
  }
  return v;
}

inline Tensor host_f32(Shape shape, const std::vector<float>& values) {
  Tensor t = Tensor::empty(DType::F32, std::move(shape));
  std::copy(values.begin(), values.end(), t.ptr<float>());
  return t;
}

// A device tensor in `dtype` and the values it holds exactly (after rounding to dtype), as doubles.
struct DeviceData {
  Tensor tensor;
  std::vector<double> values;
};

inline DeviceData upload_values(cuda::CudaBackend& gpu, DType dtype, Shape shape, const std::vector<float>& values) {
  Tensor host = host_f32(shape, values);
  DeviceData d{gpu.upload(host, dtype), {}};
  std::vector<float> rounded(values.size());
  Tensor stored = Tensor::empty(dtype, shape);
  convert_from_f32(dtype, values.data(), stored.data(), values.size());
  convert_to_f32(dtype, stored.data(), rounded.data(), rounded.size());
  d.values.assign(rounded.begin(), rounded.end());
  return d;
}

inline DeviceData random_device(cuda::CudaBackend& gpu, DType dtype, Shape shape, uint32_t seed, float lo = -1.0f,
                                float hi = 1.0f) {
  const auto n = size_t(shape_numel(shape));
  return upload_values(gpu, dtype, std::move(shape), random_floats(n, seed, lo, hi));
}

inline Tensor upload_i32(cuda::CudaBackend& gpu, const std::vector<int32_t>& values) {
  Tensor host = Tensor::empty(DType::I32, {int64_t(values.size())});
  std::copy(values.begin(), values.end(), host.ptr<int32_t>());
  return gpu.upload(host, DType::I32);
}

// Device memory filled with 0xff bytes: NaN in f32, f16 and bf16, -1 in int32. A kernel that leaves an
// element unwritten leaves a NaN (or -1) behind. On the backend's stream, so it is ordered before the op.
inline Tensor poisoned(cuda::CudaBackend& gpu, DType dtype, Shape shape) {
  Tensor t = gpu.alloc(dtype, std::move(shape));
  EXPECT_EQ(cudaMemsetAsync(t.data(), 0xff, t.nbytes(), gpu.stream()), cudaSuccess);
  return t;
}

inline std::vector<double> download_values(cuda::CudaBackend& gpu, const Tensor& device) {
  Tensor host = Tensor::empty(DType::F32, device.shape());
  gpu.download(device, host);
  return std::vector<double>(host.ptr<float>(), host.ptr<float>() + host.numel());
}

inline std::vector<int32_t> download_i32(cuda::CudaBackend& gpu, const Tensor& device) {
  Tensor host = Tensor::empty(DType::I32, device.shape());
  gpu.download(device, host);
  return std::vector<int32_t>(host.ptr<int32_t>(), host.ptr<int32_t>() + host.numel());
}

// ||a - b|| / ||b||.
inline double relative_l2(const std::vector<double>& a, const std::vector<double>& b) {
  if (a.size() != b.size()) return INFINITY;
  double num = 0, den = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    num += (a[i] - b[i]) * (a[i] - b[i]);
    den += b[i] * b[i];
  }
  return den == 0 ? std::sqrt(num) : std::sqrt(num / den);
}

// Counts the elements that are not finite: an output poisoned with NaN and fully written has none.
inline size_t count_not_finite(const std::vector<double>& v) {
  size_t bad = 0;
  for (double x : v) bad += !std::isfinite(x);
  return bad;
}

// The whole check for a float output: every element written (finite) and close in relative L2.
inline void expect_close(const std::vector<double>& got, const std::vector<double>& want, double tolerance,
                         const std::string& what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  EXPECT_EQ(count_not_finite(got), 0u) << what << ": elements left unwritten (NaN poison) or not finite";
  EXPECT_LT(relative_l2(got, want), tolerance) << what;
}

// Tolerance for an output stored in dtype: bf16 keeps 8 bits of mantissa, f16 11, f32 24.
inline double tolerance_for(DType dtype) {
  switch (dtype) {
    case DType::BF16: return 1e-2;
    case DType::F16: return 2e-3;
    default: return 1e-4;
  }
}

// Runs fn and expects a roofline::Error whose message contains `needle`.
inline void expect_error(const std::function<void()>& fn, const std::string& needle) {
  try {
    fn();
    ADD_FAILURE() << "expected roofline::Error containing \"" << needle << "\", nothing was thrown";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << "message: " << e.what();
  }
}

// Runs the prefill attention of its scope on one kernel (mma.sync or the Hopper wgmma one), then restores the
// process default: every prefill case checks both.
struct PrefillKernelScope {
  explicit PrefillKernelScope(cuda::PrefillKernel kernel) : previous(cuda::set_prefill_kernel(kernel)) {}
  ~PrefillKernelScope() { cuda::set_prefill_kernel(previous); }
  PrefillKernelScope(const PrefillKernelScope&) = delete;
  PrefillKernelScope& operator=(const PrefillKernelScope&) = delete;
  cuda::PrefillKernel previous;
};
inline constexpr cuda::PrefillKernel kPrefillKernels[] = {cuda::PrefillKernel::MmaSync, cuda::PrefillKernel::Wgmma};
inline const char* prefill_kernel_name(cuda::PrefillKernel kernel) {
  return kernel == cuda::PrefillKernel::Wgmma ? "wgmma" : kernel == cuda::PrefillKernel::MmaSync ? "mma.sync" : "auto";
}

}  // namespace roofline::test
