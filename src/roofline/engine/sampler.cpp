#include "roofline/engine/sampler.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "roofline/core/error.h"

namespace roofline {

void SamplingParams::validate() const {
  if (!std::isfinite(temperature) || temperature < 0) fail("temperature must be >= 0 (got {})", temperature);
  if (top_k < 0) fail("top_k must be >= 0 (got {}; 0 disables it)", top_k);
  if (!(top_p > 0 && top_p <= 1)) fail("top_p must be in (0, 1] (got {})", top_p);
  if (!(min_p >= 0 && min_p <= 1)) fail("min_p must be in [0, 1] (got {})", min_p);
  if (!(repetition_penalty > 0) || !std::isfinite(repetition_penalty))
    fail("repetition_penalty must be > 0 (got {}; 1 disables it)", repetition_penalty);
  if (!(presence_penalty >= -2 && presence_penalty <= 2)) fail("presence_penalty must be in [-2, 2] (got {})", presence_penalty);
  if (!(frequency_penalty >= -2 && frequency_penalty <= 2))
    fail("frequency_penalty must be in [-2, 2] (got {})", frequency_penalty);
}

Sampler::Sampler(const SamplingParams& params) : params_(params), rng_(params.seed) { params_.validate(); }

void Sampler::apply_penalties(std::span<float> logits, std::span<const int32_t> context, size_t prompt_length) {
  const int64_t V = int64_t(logits.size());
  if (params_.repetition_penalty != 1.0) {
    const float r = float(params_.repetition_penalty);
    // Each distinct token is penalised once, however often it appears (as HF does).
    seen_.assign(context.begin(), context.end());  // reused buffer: no allocation per token
    std::sort(seen_.begin(), seen_.end());
    seen_.erase(std::unique(seen_.begin(), seen_.end()), seen_.end());
    for (int32_t id : seen_)
      if (id >= 0 && id < V) logits[size_t(id)] = logits[size_t(id)] > 0 ? logits[size_t(id)] / r : logits[size_t(id)] * r;
  }
  if (params_.presence_penalty != 0.0 || params_.frequency_penalty != 0.0) {
    counts_.assign(size_t(V), 0);
    for (size_t i = prompt_length; i < context.size(); ++i)
      if (context[i] >= 0 && context[i] < V) counts_[size_t(context[i])]++;
    for (size_t i = prompt_length; i < context.size(); ++i) {
      int32_t id = context[i];
      if (id < 0 || id >= V || counts_[size_t(id)] == 0) continue;
      logits[size_t(id)] -= float(params_.presence_penalty + params_.frequency_penalty * counts_[size_t(id)]);
      counts_[size_t(id)] = 0;  // applied once per distinct token
    }
  }
}

int32_t Sampler::sample(std::span<float> logits, std::span<const int32_t> context, size_t prompt_length) {
  ROOFLINE_CHECK(!logits.empty(), "sample: empty logits");
  apply_penalties(logits, context, prompt_length);
  const size_t V = logits.size();
  if (params_.temperature <= 0 || params_.top_k == 1) {
    return int32_t(std::max_element(logits.begin(), logits.end()) - logits.begin());
  }
  const double inv_t = 1.0 / params_.temperature;
  const float max_logit = *std::max_element(logits.begin(), logits.end());
  // Softmax over the whole vocabulary after temperature, in double.
  double total = 0;
  for (size_t i = 0; i < V; ++i) total += std::exp((double(logits[i]) - max_logit) * inv_t);
  auto prob = [&](int32_t id) { return std::exp((double(logits[size_t(id)]) - max_logit) * inv_t) / total; };
  auto by_logit = [&](int32_t a, int32_t b) {
    return logits[size_t(a)] > logits[size_t(b)] || (logits[size_t(a)] == logits[size_t(b)] && a < b);
  };

  // Candidates: the top-k set (sorted), else for top-p a sorted prefix just long enough to reach top_p,
  // else the whole vocabulary in id order. HF applies temperature -> top-k -> top-p -> min-p, each
  // renormalising what the previous one kept.
  order_.resize(V);
  std::iota(order_.begin(), order_.end(), 0);
  size_t n = V;
  bool sorted = false;
  if (params_.top_k > 0) {
    n = std::min(V, size_t(params_.top_k));
    std::partial_sort(order_.begin(), order_.begin() + long(n), order_.end(), by_logit);
    sorted = true;
  } else if (params_.top_p < 1.0) {
    n = std::min(V, size_t(256));
    for (;;) {
      std::partial_sort(order_.begin(), order_.begin() + long(n), order_.end(), by_logit);
      double mass = 0;
      for (size_t i = 0; i < n; ++i) mass += prob(order_[i]);
      if (mass >= params_.top_p || n == V) break;
      n = std::min(V, n * 4);
    }
    sorted = true;
  }
  probs_.resize(n);
  double kept = 0;
  for (size_t i = 0; i < n; ++i) kept += (probs_[i] = float(prob(order_[i])));
  if (params_.top_p < 1.0) {
    double cumulative = 0;
    for (size_t i = 0; i < n; ++i) {
      cumulative += probs_[i] / kept;
      if (cumulative >= params_.top_p) {
        n = i + 1;  // the smallest prefix whose mass reaches top_p
        break;
      }
    }
  }
  if (params_.min_p > 0.0) {
    const float p_max = sorted ? probs_[0] : *std::max_element(probs_.begin(), probs_.begin() + long(n));
    const double threshold = params_.min_p * p_max;
    for (size_t i = 0; i < n; ++i)
      if (probs_[i] < threshold) probs_[i] = 0;
  }
  double mass = 0;
  for (size_t i = 0; i < n; ++i) mass += probs_[i];
  std::uniform_real_distribution<double> uniform(0.0, mass);
  double u = uniform(rng_);
  size_t last_nonzero = 0;
  for (size_t i = 0; i < n; ++i) {
    if (probs_[i] == 0) continue;
    last_nonzero = i;
    u -= probs_[i];
    if (u < 0) return order_[i];
  }
  return order_[last_nonzero];  // rounding left u >= 0 after the last candidate
}

}  // namespace roofline
