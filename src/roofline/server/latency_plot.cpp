#include "roofline/server/latency_plot.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

namespace roofline::server {

double nice_tick_step(double range, int target_ticks) {
  const double raw = range / std::max(target_ticks, 1);
  const double magnitude = std::pow(10.0, std::floor(std::log10(raw)));
  for (double m : {1.0, 2.0, 5.0})
    if (m * magnitude >= raw) return m * magnitude;
  return 10 * magnitude;
}

namespace {

std::string escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '<')
      out += "&lt;";
    else if (c == '>')
      out += "&gt;";
    else if (c == '&')
      out += "&amp;";
    else if (c == '"')
      out += "&quot;";
    else
      out += c;
  }
  return out;
}

std::string number(double v) {
  if (v == 0) return "0";
  if (std::abs(v) >= 100) return fmt::format("{:.0f}", v);
  if (std::abs(v) >= 1) return fmt::format("{:.3g}", v);
  return fmt::format("{:.2g}", v);
}

// An axis from 0 to a tick at or above `max_value`.
struct Axis {
  double step, top;
  explicit Axis(double max_value) {
    if (!(max_value > 0)) max_value = 1;
    step = nice_tick_step(max_value, 5);
    top = std::ceil(max_value / step) * step;
  }
};

struct Panel {
  double x, y, width, height;  // the plotting area, in SVG pixels
};

void draw_panel(std::string& svg, const Panel& p, const std::vector<LoadPoint>& points, const Axis& xa,
                const std::string& y_label, double LoadPoint::*p50, double LoadPoint::*p95) {
  double y_max = 0;
  for (const LoadPoint& pt : points) y_max = std::max({y_max, pt.*p50, pt.*p95});
  const Axis ya(y_max * 1.05);
  auto sx = [&](double v) { return p.x + v / xa.top * p.width; };
  auto sy = [&](double v) { return p.y + p.height - v / ya.top * p.height; };

  // Grid, ticks and tick labels.
  for (double v = 0; v <= ya.top + ya.step / 2; v += ya.step) {
    svg += fmt::format(R"(<line x1="{:.1f}" y1="{:.1f}" x2="{:.1f}" y2="{:.1f}" stroke="#ddd"/>)"
                       "\n",
                       p.x, sy(v), p.x + p.width, sy(v));
    svg += fmt::format(R"(<text x="{:.1f}" y="{:.1f}" text-anchor="end" font-size="11">{}</text>)"
                       "\n",
                       p.x - 6, sy(v) + 4, number(v));
  }
  for (double v = 0; v <= xa.top + xa.step / 2; v += xa.step) {
    svg += fmt::format(R"(<line x1="{:.1f}" y1="{:.1f}" x2="{:.1f}" y2="{:.1f}" stroke="#eee"/>)"
                       "\n",
                       sx(v), p.y, sx(v), p.y + p.height);
    svg += fmt::format(R"(<text x="{:.1f}" y="{:.1f}" text-anchor="middle" font-size="11">{}</text>)"
                       "\n",
                       sx(v), p.y + p.height + 16, number(v));
  }
  svg += fmt::format(R"(<rect x="{:.1f}" y="{:.1f}" width="{:.1f}" height="{:.1f}" fill="none" stroke="#333"/>)"
                     "\n",
                     p.x, p.y, p.width, p.height);
  // Axis labels.
  svg +=
      fmt::format(R"(<text x="{:.1f}" y="{:.1f}" text-anchor="middle" font-size="12">output throughput (tok/s)</text>)"
                  "\n",
                  p.x + p.width / 2, p.y + p.height + 36);
  svg += fmt::format(
      R"svg(<text x="{:.1f}" y="{:.1f}" text-anchor="middle" font-size="12" transform="rotate(-90 {:.1f} {:.1f})">{}</text>)svg"
      "\n",
      p.x - 48, p.y + p.height / 2, p.x - 48, p.y + p.height / 2, escape(y_label));

  // The two series: p50 solid, p95 dashed; a dot and the offered load at every point.
  auto series = [&](double LoadPoint::*field, const char* color, const char* dash) {
    std::string path;
    for (const LoadPoint& pt : points)
      path += fmt::format("{}{:.1f},{:.1f}", path.empty() ? "" : " ", sx(pt.output_throughput), sy(pt.*field));
    svg += fmt::format(R"(<polyline points="{}" fill="none" stroke="{}" stroke-width="2"{}/>)"
                       "\n",
                       path, color, dash);
    for (const LoadPoint& pt : points)
      svg += fmt::format(R"(<circle cx="{:.1f}" cy="{:.1f}" r="3" fill="{}"/>)"
                         "\n",
                         sx(pt.output_throughput), sy(pt.*field), color);
  };
  series(p95, "#d62728", R"( stroke-dasharray="6 4")");
  series(p50, "#1f77b4", "");
  for (const LoadPoint& pt : points)
    svg += fmt::format(R"(<text x="{:.1f}" y="{:.1f}" font-size="10" fill="#555">{}</text>)"
                       "\n",
                       sx(pt.output_throughput) + 5, sy(pt.*p95) - 6, escape(pt.label));
  // Legend.
  const double lx = p.x + 10, ly = p.y + 14;
  svg += fmt::format(R"(<line x1="{:.1f}" y1="{:.1f}" x2="{:.1f}" y2="{:.1f}" stroke="#1f77b4" stroke-width="2"/>)"
                     R"(<text x="{:.1f}" y="{:.1f}" font-size="11">p50</text>)"
                     "\n",
                     lx, ly, lx + 24, ly, lx + 30, ly + 4);
  svg += fmt::format(
      R"(<line x1="{:.1f}" y1="{:.1f}" x2="{:.1f}" y2="{:.1f}" stroke="#d62728" stroke-width="2" stroke-dasharray="6 4"/>)"
      R"(<text x="{:.1f}" y="{:.1f}" font-size="11">p95</text>)"
      "\n",
      lx, ly + 16, lx + 24, ly + 16, lx + 30, ly + 20);
}

}  // namespace

std::string latency_vs_load_svg(std::vector<LoadPoint> points, const std::string& title) {
  std::sort(points.begin(), points.end(),
            [](const LoadPoint& a, const LoadPoint& b) { return a.output_throughput < b.output_throughput; });
  double x_max = 0;
  for (const LoadPoint& pt : points) x_max = std::max(x_max, pt.output_throughput);
  const Axis xa(x_max * 1.05);
  const double width = 960, height = 420;
  std::string svg = fmt::format(
      R"(<svg xmlns="http://www.w3.org/2000/svg" width="{:.0f}" height="{:.0f}" viewBox="0 0 {:.0f} {:.0f}" font-family="sans-serif">)"
      "\n"
      R"(<rect width="100%" height="100%" fill="white"/>)"
      "\n"
      R"(<text x="{:.0f}" y="22" text-anchor="middle" font-size="15">{}</text>)"
      "\n",
      width, height, width, height, width / 2, escape(title));
  draw_panel(svg, {80, 45, 360, 310}, points, xa, "TTFT (ms)", &LoadPoint::ttft_p50_ms, &LoadPoint::ttft_p95_ms);
  draw_panel(svg, {570, 45, 360, 310}, points, xa, "TPOT (ms)", &LoadPoint::tpot_p50_ms, &LoadPoint::tpot_p95_ms);
  svg += "</svg>\n";
  return svg;
}

}  // namespace roofline::server
