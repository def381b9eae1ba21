// matmul through cuBLASLt against a float64 reference: out[M, N] = x[M, K] . w[N, K]^T (+ bias[N]), for
// bf16 / f16 / f32 weights, bf16 or f32 outputs (logits), a bias epilogue, odd shapes (M = 1, 7, 127;
// N not a multiple of 8) and the conversion paths (x in another dtype than w; outputs cuBLASLt lacks).
#include <gtest/gtest.h>

#include "gpu_test_util.h"

namespace roofline::test {
namespace {

struct MatmulCase {
  int64_t M, N, K;
  DType w, x, out;
  bool bias;
  std::string name() const {
    return fmt::format("M{}_N{}_K{}_w{}_x{}_out{}{}", M, N, K, dtype_name(w), dtype_name(x), dtype_name(out),
                       bias ? "_bias" : "");
  }
};

std::vector<double> reference(const MatmulCase& c, const std::vector<double>& x, const std::vector<double>& w,
                              const std::vector<double>* bias) {
  std::vector<double> out(size_t(c.M * c.N));
  for (int64_t m = 0; m < c.M; ++m)
    for (int64_t n = 0; n < c.N; ++n) {
      double acc = bias ? (*bias)[size_t(n)] : 0.0;
      for (int64_t k = 0; k < c.K; ++k) acc += x[size_t(m * c.K + k)] * w[size_t(n * c.K + k)];
      out[size_t(m * c.N + n)] = acc;
    }
  return out;
}

class GpuMatmul : public GpuTest, public ::testing::WithParamInterface<MatmulCase> {};

TEST_P(GpuMatmul, MatchesFloat64Reference) {
  const MatmulCase& c = GetParam();
  const DeviceData x = random_device(gpu(), c.x, {c.M, c.K}, 1);
  const DeviceData w = random_device(gpu(), c.w, {c.N, c.K}, 2, -0.5f, 0.5f);
  const DeviceData bias = random_device(gpu(), c.w, {c.N}, 3);
  Tensor out = poisoned(gpu(), c.out, {c.M, c.N});
  gpu().matmul(out, x.tensor, w.tensor, c.bias ? &bias.tensor : nullptr);
  const auto want = reference(c, x.values, w.values, c.bias ? &bias.values : nullptr);
  // x converted to a narrower w dtype (f32 -> bf16) loses 8 bits: bf16 tolerance whatever the output.
  const bool narrowed = c.x == DType::F32 && c.w != DType::F32;
  expect_close(download_values(gpu(), out), want, narrowed ? 1e-2 : tolerance_for(c.out), c.name());
  // The cached plan gives the same result on a second call.
  Tensor again = poisoned(gpu(), c.out, {c.M, c.N});
  gpu().matmul(again, x.tensor, w.tensor, c.bias ? &bias.tensor : nullptr);
  EXPECT_EQ(download_values(gpu(), again), download_values(gpu(), out)) << c.name();
}

constexpr DType BF = DType::BF16, F16 = DType::F16, F32 = DType::F32;

INSTANTIATE_TEST_SUITE_P(Shapes, GpuMatmul,
                         ::testing::Values(MatmulCase{1, 256, 512, BF, BF, BF, false},
                                           MatmulCase{1, 4096, 1024, BF, BF, BF, true},
                                           MatmulCase{7, 123, 72, BF, BF, BF, false},
                                           MatmulCase{127, 1000, 896, BF, BF, BF, true},
                                           MatmulCase{256, 1536, 896, BF, BF, BF, false},
                                           MatmulCase{7, 1003, 256, BF, BF, F32, false},    // logits
                                           MatmulCase{33, 515, 384, BF, BF, F32, true},     // logits + bias
                                           MatmulCase{9, 200, 128, F16, F16, F16, true},
                                           MatmulCase{9, 200, 128, F16, BF, BF, true},      // x -> f16, f32 product
                                           MatmulCase{5, 64, 96, F32, F32, F32, true},
                                           MatmulCase{5, 64, 96, BF, F32, F32, false},      // x -> bf16
                                           MatmulCase{3, 48, 64, F32, BF, BF, true}),       // x -> f32, f32 product
                         [](const auto& p) { return p.param.name(); });

}  // namespace
}  // namespace roofline::test
