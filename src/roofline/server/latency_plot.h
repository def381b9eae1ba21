// The serving benchmark's latency-against-load plot as a standalone SVG (no plotting library): two panels,
// TTFT and TPOT (p50 solid, p95 dashed, milliseconds) against the achieved output throughput (tok/s), one
// point per load level of a sweep, each labelled with the rate that was asked for.
#pragma once
#include <string>
#include <vector>

namespace roofline::server {

struct LoadPoint {
  std::string label;         // the offered load, e.g. "4 req/s" or "burst"
  double output_throughput;  // achieved, tok/s (the x axis)
  double ttft_p50_ms, ttft_p95_ms, tpot_p50_ms, tpot_p95_ms;
};

// A complete SVG document; points are drawn in the order given (sorted by throughput first).
std::string latency_vs_load_svg(std::vector<LoadPoint> points, const std::string& title);

// 1, 2 or 5 times a power of ten, about range / target_ticks: a readable tick step. range > 0.
double nice_tick_step(double range, int target_ticks);

}  // namespace roofline::server
