// matmul on every ISA level x thread count x weight dtype, against a float64 reference computed from the
// exact stored weights: decode shapes (M <= 8, gemv), prefill shapes (M > 8, gemm), odd sizes, K past
// the gemm K block, bias in every dtype, and x with more than two dimensions.
#include <gtest/gtest.h>

#include "cpu_test_util.h"

namespace roofline::test {
namespace {

struct MatmulCase {
  int64_t M, K, N;
  bool bias;
};

std::vector<double> reference(const std::vector<float>& x, const Stored& w, const Stored* bias, int64_t M, int64_t K,
                              int64_t N) {
  std::vector<double> out(size_t(M * N));
  for (int64_t m = 0; m < M; ++m)
    for (int64_t n = 0; n < N; ++n) {
      double s = bias ? bias->values[size_t(n)] : 0.0;
      for (int64_t k = 0; k < K; ++k) s += double(x[size_t(m * K + k)]) * w.values[size_t(n * K + k)];
      out[size_t(m * N + n)] = s;
    }
  return out;
}

// f32 accumulation over K <= 2048 random terms stays near 1e-7; 1e-6 leaves room without hiding bugs.
constexpr double kTolerance = 1e-6;

void run_case(const CpuConfig& config, DType w_dtype, const MatmulCase& c, uint32_t seed) {
  SCOPED_TRACE(config.name() + " w=" + std::string(dtype_name(w_dtype)) + " M=" + std::to_string(c.M) +
               " K=" + std::to_string(c.K) + " N=" + std::to_string(c.N) + (c.bias ? " +bias" : ""));
  auto backend = make_backend(config);
  const auto x = random_floats(size_t(c.M * c.K), seed);
  Tensor xt = f32_tensor({c.M, c.K}, x);
  Stored w = random_stored(w_dtype, {c.N, c.K}, seed + 1);
  // Bias in a dtype other than the weights', to exercise every bias conversion too.
  const DType bias_dtype = w_dtype == DType::F32 ? DType::BF16 : w_dtype == DType::F16 ? DType::F32 : DType::F16;
  Stored bias = random_stored(bias_dtype, {c.N}, seed + 2);
  Tensor out = Tensor::empty(DType::F32, {c.M, c.N});
  poison(out);
  backend->matmul(out, xt, w.tensor, c.bias ? &bias.tensor : nullptr);
  EXPECT_EQ(count_not_finite(out), 0) << "outputs left unwritten";
  const double err = rel_l2(values_of(out), reference(x, w, c.bias ? &bias : nullptr, c.M, c.K, c.N));
  EXPECT_LT(err, kTolerance);
}

TEST(CpuMatmul, DecodeShapesEveryLevelAndDtype) {
  const MatmulCase cases[] = {{1, 67, 33, false}, {1, 67, 33, true}, {2, 16, 12, true},  {3, 67, 33, true},
                              {4, 1, 5, false},   {5, 130, 29, true}, {6, 31, 7, false},  {7, 48, 13, true},
                              {8, 67, 33, true},  {1, 529, 300, true}, {3, 2048, 257, false}};
  uint32_t seed = 100;
  for (const auto& config : cpu_configs())
    for (DType dtype : weight_dtypes())
      for (const auto& c : cases) run_case(config, dtype, c, seed++);
}

TEST(CpuMatmul, PrefillShapesEveryLevelAndDtype) {
  const MatmulCase cases[] = {{9, 67, 33, true},    {17, 67, 33, false}, {17, 3, 1, true},     {33, 16, 12, true},
                              {40, 529, 50, true},  {64, 67, 13, false}, {100, 300, 333, true},
                              {600, 300, 100, true}};  // two row chunks of the gemm
  uint32_t seed = 500;
  for (const auto& config : cpu_configs())
    for (DType dtype : weight_dtypes())
      for (const auto& c : cases) run_case(config, dtype, c, seed++);
}

TEST(CpuMatmul, LeadingDimensionsAreRows) {
  for (const auto& config : cpu_configs()) {
    SCOPED_TRACE(config.name());
    auto backend = make_backend(config);
    const int64_t K = 37, N = 19;
    for (int64_t rows : {2, 5}) {  // [2, rows/2.., K] -> M = 2 * rows: gemv (4) and gemm (10)
      const auto x = random_floats(size_t(2 * rows * K), 7);
      Tensor xt = f32_tensor({2, rows, K}, x);
      Stored w = random_stored(DType::BF16, {N, K}, 8);
      Tensor out = Tensor::empty(DType::F32, {2, rows, N});
      poison(out);
      backend->matmul(out, xt, w.tensor, nullptr);
      EXPECT_EQ(count_not_finite(out), 0);
      EXPECT_LT(rel_l2(values_of(out), reference(x, w, nullptr, 2 * rows, K, N)), kTolerance);
    }
  }
}

TEST(CpuMatmul, LmHeadShape) {
  // N = vocab, K = hidden: many parts per thread, gemv for decode, gemm for a prefill chunk.
  const int64_t K = 96, N = 5003;
  Stored w = random_stored(DType::BF16, {N, K}, 21);
  for (const auto& config : cpu_configs()) {
    for (int64_t M : {1, 12}) {
      SCOPED_TRACE(config.name() + " M=" + std::to_string(M));
      auto backend = make_backend(config);
      const auto x = random_floats(size_t(M * K), 22);
      Tensor xt = f32_tensor({M, K}, x);
      Tensor out = Tensor::empty(DType::F32, {M, N});
      poison(out);
      backend->matmul(out, xt, w.tensor, nullptr);
      EXPECT_EQ(count_not_finite(out), 0);
      EXPECT_LT(rel_l2(values_of(out), reference(x, w, nullptr, M, K, N)), kTolerance);
    }
  }
}

TEST(CpuMatmul, RejectsBadOperands) {
  auto backend = make_cpu_backend(1, CpuIsa::Scalar);
  Tensor x = Tensor::zeros(DType::F32, {3, 8});
  Tensor w = Tensor::zeros(DType::BF16, {5, 8});
  Tensor out = Tensor::zeros(DType::F32, {3, 5});
  Tensor bad_k = Tensor::zeros(DType::BF16, {5, 7});
  Tensor bad_out = Tensor::zeros(DType::F32, {3, 4});
  Tensor bf16_x = Tensor::zeros(DType::BF16, {3, 8});
  Tensor bf16_out = Tensor::zeros(DType::BF16, {3, 5});
  Tensor int_w = Tensor::zeros(DType::I32, {5, 8});
  Tensor w3 = Tensor::zeros(DType::F32, {5, 8, 1});
  Tensor bad_bias = Tensor::zeros(DType::F32, {4});
  EXPECT_THROW(backend->matmul(out, x, bad_k, nullptr), Error);
  EXPECT_THROW(backend->matmul(bad_out, x, w, nullptr), Error);
  EXPECT_THROW(backend->matmul(out, bf16_x, w, nullptr), Error);
  EXPECT_THROW(backend->matmul(bf16_out, x, w, nullptr), Error);
  EXPECT_THROW(backend->matmul(out, x, int_w, nullptr), Error);
  EXPECT_THROW(backend->matmul(out, x, w3, nullptr), Error);
  EXPECT_THROW(backend->matmul(out, x, w, &bad_bias), Error);
  Tensor square_x = Tensor::zeros(DType::F32, {5, 5});
  Tensor square_w = Tensor::zeros(DType::F32, {5, 5});
  EXPECT_THROW(backend->matmul(square_x, square_x, square_w, nullptr), Error);  // out aliases x
  try {
    backend->matmul(out, x, bad_k, nullptr);
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("matmul"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace roofline::test
