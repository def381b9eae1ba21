// Turns a row of logits into the next token: penalties, temperature, top-k, top-p, min-p, then a draw
// from a seeded generator (same seed, same tokens). temperature <= 0 is greedy (argmax).
#pragma once
#include <cstdint>
#include <random>
#include <span>
#include <vector>

#include "roofline/backend/backend.h"

namespace roofline {

struct SamplingParams {
  double temperature = 1.0;         // <= 0: greedy
  int top_k = 0;                    // 0: off
  double top_p = 1.0;               // 1: off
  double min_p = 0.0;               // 0: off; keeps tokens with p >= min_p * p_max
  double repetition_penalty = 1.0;  // HF/CTRL style over prompt and output: logit > 0 ? /r : *r
  double presence_penalty = 0.0;    // OpenAI style over generated tokens: -= presence if seen
  double frequency_penalty = 0.0;   // OpenAI style over generated tokens: -= frequency * count
  uint64_t seed = 0;

  // Throws roofline::Error naming the parameter and its valid range.
  void validate() const;
  // Whether a draw needs the token history (a penalty): such a request is sampled on the host.
  bool uses_history() const {
    return repetition_penalty != 1.0 || presence_penalty != 0.0 || frequency_penalty != 0.0;
  }
  // The device-side form of these parameters for the draw at `step` (Backend::sample; penalties excluded).
  TokenSampling on_device(uint64_t step) const {
    return TokenSampling{float(temperature), top_k, float(top_p), float(min_p), seed, step};
  }
};

class Sampler {
 public:
  explicit Sampler(const SamplingParams& params);

  // `logits` is modified in place. `context` holds prompt then generated ids; the first `prompt_length`
  // of them are the prompt (penalties that apply to output only skip them).
  int32_t sample(std::span<float> logits, std::span<const int32_t> context, size_t prompt_length);

 private:
  void apply_penalties(std::span<float> logits, std::span<const int32_t> context, size_t prompt_length);

  SamplingParams params_;
  std::mt19937_64 rng_;
  std::vector<int32_t> order_;
  std::vector<float> probs_;
  std::vector<int32_t> counts_;
  std::vector<int32_t> seen_;
};

}  // namespace roofline
