// rope (rotate-half) against a float64 reference: head_dim 64 and 128, full and partial rotary, positions
// from host and device arrays, the fused per-head RMSNorm of Qwen3 (q_norm / k_norm), and rope_store_kv.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>

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

// rope_store_kv: q and k rotated in place (with and without head norms), k's rotated rows and v's rows in
// the pools at their slots; a slot of -1 writes no pool row, and no other pool row is touched.
TEST_P(GpuRope, FusedWithStoreKv) {
  const RopeCase& c = GetParam();
  const int64_t Hkv = 2, D = c.head_dim, block = 4, pool_rows = (c.T + 5 + block - 1) / block * block;
  const Tables tables = make_tables(kPositions, c.rotary_dim / 2);
  const Tensor cos = gpu().upload(host_f32({kPositions, c.rotary_dim / 2}, tables.cos), DType::F32);
  const Tensor sin = gpu().upload(host_f32({kPositions, c.rotary_dim / 2}, tables.sin), DType::F32);
  const auto positions = random_positions(6);
  const Tensor positions_dev = upload_i32(gpu(), positions);
  std::vector<int32_t> slots(static_cast<size_t>(pool_rows));
  for (size_t i = 0; i < slots.size(); ++i) slots[i] = int32_t(i);
  std::shuffle(slots.begin(), slots.end(), std::mt19937(7));
  slots.resize(size_t(c.T));
  if (c.T > 1) slots[1] = -1;
  const Tensor slots_dev = upload_i32(gpu(), slots);
  for (bool with_norm : {false, true}) {
    const std::string what = c.name() + (with_norm ? "_norm" : "");
    DeviceData q = random_device(gpu(), c.act, {c.T, c.heads, D}, 8, -2.0f, 2.0f);
    DeviceData k = random_device(gpu(), c.act, {c.T, Hkv, D}, 9, -2.0f, 2.0f);
    const DeviceData v = random_device(gpu(), c.act, {c.T, Hkv, D}, 10, -2.0f, 2.0f);
    const DeviceData q_norm = random_device(gpu(), DType::BF16, {D}, 11, 0.5f, 1.5f);
    const DeviceData k_norm = random_device(gpu(), DType::BF16, {D}, 12, 0.5f, 1.5f);
    Tensor k_pool = poisoned(gpu(), c.act, {pool_rows / block, block, Hkv, D});
    Tensor v_pool = poisoned(gpu(), c.act, {pool_rows / block, block, Hkv, D});
    RotaryStep rotary;
    rotary.positions = &positions_dev;
    rotary.cos = &cos;
    rotary.sin = &sin;
    rotary.rotary_dim = int(c.rotary_dim);
    rotary.q_norm = with_norm ? &q_norm.tensor : nullptr;
    rotary.k_norm = with_norm ? &k_norm.tensor : nullptr;
    rotary.eps = 1e-6f;
    gpu().rope_store_kv(q.tensor, k.tensor, v.tensor, rotary, k_pool, v_pool, slots_dev);

    const double eps = 1e-6;
    const auto want_q = reference(c, q.values, positions, tables, with_norm ? &q_norm.values : nullptr, eps);
    RopeCase kc = c;
    kc.heads = Hkv;
    const auto want_k = reference(kc, k.values, positions, tables, with_norm ? &k_norm.values : nullptr, eps);
    expect_close(download_values(gpu(), q.tensor), want_q, tolerance_for(c.act), what + " q");
    const auto got_k = download_values(gpu(), k.tensor);
    expect_close(got_k, want_k, tolerance_for(c.act), what + " k");
    const auto got_k_pool = download_values(gpu(), k_pool), got_v_pool = download_values(gpu(), v_pool);
    const size_t row = size_t(Hkv * D);
    std::vector<bool> written(size_t(pool_rows), false);
    for (int64_t t = 0; t < c.T; ++t) {
      if (slots[size_t(t)] < 0) continue;
      const size_t at = size_t(slots[size_t(t)]);
      written[at] = true;
      for (size_t i = 0; i < row; ++i) {
        ASSERT_EQ(got_k_pool[at * row + i], got_k[size_t(t) * row + i]) << what << " k pool t=" << t << " i=" << i;
        ASSERT_EQ(got_v_pool[at * row + i], v.values[size_t(t) * row + i]) << what << " v pool t=" << t << " i=" << i;
      }
    }
    for (size_t r = 0; r < written.size(); ++r)
      if (!written[r])
        for (size_t i = 0; i < row; ++i)
          ASSERT_TRUE(std::isnan(got_k_pool[r * row + i]) && std::isnan(got_v_pool[r * row + i]))
              << what << ": pool row " << r << " has no slot but was written";
  }
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
