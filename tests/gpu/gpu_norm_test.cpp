// rms_norm, layer_norm and the fused residual-add variants against float64 references: activations bf16
// and f32, weights bf16 and f32, row counts 1 / 7 / 33, widths from one chunk (8) to 8192, out aliasing x.
#include <gtest/gtest.h>

#include <cmath>

#include "gpu_test_util.h"

namespace roofline::test {
namespace {

struct NormCase {
  int64_t rows, width;
  DType act, weight;
  std::string name() const {
    return fmt::format("rows{}_width{}_act{}_w{}", rows, width, dtype_name(act), dtype_name(weight));
  }
};

std::vector<double> reference(const std::vector<double>& x, const std::vector<double>& w, const std::vector<double>* b,
                              int64_t rows, int64_t width, double eps) {
  std::vector<double> out(x.size());
  for (int64_t r = 0; r < rows; ++r) {
    const double* row = x.data() + r * width;
    double mean = 0, sq = 0;
    if (b) {
      for (int64_t i = 0; i < width; ++i) mean += row[i];
      mean /= double(width);
    }
    for (int64_t i = 0; i < width; ++i) sq += (row[i] - mean) * (row[i] - mean);
    const double rstd = 1.0 / std::sqrt(sq / double(width) + eps);
    for (int64_t i = 0; i < width; ++i)
      out[size_t(r * width + i)] = (row[i] - mean) * rstd * w[size_t(i)] + (b ? (*b)[size_t(i)] : 0.0);
  }
  return out;
}

class GpuNorm : public GpuTest, public ::testing::WithParamInterface<NormCase> {};

TEST_P(GpuNorm, RmsNorm) {
  const NormCase& c = GetParam();
  const DeviceData x = random_device(gpu(), c.act, {c.rows, c.width}, 1, -2.0f, 2.0f);
  const DeviceData w = random_device(gpu(), c.weight, {c.width}, 2, 0.5f, 1.5f);
  Tensor out = poisoned(gpu(), c.act, {c.rows, c.width});
  gpu().rms_norm(out, x.tensor, w.tensor, 1e-6f);
  expect_close(download_values(gpu(), out), reference(x.values, w.values, nullptr, c.rows, c.width, 1e-6),
               tolerance_for(c.act), c.name());
}

TEST_P(GpuNorm, RmsNormInPlace) {
  const NormCase& c = GetParam();
  DeviceData x = random_device(gpu(), c.act, {c.rows, c.width}, 3, -2.0f, 2.0f);
  const DeviceData w = random_device(gpu(), c.weight, {c.width}, 4, 0.5f, 1.5f);
  gpu().rms_norm(x.tensor, x.tensor, w.tensor, 1e-5f);
  expect_close(download_values(gpu(), x.tensor), reference(x.values, w.values, nullptr, c.rows, c.width, 1e-5),
               tolerance_for(c.act), c.name());
}

TEST_P(GpuNorm, LayerNormOfRowsWithLargeMean) {
  const NormCase& c = GetParam();
  // Mean far from zero relative to the spread: a one-pass E[x^2] - E[x]^2 would lose the variance.
  const DeviceData x = random_device(gpu(), c.act, {c.rows, c.width}, 5, 3.0f, 4.0f);
  const DeviceData w = random_device(gpu(), c.weight, {c.width}, 6, 0.5f, 1.5f);
  const DeviceData b = random_device(gpu(), c.weight, {c.width}, 7);
  Tensor out = poisoned(gpu(), c.act, {c.rows, c.width});
  gpu().layer_norm(out, x.tensor, w.tensor, b.tensor, 1e-5f);
  expect_close(download_values(gpu(), out), reference(x.values, w.values, &b.values, c.rows, c.width, 1e-5),
               tolerance_for(c.act), c.name());
}

TEST_P(GpuNorm, AddRmsNormUpdatesResidualAndNormalisesIt) {
  const NormCase& c = GetParam();
  DeviceData residual = random_device(gpu(), c.act, {c.rows, c.width}, 8, -2.0f, 2.0f);
  const DeviceData x = random_device(gpu(), c.act, {c.rows, c.width}, 9);
  const DeviceData w = random_device(gpu(), c.weight, {c.width}, 10, 0.5f, 1.5f);
  std::vector<double> sum(residual.values.size());
  for (size_t i = 0; i < sum.size(); ++i) sum[i] = residual.values[i] + x.values[i];
  Tensor out = poisoned(gpu(), c.act, {c.rows, c.width});
  gpu().add_rms_norm(residual.tensor, x.tensor, w.tensor, out, 1e-6f);
  expect_close(download_values(gpu(), residual.tensor), sum, tolerance_for(c.act), c.name() + " residual");
  expect_close(download_values(gpu(), out), reference(sum, w.values, nullptr, c.rows, c.width, 1e-6),
               tolerance_for(c.act), c.name() + " out");
}

TEST_P(GpuNorm, AddLayerNorm) {
  const NormCase& c = GetParam();
  DeviceData residual = random_device(gpu(), c.act, {c.rows, c.width}, 11, 1.0f, 3.0f);
  const DeviceData x = random_device(gpu(), c.act, {c.rows, c.width}, 12);
  const DeviceData w = random_device(gpu(), c.weight, {c.width}, 13, 0.5f, 1.5f);
  const DeviceData b = random_device(gpu(), c.weight, {c.width}, 14);
  std::vector<double> sum(residual.values.size());
  for (size_t i = 0; i < sum.size(); ++i) sum[i] = residual.values[i] + x.values[i];
  Tensor out = poisoned(gpu(), c.act, {c.rows, c.width});
  gpu().add_layer_norm(residual.tensor, x.tensor, w.tensor, b.tensor, out, 1e-5f);
  expect_close(download_values(gpu(), residual.tensor), sum, tolerance_for(c.act), c.name() + " residual");
  expect_close(download_values(gpu(), out), reference(sum, w.values, &b.values, c.rows, c.width, 1e-5),
               tolerance_for(c.act), c.name() + " out");
}

constexpr DType BF = DType::BF16, F32 = DType::F32;

INSTANTIATE_TEST_SUITE_P(Shapes, GpuNorm,
                         ::testing::Values(NormCase{1, 8, BF, BF}, NormCase{7, 896, BF, BF}, NormCase{33, 4096, BF, BF},
                                           NormCase{1, 8192, BF, F32}, NormCase{7, 5120, F32, BF},
                                           NormCase{3, 32768, BF, BF},  // 4 chunks per thread
                                           NormCase{33, 128, F32, F32}),
                         [](const auto& p) { return p.param.name(); });

TEST_F(GpuTest, NormRejectsWidthsItCannotVectorise) {
  Tensor x = gpu().alloc(DType::BF16, {2, 12});
  Tensor w = gpu().alloc(DType::BF16, {12});
  expect_error([&] { gpu().rms_norm(x, x, w, 1e-6f); }, "must be a multiple of 8");
}

}  // namespace
}  // namespace roofline::test
