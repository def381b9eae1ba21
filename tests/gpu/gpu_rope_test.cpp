// rope (rotate-half) against a float64 reference: head_dim 64 and 128, full and partial rotary, positions
// from host and device arrays, and the fused per-head RMSNorm of Qwen3 (q_norm / k_norm).
#include <gtest/gtest.h>

#include <cmath>

#include "gpu_test_util.h"

namespace roofline::test {
namespace {

struct RopeCase {
  int64_t T, heads, head_dim, rotary_dim;
  DType act;
  std::string name() const {
    return fmt::format("T{}_H{}_D{}_rot{}_{}", T, heads, head_dim, rotary_dim, dtype_name(act));
  }
};

struct Tables {
  std::vector<float> cos, sin;  // [positions, half]
};

Tables make_tables(int64_t positions, int64_t half) {
  Tables t;
  for (int64_t p = 0; p < positions; ++p)
    for (int64_t i = 0; i < half; ++i) {
      const double angle = double(p) * std::pow(10000.0, -double(2 * i) / double(2 * half));
      t.cos.push_back(float(std::cos(angle)));
      t.sin.push_back(float(std::sin(angle)));
    }
  return t;
}

std::vector<double> reference(const RopeCase& c, std::vector<double> x, const std::vector<int32_t>& positions,
                              const Tables& tables, const std::vector<double>* norm, double eps) {
  const int64_t D = c.head_dim, half = c.rotary_dim / 2;
  for (int64_t t = 0; t < c.T; ++t)
    for (int64_t h = 0; h < c.heads; ++h) {
      double* v = x.data() + (t * c.heads + h) * D;
      if (norm) {
        double sq = 0;
        for (int64_t i = 0; i < D; ++i) sq += v[i] * v[i];
        const double rstd = 1.0 / std::sqrt(sq / double(D) + eps);
        for (int64_t i = 0; i < D; ++i) v[i] *= rstd * (*norm)[size_t(i)];
      }
      const int64_t p = positions[size_t(t)];
      for (int64_t i = 0; i < half; ++i) {
        const double cs = tables.cos[size_t(p * half + i)], sn = tables.sin[size_t(p * half + i)];
        const double x1 = v[i], x2 = v[i + half];
        v[i] = x1 * cs - x2 * sn;
        v[i + half] = x2 * cs + x1 * sn;
      }
    }
  return x;
}

class GpuRope : public GpuTest, public ::testing::WithParamInterface<RopeCase> {
 protected:
  static constexpr int64_t kPositions = 4096;
  std::vector<int32_t> random_positions(uint32_t seed) const {
    std::mt19937 rng(seed);
    std::vector<int32_t> p(size_t(GetParam().T));
    for (auto& v : p) v = int32_t(rng() % kPositions);
    return p;
  }
};

TEST_P(GpuRope, HostPositions) {
  const RopeCase& c = GetParam();
  const Tables tables = make_tables(kPositions, c.rotary_dim / 2);
  const Tensor cos = gpu().upload(host_f32({kPositions, c.rotary_dim / 2}, tables.cos), DType::F32);
  const Tensor sin = gpu().upload(host_f32({kPositions, c.rotary_dim / 2}, tables.sin), DType::F32);
  DeviceData x = random_device(gpu(), c.act, {c.T, c.heads, c.head_dim}, 1, -2.0f, 2.0f);
  const auto positions = random_positions(2);
  gpu().rope(x.tensor, positions.data(), cos, sin, int(c.rotary_dim));
  expect_close(download_values(gpu(), x.tensor), reference(c, x.values, positions, tables, nullptr, 0),
               tolerance_for(c.act), c.name());
}

TEST_P(GpuRope, DevicePositionsWithFusedHeadNorm) {
  const RopeCase& c = GetParam();
  const Tables tables = make_tables(kPositions, c.rotary_dim / 2);
  const Tensor cos = gpu().upload(host_f32({kPositions, c.rotary_dim / 2}, tables.cos), DType::F32);
  const Tensor sin = gpu().upload(host_f32({kPositions, c.rotary_dim / 2}, tables.sin), DType::F32);
  DeviceData x = random_device(gpu(), c.act, {c.T, c.heads, c.head_dim}, 3, -2.0f, 2.0f);
  const DeviceData norm = random_device(gpu(), DType::BF16, {c.head_dim}, 4, 0.5f, 1.5f);
  const auto positions = random_positions(5);
  gpu().rope(x.tensor, upload_i32(gpu(), positions), cos, sin, int(c.rotary_dim), &norm.tensor, 1e-6f);
  expect_close(download_values(gpu(), x.tensor), reference(c, x.values, positions, tables, &norm.values, 1e-6),
               tolerance_for(c.act), c.name());
}

constexpr DType BF = DType::BF16, F32 = DType::F32;

INSTANTIATE_TEST_SUITE_P(Shapes, GpuRope,
                         ::testing::Values(RopeCase{1, 8, 128, 128, BF}, RopeCase{7, 5, 128, 128, BF},
                                           RopeCase{127, 2, 64, 64, BF}, RopeCase{7, 3, 64, 32, BF},  // partial
                                           RopeCase{9, 4, 80, 80, BF},  // head_dim not a multiple of 32
                                           RopeCase{33, 4, 128, 128, F32}),
                         [](const auto& p) { return p.param.name(); });

TEST_F(GpuTest, RopeRejectsPositionsOutsideTheTable) {
  const Tensor cos = gpu().upload(host_f32({4, 32}, std::vector<float>(128, 0.5f)), DType::F32);
  Tensor x = gpu().alloc(DType::BF16, {1, 2, 64});
  const std::vector<int32_t> positions = {4};
  expect_error([&] { gpu().rope(x, positions.data(), cos, cos, 64); }, "outside the table");
}

}  // namespace
}  // namespace roofline::test
