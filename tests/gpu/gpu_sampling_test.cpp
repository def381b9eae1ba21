// Token selection on the GPU: argmax exact (lowest index among ties), and sampling with temperature,
// top-k, top-p and min-p checked by statistics against the distribution the CPU Sampler defines
// (temperature -> top-k -> top-p -> min-p, each renormalising), by membership (top-k only draws among the
// k best) and by reproducibility (same seed and step: same ids).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <set>

#include "gpu_test_util.h"

namespace roofline::test {
namespace {

// The distribution a draw follows, in float64.
std::vector<double> expected_distribution(const std::vector<double>& logits, const cuda::GpuSampling& p) {
  const size_t V = logits.size();
  const double mx = *std::max_element(logits.begin(), logits.end());
  std::vector<double> prob(V);
  for (size_t i = 0; i < V; ++i) prob[i] = std::exp((logits[i] - mx) / p.temperature);
  std::vector<size_t> order(V);
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return logits[a] > logits[b]; });
  size_t n = V;
  if (p.top_k > 0) n = std::min(V, size_t(p.top_k));
  if (p.top_p < 1.0f) {
    double kept = 0, cumulative = 0;
    for (size_t i = 0; i < n; ++i) kept += prob[order[i]];
    for (size_t i = 0; i < n; ++i) {
      cumulative += prob[order[i]] / kept;
      if (cumulative >= p.top_p) {
        n = i + 1;
        break;
      }
    }
  }
  std::vector<double> out(V, 0.0);
  const double p_max = prob[order[0]];
  double total = 0;
  for (size_t i = 0; i < n; ++i)
    if (p.min_p <= 0 || prob[order[i]] >= p.min_p * p_max) total += (out[order[i]] = prob[order[i]]);
  for (double& x : out) x /= total;
  return out;
}

// `rows` copies of one row of logits, so one launch gives `rows` independent draws.
Tensor repeated_rows(cuda::CudaBackend& gpu, const std::vector<float>& row, int64_t rows, DType dtype) {
  std::vector<float> all;
  for (int64_t r = 0; r < rows; ++r) all.insert(all.end(), row.begin(), row.end());
  return gpu.upload(host_f32({rows, int64_t(row.size())}, all), dtype);
}

class GpuSampling : public GpuTest {};

TEST_F(GpuSampling, ArgmaxIsExactWithTiesGoingToTheLowestIndex) {
  for (DType dtype : {DType::F32, DType::BF16, DType::F16}) {
    const int64_t B = 5, V = 151936;
    auto values = random_floats(size_t(B * V), 1, -10.0f, 10.0f);
    values[size_t(1 * V + 77)] = values[size_t(1 * V + 150000)] = 30.0f;  // a planted tie in row 1
    values[size_t(3 * V + V - 1)] = 31.0f;                               // the last column
    const DeviceData logits = upload_values(gpu(), dtype, {B, V}, values);
    Tensor ids = poisoned(gpu(), DType::I32, {B});
    gpu().argmax(ids, logits.tensor);
    const auto got = download_i32(gpu(), ids);
    for (int64_t b = 0; b < B; ++b) {
      const auto row = logits.values.begin() + b * V;
      const auto want = int32_t(std::max_element(row, row + V) - row);  // first of the maxima
      EXPECT_EQ(got[size_t(b)], want) << dtype_name(dtype) << " row " << b;
    }
    EXPECT_EQ(got[1], 77);
    EXPECT_EQ(got[3], V - 1);
  }
}

TEST_F(GpuSampling, GreedyWhenTemperatureIsZero) {
  const DeviceData logits = random_device(gpu(), DType::F32, {3, 1000}, 2, -5.0f, 5.0f);
  Tensor a = poisoned(gpu(), DType::I32, {3}), b = poisoned(gpu(), DType::I32, {3});
  gpu().argmax(a, logits.tensor);
  gpu().sample(b, logits.tensor, cuda::GpuSampling{.temperature = 0.0f});
  EXPECT_EQ(download_i32(gpu(), a), download_i32(gpu(), b));
}

