// CudaBackend memory: upload/download round trips with dtype conversion, alloc, device-side conversion,
// and the named errors for host tensors and bad dtypes.
#include <gtest/gtest.h>

#include "gpu_test_util.h"

namespace roofline::test {
namespace {

class GpuMemory : public GpuTest {};

TEST_F(GpuMemory, UploadDownloadRoundTripsInEveryFloatDtype) {
  for (DType dtype : {DType::F32, DType::F16, DType::BF16}) {
    const DeviceData d = random_device(gpu(), dtype, {7, 131}, 11);
    EXPECT_EQ(d.tensor.device(), Device::CUDA);
    EXPECT_EQ(d.tensor.dtype(), dtype);
    EXPECT_EQ(download_values(gpu(), d.tensor), d.values) << dtype_name(dtype);  // exact: the rounded values
  }
}

TEST_F(GpuMemory, IntegersRoundTripAndDownloadInTheirOwnDtype) {
  const std::vector<int32_t> ids = {0, 1, -5, 151935, 42, 7, 2147483647};
  EXPECT_EQ(download_i32(gpu(), upload_i32(gpu(), ids)), ids);
}

TEST_F(GpuMemory, AllocSharesStorageWithViews) {
  Tensor t = gpu().alloc(DType::BF16, {4, 16});
  EXPECT_EQ(t.device(), Device::CUDA);
  EXPECT_EQ(t.nbytes(), 4u * 16 * 2);
  Tensor rows = t.rows(1, 3);
  EXPECT_EQ(rows.device(), Device::CUDA);
  EXPECT_EQ(static_cast<uint8_t*>(rows.data()) - static_cast<uint8_t*>(t.data()), 32);
}

TEST_F(GpuMemory, ConvertMatchesHostRounding) {
  const auto values = random_floats(1003, 5, -300.0f, 300.0f);  // odd count: exercises the scalar tail
  const DeviceData f32 = upload_values(gpu(), DType::F32, {1003}, values);
  for (DType to : {DType::BF16, DType::F16, DType::F32}) {
    Tensor out = poisoned(gpu(), to, {1003});
    gpu().convert(out, f32.tensor);
    const DeviceData want = upload_values(gpu(), to, {1003}, values);
    EXPECT_EQ(download_values(gpu(), out), want.values) << dtype_name(to);
  }
}

TEST_F(GpuMemory, HostTensorsAreANamedError) {
  Tensor host = Tensor::zeros(DType::F32, {2, 8});
  Tensor dev = gpu().alloc(DType::F32, {2, 8});
  expect_error([&] { gpu().add(dev, host); }, "add: x is a host tensor");
  expect_error([&] { gpu().gelu_tanh(host); }, "gelu_tanh: x is a host tensor");
  Tensor w = gpu().alloc(DType::BF16, {8, 8});
  expect_error([&] { gpu().matmul(dev, host, w, nullptr); }, "matmul: x is a host tensor");
}

TEST_F(GpuMemory, BadDtypesAndShapesAreNamedErrors) {
  Tensor a = gpu().alloc(DType::BF16, {2, 8});
  Tensor b = gpu().alloc(DType::F32, {2, 8});
  expect_error([&] { gpu().add(a, b); }, "must share a dtype");
  Tensor ints = gpu().alloc(DType::I32, {2, 8});
  expect_error([&] { gpu().gelu_tanh(ints); }, "the CUDA kernels take F32, F16 or BF16");
  Tensor q = gpu().alloc(DType::BF16, {3, 4, 96});
  Tensor kv = gpu().alloc(DType::BF16, {16, 2, 96});
  Tensor out = gpu().alloc(DType::BF16, {3, 4, 96});
  AttentionParams params;
  expect_error([&] { gpu().attention(out, q, kv, kv, params); }, "head_dim 96 has no CUDA kernel");
}

}  // namespace
}  // namespace roofline::test
