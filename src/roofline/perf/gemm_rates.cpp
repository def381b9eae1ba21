#include "roofline/perf/gemm_rates.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <tuple>

#include "roofline/core/error.h"

namespace roofline::perf {

namespace {

std::vector<double> distinct_sorted(std::vector<double> values) {
  std::sort(values.begin(), values.end());
  values.erase(std::unique(values.begin(), values.end()), values.end());
  return values;
}

// The grid cell that holds x on one axis, clamped at its ends: the lower index and the fraction of the way to
// the next value, in log space (an axis of one value: index 0, fraction 0).
std::pair<size_t, double> locate(const std::vector<double>& axis, double x) {
  if (axis.size() == 1 || x <= axis.front()) return {0, 0.0};
  if (x >= axis.back()) return {axis.size() - 2, 1.0};
  const size_t hi = size_t(std::upper_bound(axis.begin(), axis.end(), x) - axis.begin());
  const size_t lo = hi - 1;
  return {lo, (std::log(x) - std::log(axis[lo])) / (std::log(axis[hi]) - std::log(axis[lo]))};
}

}  // namespace

GemmRateTable::GemmRateTable(std::vector<GemmRatePoint> points, const std::string& label) : points_(std::move(points)) {
  if (points_.empty()) return;
  std::vector<double> ms, ns, ks;
  std::map<std::tuple<int64_t, int64_t, int64_t>, double> by_shape;
  for (const GemmRatePoint& p : points_) {
    ROOFLINE_CHECK(p.m > 0 && p.n > 0 && p.k > 0 && std::isfinite(p.flops_per_s) && p.flops_per_s > 0,
                   "{}: \"gemm_bf16_rates\" entry M={} N={} K={} rate {}: M, N, K must be positive and the rate a "
                   "positive number",
                   label, p.m, p.n, p.k, p.flops_per_s);
    ROOFLINE_CHECK(by_shape.emplace(std::make_tuple(p.m, p.n, p.k), p.flops_per_s).second,
                   "{}: \"gemm_bf16_rates\" names M={} N={} K={} twice", label, p.m, p.n, p.k);
    ms.push_back(double(p.m)), ns.push_back(double(p.n)), ks.push_back(double(p.k));
  }
  ms_ = distinct_sorted(ms), ns_ = distinct_sorted(ns), ks_ = distinct_sorted(ks);
  for (double m : ms_)
    for (double n : ns_)
      for (double k : ks_) {
        auto it = by_shape.find(std::make_tuple(int64_t(m), int64_t(n), int64_t(k)));
        ROOFLINE_CHECK(it != by_shape.end(),
                       "{}: \"gemm_bf16_rates\" is not a full grid: no rate for M={} N={} K={} (interpolation needs "
                       "every combination of the M, N and K values the table names)",
                       label, int64_t(m), int64_t(n), int64_t(k));
        log_rates_.push_back(std::log(it->second));
      }
}

double GemmRateTable::log_rate_at(size_t mi, size_t ni, size_t ki) const {
  return log_rates_[(mi * ns_.size() + ni) * ks_.size() + ki];
}

// Trilinear in (log M, log N, log K), on the logarithm of the rate, clamped at the grid's edges:
//  - log coordinates, because the grid doubles along each axis and a GEMM's behaviour changes by ratios
//    (tiles per SM, depth per tile), not by differences;
//  - log rate, because where the weight read dominates (small M) the time is flat and the rate grows in
//    proportion to M: geometric interpolation is exact there and still exact where the rate has saturated;
//  - clamped, because beyond the edges the nearest measured shape is a better guess than an extrapolation:
//    rows 9..15 (cuBLASLt below the grid) take the 16-row rate, a little optimistic where the time is flat
//    (the estimate does not ask for 8 rows or fewer: runs_on_decode_kernels), and above the largest
//    dimensions the rate has long saturated;
//  - a batched product as one GEMM of batch x M rows: both spread the same number of output tiles over the
//    SMs, which is what sets the rate of the small per-head products.
// Between grid points the interpolation smooths over wave quantisation (a shape that just spills into another
// wave); the power-of-two grid hits the common layer widths exactly, where it matters most.
double GemmRateTable::rate(const GemmShape& shape) const {
  if (points_.empty()) return 0;
  const auto [mi, mt] = locate(ms_, shape.m * shape.batch);
  const auto [ni, nt] = locate(ns_, shape.n);
  const auto [ki, kt] = locate(ks_, shape.k);
  double log_rate = 0;
  for (int dm = 0; dm < 2; ++dm)
    for (int dn = 0; dn < 2; ++dn)
      for (int dk = 0; dk < 2; ++dk) {
        const double w = (dm ? mt : 1 - mt) * (dn ? nt : 1 - nt) * (dk ? kt : 1 - kt);
        if (w == 0) continue;  // also keeps an axis of one value from reading past its end
        log_rate += w * log_rate_at(mi + dm, ni + dn, ki + dk);
      }
  return std::exp(log_rate);
}

nlohmann::json GemmRateTable::to_json() const {
  nlohmann::json j = nlohmann::json::array();
  for (const GemmRatePoint& p : points_) j.push_back({p.m, p.n, p.k, p.flops_per_s});
  return j;
}

GemmRateTable GemmRateTable::from_json(const nlohmann::json& j, const std::string& label) {
  ROOFLINE_CHECK(j.is_array(), "{}: \"gemm_bf16_rates\" must be an array of [M, N, K, flops_per_s]", label);
  std::vector<GemmRatePoint> points;
  for (size_t i = 0; i < j.size(); ++i) {
    const nlohmann::json& e = j[i];
    auto positive_integer = [&](size_t at) { return e[at].is_number_integer() && e[at].get<int64_t>() > 0; };
    ROOFLINE_CHECK(e.is_array() && e.size() == 4 && positive_integer(0) && positive_integer(1) && positive_integer(2) &&
                       e[3].is_number() && std::isfinite(e[3].get<double>()) && e[3].get<double>() > 0,
                   "{}: \"gemm_bf16_rates\"[{}] must be [M, N, K, flops_per_s] with M, N, K positive integers and a "
                   "positive rate; got {}",
                   label, i, e.dump());
    points.push_back({e[0].get<int64_t>(), e[1].get<int64_t>(), e[2].get<int64_t>(), e[3].get<double>()});
  }
  return GemmRateTable(std::move(points), label);
}

std::vector<GemmShape> gemm_rate_grid(bool quick) {
  // M: decode batches to training steps of several thousand tokens, every power of two between, so that the
  // row counts engines run (2048, 8192) are measured, not interpolated across a wave boundary. N and K: the
  // projection widths (512 for grouped K/V up to 14336-wide MLPs) and the reductions over tokens of the
  // weight gradients; wider ones (lm_head's vocabulary) have saturated by 32768.
  std::vector<double> ms, widths;
  if (quick) {
    ms = {16, 256, 4096};
    widths = {512, 2048, 8192};
  } else {
    for (double m = 16; m <= 16384; m *= 2) ms.push_back(m);
    for (double w = 512; w <= 32768; w *= 2) widths.push_back(w);
  }
  std::vector<GemmShape> grid;
  for (double m : ms)
    for (double n : widths)
      for (double k : widths) grid.push_back({m, n, k, 1});
  return grid;
}

}  // namespace roofline::perf
