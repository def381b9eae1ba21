// Perplexity, KL divergence and top-1 agreement on known distributions, and the report's decision rules.
#include <gtest/gtest.h>

#include <cmath>

#include "perf_test_util.h"
#include "roofline/perf/quality.h"

namespace roofline::perf {
namespace {

TEST(Quality, LogSoftmaxIsNormalisedAndShiftInvariant) {
  const std::vector<float> a = {1, 2, 3}, b = {1001, 1002, 1003};
  const std::vector<double> la = log_softmax(a), lb = log_softmax(b);
  double sum = 0;
  for (double v : la) sum += std::exp(v);
  EXPECT_NEAR(sum, 1.0, 1e-12);
  for (size_t i = 0; i < 3; ++i) EXPECT_NEAR(la[i], lb[i], 1e-9);
}

TEST(Quality, KlDivergenceOfKnownDistributions) {
  const std::vector<double> p = {std::log(0.5), std::log(0.5)}, q = {std::log(0.9), std::log(0.1)};
  // 0.5 ln(0.5/0.9) + 0.5 ln(0.5/0.1)
  EXPECT_NEAR(kl_divergence(p, q), 0.5 * std::log(0.5 / 0.9) + 0.5 * std::log(5.0), 1e-12);
  EXPECT_NEAR(kl_divergence(p, q), 0.5108256237659907, 1e-12);
  EXPECT_DOUBLE_EQ(kl_divergence(p, p), 0.0);
  EXPECT_HAS(test::error_of([&] { kl_divergence(p, std::vector<double>{0.0}); }), "entries");
}

TEST(Quality, UniformLogitsHavePerplexityEqualToTheVocabulary) {
  const int64_t V = 8;
  const std::vector<float> rows(3 * V, 0.0f);
  const std::vector<int32_t> tokens = {1, 2, 3};
  QualityMetrics m = compare_logits(rows, rows, V, tokens);
  EXPECT_NEAR(m.ppl_baseline, 8.0, 1e-9);
  EXPECT_NEAR(m.ppl_candidate, 8.0, 1e-9);
  EXPECT_DOUBLE_EQ(m.kl, 0);
  EXPECT_DOUBLE_EQ(m.top1_agreement, 1.0);
  EXPECT_EQ(m.positions, 3);
  EXPECT_EQ(m.predicted, 2);  // the last row has no next token
}

TEST(Quality, TopOneAgreementAndKlOverPositions) {
  // Two positions, vocabulary 2. Position 0: both prefer token 0; position 1: they disagree.
  const std::vector<float> base = {2, 0, 2, 0};
  const std::vector<float> cand = {2, 0, 0, 2};
  const std::vector<int32_t> tokens = {0, 0};
  QualityMetrics m = compare_logits(base, cand, 2, tokens);
  EXPECT_DOUBLE_EQ(m.top1_agreement, 0.5);
  const std::vector<double> p = log_softmax(std::vector<float>{2, 0}), q = log_softmax(std::vector<float>{0, 2});
  EXPECT_NEAR(m.kl, 0.5 * kl_divergence(p, q), 1e-12);
  // Perplexity: only row 0 predicts (token 0), where both give p = sigmoid(2).
  EXPECT_NEAR(m.ppl_baseline, 1.0 / (1.0 / (1.0 + std::exp(-2.0))), 1e-9);
  EXPECT_NEAR(m.ppl_candidate, m.ppl_baseline, 1e-12);
}

TEST(Quality, MismatchedVocabulariesAreAnError) {
  QualityAccumulator acc;
  const std::vector<float> a = {1, 2}, b = {1, 2, 3};
  EXPECT_HAS(test::error_of([&] { acc.add(a, b, -1); }), "different vocabularies");
  EXPECT_HAS(test::error_of([&] { acc.add(a, a, 5); }), "outside the vocabulary");
}

QualityMetrics good() {
  QualityMetrics q;
  q.ppl_baseline = 10.0;
  q.ppl_candidate = 10.05;  // +0.5%
  q.kl = 0.001;
  q.top1_agreement = 0.99;
  q.positions = 100;
  return q;
}

TEST(Decision, AcceptsASpeedupWhenQualityHolds) {
  const Decision d = decide(100, 130, good(), Thresholds{});
  EXPECT_EQ(d.decision, "accept");
  EXPECT_TRUE(d.quality_pass.value());
  EXPECT_NEAR(d.speedup, 1.3, 1e-12);
}

TEST(Decision, NeverAcceptsASpeedupWithoutTheQualityCheck) {
  const Decision d = decide(100, 1000, std::nullopt, Thresholds{});
  EXPECT_EQ(d.decision, "review");
  EXPECT_FALSE(d.quality_pass.has_value());
  EXPECT_HAS(d.reasons[0], "not measured");
}

TEST(Decision, RejectsOnEachQualityThreshold) {
  Thresholds th;
  QualityMetrics q = good();
  q.ppl_candidate = 10.5;  // +5% > 1%
  Decision d = decide(100, 200, q, th);
  EXPECT_EQ(d.decision, "reject");
  EXPECT_FALSE(d.quality_pass.value());
  EXPECT_HAS(d.reasons[0], "perplexity");
  q = good();
  q.kl = 0.5;
  EXPECT_HAS(decide(100, 200, q, th).reasons[0], "KL");
  q = good();
  q.top1_agreement = 0.5;
  EXPECT_HAS(decide(100, 200, q, th).reasons[0], "top-1");
  // User thresholds loosen it.
  th.min_top1 = 0.4;
  EXPECT_EQ(decide(100, 200, q, th).decision, "accept");
}

TEST(Decision, SlowerIsRejectedAndNoiseIsReview) {
  Thresholds th;  // min_speedup 1.05: band [0.95, 1.05)
  EXPECT_EQ(decide(100, 80, good(), th).decision, "reject");
  EXPECT_EQ(decide(100, 101, good(), th).decision, "review");
  EXPECT_EQ(decide(100, 96, good(), th).decision, "review");
  // A memory saving is named in the review.
  const Decision d = decide(100, 100, good(), th, 1000, 500);
  EXPECT_EQ(d.decision, "review");
  EXPECT_HAS(d.reasons.back(), "memory");
  // min_speedup 0: any speed passes once quality does.
  th.min_speedup = 0;
  EXPECT_EQ(decide(100, 50, good(), th).decision, "accept");
  // min_speedup 1: no band.
  th.min_speedup = 1;
  EXPECT_EQ(decide(100, 99, good(), th).decision, "reject");
}

}  // namespace
}  // namespace roofline::perf
