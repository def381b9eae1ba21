// add, silu_mul, gelu_tanh, add_row / add_rows and embedding against float64 references, over sizes with a
// tail (n % 8 != 0), unaligned row views (scalar path), in-place aliasing, host and device ids.
#include <gtest/gtest.h>

#include <cmath>
#include <numbers>

#include "gpu_test_util.h"

namespace roofline::test {
namespace {

class GpuElementwise : public GpuTest, public ::testing::WithParamInterface<DType> {};

double silu(double x) { return x / (1.0 + std::exp(-x)); }
double gelu_tanh(double x) { return 0.5 * x * (1.0 + std::tanh(std::sqrt(2.0 / std::numbers::pi) * (x + 0.044715 * x * x * x))); }

TEST_P(GpuElementwise, Add) {
  const DType dt = GetParam();
  for (int64_t width : {8, 1001, 4096}) {
    DeviceData a = random_device(gpu(), dt, {3, width}, 1);
    const DeviceData b = random_device(gpu(), dt, {3, width}, 2);
    gpu().add(a.tensor, b.tensor);
    std::vector<double> want(a.values.size());
    for (size_t i = 0; i < want.size(); ++i) want[i] = a.values[i] + b.values[i];
    expect_close(download_values(gpu(), a.tensor), want, tolerance_for(dt), fmt::format("width {}", width));
  }
}

TEST_P(GpuElementwise, SiluMulWritesIntoUp) {
  const DType dt = GetParam();
  for (int64_t width : {8, 1001, 11008}) {
    const DeviceData gate = random_device(gpu(), dt, {5, width}, 3, -4.0f, 4.0f);
    DeviceData up = random_device(gpu(), dt, {5, width}, 4);
    Tensor out = poisoned(gpu(), dt, {5, width});
    gpu().silu_mul(out, gate.tensor, up.tensor);
    std::vector<double> want(up.values.size());
    for (size_t i = 0; i < want.size(); ++i) want[i] = silu(gate.values[i]) * up.values[i];
    expect_close(download_values(gpu(), out), want, tolerance_for(dt), fmt::format("width {}", width));
    gpu().silu_mul(up.tensor, gate.tensor, up.tensor);  // the decoder's aliasing: out == up
    expect_close(download_values(gpu(), up.tensor), want, tolerance_for(dt), fmt::format("in place, width {}", width));
  }
}

TEST_P(GpuElementwise, GeluTanhInPlace) {
  const DType dt = GetParam();
  DeviceData x = random_device(gpu(), dt, {7, 3073}, 5, -5.0f, 5.0f);
  gpu().gelu_tanh(x.tensor);
  std::vector<double> want(x.values.size());
  for (size_t i = 0; i < want.size(); ++i) want[i] = gelu_tanh(x.values[i]);
  expect_close(download_values(gpu(), x.tensor), want, tolerance_for(dt), "gelu_tanh");
}

TEST_P(GpuElementwise, UnalignedRowViewsTakeTheScalarPath) {
  const DType dt = GetParam();
  // Rows of 1001 elements: row 1 starts 1001 * size bytes in, not on a 16-byte boundary.
  DeviceData a = random_device(gpu(), dt, {3, 1001}, 6);
  const DeviceData b = random_device(gpu(), dt, {3, 1001}, 7);
  Tensor a_rows = a.tensor.rows(1, 3);
  const Tensor b_rows = b.tensor.rows(1, 3);
  gpu().add(a_rows, b_rows);
  std::vector<double> want = a.values;
  for (size_t i = 1001; i < want.size(); ++i) want[i] += b.values[i];
  expect_close(download_values(gpu(), a.tensor), want, tolerance_for(dt), "rows 1..2 only");
}

TEST_P(GpuElementwise, AddRowAndAddRows) {
  const DType dt = GetParam();
  const int64_t T = 5, width = 768, positions = 1024;
  const DeviceData table = random_device(gpu(), DType::BF16, {positions, width}, 8);
  DeviceData x = random_device(gpu(), dt, {T, width}, 9);
  const std::vector<int32_t> rows = {0, 1023, 17, 512, 3};
  std::vector<double> want = x.values;
  for (int64_t t = 0; t < T; ++t)
    for (int64_t i = 0; i < width; ++i) want[size_t(t * width + i)] += table.values[size_t(rows[size_t(t)] * width + i)];
  for (int64_t t = 0; t < T; ++t) gpu().add_row(x.tensor, t, table.tensor, rows[size_t(t)]);
  expect_close(download_values(gpu(), x.tensor), want, tolerance_for(dt), "add_row");

  DeviceData y = random_device(gpu(), dt, {T, width}, 9);
  gpu().add_rows(y.tensor, table.tensor, upload_i32(gpu(), rows));
  expect_close(download_values(gpu(), y.tensor), want, tolerance_for(dt), "add_rows");
}

TEST_P(GpuElementwise, EmbeddingWithHostAndDeviceIds) {
  const DType dt = GetParam();
  for (DType table_dtype : {DType::BF16, DType::F16, DType::F32}) {
    const int64_t vocab = 1000, width = 896;
    const DeviceData table = random_device(gpu(), table_dtype, {vocab, width}, 10);
    const std::vector<int32_t> ids = {5, 999, 0, 5, 123, 777, 42};
    const auto T = int64_t(ids.size());
    std::vector<double> want(size_t(T * width));
    for (int64_t t = 0; t < T; ++t)
      for (int64_t i = 0; i < width; ++i) want[size_t(t * width + i)] = table.values[size_t(ids[size_t(t)] * width + i)];
    Tensor out = poisoned(gpu(), dt, {T, width});
    gpu().embedding(out, table.tensor, ids.data(), T);
    expect_close(download_values(gpu(), out), want, tolerance_for(dt), "host ids");
    Tensor out2 = poisoned(gpu(), dt, {T, width});
    gpu().embedding(out2, table.tensor, upload_i32(gpu(), ids));
    expect_close(download_values(gpu(), out2), want, tolerance_for(dt), "device ids");
  }
}

TEST_P(GpuElementwise, EmbeddingOfAnOutOfRangeDeviceIdIsNaN) {
  const DType dt = GetParam();
  const DeviceData table = random_device(gpu(), DType::BF16, {10, 64}, 11);
  Tensor out = poisoned(gpu(), dt, {2, 64});
  gpu().embedding(out, table.tensor, upload_i32(gpu(), {3, 10}));
  const auto got = download_values(gpu(), out);
  for (int64_t i = 0; i < 64; ++i) {
    EXPECT_EQ(got[size_t(i)], table.values[size_t(3 * 64 + i)]);
    EXPECT_TRUE(std::isnan(got[size_t(64 + i)]));
  }
  const std::vector<int32_t> bad = {10};
  expect_error([&] { gpu().embedding(out, table.tensor, bad.data(), 1); }, "outside the table");
}

INSTANTIATE_TEST_SUITE_P(Dtypes, GpuElementwise, ::testing::Values(DType::BF16, DType::F16, DType::F32),
                         [](const auto& p) { return std::string(dtype_name(p.param)); });

}  // namespace
}  // namespace roofline::test
