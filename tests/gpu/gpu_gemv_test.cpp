// The small-M (decode) gemv path of CudaBackend::matmul (M <= 8, bf16/f16 weights) against a float64
// reference, on fresh random inputs; also its fusions: the RMSNorm of an f32 residual in front of it
// (rms_norm_matmul_many / rms_norm_matmul_swiglu) and the residual add after it (matmul_add). Its speed against cuBLASLt: bench/micro/gpu_gemv_bench.cpp.
#include <cuda_runtime_api.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
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

// A view of t's elements from `offset` on, with `shape`.
Tensor view_at(const Tensor& t, int64_t offset, Shape shape) {
  char* base = static_cast<char*>(const_cast<void*>(t.data()));
  return Tensor(t.dtype(), std::move(shape), base + offset * int64_t(dtype_size(t.dtype())), Device::CUDA);
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

// matmul_swiglu: silu(x . gate^T + b) * (x . up^T + b). Adjacent gate and up (one [2F, K] upload, as
// upload_weights places them) take the fused gemv; separate tensors take the default (matmul_many, silu_mul).
TEST_F(GpuGemvExtra, SwigluMatchesFloat64Reference) {
  for (const auto [F, K] : {GemvShape{1, 64}, GemvShape{7, 72}, GemvShape{100, 2048}, GemvShape{2048, 2048},
                            GemvShape{8192, 2048}, GemvShape{2048, 8192}, GemvShape{333, 4104}}) {
    const uint32_t seed = uint32_t(F * 7 + K);
    const DeviceData gate_up = random_device(gpu(), DType::BF16, {2 * F, K}, seed, -0.5f, 0.5f);
    const DeviceData bias = random_device(gpu(), DType::BF16, {2 * F}, seed + 1);
    const Tensor gate_w = view_at(gate_up.tensor, 0, Shape{F, K}), up_w = view_at(gate_up.tensor, F * K, Shape{F, K});
    const Tensor gate_b = view_at(bias.tensor, 0, Shape{F}), up_b = view_at(bias.tensor, F, Shape{F});
    // The same weights as two separate allocations: not adjacent, so the unfused default runs.
    const std::vector<float> gate_host(gate_up.values.begin(), gate_up.values.begin() + F * K);
    const std::vector<float> up_host(gate_up.values.begin() + F * K, gate_up.values.end());
    const DeviceData gate_apart = upload_values(gpu(), DType::BF16, {F, K}, gate_host);
    const DeviceData up_apart = upload_values(gpu(), DType::BF16, {F, K}, up_host);
    for (int64_t M : {1, 2, 3, 5, 8}) {
      const DeviceData x = random_device(gpu(), DType::BF16, {M, K}, seed + 2 + uint32_t(M));
      const std::vector<double> both = product(M, 2 * F, K, x.values, gate_up.values);  // [M, 2F]
      for (bool with_bias : {false, true}) {
        std::vector<double> want(size_t(M * F));
        for (int64_t m = 0; m < M; ++m)
          for (int64_t n = 0; n < F; ++n) {
            double g = both[size_t(m * 2 * F + n)], u = both[size_t(m * 2 * F + F + n)];
            if (with_bias) g += bias.values[size_t(n)], u += bias.values[size_t(F + n)];
            want[size_t(m * F + n)] = g / (1.0 + std::exp(-g)) * u;
          }
        for (bool adjacent : {true, false}) {
          if (!adjacent && with_bias) continue;  // the bias views are adjacent; the unbiased case covers apart
          const std::string what = fmt::format("M{}_F{}_K{}{}{}", M, F, K, with_bias ? "_bias" : "",
                                               adjacent ? "_fused" : "_apart");
          Tensor gate_out = poisoned(gpu(), DType::BF16, {M, F});
          Tensor up_out = poisoned(gpu(), DType::BF16, {M, F});
          const Tensor* gb = with_bias ? &gate_b : nullptr;
          const Tensor* ub = with_bias ? &up_b : nullptr;
          gpu().matmul_swiglu(x.tensor, {&gate_out, adjacent ? &gate_w : &gate_apart.tensor, gb},
                              {&up_out, adjacent ? &up_w : &up_apart.tensor, ub});
          expect_close(download_values(gpu(), up_out), want, tolerance_for(DType::BF16), what);
        }
      }
    }
  }
}

// rms_norm(residual) * weight per row (float64), then rounded to `as` as rms_norm into such a tensor stores it:
// the x a normed gemv multiplies by.
std::vector<double> normed_rows(const std::vector<double>& residual, const std::vector<double>& weight, int64_t M,
                                int64_t K, double eps, DType as) {
  std::vector<float> x(size_t(M * K));
  for (int64_t m = 0; m < M; ++m) {
    double ss = 0;
    for (int64_t k = 0; k < K; ++k) ss += residual[size_t(m * K + k)] * residual[size_t(m * K + k)];
    const double rstd = 1.0 / std::sqrt(ss / double(K) + eps);
    for (int64_t k = 0; k < K; ++k) x[size_t(m * K + k)] = float(residual[size_t(m * K + k)] * rstd * weight[size_t(k)]);
  }
  Tensor stored = Tensor::empty(as, {M * K});
  convert_from_f32(as, x.data(), stored.data(), x.size());
  convert_to_f32(as, stored.data(), x.data(), x.size());
  return std::vector<double>(x.begin(), x.end());
}

// rms_norm_matmul_many: q/k/v-like targets laid out as the decoder lays them (weights in one upload, outputs
// back to back in one buffer): one row joins them into one normed gemv, more rows take one normed gemv per
// target. Odd sizes, every M of the gemv path, biases, bf16 and f32 outputs.
TEST_F(GpuGemvExtra, RmsNormMatmulManyMatchesFloat64Reference) {
  const float eps = 1e-5f;
  struct Case {
    int64_t n1, n2, K;
  };
  for (const Case c : {Case{7, 3, 64}, Case{33, 9, 72}, Case{2048, 512, 2048}, Case{100, 20, 4104}, Case{96, 32, 4096}}) {
    const int64_t N = c.n1 + 2 * c.n2, K = c.K;
    const uint32_t seed = uint32_t(N * 13 + K);
    const DeviceData w = random_device(gpu(), DType::BF16, {N, K}, seed, -0.5f, 0.5f);
    const DeviceData bias = random_device(gpu(), DType::BF16, {N}, seed + 1);
    const DeviceData norm_w = random_device(gpu(), DType::F32, {K}, seed + 2, 0.5f, 1.5f);
    const int64_t widths[3] = {c.n1, c.n2, c.n2}, offsets[3] = {0, c.n1, c.n1 + c.n2};
    for (int64_t M : {1, 2, 3, 4, 5, 8}) {
      const DeviceData residual = random_device(gpu(), DType::F32, {M, K}, seed + 3 + uint32_t(M), -3.0f, 3.0f);
      const std::vector<double> x = normed_rows(residual.values, norm_w.values, M, K, eps, DType::BF16);
      const std::vector<double> all = product(M, N, K, x, w.values);  // [M, N]
      for (bool with_bias : {false, true})
        for (DType out_dtype : {DType::BF16, DType::F32}) {
          Tensor out = poisoned(gpu(), out_dtype, {M * N});  // [M, n1] | [M, n2] | [M, n2]
          Tensor normed = gpu().alloc(DType::BF16, {M, K});
          Tensor outs[3], ws[3], bs[3];
          MatmulTarget targets[3];
          for (int i = 0; i < 3; ++i) {
            outs[i] = view_at(out, M * offsets[i], Shape{M, widths[i]});
            ws[i] = view_at(w.tensor, offsets[i] * K, Shape{widths[i], K});
            bs[i] = view_at(bias.tensor, offsets[i], Shape{widths[i]});
            targets[i] = {&outs[i], &ws[i], with_bias ? &bs[i] : nullptr};
          }
          std::vector<double> want;
          for (int i = 0; i < 3; ++i)
            for (int64_t m = 0; m < M; ++m)
              for (int64_t n = offsets[i]; n < offsets[i] + widths[i]; ++n)
                want.push_back(all[size_t(m * N + n)] + (with_bias ? bias.values[size_t(n)] : 0.0));
          for (const char* cap : {"0", "1"}) {  // CTAs per SM: 0 one per row block; 1 several blocks per CTA
            setenv("ROOFLINE_GEMV_NORM_CTAS_PER_SM", cap, 1);
            gpu().rms_norm_matmul_many({&residual.tensor, &norm_w.tensor, eps, &normed}, targets);
            expect_close(download_values(gpu(), out), want, tolerance_for(out_dtype),
                         fmt::format("M{}_N{}+{}+{}_K{}_out{}{}_cap{}", M, c.n1, c.n2, c.n2, K, dtype_name(out_dtype),
                                     with_bias ? "_bias" : "", cap));
            EXPECT_EQ(cudaMemsetAsync(out.data(), 0xff, out.nbytes(), gpu().stream()), cudaSuccess);
          }
          unsetenv("ROOFLINE_GEMV_NORM_CTAS_PER_SM");
        }
    }
  }
}

// rms_norm_matmul_swiglu: adjacent gate/up take the fused normed SwiGLU gemv.
TEST_F(GpuGemvExtra, RmsNormMatmulSwigluMatchesFloat64Reference) {
  const float eps = 1e-6f;
  for (const auto [F, K] : {GemvShape{1, 64}, GemvShape{7, 72}, GemvShape{100, 2048}, GemvShape{8192, 2048},
                            GemvShape{333, 4104}, GemvShape{1000, 4096}}) {
    const uint32_t seed = uint32_t(F * 5 + K);
    const DeviceData gate_up = random_device(gpu(), DType::BF16, {2 * F, K}, seed, -0.5f, 0.5f);
    const DeviceData bias = random_device(gpu(), DType::BF16, {2 * F}, seed + 1);
    const DeviceData norm_w = random_device(gpu(), DType::F32, {K}, seed + 2, 0.5f, 1.5f);
    const Tensor gate_w = view_at(gate_up.tensor, 0, Shape{F, K}), up_w = view_at(gate_up.tensor, F * K, Shape{F, K});
    const Tensor gate_b = view_at(bias.tensor, 0, Shape{F}), up_b = view_at(bias.tensor, F, Shape{F});
    for (int64_t M : {1, 2, 3, 5, 8}) {
      const DeviceData residual = random_device(gpu(), DType::F32, {M, K}, seed + 3 + uint32_t(M), -3.0f, 3.0f);
      const std::vector<double> x = normed_rows(residual.values, norm_w.values, M, K, eps, DType::BF16);
      const std::vector<double> both = product(M, 2 * F, K, x, gate_up.values);  // [M, 2F]
      for (bool with_bias : {false, true}) {
        std::vector<double> want(size_t(M * F));
        for (int64_t m = 0; m < M; ++m)
          for (int64_t n = 0; n < F; ++n) {
            double g = both[size_t(m * 2 * F + n)], u = both[size_t(m * 2 * F + F + n)];
            if (with_bias) g += bias.values[size_t(n)], u += bias.values[size_t(F + n)];
            want[size_t(m * F + n)] = g / (1.0 + std::exp(-g)) * u;
          }
        for (const char* cap : {"0", "1"}) {  // CTAs per SM: 0 one per row block; 1 several blocks per CTA
          setenv("ROOFLINE_GEMV_NORM_CTAS_PER_SM", cap, 1);
          Tensor gate_out = poisoned(gpu(), DType::BF16, {M, F});
          Tensor up_out = poisoned(gpu(), DType::BF16, {M, F});
          Tensor normed = gpu().alloc(DType::BF16, {M, K});
          gpu().rms_norm_matmul_swiglu({&residual.tensor, &norm_w.tensor, eps, &normed},
                                       {&gate_out, &gate_w, with_bias ? &gate_b : nullptr},
                                       {&up_out, &up_w, with_bias ? &up_b : nullptr});
          expect_close(download_values(gpu(), up_out), want, tolerance_for(DType::BF16),
                       fmt::format("M{}_F{}_K{}{}_cap{}", M, F, K, with_bias ? "_bias" : "", cap));
        }
        unsetenv("ROOFLINE_GEMV_NORM_CTAS_PER_SM");
      }
    }
  }
}

// matmul_add: residual += x . w^T (+ bias) in f32. M <= 8 adds in the gemv's epilogue; M = 40 takes cuBLASLt
// with beta 1, or with a bias the default (matmul into scratch, then add).
TEST_F(GpuGemvExtra, MatmulAddMatchesFloat64Reference) {
  for (const auto [N, K] : {GemvShape{7, 64}, GemvShape{100, 4104}, GemvShape{2048, 2048}, GemvShape{2048, 8192},
                            GemvShape{333, 72}}) {
    const uint32_t seed = uint32_t(N * 3 + K);
    const DeviceData w = random_device(gpu(), DType::BF16, {N, K}, seed, -0.5f, 0.5f);
    const DeviceData bias = random_device(gpu(), DType::BF16, {N}, seed + 1);
    for (int64_t M : {1, 2, 3, 4, 8, 40}) {
      const DeviceData x = random_device(gpu(), DType::BF16, {M, K}, seed + 2 + uint32_t(M));
      const std::vector<double> prod = product(M, N, K, x.values, w.values);
      for (bool with_bias : {false, true}) {
        DeviceData residual = random_device(gpu(), DType::F32, {M, N}, seed + 50 + uint32_t(M), -4.0f, 4.0f);
        std::vector<double> want(size_t(M * N));
        for (int64_t m = 0; m < M; ++m)
          for (int64_t n = 0; n < N; ++n)
            want[size_t(m * N + n)] = residual.values[size_t(m * N + n)] + prod[size_t(m * N + n)] +
                                      (with_bias ? bias.values[size_t(n)] : 0.0);
        Tensor scratch = poisoned(gpu(), DType::F32, {M, N});
        gpu().matmul_add(residual.tensor, x.tensor, w.tensor, with_bias ? &bias.tensor : nullptr, scratch);
        expect_close(download_values(gpu(), residual.tensor), want, tolerance_for(DType::F32),
                     fmt::format("M{}_N{}_K{}{}", M, N, K, with_bias ? "_bias" : ""));
      }
    }
  }
}

}  // namespace
}  // namespace roofline::test
