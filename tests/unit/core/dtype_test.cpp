#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>

#include "roofline/core/dtype.h"
#include "roofline/core/error.h"
#include "roofline/core/tensor.h"
#include "roofline/core/thread_pool.h"

namespace roofline {
namespace {

TEST(DType, Bf16RoundTripIsExactForBf16Values) {
  std::mt19937 rng(7);
  std::uniform_int_distribution<uint32_t> bits(0, 0xffff);
  for (int i = 0; i < 10000; ++i) {
    uint16_t b = uint16_t(bits(rng));
    float f = bf16_to_f32(b);
    if (std::isnan(f)) continue;
    EXPECT_EQ(f32_to_bf16(f), b);
  }
}

TEST(DType, Bf16RoundsToNearestEven) {
  // 1 + 2^-8 lies halfway between bf16 1.0 and 1.0078125: ties go to the even mantissa (1.0).
  EXPECT_EQ(bf16_to_f32(f32_to_bf16(1.0f + std::ldexp(1.0f, -8))), 1.0f);
  EXPECT_EQ(bf16_to_f32(f32_to_bf16(1.0f + 3 * std::ldexp(1.0f, -8))), 1.0f + std::ldexp(1.0f, -6));
}

TEST(DType, F16RoundTripAndRoundingMatchHardwareSemantics) {
  std::mt19937 rng(11);
  for (uint32_t h = 0; h <= 0xffff; ++h) {
    float f = f16_to_f32(uint16_t(h));
    if (std::isnan(f)) continue;
    ASSERT_EQ(f32_to_f16(f), uint16_t(h)) << "h=" << h;
  }
  EXPECT_EQ(f16_to_f32(0x3c00), 1.0f);
  EXPECT_EQ(f16_to_f32(0x0001), std::ldexp(1.0f, -24));
  EXPECT_EQ(f32_to_f16(65520.0f), 0x7c00);  // rounds up to infinity
  EXPECT_EQ(f32_to_f16(65519.0f), 0x7bff);
  EXPECT_EQ(f32_to_f16(std::ldexp(1.0f, -25)), 0x0000);  // tie to even
  EXPECT_EQ(f32_to_f16(std::ldexp(1.5f, -25)), 0x0001);
  // Random values: the result is the nearest f16.
  std::uniform_real_distribution<float> u(-70000.f, 70000.f);
  for (int i = 0; i < 10000; ++i) {
    float x = u(rng) * (i % 2 ? 1e-4f : 1.f);
    uint16_t h = f32_to_f16(x);
    float r = f16_to_f32(h);
    if (std::isinf(r)) continue;
    float up = f16_to_f32(uint16_t(h + 1)), down = f16_to_f32(uint16_t(h - 1));
    EXPECT_LE(std::fabs(r - x), std::fabs(up - x) + 0.0f);
    EXPECT_LE(std::fabs(r - x), std::fabs(down - x) + 0.0f);
  }
}

TEST(DType, ParsesNames) {
  DType d;
  EXPECT_TRUE(parse_dtype("BF16", &d));
  EXPECT_EQ(d, DType::BF16);
  EXPECT_FALSE(parse_dtype("Q4_K", &d));
  EXPECT_TRUE(parse_dtype_loose("bfloat16", &d));
  EXPECT_EQ(d, DType::BF16);
}

TEST(Tensor, RowsAndReshapeShareStorage) {
  Tensor t = Tensor::empty(DType::F32, {4, 3});
  for (int i = 0; i < 12; ++i) t.ptr<float>()[i] = float(i);
  Tensor r = t.rows(1, 3);
  EXPECT_EQ(r.shape(), (Shape{2, 3}));
  EXPECT_EQ(r.ptr<float>()[0], 3.0f);
  EXPECT_THROW(t.rows(2, 5), Error);
  EXPECT_THROW(t.reshape({5, 2}), Error);
  EXPECT_EQ(t.reshape({2, 6}).dim(-1), 6);
}

TEST(ThreadPool, CoversEveryIndexOnceAndPropagatesErrors) {
  ThreadPool pool(2);
  for (size_t n : {1u, 7u, 1000u, 100003u}) {
    std::vector<int> hits(n, 0);
    pool.parallel_for(n, 16, [&](size_t b, size_t e) {
      for (size_t i = b; i < e; ++i) hits[i]++;
    });
    for (size_t i = 0; i < n; ++i) ASSERT_EQ(hits[i], 1);
  }
  EXPECT_THROW(pool.parallel_for(1000, 1, [](size_t b, size_t) {
    if (b > 500) fail("boom");
  }), Error);
  // The pool stays usable after an error.
  std::atomic<size_t> sum{0};
  pool.parallel_for(100, 1, [&](size_t b, size_t e) { sum += e - b; });
  EXPECT_EQ(sum.load(), 100u);
}

}  // namespace
}  // namespace roofline