struct StatsCase {
  const char* name;
  cuda::GpuSampling params;
};

class GpuSamplingStats : public GpuTest, public ::testing::WithParamInterface<StatsCase> {};

// Frequencies of 40000 draws within 5 standard deviations (+ 1e-3) of the expected probability, for
// every token; tokens the filters remove are never drawn.
TEST_P(GpuSamplingStats, FrequenciesFollowTheFilteredDistribution) {
  const cuda::GpuSampling params = GetParam().params;
  for (DType dtype : {DType::F32, DType::BF16}) {
    const int64_t V = 48, draws = 40000;
    // Distinct logits, exact in bf16 (steps of 1/8 in [-3, 3)), so no filter boundary falls on a tie.
    std::vector<float> row(static_cast<size_t>(V));
    for (int64_t i = 0; i < V; ++i) row[size_t(i)] = -3.0f + 0.125f * float((i * 29) % V);
    const DeviceData one_row = upload_values(gpu(), dtype, {V}, row);  // the exact values the GPU sees
    const auto want = expected_distribution(one_row.values, params);
    const Tensor logits = repeated_rows(gpu(), row, draws, dtype);
    Tensor ids = poisoned(gpu(), DType::I32, {draws});
    gpu().sample(ids, logits, params);
    std::vector<double> freq(size_t(V), 0.0);
    for (int32_t id : download_i32(gpu(), ids)) {
      ASSERT_TRUE(id >= 0 && id < V) << "id " << id << " outside the vocabulary";
      freq[size_t(id)] += 1.0 / double(draws);
    }
    for (int64_t i = 0; i < V; ++i) {
      const double p = want[size_t(i)];
      if (p == 0.0) {
        EXPECT_EQ(freq[size_t(i)], 0.0) << dtype_name(dtype) << ": filtered token " << i << " was drawn";
      } else {
        const double sigma = std::sqrt(p * (1 - p) / double(draws));
        EXPECT_NEAR(freq[size_t(i)], p, 5 * sigma + 1e-3) << dtype_name(dtype) << ": token " << i;
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(
    Filters, GpuSamplingStats,
    ::testing::Values(StatsCase{"temperature", {.temperature = 0.7f}},
                      StatsCase{"top_k", {.temperature = 1.0f, .top_k = 5}},
                      StatsCase{"top_p", {.temperature = 1.3f, .top_p = 0.6f}},
                      StatsCase{"min_p", {.temperature = 1.0f, .min_p = 0.2f}},
                      StatsCase{"top_k_top_p_min_p", {.temperature = 0.9f, .top_k = 10, .top_p = 0.8f, .min_p = 0.05f}},
                      StatsCase{"top_k_beyond_vocab", {.temperature = 1.0f, .top_k = 100}}),
    [](const auto& p) { return std::string(p.param.name); });

TEST_F(GpuSampling, TopKDrawsOnlyAmongTheKBestOfALargeVocabulary) {
  const int64_t B = 64, V = 151936;
  const int k = 50;
  const DeviceData logits = random_device(gpu(), DType::BF16, {B, V}, 4, -8.0f, 8.0f);
  Tensor ids = poisoned(gpu(), DType::I32, {B});
  gpu().sample(ids, logits.tensor, cuda::GpuSampling{.temperature = 1.5f, .top_k = k, .seed = 9});
  const auto got = download_i32(gpu(), ids);
  for (int64_t b = 0; b < B; ++b) {
    std::vector<double> row(logits.values.begin() + b * V, logits.values.begin() + (b + 1) * V);
    std::vector<double> sorted = row;
    std::nth_element(sorted.begin(), sorted.begin() + (k - 1), sorted.end(), std::greater<>());
    const double kth = sorted[size_t(k - 1)];
    ASSERT_TRUE(got[size_t(b)] >= 0 && got[size_t(b)] < V);
    EXPECT_GE(row[size_t(got[size_t(b)])], kth) << "row " << b << " drew a token outside the top " << k;
  }
}

// More candidates than fit the shared-memory sort (4096): the radix-selection path over the whole row.
TEST_F(GpuSampling, LooseFiltersOverFlatLogitsTakeTheRadixPathAndKeepOnlyAllowedTokens) {
  const int64_t B = 16, V = 8192;
  // Top-p 0.6 of nearly uniform logits: the nucleus is about 60% of the vocabulary.
  const DeviceData flat = random_device(gpu(), DType::F32, {B, V}, 7, -0.05f, 0.05f);
  Tensor ids = poisoned(gpu(), DType::I32, {B});
  gpu().sample(ids, flat.tensor, cuda::GpuSampling{.temperature = 1.0f, .top_p = 0.6f, .seed = 3});
  auto got = download_i32(gpu(), ids);
  for (int64_t b = 0; b < B; ++b) {
    std::vector<double> row(flat.values.begin() + b * V, flat.values.begin() + (b + 1) * V);
    const auto want = expected_distribution(row, cuda::GpuSampling{.temperature = 1.0f, .top_p = 0.6f});
    size_t nucleus = 0;
    double smallest_kept = INFINITY;
    for (int64_t i = 0; i < V; ++i)
      if (want[size_t(i)] > 0) ++nucleus, smallest_kept = std::min(smallest_kept, row[size_t(i)]);
    EXPECT_GT(nucleus, 4096u) << "the case must exceed the shared-memory candidate list";
    ASSERT_TRUE(got[size_t(b)] >= 0 && got[size_t(b)] < V);
    EXPECT_GE(row[size_t(got[size_t(b)])], smallest_kept) << "row " << b << " drew outside the nucleus";
  }
  // Top-k of 5000.
  const DeviceData logits = random_device(gpu(), DType::F32, {B, V}, 8, -1.0f, 1.0f);
  gpu().sample(ids, logits.tensor, cuda::GpuSampling{.temperature = 1.0f, .top_k = 5000, .seed = 4});
  got = download_i32(gpu(), ids);
  for (int64_t b = 0; b < B; ++b) {
    std::vector<double> row(logits.values.begin() + b * V, logits.values.begin() + (b + 1) * V);
    std::vector<double> sorted = row;
    std::nth_element(sorted.begin(), sorted.begin() + 4999, sorted.end(), std::greater<>());
    ASSERT_TRUE(got[size_t(b)] >= 0 && got[size_t(b)] < V);
    EXPECT_GE(row[size_t(got[size_t(b)])], sorted[4999]) << "row " << b << " drew outside the top 5000";
  }
}

TEST_F(GpuSampling, SameSeedAndStepGiveTheSameIds) {
  const int64_t B = 64, V = 32000;
  const DeviceData logits = random_device(gpu(), DType::F32, {B, V}, 5, -4.0f, 4.0f);
  const cuda::GpuSampling params{.temperature = 1.0f, .top_k = 40, .top_p = 0.9f, .min_p = 0.01f, .seed = 1234,
                                 .step = 7};
  auto draw = [&](const cuda::GpuSampling& p) {
    Tensor ids = poisoned(gpu(), DType::I32, {B});
    gpu().sample(ids, logits.tensor, p);
    return download_i32(gpu(), ids);
  };
  const auto first = draw(params);
  EXPECT_EQ(draw(params), first);
  cuda::GpuSampling next = params;
  next.step = 8;
  cuda::GpuSampling other_seed = params;
  other_seed.seed = 4321;
  EXPECT_NE(draw(next), first);
  EXPECT_NE(draw(other_seed), first);
}

TEST_F(GpuSampling, RejectsBadParameters) {
  const DeviceData logits = random_device(gpu(), DType::F32, {1, 100}, 6);
  Tensor ids = gpu().alloc(DType::I32, {1});
  expect_error([&] { gpu().sample(ids, logits.tensor, cuda::GpuSampling{.temperature = 1.0f, .top_p = 0.0f}); },
               "top_p");
  Tensor wrong = gpu().alloc(DType::F32, {1});
  expect_error([&] { gpu().argmax(wrong, logits.tensor); }, "ids must be I32");
}

}  // namespace
}  // namespace roofline::test
