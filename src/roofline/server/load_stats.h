// Statistics for the serving benchmark (`roofline bench serve`): percentiles, latency summaries, and
// seeded draws of prompt/output lengths and arrival times. Pure functions, no I/O; tested on the CPU.
#pragma once
#include <cstdint>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "roofline/core/stats.h"

namespace roofline::server {

using roofline::percentile;  // core/stats.h

// mean, min, max and p50/p95/p99 of a latency sample (seconds or whatever unit it came in).
struct Summary {
  int64_t count = 0;
  double mean = 0, min = 0, max = 0, p50 = 0, p95 = 0, p99 = 0;
};
Summary summarize(const std::vector<double>& values);

// A token count drawn per request. Written as
//   "128"              always 128
//   "uniform:64:256"   integers 64..256, each equally likely
//   "normal:512:64"    mean 512, standard deviation 64, rounded
//   "exponential:200"  mean 200 (heavy tail, as chat outputs)
// Draws are clamped to [1, max_value()] (normal: mean + 4 sd; exponential: 10 x mean) so that a rare
// tail draw cannot ask for more than the model's context.
class LengthDistribution {
 public:
  enum class Kind { kFixed, kUniform, kNormal, kExponential };

  // Throws roofline::Error saying what is wrong with `spec` (which flag is the caller's to add).
  static LengthDistribution parse(std::string_view spec);
  static LengthDistribution fixed(int n);

  int sample(std::mt19937_64& rng) const;
  double mean() const;           // of the unclamped distribution
  int max_value() const;         // the largest value sample() returns
  std::string describe() const;  // the spec it was parsed from, normalised

  Kind kind() const { return kind_; }

 private:
  Kind kind_ = Kind::kFixed;
  double a_ = 1, b_ = 1;  // fixed: a; uniform: [a, b]; normal: mean a, sd b; exponential: mean a
};

// When each request arrives, in seconds after the start: `count` Poisson arrivals at `rate` requests per
// second (independent exponential gaps of mean 1/rate, the first one included), or all at 0 (a burst)
// when rate is 0 or infinite. Non-decreasing.
std::vector<double> arrival_times(int count, double rate, uint64_t seed);

}  // namespace roofline::server
