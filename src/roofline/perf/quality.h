// Quality of a candidate configuration against a baseline on the same text, from their next-token logits,
// and the accept / reject / review decision of `roofline report`.
//  - perplexity: exp of the mean negative log-likelihood of each next token of the text (per configuration);
//  - KL divergence KL(baseline || candidate) of the next-token distributions, mean over positions (nats);
//  - top-1 agreement: the share of positions where both put the same token first.
#pragma once
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

namespace roofline::perf {

// log softmax of one row of logits, in double.
std::vector<double> log_softmax(std::span<const float> logits);
// KL(p || q) = sum p (log p - log q) for log-probabilities of the same length (nats; >= 0).
double kl_divergence(std::span<const double> log_p, std::span<const double> log_q);

struct QualityMetrics {
  double ppl_baseline = 0, ppl_candidate = 0;
  double kl = 0;              // mean over positions, nats
  double top1_agreement = 0;  // in [0, 1]
  int64_t positions = 0;      // rows compared
  int64_t predicted = 0;      // next tokens scored for perplexity (positions - 1)
};

// Adds up positions one at a time (a row of each configuration's logits for the same prefix).
class QualityAccumulator {
 public:
  // next: the token that follows this position in the text (for perplexity), or -1 at the last position.
  void add(std::span<const float> baseline, std::span<const float> candidate, int32_t next);
  QualityMetrics result() const;

 private:
  double nll_baseline_ = 0, nll_candidate_ = 0, kl_ = 0;
  int64_t positions_ = 0, predicted_ = 0, agree_ = 0;
};

// Rows [T, V] of both for tokens[0 .. T-1]: row t predicts tokens[t + 1].
QualityMetrics compare_logits(std::span<const float> baseline, std::span<const float> candidate, int64_t vocab,
                              std::span<const int32_t> tokens);

// Thresholds of the decision (all user-settable).
struct Thresholds {
  double max_ppl_increase = 0.01;  // relative: (ppl_candidate - ppl_baseline) / ppl_baseline
  double max_kl = 0.01;            // nats, mean
  double min_top1 = 0.95;          // agreement
  double min_speedup = 1.05;       // candidate / baseline throughput that counts as a gain
};

struct Decision {
  std::string decision;               // "accept", "reject" or "review"
  std::optional<bool> quality_pass;   // nullopt when quality was not measured
  double speedup = 0;                 // candidate / baseline throughput
  std::vector<std::string> reasons;   // one line each, for people
};

// Rules, in order:
//  1. quality measured and any check fails: reject (the failing checks are the reasons);
//  2. quality not measured: review (never accept a speed gain without the quality check);
//  3. speedup >= min_speedup: accept;
//  4. speedup within the noise band [2 - min_speedup, min_speedup) (min_speedup > 1): review, no clear
//     gain (a memory saving is named when there is one);
//  5. otherwise: reject (slower).
// peak memory: bytes of each configuration (0: unknown).
Decision decide(double baseline_tokens_per_s, double candidate_tokens_per_s, const std::optional<QualityMetrics>& quality,
                const Thresholds& thresholds, double baseline_peak_memory = 0, double candidate_peak_memory = 0);

}  // namespace roofline::perf
