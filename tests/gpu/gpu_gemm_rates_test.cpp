// calibrate's bf16 GEMM rates by shape (backend/cuda/ceilings.h): plausible rates in the order asked, the
// small-M shape below the big one, and the GEMV's rows refused (the backend would not run cuBLASLt there).
#include <gtest/gtest.h>

#include "gpu_test_util.h"
#include "roofline/backend/cuda/ceilings.h"

namespace roofline::test {
namespace {

class GpuGemmRates : public GpuTest {};

TEST_F(GpuGemmRates, MeasuresEachShapeInOrder) {
  const std::vector<cuda::GemmRateSample> shapes = {{64, 512, 512, 0}, {1024, 2048, 2048, 0}, {4096, 4096, 4096, 0}};
  const std::vector<cuda::GemmRateSample> rates = cuda::measure_gemm_rates(gpu(), shapes);
  ASSERT_EQ(rates.size(), shapes.size());
  for (size_t i = 0; i < rates.size(); ++i) {
    EXPECT_EQ(std::make_tuple(rates[i].m, rates[i].n, rates[i].k), std::make_tuple(shapes[i].m, shapes[i].n, shapes[i].k));
    EXPECT_GT(rates[i].flops_per_s, 1e11) << i;
    EXPECT_LT(rates[i].flops_per_s, 1.2e15) << i;  // above any dense bf16 rate a Hopper part has
  }
  EXPECT_LT(rates[0].flops_per_s, rates[2].flops_per_s);  // 64 rows: the weight read, not the arithmetic
}

TEST_F(GpuGemmRates, RefusesTheGemvRows) {
  try {
    cuda::measure_gemm_rates(gpu(), {{8, 512, 512, 0}});
    FAIL() << "M = 8 was measured";
  } catch (const std::exception& e) {
    EXPECT_NE(std::string(e.what()).find("needs M > 8"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace roofline::test
