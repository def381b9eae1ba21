// ISA level selection (names, detection, ROOFLINE_CPU_ISA forcing), backend construction and the
// memory bandwidth measurement.
#include <gtest/gtest.h>

#include <cstdlib>

#include "cpu_test_util.h"
#include "roofline/backend/cpu/memory_bandwidth.h"

namespace roofline::test {
namespace {

// Sets ROOFLINE_CPU_ISA for one scope and restores the previous value.
class ScopedIsaEnv {
 public:
  explicit ScopedIsaEnv(const char* value) {
    if (const char* old = std::getenv("ROOFLINE_CPU_ISA")) old_ = old, had_ = true;
    setenv("ROOFLINE_CPU_ISA", value, 1);
  }
  ~ScopedIsaEnv() { had_ ? setenv("ROOFLINE_CPU_ISA", old_.c_str(), 1) : unsetenv("ROOFLINE_CPU_ISA"); }

 private:
  std::string old_;
  bool had_ = false;
};

TEST(CpuFeatures, NamesRoundTrip) {
  for (CpuIsa isa : {CpuIsa::Scalar, CpuIsa::Avx2, CpuIsa::Avx512, CpuIsa::Avx512Bf16}) {
    CpuIsa parsed;
    ASSERT_TRUE(parse_cpu_isa(cpu_isa_to_string(isa), &parsed));
    EXPECT_EQ(parsed, isa);
  }
  CpuIsa parsed;
  EXPECT_FALSE(parse_cpu_isa("sse9", &parsed));
}

TEST(CpuFeatures, SupportedLevelsAreOrderedAndIncludeTheBest) {
  const auto levels = supported_cpu_isas();
  ASSERT_FALSE(levels.empty());
  EXPECT_EQ(levels.front(), CpuIsa::Scalar);
  EXPECT_EQ(levels.back(), detect_cpu_isa());
  for (size_t i = 0; i < levels.size(); ++i) EXPECT_EQ(int(levels[i]), int(i));  // levels nest
}

TEST(CpuFeatures, EnvironmentForcesTheLevel) {
  for (CpuIsa isa : supported_cpu_isas()) {
    ScopedIsaEnv env(std::string(cpu_isa_to_string(isa)).c_str());
    EXPECT_EQ(cpu_isa_name(), cpu_isa_to_string(isa));
    auto backend = make_cpu_backend(1);
    auto* cpu = dynamic_cast<CpuBackend*>(backend.get());
    ASSERT_NE(cpu, nullptr);
    EXPECT_EQ(cpu->isa(), isa);
    EXPECT_EQ(backend->device(), Device::CPU);
  }
  {
    ScopedIsaEnv env("");
    EXPECT_EQ(select_cpu_isa(), detect_cpu_isa());
  }
  {
    ScopedIsaEnv env("avx1024");
    EXPECT_THROW(cpu_isa_name(), Error);
    EXPECT_THROW(make_cpu_backend(1), Error);
  }
}

TEST(CpuFeatures, UnsupportedLevelIsAnError) {
  for (CpuIsa isa : {CpuIsa::Avx2, CpuIsa::Avx512, CpuIsa::Avx512Bf16}) {
    if (cpu_supports(isa)) continue;
    EXPECT_THROW(make_cpu_backend(1, isa), Error);
    ScopedIsaEnv env(std::string(cpu_isa_to_string(isa)).c_str());
    EXPECT_THROW(select_cpu_isa(), Error);
  }
}

TEST(CpuFeatures, BackendThreads) {
  EXPECT_EQ(make_cpu_backend(2, CpuIsa::Scalar)->threads(), 2);
  EXPECT_GE(make_cpu_backend(0, CpuIsa::Scalar)->threads(), 1);  // one per hardware thread
}

TEST(MemoryBandwidth, MeasuresAPlausibleRate) {
  // A small buffer keeps the test fast; the rate only has to be plausible (0.1 GB/s .. 10 TB/s).
  for (CpuIsa isa : supported_cpu_isas()) {
    ThreadPool pool(2);
    const double bw = measure_memory_read_bandwidth(pool, size_t(16) << 20, isa);
    EXPECT_GT(bw, 1e8) << cpu_isa_to_string(isa);
    EXPECT_LT(bw, 1e13) << cpu_isa_to_string(isa);
  }
}

}  // namespace
}  // namespace roofline::test
