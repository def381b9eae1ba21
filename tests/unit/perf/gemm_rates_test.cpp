// The GEMM rate table: its JSON in hardware entries, the errors a bad table gets, and the interpolation.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>

#include "perf_test_util.h"
#include "roofline/perf/gemm_rates.h"
#include "roofline/perf/hardware.h"

namespace roofline::perf {
namespace {

// A 2 x 2 x 2 grid: M {16, 64}, N {512, 2048}, K {512, 2048}; every rate distinct so that a wrong corner shows.
GemmRateTable small_table() {
  return GemmRateTable({{16, 512, 512, 1e12},
                        {16, 512, 2048, 2e12},
                        {16, 2048, 512, 3e12},
                        {16, 2048, 2048, 4e12},
                        {64, 512, 512, 10e12},
                        {64, 512, 2048, 20e12},
                        {64, 2048, 512, 30e12},
                        {64, 2048, 2048, 40e12}},
                       "test");
}

nlohmann::json entry_with(const nlohmann::json& rates) {
  return {{"peak_bf16_flops_per_s", 500e12}, {"memory_bytes_per_s", 2e12}, {"gemm_bf16_rates", rates}};
}

std::string from_json_error(const nlohmann::json& rates) {
  return test::error_of([&] { hardware_from_json(entry_with(rates), "hw.json"); });
}

TEST(GemmRates, ExactAtTheGridPoints) {
  const GemmRateTable t = small_table();
  for (const GemmRatePoint& p : t.points())
    EXPECT_NEAR(t.rate({double(p.m), double(p.n), double(p.k)}), p.flops_per_s, 1e-9 * p.flops_per_s);
}

TEST(GemmRates, InterpolatesTheLogOfTheRateInLogCoordinates) {
  const GemmRateTable t = small_table();
  // M = 32 is halfway from 16 to 64 in log M: the geometric mean of the two rates.
  EXPECT_NEAR(t.rate({32, 512, 512}), std::sqrt(1e12 * 10e12), 1e3);
  // A quarter of the way in log M (16 -> 22.63 is 2^0.5 of the 2^2 span): 1e12^0.75 * 10e12^0.25.
  EXPECT_NEAR(t.rate({16 * std::sqrt(2.0), 2048, 2048}), std::pow(4e12, 0.75) * std::pow(40e12, 0.25), 1e3);
  // The centre of the cube: the geometric mean of all eight corners.
  double log_sum = 0;
  for (const GemmRatePoint& p : t.points()) log_sum += std::log(p.flops_per_s);
  EXPECT_NEAR(t.rate({32, 1024, 1024}), std::exp(log_sum / 8), 1e3);
}

TEST(GemmRates, ClampsAtTheEdges) {
  const GemmRateTable t = small_table();
  EXPECT_NEAR(t.rate({1, 512, 512}), 1e12, 10);           // below the smallest M: the smallest M's rate
  EXPECT_NEAR(t.rate({1e6, 2048, 2048}), 40e12, 10);     // above the largest
  EXPECT_NEAR(t.rate({64, 128256, 2048}), 40e12, 10);    // a vocabulary-wide N: the widest measured
  EXPECT_NEAR(t.rate({64, 2048, 64}), 30e12, 10);        // head_dim-deep K: the shallowest measured
  EXPECT_NEAR(t.rate({1e6, 1e6, 1e6}), 40e12, 10);
}

TEST(GemmRates, ABatchedProductIsOneGemmOfBatchTimesMRows) {
  const GemmRateTable t = small_table();
  EXPECT_DOUBLE_EQ(t.rate({8, 512, 2048, 8}), t.rate({64, 512, 2048}));
  EXPECT_DOUBLE_EQ(t.rate({1, 2048, 512, 32}), t.rate({32, 2048, 512}));
}

TEST(GemmRates, AxesOfOneValueAreConstant) {
  const GemmRateTable one({{256, 4096, 4096, 5e14}}, "test");
  EXPECT_NEAR(one.rate({1, 1, 1}), 5e14, 1e-9 * 5e14);  // exp(log(r)): exact to rounding
  EXPECT_NEAR(one.rate({1e5, 1e5, 1e5}), 5e14, 1e-9 * 5e14);
  const GemmRateTable line({{16, 1024, 1024, 1e12}, {256, 1024, 1024, 16e12}}, "test");
  EXPECT_NEAR(line.rate({64, 4096, 64}), 4e12, 1e3);  // halfway in log M; N and K have one value each
}

TEST(GemmRates, HardwareJsonRoundTrip) {
  HardwareSpec h = builtin_hardware("h100");
  h.gemm_bf16_rates = small_table();
  const nlohmann::json j = hardware_to_json(h);
  ASSERT_TRUE(j.contains("gemm_bf16_rates"));
  EXPECT_EQ(j["gemm_bf16_rates"].size(), 8u);
  EXPECT_EQ(j["gemm_bf16_rates"][1], nlohmann::json::array({16, 512, 2048, 2e12}));
  const HardwareSpec back = hardware_from_json(j, "round trip");
  ASSERT_EQ(back.gemm_bf16_rates.points().size(), 8u);
  for (size_t i = 0; i < 8; ++i) {
    const GemmRatePoint &a = h.gemm_bf16_rates.points()[i], &b = back.gemm_bf16_rates.points()[i];
    EXPECT_EQ(std::make_tuple(a.m, a.n, a.k, a.flops_per_s), std::make_tuple(b.m, b.n, b.k, b.flops_per_s));
  }
  EXPECT_DOUBLE_EQ(back.gemm_bf16_rates.rate({32, 1024, 700}), h.gemm_bf16_rates.rate({32, 1024, 700}));
  // Stored and loaded through a calibration file, as `roofline calibrate` and `--hw NAME` do.
  const std::filesystem::path dir = std::filesystem::temp_directory_path() /
                                    ("roofline_gemm_rates_" + std::to_string(::testing::UnitTest::GetInstance()->random_seed()));
  std::filesystem::remove_all(dir);
  h.name = "box";
  store_calibration((dir / "hardware.json").string(), h);
  const HardwareSpec loaded = resolve_hardware("box", (dir / "hardware.json").string());
  EXPECT_EQ(loaded.gemm_bf16_rates.points().size(), 8u);
  std::filesystem::remove_all(dir);
}

TEST(GemmRates, EntriesWithoutATableKeepWorking) {
  const HardwareSpec h = hardware_from_json(
      {{"peak_bf16_flops_per_s", 500e12}, {"memory_bytes_per_s", 2e12}}, "old calibration");
  EXPECT_TRUE(h.gemm_bf16_rates.empty());
  EXPECT_FALSE(hardware_to_json(h).contains("gemm_bf16_rates"));
  EXPECT_TRUE(builtin_hardware("h100").gemm_bf16_rates.empty());
  EXPECT_TRUE(builtin_hardware("cpu").gemm_bf16_rates.empty());
}

TEST(GemmRates, BadTablesAreRefusedWithTheEntryNamed) {
  EXPECT_HAS(from_json_error(nlohmann::json::object()), "hw.json: \"gemm_bf16_rates\" must be an array of [M, N, K, flops_per_s]");
  EXPECT_HAS(from_json_error({{16, 512, 512}}), "\"gemm_bf16_rates\"[0] must be [M, N, K, flops_per_s]");
  EXPECT_HAS(from_json_error({{16, 512, 512, 1e12}, {16.5, 512, 1024, 1e12}}), "\"gemm_bf16_rates\"[1] must be");
  EXPECT_HAS(from_json_error({{16, 512, 512, 1e12}, {16.5, 512, 1024, 1e12}}), "M, N, K positive integers");
  EXPECT_HAS(from_json_error({{16, -512, 512, 1e12}}), "[0] must be");
  EXPECT_HAS(from_json_error({{16, 512, 0, 1e12}}), "[0] must be");
  EXPECT_HAS(from_json_error({{16, 512, 512, 0}}), "positive rate; got [16,512,512,0");
  EXPECT_HAS(from_json_error({{16, 512, 512, "fast"}}), "got [16,512,512,\"fast\"]");
  EXPECT_HAS(from_json_error({{16, 512, 512, 1e12}, {16, 512, 512, 2e12}}), "names M=16 N=512 K=512 twice");
  // M {16, 64} x N {512} x K {512, 2048} needs four points; (64, 512, 2048) is missing.
  EXPECT_HAS(from_json_error({{16, 512, 512, 1e12}, {16, 512, 2048, 1e12}, {64, 512, 512, 1e12}}),
             "hw.json: \"gemm_bf16_rates\" is not a full grid: no rate for M=64 N=512 K=2048");
  EXPECT_EQ(from_json_error(nlohmann::json::array()), "");  // empty: no table, every matmul at the peak
}

TEST(GemmRates, TheCalibrationGridIsAFullGridAboveTheGemvRows) {
  for (bool quick : {false, true}) {
    const std::vector<GemmShape> grid = gemm_rate_grid(quick);
    EXPECT_EQ(grid.size(), quick ? 27u : 11u * 7u * 7u);
    std::vector<GemmRatePoint> points;
    for (const GemmShape& g : grid) {
      EXPECT_GE(g.m, 16);  // the backend runs M <= 8 as a GEMV, not cuBLASLt
      EXPECT_EQ(g.batch, 1);
      points.push_back({int64_t(g.m), int64_t(g.n), int64_t(g.k), 1e12});
    }
    EXPECT_NO_THROW(GemmRateTable(points, "grid"));
  }
  // The 1B shapes engines run are grid points, not interpolations: prefill's 2048 rows, training's 8192, the
  // 512-wide K/V projections and the 8192-wide MLP.
  const std::vector<GemmShape> grid = gemm_rate_grid(false);
  auto has = [&](double m, double n, double k) {
    for (const GemmShape& g : grid)
      if (g.m == m && g.n == n && g.k == k) return true;
    return false;
  };
  EXPECT_TRUE(has(2048, 2048, 2048));
  EXPECT_TRUE(has(2048, 512, 2048));
  EXPECT_TRUE(has(8192, 8192, 2048));
  EXPECT_TRUE(has(8192, 2048, 8192));
}

}  // namespace
}  // namespace roofline::perf
