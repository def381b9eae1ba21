#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <set>

#include "roofline/core/error.h"
#include "roofline/engine/sampler.h"

namespace roofline {
namespace {

// Logits whose softmax is exactly `probs`.
std::vector<float> logits_for(const std::vector<double>& probs) {
  std::vector<float> l;
  for (double p : probs) l.push_back(float(std::log(p)));
  return l;
}

std::map<int32_t, int> draw(const SamplingParams& params, const std::vector<double>& probs, int n) {
  Sampler s(params);
  std::map<int32_t, int> counts;
  for (int i = 0; i < n; ++i) {
    auto l = logits_for(probs);
    counts[s.sample(l, {}, 0)]++;
  }
  return counts;
}

TEST(Sampler, GreedyPicksArgmax) {
  SamplingParams p;
  p.temperature = 0;
  Sampler s(p);
  std::vector<float> l = {0.1f, 2.5f, -1.0f, 2.4f};
  EXPECT_EQ(s.sample(l, {}, 0), 1);
}

TEST(Sampler, SameSeedSameTokensDifferentSeedDifferent) {
  SamplingParams p;
  p.seed = 123;
  std::vector<double> probs(50, 1.0 / 50);
  auto run = [&](uint64_t seed) {
    p.seed = seed;
    Sampler s(p);
    std::vector<int32_t> out;
    for (int i = 0; i < 40; ++i) {
      auto l = logits_for(probs);
      out.push_back(s.sample(l, {}, 0));
    }
    return out;
  };
  EXPECT_EQ(run(1), run(1));
  EXPECT_NE(run(1), run(2));
}

TEST(Sampler, FrequenciesFollowTheDistribution) {
  SamplingParams p;
  p.seed = 9;
  std::vector<double> probs = {0.5, 0.3, 0.15, 0.05};
  auto c = draw(p, probs, 20000);
  for (size_t i = 0; i < probs.size(); ++i) EXPECT_NEAR(c[int32_t(i)] / 20000.0, probs[i], 0.015) << i;
}

TEST(Sampler, TemperatureSharpens) {
  SamplingParams p;
  p.seed = 3;
  p.temperature = 0.5;  // p^2, renormalised over 0.38: 0.25, 0.09, 0.04
  auto c = draw(p, {0.5, 0.3, 0.2}, 20000);
  EXPECT_NEAR(c[0] / 20000.0, 0.25 / 0.38, 0.015);
  EXPECT_NEAR(c[1] / 20000.0, 0.09 / 0.38, 0.015);
}

TEST(Sampler, TopKKeepsOnlyTheKMostLikely) {
  SamplingParams p;
  p.seed = 4;
  p.top_k = 2;
  auto c = draw(p, {0.1, 0.4, 0.2, 0.3}, 10000);
  EXPECT_EQ(c.count(0), 0u);
  EXPECT_EQ(c.count(2), 0u);
  EXPECT_NEAR(c[1] / 10000.0, 0.4 / 0.7, 0.02);
}

TEST(Sampler, TopPKeepsTheSmallestPrefixReachingP) {
  SamplingParams p;
  p.seed = 5;
  p.top_p = 0.75;  // 0.5 + 0.3 reaches it: tokens 0 and 1
  auto c = draw(p, {0.5, 0.3, 0.15, 0.05}, 10000);
  EXPECT_EQ(c.size(), 2u);
  EXPECT_NEAR(c[0] / 10000.0, 0.5 / 0.8, 0.02);
  p.top_p = 0.4;  // the top token alone
  c = draw(p, {0.5, 0.3, 0.15, 0.05}, 1000);
  EXPECT_EQ(c.size(), 1u);
  EXPECT_EQ(c.begin()->first, 0);
}

TEST(Sampler, TopPOverALargeVocabulary) {
  // Many small probabilities: the sorted prefix has to grow past its first guess.
  SamplingParams p;
  p.seed = 6;
  p.top_p = 0.9;
  std::vector<double> probs(5000, 1.0 / 5000);
  auto c = draw(p, probs, 2000);
  EXPECT_GT(c.size(), 1000u);
  for (auto& [id, n] : c) EXPECT_LT(id, 4501);  // ties break by id: the first 4500 reach 0.9
}

TEST(Sampler, MinPDropsUnlikelyTokens) {
  SamplingParams p;
  p.seed = 7;
  p.min_p = 0.4;  // threshold 0.2: tokens 0 (0.5) and 1 (0.3)
  auto c = draw(p, {0.5, 0.3, 0.15, 0.05}, 5000);
  EXPECT_EQ(c.size(), 2u);
}

TEST(Sampler, RepetitionPenaltyDividesPositiveAndMultipliesNegative) {
  SamplingParams p;
  p.temperature = 0;
  p.repetition_penalty = 4.0;
  Sampler s(p);
  std::vector<float> l = {2.0f, 1.0f, -1.0f};
  std::vector<int32_t> ctx = {0, 0, 2};
  EXPECT_EQ(s.sample(l, ctx, 3), 1);  // 2.0 -> 0.5, so token 1 wins
  EXPECT_FLOAT_EQ(l[0], 0.5f);
  EXPECT_FLOAT_EQ(l[2], -4.0f);
}

TEST(Sampler, PresenceAndFrequencyPenaltiesApplyToGeneratedTokensOnly) {
  SamplingParams p;
  p.temperature = 0;
  p.presence_penalty = 0.5;
  p.frequency_penalty = 0.25;
  Sampler s(p);
  std::vector<float> l = {3.0f, 2.0f, 1.0f};
  std::vector<int32_t> ctx = {1, 0, 0};  // prompt: {1}; generated: {0, 0}
  s.sample(l, ctx, 1);
  EXPECT_FLOAT_EQ(l[0], 3.0f - 0.5f - 0.5f);
  EXPECT_FLOAT_EQ(l[1], 2.0f);
}

TEST(Sampler, InvalidParametersAreNamedErrors) {
  auto expect_error = [](SamplingParams p, const std::string& name) {
    try {
      p.validate();
      FAIL() << "no error for " << name;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(name), std::string::npos) << e.what();
    }
  };
  SamplingParams p;
  p.temperature = -0.1;
  expect_error(p, "temperature");
  p = {};
  p.top_p = 0;
  expect_error(p, "top_p");
  p = {};
  p.top_k = -1;
  expect_error(p, "top_k");
  p = {};
  p.min_p = 1.5;
  expect_error(p, "min_p");
  p = {};
  p.repetition_penalty = 0;
  expect_error(p, "repetition_penalty");
  p = {};
  p.presence_penalty = 3;
  expect_error(p, "presence_penalty");
}

}  // namespace
}  // namespace roofline
