// The small-M (decode) gemv path of CudaBackend::matmul (M <= 8, bf16/f16 weights) against a float64
// reference, on fresh random inputs. Its speed against cuBLASLt: bench/micro/gpu_gemv_bench.cpp.
#include <cuda_runtime_api.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <functional>

#include "gpu_test_util.h"

namespace roofline::test {
namespace {

struct GemvShape {
  int64_t N, K;
};

// out[m, n] = sum_k x[m, k] w[n, k], no bias (added per case).
std::vector<double> product(int64_t M, int64_t N, int64_t K, const std::vector<double>& x,
                            const std::vector<double>& w) {
  std::vector<double> out(size_t(M * N));
  for (int64_t n = 0; n < N; ++n) {
    const double* wr = w.data() + n * K;
    for (int64_t m = 0; m < M; ++m) {
      const double* xr = x.data() + m * K;
      double acc = 0.0;
      for (int64_t k = 0; k < K; ++k) acc += xr[k] * wr[k];
      out[size_t(m * N + n)] = acc;
    }
  }
  return out;
}

class GpuGemv : public GpuTest, public ::testing::WithParamInterface<GemvShape> {};
class GpuGemvExtra : public GpuTest {};

TEST_P(GpuGemv, MatchesFloat64Reference) {
  const auto [N, K] = GetParam();
  const uint32_t seed = uint32_t(N * 131 + K);
  const DeviceData w = random_device(gpu(), DType::BF16, {N, K}, seed, -0.5f, 0.5f);
  const DeviceData bias = random_device(gpu(), DType::BF16, {N}, seed + 1);
  for (int64_t M : {1, 2, 3, 8}) {
    const DeviceData x = random_device(gpu(), DType::BF16, {M, K}, seed + 2 + uint32_t(M));
    const std::vector<double> plain = product(M, N, K, x.values, w.values);
    for (bool with_bias : {false, true}) {
      std::vector<double> want = plain;
      if (with_bias)
        for (int64_t m = 0; m < M; ++m)
          for (int64_t n = 0; n < N; ++n) want[size_t(m * N + n)] += bias.values[size_t(n)];
      for (DType out_dtype : {DType::BF16, DType::F32}) {
        const std::string what = fmt::format("M{}_N{}_K{}_out{}{}", M, N, K, dtype_name(out_dtype),
                                             with_bias ? "_bias" : "");
        Tensor out = poisoned(gpu(), out_dtype, {M, N});
        gpu().matmul(out, x.tensor, w.tensor, with_bias ? &bias.tensor : nullptr);
        expect_close(download_values(gpu(), out), want, tolerance_for(out_dtype), what);
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Shapes, GpuGemv,
                         ::testing::Values(GemvShape{1, 64}, GemvShape{1, 2048}, GemvShape{1, 8192},
                                           GemvShape{7, 64}, GemvShape{7, 2048}, GemvShape{7, 8192},
                                           GemvShape{512, 64}, GemvShape{512, 2048}, GemvShape{512, 8192},
                                           GemvShape{3072, 64}, GemvShape{3072, 2048}, GemvShape{3072, 8192},
                                           GemvShape{32000, 64}, GemvShape{32000, 2048}, GemvShape{32000, 8192},
                                           GemvShape{33, 72}, GemvShape{100, 4104}),
                         [](const auto& p) { return fmt::format("N{}_K{}", p.param.N, p.param.K); });

// f16 weights, f16 output, an f32 bias, x given in f32 (converted to f16 first).
TEST_F(GpuGemvExtra, F16WeightsF32BiasConvertedX) {
  const int64_t M = 5, N = 1000, K = 1024;
  const DeviceData w = random_device(gpu(), DType::F16, {N, K}, 11, -0.5f, 0.5f);
  const DeviceData bias = random_device(gpu(), DType::F32, {N}, 12);
  const std::vector<float> xf = random_floats(size_t(M * K), 13);
  const DeviceData x16 = upload_values(gpu(), DType::F16, {M, K}, xf);  // the values matmul computes with
  const DeviceData x32 = upload_values(gpu(), DType::F32, {M, K}, xf);
  std::vector<double> want = product(M, N, K, x16.values, w.values);
  for (int64_t m = 0; m < M; ++m)
    for (int64_t n = 0; n < N; ++n) want[size_t(m * N + n)] += bias.values[size_t(n)];
  Tensor out = poisoned(gpu(), DType::F16, {M, N});
  gpu().matmul(out, x32.tensor, w.tensor, &bias.tensor);
  expect_close(download_values(gpu(), out), want, tolerance_for(DType::F16), "f16");
}

}  // namespace
}  // namespace roofline::test
