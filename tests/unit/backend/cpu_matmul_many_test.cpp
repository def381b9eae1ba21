// matmul_many runs several projections of one x in a single pass; each output must equal what a
// separate matmul gives (same kernels, so bit for bit), whatever the mix of dtypes, sizes and biases.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "roofline/backend/backend.h"
#include "roofline/core/error.h"

namespace roofline {
namespace {

Tensor random_tensor(DType dtype, Shape shape, std::mt19937& rng) {
  Tensor f = Tensor::empty(DType::F32, shape);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  for (int64_t i = 0; i < f.numel(); ++i) f.ptr<float>()[i] = normal(rng);
  if (dtype == DType::F32) return f;
  Tensor out = Tensor::empty(dtype, shape);
  convert_from_f32(dtype, f.ptr<float>(), out.data(), size_t(f.numel()));
  return out;
}

TEST(CpuMatmulMany, EqualsSeparateMatmuls) {
  std::mt19937 rng(17);
  for (int threads : {1, 2}) {
    auto backend = make_cpu_backend(threads);
    for (int64_t M : {1, 3, 40}) {
      const int64_t K = 96;
      Tensor x = random_tensor(DType::F32, {M, K}, rng);
      Tensor w0 = random_tensor(DType::BF16, {1000, K}, rng), b0 = random_tensor(DType::BF16, {1000}, rng);
      Tensor w1 = random_tensor(DType::F16, {37, K}, rng);
      Tensor w2 = random_tensor(DType::F32, {2049, K}, rng), b2 = random_tensor(DType::F32, {2049}, rng);
      Tensor out0 = Tensor::empty(DType::F32, {M, 1000}), out1 = Tensor::empty(DType::F32, {M, 37}),
             out2 = Tensor::empty(DType::F32, {M, 2049});
      for (Tensor* t : {&out0, &out1, &out2})
        for (int64_t i = 0; i < t->numel(); ++i) t->ptr<float>()[i] = NAN;
      const MatmulTarget targets[] = {{&out0, &w0, &b0}, {&out1, &w1, nullptr}, {&out2, &w2, &b2}};
      backend->matmul_many(x, targets);
      Tensor ref0 = Tensor::empty(DType::F32, {M, 1000}), ref1 = Tensor::empty(DType::F32, {M, 37}),
             ref2 = Tensor::empty(DType::F32, {M, 2049});
      backend->matmul(ref0, x, w0, &b0);
      backend->matmul(ref1, x, w1, nullptr);
      backend->matmul(ref2, x, w2, &b2);
      for (auto [a, b] : {std::pair{&out0, &ref0}, std::pair{&out1, &ref1}, std::pair{&out2, &ref2}})
        for (int64_t i = 0; i < a->numel(); ++i)
          ASSERT_EQ(a->ptr<float>()[i], b->ptr<float>()[i]) << "M=" << M << " threads=" << threads << " i=" << i;
    }
  }
}

TEST(CpuMatmulMany, ChecksEveryTarget) {
  auto backend = make_cpu_backend(1);
  std::mt19937 rng(3);
  Tensor x = random_tensor(DType::F32, {2, 8}, rng);
  Tensor w = random_tensor(DType::F32, {4, 8}, rng), bad = random_tensor(DType::F32, {4, 9}, rng);
  Tensor out = Tensor::empty(DType::F32, {2, 4}), out2 = Tensor::empty(DType::F32, {2, 4});
  const MatmulTarget targets[] = {{&out, &w, nullptr}, {&out2, &bad, nullptr}};
  EXPECT_THROW(backend->matmul_many(x, targets), Error);
}

}  // namespace
}  // namespace roofline
