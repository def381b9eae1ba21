#include "roofline/server/load_stats.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

#include "roofline/core/error.h"

namespace roofline::server {

Summary summarize(const std::vector<double>& values) {
  Summary s;
  s.count = int64_t(values.size());
  if (values.empty()) return s;
  std::vector<double> sorted = values;
  std::sort(sorted.begin(), sorted.end());
  s.mean = std::accumulate(sorted.begin(), sorted.end(), 0.0) / double(sorted.size());
  s.min = sorted.front();
  s.max = sorted.back();
  s.p50 = percentile(sorted, 0.50);
  s.p95 = percentile(sorted, 0.95);
  s.p99 = percentile(sorted, 0.99);
  return s;
}

namespace {

// A positive number from one field of a distribution spec.
double parse_number(std::string_view spec, std::string_view text, bool integer) {
  const std::string s(text);
  size_t used = 0;
  double value = 0;
  try {
    value = std::stod(s, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used == 0 || used != s.size() || !std::isfinite(value))
    fail("'{}': '{}' is not a number (write e.g. 128, uniform:64:256, normal:512:64, exponential:200)", spec, s);
  if (integer && value != std::floor(value)) fail("'{}': '{}' must be a whole number of tokens", spec, s);
  return value;
}

std::vector<std::string_view> split(std::string_view text, char separator) {
  std::vector<std::string_view> parts;
  size_t begin = 0;
  for (;;) {
    const size_t end = text.find(separator, begin);
    parts.push_back(text.substr(begin, end == std::string_view::npos ? std::string_view::npos : end - begin));
    if (end == std::string_view::npos) return parts;
    begin = end + 1;
  }
}

constexpr double kMaxLength = 1 << 24;  // tokens; far beyond any context

}  // namespace

LengthDistribution LengthDistribution::fixed(int n) {
  ROOFLINE_CHECK(n >= 1, "a fixed length must be >= 1 token (got {})", n);
  LengthDistribution d;
  d.kind_ = Kind::kFixed;
  d.a_ = d.b_ = n;
  return d;
}

LengthDistribution LengthDistribution::parse(std::string_view spec) {
  const std::vector<std::string_view> parts = split(spec, ':');
  LengthDistribution d;
  auto expect_fields = [&](size_t n, const char* form) {
    if (parts.size() != n) fail("'{}': write {}", spec, form);
  };
  if (parts.size() == 1) {
    d.kind_ = Kind::kFixed;
    d.a_ = d.b_ = parse_number(spec, parts[0], true);
    if (d.a_ < 1 || d.a_ > kMaxLength) fail("'{}': the length must be in [1, {}]", spec, kMaxLength);
  } else if (parts[0] == "uniform") {
    expect_fields(3, "uniform:MIN:MAX");
    d.kind_ = Kind::kUniform;
    d.a_ = parse_number(spec, parts[1], true);
    d.b_ = parse_number(spec, parts[2], true);
    if (d.a_ < 1 || d.b_ < d.a_ || d.b_ > kMaxLength) fail("'{}': need 1 <= MIN <= MAX <= {}", spec, kMaxLength);
  } else if (parts[0] == "normal") {
    expect_fields(3, "normal:MEAN:STDDEV");
    d.kind_ = Kind::kNormal;
    d.a_ = parse_number(spec, parts[1], false);
    d.b_ = parse_number(spec, parts[2], false);
    if (d.a_ < 1 || d.a_ > kMaxLength || d.b_ < 0) fail("'{}': need MEAN >= 1 and STDDEV >= 0", spec);
  } else if (parts[0] == "exponential") {
    expect_fields(2, "exponential:MEAN");
    d.kind_ = Kind::kExponential;
    d.a_ = d.b_ = parse_number(spec, parts[1], false);
    if (d.a_ < 1 || d.a_ > kMaxLength) fail("'{}': need MEAN >= 1", spec);
  } else {
    fail("'{}': unknown distribution '{}' (use a number, uniform:MIN:MAX, normal:MEAN:STDDEV or exponential:MEAN)",
         spec, parts[0]);
  }
  return d;
}

int LengthDistribution::max_value() const {
  switch (kind_) {
    case Kind::kFixed:
    case Kind::kUniform: return int(b_);
    case Kind::kNormal: return std::max(1, int(std::lround(a_ + 4 * b_)));
    case Kind::kExponential: return std::max(1, int(std::lround(10 * a_)));
  }
  return 1;
}

double LengthDistribution::mean() const {
  switch (kind_) {
    case Kind::kFixed:
    case Kind::kNormal:
    case Kind::kExponential: return a_;
    case Kind::kUniform: return (a_ + b_) / 2;
  }
  return a_;
}

int LengthDistribution::sample(std::mt19937_64& rng) const {
  double x = a_;
  switch (kind_) {
    case Kind::kFixed: return int(a_);
    case Kind::kUniform: return std::uniform_int_distribution<int>(int(a_), int(b_))(rng);
    case Kind::kNormal: x = std::normal_distribution<double>(a_, b_)(rng); break;
    case Kind::kExponential: x = std::exponential_distribution<double>(1.0 / a_)(rng); break;
  }
  return std::clamp(int(std::lround(x)), 1, max_value());
}

std::string LengthDistribution::describe() const {
  switch (kind_) {
    case Kind::kFixed: return fmt::format("{}", int(a_));
    case Kind::kUniform: return fmt::format("uniform:{}:{}", int(a_), int(b_));
    case Kind::kNormal: return fmt::format("normal:{}:{}", a_, b_);
    case Kind::kExponential: return fmt::format("exponential:{}", a_);
  }
  return {};
}

std::vector<double> arrival_times(int count, double rate, uint64_t seed) {
  ROOFLINE_CHECK(count >= 0, "arrival_times: count must be >= 0 (got {})", count);
  ROOFLINE_CHECK(rate >= 0, "arrival_times: the rate must be >= 0 requests/s (got {})", rate);
  std::vector<double> times(size_t(count), 0.0);
  if (rate == 0 || std::isinf(rate)) return times;  // a burst
  std::mt19937_64 rng(seed);
  std::exponential_distribution<double> gap(rate);
  double t = 0;
  for (double& time : times) time = t += gap(rng);
  return times;
}

}  // namespace roofline::server
