// `roofline report --html`: one self-contained page (inline SVG and CSS, no script or network needed) with
// the decision, a summary table, and four charts, each an <svg> with a fixed id:
//   #latency-cdf      per-token latency CDF of both configurations,
//   #throughput-bars  tokens/s of both,
//   #op-breakdown     time per op (ms) of both, the ops with the most time,
//   #roofline-plot    log-log FLOP/s against arithmetic intensity, the memory and compute roofs of each
//                     configuration's hardware, and every op shape of both as a point (hover: its numbers).
// The report JSON is embedded too (<script type="application/json" id="report-data">).
#pragma once
#include <string>

#include <nlohmann/json.hpp>

namespace roofline::perf {

// `report` is the JSON `roofline report --json` prints (see apps/roofline/report.cpp): baseline and
// candidate with tokens_per_s, latencies_ms and profile (to_json of a ProfileSummary), quality, decision,
// reasons. Missing parts leave their chart with a note instead.
std::string render_report_html(const nlohmann::json& report);

// Escapes &, <, >, " and ' for HTML text and attributes.
std::string html_escape(const std::string& text);

}  // namespace roofline::perf
