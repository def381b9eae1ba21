#include "roofline/perf/quality.h"

#include <algorithm>
#include <cmath>

#include <fmt/format.h>

#include "roofline/core/error.h"

namespace roofline::perf {

std::vector<double> log_softmax(std::span<const float> logits) {
  ROOFLINE_CHECK(!logits.empty(), "log_softmax: empty row");
  double max = -INFINITY;
  for (float v : logits) max = std::max(max, double(v));
  double sum = 0;
  for (float v : logits) sum += std::exp(double(v) - max);
  const double log_z = max + std::log(sum);
  std::vector<double> out(logits.size());
  for (size_t i = 0; i < logits.size(); ++i) out[i] = double(logits[i]) - log_z;
  return out;
}

double kl_divergence(std::span<const double> log_p, std::span<const double> log_q) {
  ROOFLINE_CHECK(log_p.size() == log_q.size(), "kl_divergence: {} and {} entries", log_p.size(), log_q.size());
  double kl = 0;
  for (size_t i = 0; i < log_p.size(); ++i) {
    const double p = std::exp(log_p[i]);
    if (p > 0) kl += p * (log_p[i] - log_q[i]);
  }
  return std::max(0.0, kl);  // rounding can leave -1e-17
}

void QualityAccumulator::add(std::span<const float> baseline, std::span<const float> candidate, int32_t next) {
  ROOFLINE_CHECK(baseline.size() == candidate.size(),
                 "quality: baseline and candidate have different vocabularies ({} and {} logits)", baseline.size(),
                 candidate.size());
  const std::vector<double> lp = log_softmax(baseline), lq = log_softmax(candidate);
  kl_ += kl_divergence(lp, lq);
  const auto top_p = std::max_element(lp.begin(), lp.end()) - lp.begin();
  const auto top_q = std::max_element(lq.begin(), lq.end()) - lq.begin();
  agree_ += top_p == top_q;
  positions_ += 1;
  if (next >= 0) {
    ROOFLINE_CHECK(size_t(next) < lp.size(), "quality: token {} is outside the vocabulary of {}", next, lp.size());
    nll_baseline_ -= lp[size_t(next)];
    nll_candidate_ -= lq[size_t(next)];
    predicted_ += 1;
  }
}

QualityMetrics QualityAccumulator::result() const {
  QualityMetrics m;
  m.positions = positions_;
  m.predicted = predicted_;
  if (positions_ > 0) {
    m.kl = kl_ / double(positions_);
    m.top1_agreement = double(agree_) / double(positions_);
  }
  if (predicted_ > 0) {
    m.ppl_baseline = std::exp(nll_baseline_ / double(predicted_));
    m.ppl_candidate = std::exp(nll_candidate_ / double(predicted_));
  }
  return m;
}

QualityMetrics compare_logits(std::span<const float> baseline, std::span<const float> candidate, int64_t vocab,
                              std::span<const int32_t> tokens) {
  ROOFLINE_CHECK(vocab > 0 && baseline.size() == candidate.size() && baseline.size() % size_t(vocab) == 0,
                 "compare_logits: {} and {} logits are not rows of {}", baseline.size(), candidate.size(), vocab);
  const size_t rows = baseline.size() / size_t(vocab);
  ROOFLINE_CHECK(rows <= tokens.size(), "compare_logits: {} rows for {} tokens", rows, tokens.size());
  QualityAccumulator acc;
  for (size_t t = 0; t < rows; ++t)
    acc.add(baseline.subspan(t * size_t(vocab), size_t(vocab)), candidate.subspan(t * size_t(vocab), size_t(vocab)),
            t + 1 < tokens.size() ? tokens[t + 1] : -1);
  return acc.result();
}

Decision decide(double baseline_tokens_per_s, double candidate_tokens_per_s, const std::optional<QualityMetrics>& quality,
                const Thresholds& th, double baseline_peak_memory, double candidate_peak_memory) {
  Decision d;
  d.speedup = baseline_tokens_per_s > 0 ? candidate_tokens_per_s / baseline_tokens_per_s : 0;
  if (quality) {
    std::vector<std::string> failed;
    const double ppl_increase =
        quality->ppl_baseline > 0 ? (quality->ppl_candidate - quality->ppl_baseline) / quality->ppl_baseline : 0;
    if (!(ppl_increase <= th.max_ppl_increase))
      failed.push_back(fmt::format("perplexity {:.4g} -> {:.4g} (+{:.2f}%) exceeds the allowed +{:.2f}%",
                                   quality->ppl_baseline, quality->ppl_candidate, 100.0 * ppl_increase,
                                   100.0 * th.max_ppl_increase));
    if (!(quality->kl <= th.max_kl))
      failed.push_back(fmt::format("KL divergence {:.3g} nats exceeds {:.3g}", quality->kl, th.max_kl));
    if (!(quality->top1_agreement >= th.min_top1))
      failed.push_back(fmt::format("top-1 agreement {:.1f}% is under {:.1f}%", 100.0 * quality->top1_agreement,
                                   100.0 * th.min_top1));
    d.quality_pass = failed.empty();
    if (!failed.empty()) {
      d.decision = "reject";
      d.reasons = failed;
      d.reasons.push_back(fmt::format("(speedup {:.3f}x is not taken at that quality cost)", d.speedup));
      return d;
    }
    d.reasons.push_back(fmt::format("quality holds: perplexity {:+.2f}%, KL {:.3g}, top-1 agreement {:.1f}%",
                                    100.0 * ppl_increase, quality->kl, 100.0 * quality->top1_agreement));
  } else {
    d.decision = "review";
    d.reasons.push_back(fmt::format("quality was not measured: a speedup of {:.3f}x is not accepted without it",
                                    d.speedup));
    return d;
  }
  if (d.speedup >= th.min_speedup) {
    d.decision = "accept";
    d.reasons.push_back(fmt::format("speedup {:.3f}x meets the required {:.3f}x", d.speedup, th.min_speedup));
    return d;
  }
  if (th.min_speedup > 1 && d.speedup >= 2.0 - th.min_speedup) {
    d.decision = "review";
    d.reasons.push_back(fmt::format("speedup {:.3f}x is within the noise band [{:.3f}x, {:.3f}x): no clear gain",
                                    d.speedup, 2.0 - th.min_speedup, th.min_speedup));
    if (baseline_peak_memory > 0 && candidate_peak_memory > 0 && candidate_peak_memory < 0.9 * baseline_peak_memory)
      d.reasons.push_back(fmt::format("peak memory drops {:.0f}%: worth taking if memory is the constraint",
                                      100.0 * (1.0 - candidate_peak_memory / baseline_peak_memory)));
    return d;
  }
  d.decision = "reject";
  d.reasons.push_back(fmt::format("speedup {:.3f}x is below the required {:.3f}x", d.speedup, th.min_speedup));
  return d;
}

}  // namespace roofline::perf
