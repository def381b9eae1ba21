// Order statistics of measurements (benchmarks, load tests, calibration): one definition, so every table
// in the project means the same thing by p50 and p95.
#pragma once
#include <utility>
#include <vector>

namespace roofline {

// The q-quantile (q in [0, 1]) with linear interpolation between the closest ranks (numpy's default);
// 0 for no values. Takes a copy: the input need not be sorted.
double percentile(std::vector<double> values, double q);
// The middle value (the mean of the two middle ones for an even count); 0 for no values.
inline double median(std::vector<double> values) { return percentile(std::move(values), 0.5); }

}  // namespace roofline
