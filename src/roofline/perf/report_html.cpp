#include "roofline/perf/report_html.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <vector>

#include <fmt/format.h>

namespace roofline::perf {

std::string html_escape(const std::string& text) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&#39;"; break;
      default: out += c;
    }
  }
  return out;
}

namespace {

using nlohmann::json;

constexpr const char* kSides[] = {"baseline", "candidate"};
constexpr const char* kColors[] = {"#1f77b4", "#ff7f0e"};  // baseline blue, candidate orange
constexpr double kW = 560, kH = 320, kLeft = 64, kRight = 16, kTop = 28, kBottom = 44;

double num(const json& j, const char* key, double fallback = 0) {
  return j.is_object() && j.contains(key) && j.at(key).is_number() ? j.at(key).get<double>() : fallback;
}

std::string fmt_num(double v) {
  if (v == 0) return "0";
  const double a = std::fabs(v);
  if (a >= 1e4 || a < 1e-2) return fmt::format("{:.1e}", v);
  if (a >= 100) return fmt::format("{:.0f}", v);
  if (a >= 10) return fmt::format("{:.1f}", v);
  return fmt::format("{:.2f}", v);
}

// One chart: an <svg> with a title, axes frame and the plot area [kLeft, kW-kRight] x [kTop, kH-kBottom].
struct Chart {
  std::string id, body;
  double left = kLeft;  // room for the y labels
  explicit Chart(std::string chart_id, const std::string& title, double left_margin = kLeft)
      : id(std::move(chart_id)), left(left_margin) {
    body += fmt::format("<text x='{}' y='18' class='title'>{}</text>", kW / 2, html_escape(title));
  }
  double x0() const { return left; }
  static double x1() { return kW - kRight; }
  static double y0() { return kH - kBottom; }  // bottom
  static double y1() { return kTop; }          // top
  void frame(const std::string& xlabel, const std::string& ylabel) {
    body += fmt::format("<rect x='{}' y='{}' width='{}' height='{}' class='frame'/>", x0(), y1(), x1() - x0(), y0() - y1());
    body += fmt::format("<text x='{}' y='{}' class='axis'>{}</text>", (x0() + x1()) / 2, kH - 8, html_escape(xlabel));
    body += fmt::format("<text x='14' y='{}' class='axis' transform='rotate(-90 14 {})'>{}</text>", (y0() + y1()) / 2,
                        (y0() + y1()) / 2, html_escape(ylabel));
  }
  void note(const std::string& text) {
    body += fmt::format("<text x='{}' y='{}' class='note'>{}</text>", kW / 2, kH / 2, html_escape(text));
  }
  void legend(const std::vector<std::pair<std::string, std::string>>& items) {
    double x = x0() + 8;
    for (auto& [label, color] : items) {
      body += fmt::format("<rect x='{}' y='{}' width='10' height='10' fill='{}'/>", x, y1() + 6, color);
      body += fmt::format("<text x='{}' y='{}' class='legend'>{}</text>", x + 14, y1() + 15, html_escape(label));
      x += 24 + 7.0 * double(label.size());
    }
  }
  std::string svg() const {
    return fmt::format("<svg id='{}' class='chart' xmlns='http://www.w3.org/2000/svg' width='{}' height='{}' "
                       "viewBox='0 0 {} {}'>{}</svg>",
                       id, kW, kH, kW, kH, body);
  }
};

// Linear axis ticks (5) along x or y.
void linear_ticks(Chart& c, double lo, double hi, bool x_axis) {
  for (int i = 0; i <= 4; ++i) {
    const double v = lo + (hi - lo) * i / 4.0;
    if (x_axis) {
      const double px = c.x0() + (Chart::x1() - c.x0()) * i / 4.0;
      c.body += fmt::format("<text x='{}' y='{}' class='tick' text-anchor='middle'>{}</text>", px, Chart::y0() + 14, fmt_num(v));
    } else {
      const double py = Chart::y0() - (Chart::y0() - Chart::y1()) * i / 4.0;
      c.body += fmt::format("<text x='{}' y='{}' class='tick' text-anchor='end'>{}</text>", c.x0() - 4, py + 4, fmt_num(v));
      c.body += fmt::format("<line x1='{}' y1='{}' x2='{}' y2='{}' class='grid'/>", c.x0(), py, Chart::x1(), py);
    }
  }
}

std::string latency_cdf(const json& report) {
  Chart c("latency-cdf", "Per-token latency CDF");
  c.frame("latency per token (ms)", "fraction of tokens");
  std::vector<std::vector<double>> series;
  double hi = 0;
  for (const char* side : kSides) {
    std::vector<double> v;
    if (report.contains(side) && report[side].contains("latencies_ms"))
      for (const json& x : report[side]["latencies_ms"])
        if (x.is_number()) v.push_back(x.get<double>());
    std::sort(v.begin(), v.end());
    if (!v.empty()) hi = std::max(hi, v.back());
    series.push_back(std::move(v));
  }
  if (hi <= 0) {
    c.note("no latencies recorded");
    return c.svg();
  }
  hi *= 1.05;
  linear_ticks(c, 0, hi, true);
  linear_ticks(c, 0, 1, false);
  for (size_t s = 0; s < series.size(); ++s) {
    const std::vector<double>& v = series[s];
    if (v.empty()) continue;
    std::string points = fmt::format("{:.1f},{:.1f}", c.x0(), Chart::y0());
    for (size_t i = 0; i < v.size(); ++i) {
      const double px = c.x0() + (Chart::x1() - c.x0()) * v[i] / hi;
      const double before = Chart::y0() - (Chart::y0() - Chart::y1()) * double(i) / double(v.size());
      const double after = Chart::y0() - (Chart::y0() - Chart::y1()) * double(i + 1) / double(v.size());
      points += fmt::format(" {:.1f},{:.1f} {:.1f},{:.1f}", px, before, px, after);
    }
    c.body += fmt::format("<polyline class='cdf' data-series='{}' points='{}' fill='none' stroke='{}' stroke-width='2'/>",
                          kSides[s], points, kColors[s]);
  }
  c.legend({{"baseline", kColors[0]}, {"candidate", kColors[1]}});
  return c.svg();
}

std::string throughput_bars(const json& report) {
  Chart c("throughput-bars", "Throughput");
  c.frame("", "tokens / s");
  double v[2] = {0, 0};
  for (int s = 0; s < 2; ++s) v[s] = report.contains(kSides[s]) ? num(report[kSides[s]], "tokens_per_s") : 0;
  const double hi = std::max(v[0], v[1]) * 1.15;
  if (hi <= 0) {
    c.note("no throughput recorded");
    return c.svg();
  }
  linear_ticks(c, 0, hi, false);
  const double slot = (Chart::x1() - c.x0()) / 2;
  for (int s = 0; s < 2; ++s) {
    const double h = (Chart::y0() - Chart::y1()) * v[s] / hi;
    const double x = c.x0() + slot * s + slot * 0.25;
    c.body += fmt::format("<rect class='bar' data-series='{}' x='{:.1f}' y='{:.1f}' width='{:.1f}' height='{:.1f}' "
                          "fill='{}'><title>{}: {} tok/s</title></rect>",
                          kSides[s], x, Chart::y0() - h, slot * 0.5, h, kColors[s], kSides[s], fmt_num(v[s]));
    c.body += fmt::format("<text x='{:.1f}' y='{:.1f}' class='tick' text-anchor='middle'>{} ({})</text>", x + slot * 0.25,
                          Chart::y0() + 14, kSides[s], fmt_num(v[s]));
  }
  return c.svg();
}

std::string op_breakdown(const json& report) {
  Chart c("op-breakdown", "Time per op (one profiled run)", 112);
  c.frame("ms", "");
  std::map<std::string, double> t[2];
  for (int s = 0; s < 2; ++s)
    if (report.contains(kSides[s]) && report[kSides[s]].contains("profile"))
      for (const json& op : report[kSides[s]]["profile"].value("ops", json::array()))
        t[s][op.value("name", "?")] += num(op, "seconds") * 1e3;
  std::vector<std::pair<double, std::string>> order;
  std::map<std::string, double> both;
  for (int s = 0; s < 2; ++s)
    for (auto& [name, ms] : t[s]) both[name] = std::max(both[name], ms);
  for (auto& [name, ms] : both) order.emplace_back(ms, name);
  std::sort(order.rbegin(), order.rend());
  if (order.size() > 8) order.resize(8);
  if (order.empty()) {
    c.note("no op profile recorded");
    return c.svg();
  }
  const double hi = order.front().first * 1.1;
  linear_ticks(c, 0, hi, true);
  const double row = (Chart::y0() - Chart::y1() - 24) / double(order.size());
  for (size_t i = 0; i < order.size(); ++i) {
    const std::string& name = order[i].second;
    const double y = Chart::y1() + 24 + row * double(i);
    c.body += fmt::format("<text x='{:.1f}' y='{:.1f}' class='tick' text-anchor='end'>{}</text>", c.x0() - 4,
                          y + row * 0.55, html_escape(name));
    for (int s = 0; s < 2; ++s) {
      const double ms = t[s].count(name) ? t[s][name] : 0;
      const double w = (Chart::x1() - c.x0()) * ms / hi;
      c.body += fmt::format("<rect class='op-bar' data-series='{}' x='{:.1f}' y='{:.1f}' width='{:.1f}' height='{:.1f}' "
                            "fill='{}'><title>{} {}: {} ms</title></rect>",
                            kSides[s], c.x0(), y + row * (0.1 + 0.4 * s), w, row * 0.38, kColors[s], kSides[s],
                            html_escape(name), fmt_num(ms));
    }
  }
  c.legend({{"baseline", kColors[0]}, {"candidate", kColors[1]}});
  return c.svg();
}

std::string roofline_plot(const json& report) {
  Chart c("roofline-plot", "Roofline: each op against the memory and compute roofs");
  c.frame("arithmetic intensity (FLOP/byte, log)", "achieved FLOP/s (log)");
  struct Point {
    double intensity, flops;
    int side;
    std::string label;
  };
  std::vector<Point> points;
  double peak[2] = {0, 0}, bw[2] = {0, 0};
  for (int s = 0; s < 2; ++s) {
    if (!report.contains(kSides[s]) || !report[kSides[s]].contains("profile")) continue;
    const json& p = report[kSides[s]]["profile"];
    if (p.contains("roofs")) peak[s] = num(p["roofs"], "peak_flops_per_s"), bw[s] = num(p["roofs"], "memory_bytes_per_s");
    for (const json& op : p.value("op_shapes", json::array())) {
      const double i = num(op, "intensity"), f = num(op, "flops_per_s");
      if (i > 0 && f > 0)
        points.push_back({i, f, s,
                          fmt::format("{} {} [{}]: {} FLOP/B, {} GFLOP/s, {} ms, {:.0f}% of roof", kSides[s],
                                      op.value("name", "?"), op.value("shape", ""), fmt_num(i), fmt_num(f / 1e9),
                                      fmt_num(num(op, "seconds") * 1e3), 100.0 * num(op, "roof_fraction"))});
    }
  }
  if (points.empty() && peak[0] <= 0 && peak[1] <= 0) {
    c.note("no op profile recorded");
    return c.svg();
  }
  // Axis ranges in decades, covering the points and the ridge points.
  double xlo = 1e300, xhi = 0, ylo = 1e300, yhi = 0;
  for (const Point& p : points) xlo = std::min(xlo, p.intensity), xhi = std::max(xhi, p.intensity),
                                ylo = std::min(ylo, p.flops), yhi = std::max(yhi, p.flops);
  for (int s = 0; s < 2; ++s)
    if (peak[s] > 0 && bw[s] > 0) {
      const double ridge = peak[s] / bw[s];
      xlo = std::min(xlo, ridge / 10), xhi = std::max(xhi, ridge * 10);
      ylo = std::min(ylo, peak[s] / 1e3), yhi = std::max(yhi, peak[s]);
    }
  const double lx0 = std::floor(std::log10(xlo)), lx1 = std::max(lx0 + 1, std::ceil(std::log10(xhi)));
  const double ly0 = std::floor(std::log10(ylo)), ly1 = std::max(ly0 + 1, std::ceil(std::log10(yhi * 1.5)));
  auto px = [&](double v) { return c.x0() + (Chart::x1() - c.x0()) * (std::log10(v) - lx0) / (lx1 - lx0); };
  auto py = [&](double v) { return Chart::y0() - (Chart::y0() - Chart::y1()) * (std::log10(v) - ly0) / (ly1 - ly0); };
  for (double d = lx0; d <= lx1; d += 1)
    c.body += fmt::format("<text x='{:.1f}' y='{:.1f}' class='tick' text-anchor='middle'>1e{}</text>", px(std::pow(10, d)),
                          Chart::y0() + 14, int(d));
  for (double d = ly0; d <= ly1; d += 1) {
    const double y = py(std::pow(10, d));
    c.body += fmt::format("<text x='{:.1f}' y='{:.1f}' class='tick' text-anchor='end'>1e{}</text>", c.x0() - 4, y + 4,
                          int(d));
    c.body += fmt::format("<line x1='{}' y1='{:.1f}' x2='{}' y2='{:.1f}' class='grid'/>", c.x0(), y, Chart::x1(), y);
  }
  // Roofs: FLOP/s = min(peak, bandwidth * intensity), drawn across the x range.
  for (int s = 0; s < 2; ++s) {
    if (peak[s] <= 0 || bw[s] <= 0 || (s == 1 && peak[1] == peak[0] && bw[1] == bw[0])) continue;
    const double xa = std::pow(10, lx0), xb = std::pow(10, lx1), ridge = peak[s] / bw[s];
    const std::string dash = s == 0 ? "" : " stroke-dasharray='6 3'";
    c.body += fmt::format("<line class='roof roof-memory' x1='{:.1f}' y1='{:.1f}' x2='{:.1f}' y2='{:.1f}' stroke='#444' "
                          "stroke-width='2'{}><title>memory roof: {} B/s</title></line>",
                          px(xa), py(bw[s] * xa), px(ridge), py(peak[s]), dash, fmt_num(bw[s]));
    c.body += fmt::format("<line class='roof roof-compute' x1='{:.1f}' y1='{:.1f}' x2='{:.1f}' y2='{:.1f}' stroke='#444' "
                          "stroke-width='2'{}><title>compute roof: {} FLOP/s</title></line>",
                          px(ridge), py(peak[s]), px(xb), py(peak[s]), dash, fmt_num(peak[s]));
  }
  for (const Point& p : points)
    c.body += fmt::format("<circle class='op-point' data-series='{}' cx='{:.1f}' cy='{:.1f}' r='4' fill='{}' "
                          "fill-opacity='0.75'><title>{}</title></circle>",
                          kSides[p.side], px(p.intensity), py(p.flops), kColors[p.side], html_escape(p.label));
  c.legend({{"baseline", kColors[0]}, {"candidate", kColors[1]}, {"roofs", "#444"}});
  return c.svg();
}

std::string summary_table(const json& report) {
  auto cell = [&](const char* side, const char* key, double scale, const char* unit) {
    if (!report.contains(side)) return std::string("-");
    const json& r = report[side];
    if (!r.contains(key) || !r[key].is_number()) return std::string("-");
    return fmt_num(r[key].get<double>() * scale) + unit;
  };
  auto latency = [&](const char* side, const char* q) {
    if (!report.contains(side) || !report[side].contains("latency_ms")) return std::string("-");
    return fmt_num(num(report[side]["latency_ms"], q)) + " ms";
  };
  std::string rows;
  auto row = [&](const std::string& name, const std::string& b, const std::string& c) {
    rows += "<tr><th>" + html_escape(name) + "</th><td>" + html_escape(b) + "</td><td>" + html_escape(c) + "</td></tr>";
  };
  auto args = [&](const char* side) {
    return report.contains(side) && report[side].is_object() ? report[side].value("args", std::string("-")) : "-";
  };
  row("configuration", args("baseline"), args("candidate"));
  row("throughput", cell("baseline", "tokens_per_s", 1, " tok/s"), cell("candidate", "tokens_per_s", 1, " tok/s"));
  row("latency p50", latency("baseline", "p50"), latency("candidate", "p50"));
  row("latency p95", latency("baseline", "p95"), latency("candidate", "p95"));
  row("peak memory", cell("baseline", "peak_memory_bytes", 1.0 / (1 << 20), " MiB"),
      cell("candidate", "peak_memory_bytes", 1.0 / (1 << 20), " MiB"));
  row("GPU utilisation", cell("baseline", "gpu_util_percent", 1, " %"), cell("candidate", "gpu_util_percent", 1, " %"));
  // The run's analytic floor (perf/run_estimate.h) and how far above it each side ran.
  auto estimate = [&](const char* side, const char* key, const char* unit) {
    if (!report.contains(side) || !report[side].contains("estimate")) return std::string("-");
    const json& e = report[side]["estimate"];
    if (e.is_object() && e.contains("error") && e["error"].is_string()) return "- (" + e["error"].get<std::string>() + ")";
    if (!e.is_object() || !e.contains(key) || !e[key].is_number()) return std::string("-");
    return fmt_num(e[key].get<double>()) + unit;
  };
  row("estimate (floor)", estimate("baseline", "total_ms", " ms"), estimate("candidate", "total_ms", " ms"));
  row("measured / estimate", estimate("baseline", "measured_over_estimate", "x"),
      estimate("candidate", "measured_over_estimate", "x"));
  if (report.contains("quality") && report["quality"].is_object()) {
    const json& q = report["quality"];
    row("perplexity", fmt_num(num(q, "ppl_baseline")), fmt_num(num(q, "ppl_candidate")));
    row("KL vs baseline (nats)", "", fmt_num(num(q, "kl")));
    row("top-1 agreement", "", fmt::format("{:.1f} %", 100.0 * num(q, "top1_agreement")));
  }
  return "<table><tr><th></th><th>baseline</th><th>candidate</th></tr>" + rows + "</table>";
}

}  // namespace

