// The small-M (decode) gemv path of CudaBackend::matmul (M <= 8, bf16/f16 weights) against a float64
// reference, on fresh random inputs; and its bandwidth on Llama-shaped decode products next to cuBLASLt.
#include <cuda_runtime_api.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <functional>

#include "gpu_test_util.h"
#include "roofline/backend/cuda/gemm.h"

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

// Bandwidth (weight bytes read / time) of the decode products, ours (CudaBackend::matmul) against cuBLASLt,
// w cycled over copies that L2 cannot hold; median of 20 samples after warm-up. Prints a table; checks only that it ran.
TEST_F(GpuGemvExtra, BandwidthAgainstCublasLt) {
  struct Shape {
    int64_t M, N, K;
    DType out;
  };
  const Shape shapes[] = {{1, 2048, 2048, DType::BF16},
                          {1, 16384, 2048, DType::BF16},
                          {1, 2048, 8192, DType::BF16},
                          {1, 128256, 2048, DType::F32},
                          {2, 3072, 2048, DType::BF16},
                          {3, 16384, 2048, DType::BF16},
                          {4, 16384, 2048, DType::BF16},
                          {8, 2048, 2048, DType::BF16},
                          {8, 16384, 2048, DType::BF16}};
  cudaStream_t stream = gpu().stream();
  const size_t flush_bytes = size_t(256) << 20;
  Tensor flush = gpu().alloc(DType::U8, {int64_t(flush_bytes)});
  cudaEvent_t start, stop;
  ASSERT_EQ(cudaEventCreate(&start), cudaSuccess);
  ASSERT_EQ(cudaEventCreate(&stop), cudaSuccess);
  // Median over 20 samples of the time per call; a sample times `calls` back-to-back calls (fn(i), i < calls).
  auto median_ms = [&](int calls, const std::function<void(int)>& fn) {
    for (int i = 0; i < calls; ++i) fn(i);
    std::vector<float> times;
    for (int s = 0; s < 20; ++s) {
      cudaEventRecord(start, stream);
      for (int i = 0; i < calls; ++i) fn(i);
      cudaEventRecord(stop, stream);
      EXPECT_EQ(cudaEventSynchronize(stop), cudaSuccess);
      float ms = 0;
      cudaEventElapsedTime(&ms, start, stop);
      times.push_back(ms / float(calls));
    }
    std::sort(times.begin(), times.end());
    return double(times[10]);
  };
  // Copy bandwidth: read + write of a 128 MiB device-to-device copy.
  Tensor copy_dst = gpu().alloc(DType::U8, {int64_t(flush_bytes)});
  const double copy_ms = median_ms(4, [&](int) {
    cudaMemcpyAsync(copy_dst.data(), flush.data(), flush_bytes / 2, cudaMemcpyDeviceToDevice, stream);
  });
  const double copy_gbs = 2.0 * double(flush_bytes / 2) / (copy_ms * 1e6);
  std::printf("copy bandwidth: %.0f GB/s\n", copy_gbs);
  std::printf("%-28s %9s %9s %9s %9s %9s %9s\n", "shape (out)", "ours us", "ours GB/s", "lt us", "lt GB/s",
              "ours/copy", "lt/copy");
  cuda::CublasLtGemm lt(stream, size_t(32) << 20);
  for (const Shape& s : shapes) {
    // Enough copies of w (cycled through, as a decode step walks its layers) that L2 holds none of them.
    const int64_t w_bytes = s.N * s.K * 2;
    const int copies = int(std::max<int64_t>(1, (int64_t(256) << 20) / w_bytes));
    const int calls = std::max(copies, 4);
    Tensor x = gpu().alloc(DType::BF16, {s.M, s.K});
    Tensor out = gpu().alloc(s.out, {s.M, s.N});
    ASSERT_EQ(cudaMemsetAsync(x.data(), 0x3c, x.nbytes(), stream), cudaSuccess);
    std::vector<Tensor> ws;
    for (int c = 0; c < copies; ++c) {
      ws.push_back(gpu().alloc(DType::BF16, {s.N, s.K}));
      ASSERT_EQ(cudaMemsetAsync(ws.back().data(), 0x3c, ws.back().nbytes(), stream), cudaSuccess);
    }
    const double ours = median_ms(calls, [&](int i) { gpu().matmul(out, x, ws[size_t(i % copies)], nullptr); });
    const cudaDataType out_type = s.out == DType::F32 ? CUDA_R_32F : CUDA_R_16BF;
    const double theirs = median_ms(calls, [&](int i) {
      lt.run(out.data(), out_type, x.data(), ws[size_t(i % copies)].data(), CUDA_R_16BF, nullptr, s.M, s.N, s.K);
    });
    const double bytes = double(w_bytes);
    const double ours_gbs = bytes / (ours * 1e6), theirs_gbs = bytes / (theirs * 1e6);
    std::printf("%-28s %9.2f %9.0f %9.2f %9.0f %8.0f%% %8.0f%%\n",
                fmt::format("[{},{}]x[{},{}] {}", s.M, s.K, s.N, s.K, dtype_name(s.out)).c_str(), ours * 1e3,
                ours_gbs, theirs * 1e3, theirs_gbs, 100.0 * ours_gbs / copy_gbs, 100.0 * theirs_gbs / copy_gbs);
  }
  EXPECT_EQ(cudaStreamSynchronize(stream), cudaSuccess);
  cudaEventDestroy(start);
  cudaEventDestroy(stop);
}

}  // namespace
}  // namespace roofline::test
