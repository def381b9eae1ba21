// The report page: self-contained, the four charts present, text escaped.
#include <gtest/gtest.h>

#include "perf_test_util.h"
#include "roofline/perf/report_html.h"

namespace roofline::perf {
namespace {

nlohmann::json side(double tps, std::vector<double> latencies) {
  nlohmann::json op_shape = {{"name", "matmul"},  {"shape", "M=1 N=8 K=8 bf16"}, {"seconds", 0.002},
                             {"intensity", 0.9},  {"flops_per_s", 5e9},           {"roof_fraction", 0.4}};
  return {{"args", "-m DIR --threads 1"},
          {"tokens_per_s", tps},
          {"latencies_ms", latencies},
          {"latency_ms", {{"p50", 1.0}, {"p95", 2.0}}},
          {"peak_memory_bytes", 64.0 * (1 << 20)},
          {"profile",
           {{"roofs", {{"peak_flops_per_s", 1e11}, {"memory_bytes_per_s", 1e10}}},
            {"ops", {{{"name", "matmul"}, {"seconds", 0.002}}, {{"name", "rms_norm"}, {"seconds", 0.0005}}}},
            {"op_shapes", {op_shape}}}}};
}

TEST(ReportHtml, HasEveryChartAndNoExternalResources) {
  nlohmann::json report = {{"baseline", side(100, {1, 2, 3})},
                           {"candidate", side(120, {0.8, 1.5, 2.5})},
                           {"quality", {{"ppl_baseline", 10.0}, {"ppl_candidate", 10.1}, {"kl", 0.001}, {"top1_agreement", 0.98}}},
                           {"decision", "accept"},
                           {"reasons", {"speedup 1.2x <meets> the bar"}}};
  const std::string html = render_report_html(report);
  for (const char* id : {"id='latency-cdf'", "id='throughput-bars'", "id='op-breakdown'", "id='roofline-plot'",
                         "class='cdf'", "class='bar'", "class='op-bar'", "class='op-point'", "roof-memory",
                         "roof-compute", "id=\"report-data\"", "decision accept"})
    EXPECT_HAS(html, id);
  EXPECT_HAS(html, "&lt;meets&gt;");  // reasons are escaped
  EXPECT_HAS(html, "<th>estimate (floor)</th><td>-</td>");  // no estimate in these sides
  // The only URL is the SVG namespace (a name, never fetched).
  size_t urls = 0, namespaces = 0;
  for (size_t at = 0; (at = html.find("http", at)) != std::string::npos; ++at) ++urls;
  for (size_t at = 0; (at = html.find("http://www.w3.org/2000/svg", at)) != std::string::npos; ++at) ++namespaces;
  EXPECT_EQ(urls, namespaces) << "no network resources in the page";
  EXPECT_EQ(html.find("<link"), std::string::npos);
  EXPECT_EQ(html.find("src="), std::string::npos);
}

TEST(ReportHtml, ShowsEachSidesEstimateAndRatio) {
  nlohmann::json report = {{"baseline", side(100, {1, 2})}, {"candidate", side(120, {1, 2})}, {"decision", "accept"}};
  report["baseline"]["estimate"] = {{"total_ms", 12.5}, {"measured_over_estimate", 1.25}};
  report["candidate"]["estimate"] = {{"error", "no figures for that hardware"}};
  const std::string html = render_report_html(report);
  EXPECT_HAS(html, "<th>estimate (floor)</th><td>12.5 ms</td><td>- (no figures for that hardware)</td>");
  EXPECT_HAS(html, "<th>measured / estimate</th><td>1.25x</td><td>- (no figures for that hardware)</td>");
}

TEST(ReportHtml, EmbeddedJsonCannotCloseItsScript) {
  nlohmann::json report = {{"decision", "review"}, {"reasons", {"</script><b>x"}}};
  const std::string html = render_report_html(report);
  const size_t data = html.find("id=\"report-data\">");
  ASSERT_NE(data, std::string::npos);
  const size_t close = html.find("</script>", data);
  EXPECT_EQ(html.find("</script><b>", data), std::string::npos);
  EXPECT_NE(close, std::string::npos);
}

TEST(ReportHtml, MissingDataLeavesANote) {
  const std::string html = render_report_html(nlohmann::json::object());
  EXPECT_HAS(html, "no latencies recorded");
  EXPECT_HAS(html, "no op profile recorded");
  EXPECT_HAS(html, "id='roofline-plot'");
}

TEST(ReportHtml, Escape) { EXPECT_EQ(html_escape("<a href=\"x\">'&'</a>"), "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"); }

}  // namespace
}  // namespace roofline::perf