std::string render_report_html(const json& report) {
  const std::string decision = report.value("decision", std::string("review"));
  std::string reasons;
  for (const json& r : report.value("reasons", json::array()))
    if (r.is_string()) reasons += "<li>" + html_escape(r.get<std::string>()) + "</li>";
  std::string data = report.dump();
  // Inside <script>, "</" must not appear literally.
  for (size_t at = 0; (at = data.find("</", at)) != std::string::npos; at += 3) data.replace(at, 2, "<\\/");
  return fmt::format(R"(<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>roofline report: {decision}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 24px; color: #222; background: #fff; }}
h1 {{ font-size: 22px; margin: 0 0 8px; }}
.decision {{ display: inline-block; padding: 4px 12px; border-radius: 4px; color: #fff; font-weight: bold; }}
.accept {{ background: #2ca02c; }} .reject {{ background: #d62728; }} .review {{ background: #b8860b; }}
table {{ border-collapse: collapse; margin: 12px 0; }}
th, td {{ border: 1px solid #ccc; padding: 4px 10px; text-align: left; font-size: 14px; }}
.charts {{ display: flex; flex-wrap: wrap; gap: 16px; }}
svg.chart {{ border: 1px solid #ddd; background: #fafafa; }}
svg .title {{ font-size: 14px; font-weight: bold; text-anchor: middle; }}
svg .axis {{ font-size: 12px; text-anchor: middle; fill: #333; }}
svg .tick, svg .legend {{ font-size: 10px; fill: #333; }}
svg .note {{ font-size: 13px; text-anchor: middle; fill: #888; }}
svg .frame {{ fill: #fff; stroke: #999; }}
svg .grid {{ stroke: #eee; }}
</style></head>
<body>
<h1>roofline report <span id="decision" class="decision {decision}">{decision}</span></h1>
<ul id="reasons">{reasons}</ul>
{table}
<div class="charts">
{cdf}
{bars}
{ops}
{roofline}
</div>
<script type="application/json" id="report-data">{data}</script>
</body></html>
)",
                     fmt::arg("decision", html_escape(decision)), fmt::arg("reasons", reasons),
                     fmt::arg("table", summary_table(report)), fmt::arg("cdf", latency_cdf(report)),
                     fmt::arg("bars", throughput_bars(report)), fmt::arg("ops", op_breakdown(report)),
                     fmt::arg("roofline", roofline_plot(report)), fmt::arg("data", data));
}

}  // namespace roofline::perf
