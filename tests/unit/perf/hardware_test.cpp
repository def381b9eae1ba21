// Hardware descriptions: the datasheet table, JSON files, calibrated entries, /proc/cpuinfo parsing.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "perf_test_util.h"
#include "roofline/perf/cpu_hardware.h"
#include "roofline/perf/hardware.h"

namespace roofline::perf {
namespace {

struct TempDir {
  std::filesystem::path path;
  TempDir() {
    path = std::filesystem::temp_directory_path() /
           ("roofline_perf_" + std::to_string(::testing::UnitTest::GetInstance()->random_seed()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(path);
    std::filesystem::create_directories(path);
  }
  ~TempDir() { std::filesystem::remove_all(path); }
  std::string file(const char* name) const { return (path / name).string(); }
};

TEST(Hardware, DatasheetFigures) {
  const HardwareSpec h100 = builtin_hardware("h100");
  EXPECT_DOUBLE_EQ(h100.peak_bf16_flops, 989e12);
  EXPECT_DOUBLE_EQ(h100.peak_fp8_flops, 1979e12);
  EXPECT_DOUBLE_EQ(h100.memory_bandwidth, 3.35e12);
  EXPECT_DOUBLE_EQ(h100.memory_capacity, 80e9);
  EXPECT_DOUBLE_EQ(h100.interconnect_bandwidth, 450e9);
  EXPECT_NEAR(h100.ridge_point(), 295, 1);
  const HardwareSpec h200 = builtin_hardware("H200");  // case-insensitive
  EXPECT_DOUBLE_EQ(h200.peak_bf16_flops, 989e12);
  EXPECT_DOUBLE_EQ(h200.memory_bandwidth, 4.8e12);
  EXPECT_DOUBLE_EQ(h200.memory_capacity, 141e9);
  const HardwareSpec a100 = builtin_hardware("a100");
  EXPECT_DOUBLE_EQ(a100.peak_bf16_flops, 312e12);
  EXPECT_EQ(a100.peak_fp8_flops, 0);
  EXPECT_DOUBLE_EQ(a100.peak_flops(true), 312e12);  // no fp8 units: fp8 matmuls at the bf16 rate
  EXPECT_DOUBLE_EQ(a100.interconnect_bandwidth, 300e9);
}

TEST(Hardware, CpuIsEstimatedFromThisMachine) {
  const HardwareSpec cpu = builtin_hardware("cpu");
  EXPECT_EQ(cpu.name, "cpu");
  EXPECT_EQ(cpu.source, "estimated");
  EXPECT_GT(cpu.peak_bf16_flops, 1e9);
  EXPECT_GT(cpu.memory_bandwidth, 1e9);
  EXPECT_HAS(cpu.description, "roofline calibrate");
}

TEST(Hardware, UnknownNameListsTheKnownOnes) {
  const std::string msg = test::error_of([] { resolve_hardware("tpu-v9", ""); });
  EXPECT_HAS(msg, "unknown hardware 'tpu-v9'");
  for (const char* name : {"h100", "h200", "a100", "cpu"}) EXPECT_HAS(msg, name);
}

TEST(Hardware, ParsesCpuinfo) {
  // Two sockets x two cores x two SMT threads.
  std::string text;
  int processor = 0;
  for (int socket = 0; socket < 2; ++socket)
    for (int core = 0; core < 2; ++core)
      for (int smt = 0; smt < 2; ++smt)
        text += "processor\t: " + std::to_string(processor++) + "\nmodel name\t: Test CPU\ncpu MHz\t\t: 2000.000\n" +
                "physical id\t: " + std::to_string(socket) + "\ncore id\t\t: " + std::to_string(core) + "\n\n";
  const CpuDescription d = describe_cpu(text, CpuIsa::Avx512, 0, 0);
  EXPECT_EQ(d.model, "Test CPU");
  EXPECT_EQ(d.logical_cpus, 8);
  EXPECT_EQ(d.physical_cores, 4);
  EXPECT_DOUBLE_EQ(d.ghz, 2.0);
  EXPECT_DOUBLE_EQ(d.peak_f32_flops(), 4 * 2e9 * 16 * 2 * 2);
  // cpufreq's maximum wins over the current clock; affinity caps the cores.
  const CpuDescription capped = describe_cpu(text, CpuIsa::Avx2, 3.5e6, 2);
  EXPECT_EQ(capped.physical_cores, 2);
  EXPECT_DOUBLE_EQ(capped.peak_f32_flops(), 2 * 3.5e9 * 8 * 2 * 2);
}

TEST(Hardware, JsonRoundTripsAndFilesResolve) {
  TempDir dir;
  HardwareSpec h = builtin_hardware("h100");
  h.name = "mygpu";
  h.measured = {{"note", "x"}};
  h.kernel_overhead_s = 1.7e-6;
  const HardwareSpec back = hardware_from_json(hardware_to_json(h), "test");
  EXPECT_EQ(hardware_to_json(back), hardware_to_json(h));
  EXPECT_DOUBLE_EQ(back.kernel_overhead_s, 1.7e-6);
  {
    std::ofstream(dir.file("gpu.json")) << R"({"peak_bf16_flops_per_s": 1e15, "memory_bytes_per_s": 2e12})";
  }
  const HardwareSpec file = resolve_hardware(dir.file("gpu.json"), "");
  EXPECT_EQ(file.name, "gpu");
  EXPECT_EQ(file.source, "file");
  EXPECT_DOUBLE_EQ(file.peak_bf16_flops, 1e15);
  EXPECT_EQ(file.interconnect_bandwidth, 0);
  {
    std::ofstream(dir.file("bad.json")) << R"({"peak_bf16_flops_per_s": 1e15})";
  }
  EXPECT_HAS(test::error_of([&] { resolve_hardware(dir.file("bad.json"), ""); }), "memory_bytes_per_s");
  EXPECT_HAS(test::error_of([&] { resolve_hardware(dir.file("missing.json"), ""); }), "cannot open");
}

TEST(Hardware, CalibratedEntriesOverrideBuiltinsAndKeepOthers) {
  TempDir dir;
  const std::string path = dir.file("sub/hardware.json");  // the directory is created
  HardwareSpec measured = builtin_hardware("h100");
  measured.peak_bf16_flops = 700e12;
  measured.memory_bandwidth = 2.9e12;
  measured.source = "calibrated";
  store_calibration(path, measured);
  HardwareSpec other = measured;
  other.name = "rtx-test";
  store_calibration(path, other);
  const auto all = load_calibrations(path);
  ASSERT_EQ(all.size(), 2u);
  const HardwareSpec h100 = resolve_hardware("h100", path);
  EXPECT_DOUBLE_EQ(h100.peak_bf16_flops, 700e12);
  EXPECT_EQ(h100.source, "calibrated");
  EXPECT_DOUBLE_EQ(resolve_hardware("h200", path).peak_bf16_flops, 989e12);  // not calibrated: datasheet
  EXPECT_EQ(resolve_hardware("rtx-test", path).name, "rtx-test");
  EXPECT_HAS(test::error_of([&] { resolve_hardware("nope", path); }), "rtx-test (calibrated)");
  EXPECT_TRUE(load_calibrations(dir.file("absent.json")).empty());
}

TEST(Hardware, DefaultCalibrationPathFollowsXdg) {
  const char* old = std::getenv("XDG_CONFIG_HOME");
  const std::string saved = old ? old : "";
  ::setenv("XDG_CONFIG_HOME", "/tmp/xdg-test", 1);
  EXPECT_EQ(default_calibration_path(), "/tmp/xdg-test/roofline/hardware.json");
  ::unsetenv("XDG_CONFIG_HOME");
  if (std::getenv("HOME")) {
    EXPECT_EQ(default_calibration_path(), std::string(std::getenv("HOME")) + "/.config/roofline/hardware.json");
  }
  if (old) ::setenv("XDG_CONFIG_HOME", saved.c_str(), 1);
}

TEST(Hardware, AGivenCalibrationPathWinsOverTheDefault) {
  EXPECT_EQ(calibration_path_or_default("/some/cal.json"), "/some/cal.json");
}

}  // namespace
}  // namespace roofline::perf
