// CPU calibration on small sizes: the figures are positive and plausible, and the stored entry round-trips.
#include <gtest/gtest.h>

#include <filesystem>

#include "perf_test_util.h"
#include "roofline/core/thread_pool.h"
#include "roofline/perf/calibrate.h"

namespace roofline::perf {
namespace {

TEST(Calibrate, FmaRateIsPlausible) {
  ThreadPool pool(1);
  std::string isa;
  const double flops = measure_fma_rate(pool, 0.02, &isa);
  EXPECT_FALSE(isa.empty());
  // One core: at least 1 GFLOP/s (anything vectorised does far better), at most 6 GHz x 2 pipes x 16 lanes x 2.
  EXPECT_GT(flops, 1e9);
  EXPECT_LT(flops, 6e9 * 2 * 16 * 2);
}

TEST(Calibrate, SmallCpuRunRoundTripsThroughTheStore) {
  CpuCalibrationOptions o;
  o.threads = 2;
  o.bandwidth_bytes = size_t(32) << 20;
  o.matmul_m = 64, o.matmul_n = 256, o.matmul_k = 256;
  o.matmul_repeats = 3;
  o.fma_seconds = 0.02;
  const CpuCalibration c = calibrate_cpu(o);
  EXPECT_EQ(c.threads, 2);
  EXPECT_GT(c.fma_flops, 1e9);
  EXPECT_GT(c.memory_bandwidth, 0.5e9);   // a 32 MiB read: DRAM or L3, either way above this
  EXPECT_LT(c.memory_bandwidth, 10e12);
  EXPECT_GT(c.matmul_flops, 0.1e9);
  // A matmul cannot beat the FMA pipes. Bounded by the physical peak (6 GHz x 2 FMA ports x 16 f32 lanes x 2
  // FLOPs per core) rather than by c.fma_flops: both are timed over milliseconds, and a parallel test run
  // stealing a core depresses the 20 ms FMA timing far more than the best-of-3 matmul (seen in CI: 32 vs 99
  // GFLOP/s), so a ratio between them is a flaky test, not a check.
  EXPECT_LT(c.matmul_flops, 6e9 * 2 * 16 * 2 * c.threads);

  const HardwareSpec h = calibrated_cpu_hardware(c);
  EXPECT_EQ(h.name, "cpu");
  EXPECT_EQ(h.source, "calibrated");
  EXPECT_DOUBLE_EQ(h.peak_bf16_flops, c.fma_flops);
  EXPECT_DOUBLE_EQ(h.memory_bandwidth, c.memory_bandwidth);
  EXPECT_DOUBLE_EQ(h.measured["matmul_flops_per_s"].get<double>(), c.matmul_flops);

  const std::filesystem::path dir = std::filesystem::temp_directory_path() / "roofline_calibrate_test";
  std::filesystem::remove_all(dir);
  const std::string path = (dir / "hardware.json").string();
  store_calibration(path, h);
  const HardwareSpec back = resolve_hardware("cpu", path);
  EXPECT_EQ(hardware_to_json(back), hardware_to_json(h));
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace roofline::perf
