// rope (rotate-half) against a float64 reference: head_dim 64 and 128, full and partial rotary, positions
// from host and device arrays, the fused per-head RMSNorm of Qwen3 (q_norm / k_norm), and rope_store_kv (in
// place, and from f32 inputs into q_out and bf16 or F8E4M3 pools).
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <numeric>
#include <random>
#include <tuple>

#include "gpu_test_util.h"
#include "roofline/backend/kv_quant.h"

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

// rope_store_kv with f32 q/k/v (the decoder's projections write f32) and q_out: each value is rounded once,
// into q_out's dtype and the pools'. Float pools: q_out and k near the float64 reference, v the rounded input.
// F8E4M3 pools: the codes and scales are exactly the host quantizer's of the f32 rows the same kernel writes
// into f32 outputs, and q_out (bf16) is exactly those f32 rows rounded.
TEST_P(GpuRope, WideInputsAreRoundedOnceIntoTheOutputs) {
  const RopeCase& c = GetParam();
  if (c.act == DType::F32) GTEST_SKIP() << "f32 activations have nothing to widen";
  const int64_t Hkv = 2, D = c.head_dim, block = 4, num_blocks = (c.T + 3 + block - 1) / block;
  const Tables tables = make_tables(kPositions, c.rotary_dim / 2);
  const Tensor cos = gpu().upload(host_f32({kPositions, c.rotary_dim / 2}, tables.cos), DType::F32);
  const Tensor sin = gpu().upload(host_f32({kPositions, c.rotary_dim / 2}, tables.sin), DType::F32);
  const auto positions = random_positions(16);
  const Tensor positions_dev = upload_i32(gpu(), positions);
  std::vector<int32_t> slots(size_t(num_blocks * block));
  std::iota(slots.begin(), slots.end(), 0);
  std::shuffle(slots.begin(), slots.end(), std::mt19937(17));
  slots.resize(size_t(c.T));
  if (c.T > 1) slots[0] = -1;
  const Tensor slots_dev = upload_i32(gpu(), slots);
  const DeviceData q_norm = random_device(gpu(), DType::BF16, {D}, 18, 0.5f, 1.5f);
  const DeviceData k_norm = random_device(gpu(), DType::BF16, {D}, 19, 0.5f, 1.5f);
  for (bool with_norm : {false, true}) {
    const std::string what = c.name() + (with_norm ? "_norm" : "");
    RotaryStep rotary;
    rotary.positions = &positions_dev;
    rotary.cos = &cos;
    rotary.sin = &sin;
    rotary.rotary_dim = int(c.rotary_dim);
    rotary.q_norm = with_norm ? &q_norm.tensor : nullptr;
    rotary.k_norm = with_norm ? &k_norm.tensor : nullptr;
    // Fresh f32 inputs for each run: the kernel leaves q, k and v as they are when q_out is given.
    const auto inputs = [&](uint32_t seed) {
      return std::array<DeviceData, 3>{random_device(gpu(), DType::F32, {c.T, c.heads, D}, seed, -2.0f, 2.0f),
                                       random_device(gpu(), DType::F32, {c.T, Hkv, D}, seed + 1, -2.0f, 2.0f),
                                       random_device(gpu(), DType::F32, {c.T, Hkv, D}, seed + 2, -2.0f, 2.0f)};
    };
    const Shape pool_shape = {num_blocks, block, Hkv, D};

    // Float pools of the activation dtype.
    auto [q, k, v] = inputs(20);
    Tensor q_out = poisoned(gpu(), c.act, {c.T, c.heads, D});
    Tensor k_pool = poisoned(gpu(), c.act, pool_shape), v_pool = poisoned(gpu(), c.act, pool_shape);
    rotary.q_out = &q_out;
    gpu().rope_store_kv(q.tensor, k.tensor, v.tensor, rotary, k_pool, v_pool, slots_dev);
    const double eps = 1e-6;
    RopeCase kc = c;
    kc.heads = Hkv;
    expect_close(download_values(gpu(), q_out), reference(c, q.values, positions, tables,
                                                          with_norm ? &q_norm.values : nullptr, eps),
                 tolerance_for(c.act), what + " q_out");
    const auto want_k = reference(kc, k.values, positions, tables, with_norm ? &k_norm.values : nullptr, eps);
    const auto got_k_pool = download_values(gpu(), k_pool), got_v_pool = download_values(gpu(), v_pool);
    const size_t row = size_t(Hkv * D);
    // The pool rows of the tokens with a slot, beside their references.
    std::vector<double> k_rows, v_rows, want_k_rows, want_v;
    for (int64_t t = 0; t < c.T; ++t) {
      if (slots[size_t(t)] < 0) continue;
      const long at = long(size_t(slots[size_t(t)]) * row), from = long(size_t(t) * row), n = long(row);
      k_rows.insert(k_rows.end(), got_k_pool.begin() + at, got_k_pool.begin() + at + n);
      v_rows.insert(v_rows.end(), got_v_pool.begin() + at, got_v_pool.begin() + at + n);
      want_k_rows.insert(want_k_rows.end(), want_k.begin() + from, want_k.begin() + from + n);
      want_v.insert(want_v.end(), v.values.begin() + from, v.values.begin() + from + n);
    }
    expect_close(k_rows, want_k_rows, tolerance_for(c.act), what + " k pool");
    expect_close(v_rows, want_v, tolerance_for(c.act), what + " v pool");

    // The f32 rows the kernel computes (f32 outputs), then the same inputs into F8E4M3 pools.
    auto [q2, k2, v2] = inputs(30);
    Tensor q_f32 = gpu().alloc(DType::F32, {c.T, c.heads, D});
    Tensor k_f32 = poisoned(gpu(), DType::F32, pool_shape), v_f32 = poisoned(gpu(), DType::F32, pool_shape);
    rotary.q_out = &q_f32;
    gpu().rope_store_kv(q2.tensor, k2.tensor, v2.tensor, rotary, k_f32, v_f32, slots_dev);
    Tensor k_codes = poisoned(gpu(), DType::F8E4M3, pool_shape), v_codes = poisoned(gpu(), DType::F8E4M3, pool_shape);
    Tensor k_scale = poisoned(gpu(), DType::F32, {num_blocks, block, Hkv}), v_scale = poisoned(gpu(), DType::F32, {num_blocks, block, Hkv});
    rotary.q_out = &q_out;
    gpu().rope_store_kv(q2.tensor, k2.tensor, v2.tensor, rotary, k_codes, v_codes, slots_dev,
                        KvScales{&k_scale, &v_scale});
    const auto q_rows = download_values(gpu(), q_f32), q_rounded = download_values(gpu(), q_out);
    for (size_t i = 0; i < q_rows.size(); ++i) {
      float x = float(q_rows[i]), y = 0;
      std::vector<uint8_t> stored(dtype_size(c.act));
      convert_from_f32(c.act, &x, stored.data(), 1);
      convert_to_f32(c.act, stored.data(), &y, 1);
      ASSERT_EQ(q_rounded[i], double(y)) << what << " q_out element " << i;
    }
    const auto k32 = download_values(gpu(), k_f32), v32 = download_values(gpu(), v_f32);
    Tensor kc_host = Tensor::empty(DType::F8E4M3, pool_shape), vc_host = Tensor::empty(DType::F8E4M3, pool_shape);
    gpu().download(k_codes, kc_host);
    gpu().download(v_codes, vc_host);
    const auto ks = download_values(gpu(), k_scale), vs = download_values(gpu(), v_scale);
    for (int64_t t = 0; t < c.T; ++t) {
      if (slots[size_t(t)] < 0) continue;
      for (int64_t h = 0; h < Hkv; ++h) {
        const size_t at = size_t(slots[size_t(t)]) * size_t(Hkv) + size_t(h);
        for (const auto& [rows32, codes, scales, name] :
             {std::tuple{&k32, &kc_host, &ks, "k"}, std::tuple{&v32, &vc_host, &vs, "v"}}) {
          std::vector<float> x(rows32->begin() + long(at * size_t(D)), rows32->begin() + long((at + 1) * size_t(D)));
          std::vector<uint8_t> want(static_cast<size_t>(D));
          const float scale = quantize_kv_vector(x.data(), D, want.data());
          ASSERT_EQ(float((*scales)[at]), scale) << what << " " << name << " scale t=" << t << " h=" << h;
          const uint8_t* got = codes->ptr<uint8_t>() + at * size_t(D);
          for (int64_t d = 0; d < D; ++d)
            ASSERT_EQ(got[d], want[size_t(d)]) << what << " " << name << " code t=" << t << " h=" << h << " d=" << d;
        }
      }
    }
    // Pool rows without a slot stay untouched (0xff codes, NaN scales).
    std::vector<bool> written(size_t(num_blocks * block), false);
    for (int32_t sl : slots)
      if (sl >= 0) written[size_t(sl)] = true;
    for (size_t r = 0; r < written.size(); ++r)
      if (!written[r])
        ASSERT_TRUE(std::isnan(ks[r * size_t(Hkv)]) && kc_host.ptr<uint8_t>()[r * size_t(Hkv * D)] == 0xff)
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
