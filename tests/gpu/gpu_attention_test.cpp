// Causal attention on the GPU against a float64 reference: the FlashAttention-style prefill kernel and the
// flash-decoding kernel, head_dim 64 and 128, GQA 4:1 (and 12:1, 1:1), odd lengths (1, 7, 127, 1000, 4097),
// start_pos > 0 (queries at the end of a longer cache), sliding windows. Cache rows no query may read
// (past the last query, before the first query's window, the spare rows up to S_max) hold NaN, so
// reading one would poison the output; the output itself starts as NaN, so every element must be written.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>

#include "gpu_test_util.h"

namespace roofline::test {
namespace {

enum class Kernel { Prefill, Decode, Auto };

struct AttentionCase {
  Kernel kernel;
  int T, Hq, Hkv, D, start_pos, window;
  std::string name() const {
    const char* k = kernel == Kernel::Prefill ? "prefill" : kernel == Kernel::Decode ? "decode" : "auto";
    return fmt::format("{}_T{}_Hq{}_Hkv{}_D{}_start{}_window{}", k, T, Hq, Hkv, D, start_pos, window);
  }
};

std::vector<double> reference(const AttentionCase& c, const std::vector<double>& q, const std::vector<double>& k,
                              const std::vector<double>& v, double scale) {
  std::vector<double> out(size_t(c.T) * size_t(c.Hq) * size_t(c.D));
  const int group = c.Hq / c.Hkv;
  std::vector<double> s;
  for (int t = 0; t < c.T; ++t)
    for (int h = 0; h < c.Hq; ++h) {
      const int pos = c.start_pos + t, kvh = h / group;
      const int first = c.window > 0 ? std::max(0, pos - c.window + 1) : 0;
      s.clear();
      for (int j = first; j <= pos; ++j) {
        double dot = 0;
        for (int i = 0; i < c.D; ++i)
          dot += q[(size_t(t) * c.Hq + h) * c.D + i] * k[(size_t(j) * c.Hkv + kvh) * c.D + i];
        s.push_back(dot * scale);
      }
      const double mx = *std::max_element(s.begin(), s.end());
      double sum = 0;
      for (double& x : s) sum += (x = std::exp(x - mx));
      for (int i = 0; i < c.D; ++i) {
        double o = 0;
        for (int j = first; j <= pos; ++j) o += s[size_t(j - first)] * v[(size_t(j) * c.Hkv + kvh) * c.D + i];
        out[(size_t(t) * c.Hq + h) * c.D + i] = o / sum;
      }
    }
  return out;
}

class GpuAttention : public GpuTest, public ::testing::WithParamInterface<AttentionCase> {};

TEST_P(GpuAttention, MatchesFloat64Reference) {
  const AttentionCase& c = GetParam();
  const int S_max = c.start_pos + c.T + 37;  // spare rows past the sequence
  const size_t row = size_t(c.Hkv) * size_t(c.D);
  // Scores of a few units: the softmax is neither uniform nor one-hot.
  const auto q_host = random_floats(size_t(c.T) * c.Hq * c.D, 1, -2.0f, 2.0f);
  auto k_host = random_floats(size_t(S_max) * row, 2, -2.0f, 2.0f);
  auto v_host = random_floats(size_t(S_max) * row, 3);
  const int last = c.start_pos + c.T;
  const int first_seen = c.window > 0 ? std::max(0, c.start_pos - c.window + 1) : 0;
  for (int j = 0; j < S_max; ++j)
    if (j >= last || j < first_seen)
      for (size_t i = 0; i < row; ++i)
        k_host[size_t(j) * row + i] = v_host[size_t(j) * row + i] = std::numeric_limits<float>::quiet_NaN();

  const DeviceData q = upload_values(gpu(), DType::BF16, {c.T, c.Hq, c.D}, q_host);
  const DeviceData k = upload_values(gpu(), DType::BF16, {S_max, c.Hkv, c.D}, k_host);
  const DeviceData v = upload_values(gpu(), DType::BF16, {S_max, c.Hkv, c.D}, v_host);
  AttentionParams params;
  params.start_pos = c.start_pos;
  params.sliding_window = c.window;
  params.scale = float(1.0 / std::sqrt(double(c.D)));
  const auto want = reference(c, q.values, k.values, v.values, double(params.scale));
  // The prefill kernel runs on both implementations (mma.sync and, for head_dim 64/128, wgmma).
  for (cuda::PrefillKernel prefill : kPrefillKernels) {
    const PrefillKernelScope scope(prefill);
    Tensor out = poisoned(gpu(), DType::BF16, {c.T, c.Hq, c.D});
    switch (c.kernel) {
      case Kernel::Prefill: gpu().attention_prefill(out, q.tensor, k.tensor, v.tensor, params); break;
      case Kernel::Decode: gpu().attention_decode(out, q.tensor, k.tensor, v.tensor, params); break;
      case Kernel::Auto: gpu().attention(out, q.tensor, k.tensor, v.tensor, params); break;
    }
    expect_close(download_values(gpu(), out), want, 1e-2, c.name() + " " + prefill_kernel_name(prefill));
    if (c.kernel != Kernel::Prefill) break;
  }
}

std::vector<AttentionCase> cases() {
  std::vector<AttentionCase> out;
  for (int D : {64, 128}) {
    // Prefill: odd lengths, start_pos > 0, windows (one edge on a 64-key block boundary).
    for (auto [T, start, window] : std::vector<std::tuple<int, int, int>>{
             {1, 0, 0}, {7, 0, 0}, {127, 0, 0}, {1000, 0, 0}, {127, 873, 0}, {7, 4090, 0}, {1000, 0, 256},
             {127, 1000, 100}, {65, 3, 64}, {130, 0, 1}, {128, 0, 0}, {129, 0, 0}, {257, 100, 128}})
      out.push_back({Kernel::Prefill, T, 8, 2, D, start, window});
    // Decode: 1 or a few rows at the end of contexts of 1, 7, 127, 1000 and 4097 keys.
    for (int T : {1, 3})
      for (int context : {1, 7, 127, 1000, 4097})
        for (int window : {0, 300}) {
          if (context < T) continue;
          out.push_back({Kernel::Decode, T, 8, 2, D, context - T, window});
        }
    out.push_back({Kernel::Decode, 16, 8, 2, D, 2000, 0});  // the most rows the decode kernel takes
    out.push_back({Kernel::Decode, 1, 12, 1, D, 999, 0});   // a GQA group larger than one CTA's 8 heads
    out.push_back({Kernel::Decode, 2, 4, 4, D, 700, 0});    // no grouping
    out.push_back({Kernel::Prefill, 33, 12, 1, D, 40, 0});
    out.push_back({Kernel::Auto, 4, 8, 2, D, 500, 0});
    out.push_back({Kernel::Auto, 5, 8, 2, D, 500, 0});
  }
  return out;
}

INSTANTIATE_TEST_SUITE_P(Cases, GpuAttention, ::testing::ValuesIn(cases()),
                         [](const auto& p) { return p.param.name(); });

TEST_F(GpuTest, AttentionRejectsWhatItCannotRun) {
  Tensor q = gpu().alloc(DType::BF16, {2, 8, 64});
  Tensor out = gpu().alloc(DType::BF16, {2, 8, 64});
  Tensor kv = gpu().alloc(DType::BF16, {16, 3, 64});
  AttentionParams params;
  expect_error([&] { gpu().attention(out, q, kv, kv, params); }, "must be a multiple of Hkv");
  Tensor kv2 = gpu().alloc(DType::BF16, {16, 2, 64});
  params.start_pos = 15;
  expect_error([&] { gpu().attention(out, q, kv2, kv2, params); }, "do not fit the cache");
  Tensor kv_f32 = gpu().alloc(DType::F32, {16, 2, 64});
  params.start_pos = 0;
  expect_error([&] { gpu().attention(out, q, kv_f32, kv_f32, params); }, "k_cache must be BF16");
}

}  // namespace
}  // namespace roofline::test
