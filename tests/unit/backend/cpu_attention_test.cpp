// Causal attention against a float64 reference on every ISA level x thread count: grouped-query heads,
// decode against a filled cache (start_pos > 0), prefill (T > 1), sliding windows, key counts past one
// online-softmax block (64), odd head_dim. Cache positions a query must not see hold NaN, so reading
// one would poison the output.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "cpu_test_util.h"

namespace roofline::test {
namespace {

struct AttentionCase {
  int64_t T, Hq, Hkv, D, S_max;
  int start_pos, window;
};

std::vector<double> reference(const std::vector<float>& q, const std::vector<float>& k, const std::vector<float>& v,
                              const AttentionCase& c, float scale) {
  std::vector<double> out(size_t(c.T * c.Hq * c.D));
  const int64_t group = c.Hq / c.Hkv;
  for (int64_t t = 0; t < c.T; ++t)
    for (int64_t h = 0; h < c.Hq; ++h) {
      const int64_t pos = c.start_pos + t, kvh = h / group;
      const int64_t first = c.window > 0 ? std::max<int64_t>(0, pos - c.window + 1) : 0;
      std::vector<double> s;
      for (int64_t j = first; j <= pos; ++j) {
        double dot = 0;
        for (int64_t i = 0; i < c.D; ++i)
          dot += double(q[size_t((t * c.Hq + h) * c.D + i)]) * k[size_t((j * c.Hkv + kvh) * c.D + i)];
        s.push_back(dot * scale);
      }
      const double mx = *std::max_element(s.begin(), s.end());
      double sum = 0;
      for (double& x : s) sum += (x = std::exp(x - mx));
      for (int64_t i = 0; i < c.D; ++i) {
        double o = 0;
        for (int64_t j = first; j <= pos; ++j) o += s[size_t(j - first)] * v[size_t((j * c.Hkv + kvh) * c.D + i)];
        out[size_t((t * c.Hq + h) * c.D + i)] = o / sum;
      }
    }
  return out;
}

void run_case(const AttentionCase& c, uint32_t seed) {
  const float scale = 1.0f / std::sqrt(float(c.D));
  // Scores of a few units: softmax neither uniform nor one-hot.
  const auto q = random_floats(size_t(c.T * c.Hq * c.D), seed, -2.0f, 2.0f);
  auto k = random_floats(size_t(c.S_max * c.Hkv * c.D), seed + 1, -2.0f, 2.0f);
  auto v = random_floats(size_t(c.S_max * c.Hkv * c.D), seed + 2);
  const auto ref = reference(q, k, v, c, scale);
  // Poison what no query may read: positions past the last query, and before the first query's window.
  const int64_t last = c.start_pos + c.T;
  const int64_t first_seen = c.window > 0 ? std::max<int64_t>(0, c.start_pos - c.window + 1) : 0;
  for (int64_t j = 0; j < c.S_max; ++j)
    if (j >= last || j < first_seen)
      for (int64_t i = 0; i < c.Hkv * c.D; ++i)
        k[size_t(j * c.Hkv * c.D + i)] = v[size_t(j * c.Hkv * c.D + i)] = std::numeric_limits<float>::quiet_NaN();

  for (const auto& config : cpu_configs()) {
    SCOPED_TRACE(config.name() + " T=" + std::to_string(c.T) + " Hq=" + std::to_string(c.Hq) + " Hkv=" +
                 std::to_string(c.Hkv) + " D=" + std::to_string(c.D) + " start=" + std::to_string(c.start_pos) +
                 " window=" + std::to_string(c.window));
    auto backend = make_backend(config);
    Tensor qt = f32_tensor({c.T, c.Hq, c.D}, q);
    Tensor kt = f32_tensor({c.S_max, c.Hkv, c.D}, k), vt = f32_tensor({c.S_max, c.Hkv, c.D}, v);
    Tensor out = Tensor::empty(DType::F32, {c.T, c.Hq, c.D});
    poison(out);
    AttentionParams params;
    params.start_pos = c.start_pos;
    params.sliding_window = c.window;
    params.scale = scale;
    backend->attention(out, qt, kt, vt, params);
    EXPECT_EQ(count_not_finite(out), 0);
    EXPECT_LT(rel_l2(values_of(out), ref), 1e-6);
    backend->attention(qt, qt, kt, vt, params);  // out may alias q
    EXPECT_LT(rel_l2(values_of(qt), ref), 1e-6);
  }
}

TEST(CpuAttention, DecodeAgainstCacheWithGqa) {
  run_case({1, 6, 2, 64, 40, 17, 0}, 1);   // one new token at position 17, groups of 3
  run_case({1, 6, 2, 67, 200, 150, 0}, 2); // odd head_dim, 151 keys: three key blocks
  run_case({1, 4, 1, 32, 10, 0, 0}, 3);    // first token, multi-query
  run_case({1, 12, 1, 16, 30, 29, 0}, 4);  // group of 12: split into chunks
}

TEST(CpuAttention, PrefillCausal) {
  run_case({5, 6, 2, 64, 8, 0, 0}, 10);
  run_case({70, 4, 4, 24, 80, 0, 0}, 11);  // multi-head, past one key block
  run_case({9, 8, 2, 40, 30, 12, 0}, 12);  // chunked prefill: rows after a cached prefix
}

TEST(CpuAttention, SlidingWindow) {
  run_case({1, 6, 2, 64, 40, 20, 5}, 20);   // decode: keys 16..20 only
  run_case({12, 4, 2, 16, 20, 0, 4}, 21);   // prefill
  run_case({7, 6, 3, 33, 100, 80, 70}, 22); // window past a key block
  run_case({3, 2, 1, 8, 10, 2, 1}, 23);     // window 1: each query sees itself only
}

TEST(CpuAttention, RejectsBadOperands) {
  auto backend = make_cpu_backend(1, CpuIsa::Scalar);
  Tensor q = Tensor::zeros(DType::F32, {2, 6, 8});
  Tensor cache = Tensor::zeros(DType::F32, {10, 2, 8});
  Tensor out = Tensor::zeros(DType::F32, {2, 6, 8});
  AttentionParams p;
  p.start_pos = 9;  // rows at 9 and 10: past the cache
  EXPECT_THROW(backend->attention(out, q, cache, cache, p), Error);
  p.start_pos = 0;
  Tensor cache4 = Tensor::zeros(DType::F32, {10, 4, 8});  // 6 heads over 4 kv heads
  EXPECT_THROW(backend->attention(out, q, cache4, cache4, p), Error);
  Tensor cache_d = Tensor::zeros(DType::F32, {10, 2, 4});
  EXPECT_THROW(backend->attention(out, q, cache_d, cache_d, p), Error);
  Tensor cache_bf16 = Tensor::zeros(DType::BF16, {10, 2, 8});
  EXPECT_THROW(backend->attention(out, q, cache_bf16, cache_bf16, p), Error);
  Tensor out_bad = Tensor::zeros(DType::F32, {2, 6, 4});
  EXPECT_THROW(backend->attention(out_bad, q, cache, cache, p), Error);
  EXPECT_THROW(backend->attention(out, q, cache, cache4, p), Error);
  p.sliding_window = -1;
  EXPECT_THROW(backend->attention(out, q, cache, cache, p), Error);
}

}  // namespace
}  // namespace roofline::test
