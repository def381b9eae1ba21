// The serving benchmark's pieces: percentiles, seeded length distributions and Poisson arrivals (checked
// statistically), SSE parsing of a recorded stream split at every byte, Prometheus scraping, prompts, the
// SVG plot, and one short run of the load generator against the real HTTP server on a fixture model.
#include "roofline/server/load_generator.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numeric>

#include "roofline/core/error.h"
#include "roofline/server/http_server.h"
#include "roofline/server/latency_plot.h"
#include "roofline/server/load_stats.h"
#include "server_test_support.h"

namespace roofline::server {
namespace {

double mean_of(const std::vector<double>& v) { return std::accumulate(v.begin(), v.end(), 0.0) / double(v.size()); }
double variance_of(const std::vector<double>& v) {
  const double m = mean_of(v);
  double sum = 0;
  for (double x : v) sum += (x - m) * (x - m);
  return sum / double(v.size() - 1);
}

// ---- percentiles ----

TEST(Percentile, LinearInterpolationBetweenClosestRanks) {
  EXPECT_EQ(percentile({}, 0.5), 0);
  EXPECT_EQ(percentile({7}, 0.99), 7);
  EXPECT_DOUBLE_EQ(percentile({3, 1, 2, 4}, 0.5), 2.5);  // unsorted input
  EXPECT_DOUBLE_EQ(percentile({1, 2, 3, 4}, 0.0), 1);
  EXPECT_DOUBLE_EQ(percentile({1, 2, 3, 4}, 1.0), 4);
  std::vector<double> hundred(100);
  std::iota(hundred.begin(), hundred.end(), 1.0);  // 1..100
  EXPECT_DOUBLE_EQ(percentile(hundred, 0.50), 50.5);
  EXPECT_NEAR(percentile(hundred, 0.95), 95.05, 1e-9);  // numpy.percentile(range(1, 101), 95)
  EXPECT_NEAR(percentile(hundred, 0.99), 99.01, 1e-9);
}

// Decode-only steps are split by the batch that ran them: intervals between /metrics samples with no prompt
// step, at >= half the peak of running sequences (the mean of the two samples) or below.
TEST(LoadSummary, DecodeOnlyStepsByBatch) {
  LoadResult result;
  auto sample = [&](int running, int64_t steps, double model_s, int64_t prefill_steps) {
    KvSample k;
    k.running = running;
    k.engine_steps = steps;
    k.engine_model_s = model_s;
    k.engine_prefill_steps = prefill_steps;
    result.kv.push_back(k);
  };
  sample(0, 0, 0.0, 0);
  sample(100, 2, 0.8, 2);    // prompt steps ran: left out
  sample(100, 12, 1.8, 2);   // full: 10 steps, 1.0 s
  sample(100, 22, 2.8, 2);   // full: 10 steps, 1.0 s
  sample(10, 32, 3.1, 2);    // 55 running on average: full, 10 steps, 0.3 s
  sample(10, 52, 3.5, 2);    // fewer: 20 steps, 0.4 s
  sample(0, 52, 3.5, 2);     // no step
  const LoadSummary s = summarize(result);
  EXPECT_EQ(s.max_running, 100);
  EXPECT_EQ(s.decode_full.steps, 30);
  EXPECT_NEAR(s.decode_full.model_s, 2.3, 1e-12);
  EXPECT_NEAR(s.decode_full.ms_each(), 2300.0 / 30, 1e-9);
  EXPECT_NEAR(s.decode_full.mean_running(), 85.0, 1e-12);
  EXPECT_EQ(s.decode_partial.steps, 20);
  EXPECT_NEAR(s.decode_partial.ms_each(), 20.0, 1e-9);
  EXPECT_NEAR(s.decode_partial.mean_running(), 10.0, 1e-12);
  const nlohmann::json j = to_json(result, s);
  EXPECT_EQ(j["engine"]["decode_full"]["steps"], 30);
  EXPECT_NEAR(j["engine"]["decode_partial"]["ms_each"].get<double>(), 20.0, 1e-9);
  EXPECT_EQ(j["kv"]["samples"][2]["engine_steps"], 12);
}

TEST(Percentile, SummaryIsOrdered) {
  std::mt19937_64 rng(3);
  std::lognormal_distribution<double> latency(0, 1);
  std::vector<double> v(1000);
  for (double& x : v) x = latency(rng);
  const Summary s = summarize(v);
  EXPECT_EQ(s.count, 1000);
  EXPECT_LE(s.min, s.p50);
  EXPECT_LE(s.p50, s.p95);
  EXPECT_LE(s.p95, s.p99);
  EXPECT_LE(s.p99, s.max);
  EXPECT_NEAR(s.mean, mean_of(v), 1e-12);
  EXPECT_EQ(summarize(std::vector<double>{}).count, 0);
}

// ---- length distributions ----

std::vector<double> draws(const LengthDistribution& d, int n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<double> v(static_cast<size_t>(n));
  for (double& x : v) x = d.sample(rng);
  return v;
}

TEST(LengthDistribution, Fixed) {
  const LengthDistribution d = LengthDistribution::parse("128");
  EXPECT_EQ(d.kind(), LengthDistribution::Kind::kFixed);
  for (double x : draws(d, 100, 1)) EXPECT_EQ(x, 128);
  EXPECT_EQ(d.describe(), "128");
  EXPECT_EQ(d.max_value(), 128);
}

TEST(LengthDistribution, UniformMeanAndVariance) {
  const LengthDistribution d = LengthDistribution::parse("uniform:64:256");
  const std::vector<double> v = draws(d, 100000, 7);
  for (double x : v) ASSERT_TRUE(x >= 64 && x <= 256 && x == std::floor(x));
  const double n = 256 - 64 + 1;  // discrete uniform: variance (n^2 - 1) / 12
  EXPECT_NEAR(mean_of(v), 160, 0.01 * 160);
  EXPECT_NEAR(variance_of(v), (n * n - 1) / 12, 0.03 * (n * n - 1) / 12);
  EXPECT_EQ(*std::min_element(v.begin(), v.end()), 64);
  EXPECT_EQ(*std::max_element(v.begin(), v.end()), 256);
  EXPECT_DOUBLE_EQ(d.mean(), 160);
}

TEST(LengthDistribution, NormalMeanAndStddevAndClamp) {
  const LengthDistribution d = LengthDistribution::parse("normal:512:64");
  const std::vector<double> v = draws(d, 100000, 11);
  EXPECT_NEAR(mean_of(v), 512, 0.01 * 512);
  EXPECT_NEAR(std::sqrt(variance_of(v)), 64, 0.03 * 64);
  EXPECT_EQ(d.max_value(), 512 + 4 * 64);
  // A wide one is clamped to [1, mean + 4 sd].
  for (double x : draws(LengthDistribution::parse("normal:10:20"), 10000, 2)) ASSERT_TRUE(x >= 1 && x <= 90);
}

TEST(LengthDistribution, ExponentialMean) {
  const std::vector<double> v = draws(LengthDistribution::parse("exponential:200"), 100000, 5);
  EXPECT_NEAR(mean_of(v), 200, 0.03 * 200);  // the clamp at 10x the mean cuts e^-10 of the mass
  EXPECT_LE(*std::max_element(v.begin(), v.end()), 2000);
}

TEST(LengthDistribution, SameSeedSameDraws) {
  const LengthDistribution d = LengthDistribution::parse("normal:100:30");
  EXPECT_EQ(draws(d, 50, 9), draws(d, 50, 9));
  EXPECT_NE(draws(d, 50, 9), draws(d, 50, 10));
}

TEST(LengthDistribution, BadSpecsSayWhy) {
  for (const char* bad : {"", "0", "-5", "12.5", "abc", "uniform:10", "uniform:20:10", "uniform:0:5", "normal:100",
                          "normal:100:-1", "poisson:3", "exponential:0", "128x"})
    EXPECT_THROW(LengthDistribution::parse(bad), Error) << bad;
  try {
    LengthDistribution::parse("gamma:1:2");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("unknown distribution 'gamma'"), std::string::npos) << e.what();
  }
}

// ---- arrivals ----

TEST(ArrivalTimes, BurstIsAllAtZero) {
  for (double x : arrival_times(10, 0, 1)) EXPECT_EQ(x, 0);
  for (double x : arrival_times(10, INFINITY, 1)) EXPECT_EQ(x, 0);
  EXPECT_TRUE(arrival_times(0, 5, 1).empty());
  EXPECT_THROW(arrival_times(3, -1, 1), Error);
}

TEST(ArrivalTimes, PoissonInterArrivalStatistics) {
  const double rate = 5;
  const std::vector<double> t = arrival_times(50000, rate, 42);
  ASSERT_TRUE(std::is_sorted(t.begin(), t.end()));
  std::vector<double> gaps(t.size());
  std::adjacent_difference(t.begin(), t.end(), gaps.begin());  // the first gap is t[0] itself
  for (double g : gaps) ASSERT_GE(g, 0);
  // Exponential gaps: mean 1/rate, standard deviation 1/rate, P(gap > mean) = e^-1.
  EXPECT_NEAR(mean_of(gaps), 1 / rate, 0.02 / rate);
  EXPECT_NEAR(std::sqrt(variance_of(gaps)), 1 / rate, 0.03 / rate);
  const double above = double(std::count_if(gaps.begin(), gaps.end(), [&](double g) { return g > 1 / rate; }));
  EXPECT_NEAR(above / double(gaps.size()), std::exp(-1.0), 0.01);
  // Counts per one-second window are Poisson(rate): mean and variance both equal the rate.
  std::vector<double> counts(size_t(t.back()), 0.0);
  for (double x : t)
    if (size_t(x) < counts.size()) counts[size_t(x)] += 1;
  EXPECT_NEAR(mean_of(counts), rate, 0.03 * rate);
  EXPECT_NEAR(variance_of(counts), rate, 0.08 * rate);
  EXPECT_EQ(arrival_times(20, rate, 42), std::vector<double>(t.begin(), t.begin() + 20));  // seeded
}

// ---- SSE ----

// A /v1/completions stream as `roofline serve` sent it (qwen3-f32 fixture, prompt "Hello", max_tokens 3,
// stream_options.include_usage, ignore_eos), recorded with curl; the third token decodes to U+FFFD.
const std::string kRecordedStream =
    R"(data: {"id":"cmpl-dd32de6e2ce9a69400000000","object":"text_completion","created":1795320546,"model":"qwen3-f32","system_fingerprint":null,"choices":[{"text":"S","index":0,"logprobs":null,"finish_reason":null}],"usage":null})"
    "\n\n"
    R"(data: {"id":"cmpl-dd32de6e2ce9a69400000000","object":"text_completion","created":1795320546,"model":"qwen3-f32","system_fingerprint":null,"choices":[{"text":" le","index":0,"logprobs":null,"finish_reason":null}],"usage":null})"
    "\n\n"
    R"(data: {"id":"cmpl-dd32de6e2ce9a69400000000","object":"text_completion","created":1795320546,"model":"qwen3-f32","system_fingerprint":null,"choices":[{"text":")"
    "\xEF\xBF\xBD"
    R"(","index":0,"logprobs":null,"finish_reason":null}],"usage":null})"
    "\n\n"
    R"(data: {"id":"cmpl-dd32de6e2ce9a69400000000","object":"text_completion","created":1795320546,"model":"qwen3-f32","system_fingerprint":null,"choices":[{"text":"","index":0,"logprobs":null,"finish_reason":"length"}],"usage":null})"
    "\n\n"
    R"(data: {"id":"cmpl-dd32de6e2ce9a69400000000","object":"text_completion","created":1795320546,"model":"qwen3-f32","system_fingerprint":null,"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":3,"total_tokens":6}})"
    "\n\n"
    "data: [DONE]\n\n";

TEST(SseParser, RecordedStreamSplitAtEveryByte) {
  std::vector<std::string> whole;
  SseParser().feed(kRecordedStream, whole);
  ASSERT_EQ(whole.size(), 6u);
  EXPECT_EQ(whole.back(), "[DONE]");
  EXPECT_EQ(nlohmann::json::parse(whole[1])["choices"][0]["text"], " le");
  EXPECT_EQ(nlohmann::json::parse(whole[2])["choices"][0]["text"], "\xEF\xBF\xBD");
  EXPECT_EQ(nlohmann::json::parse(whole[4])["usage"]["completion_tokens"], 3);
  // Network reads cut anywhere: two pieces at every split point, then one byte at a time.
  for (size_t cut = 0; cut <= kRecordedStream.size(); ++cut) {
    SseParser parser;
    std::vector<std::string> events;
    parser.feed(std::string_view(kRecordedStream).substr(0, cut), events);
    parser.feed(std::string_view(kRecordedStream).substr(cut), events);
    ASSERT_EQ(events, whole) << "cut at " << cut;
  }
  SseParser parser;
  std::vector<std::string> events;
  for (char c : kRecordedStream) parser.feed(std::string_view(&c, 1), events);
  EXPECT_EQ(events, whole);
}

TEST(SseParser, CrlfCommentsFieldsAndMultilineData) {
  SseParser parser;
  std::vector<std::string> events;
  parser.feed(": keep-alive\r\n\r\nevent: message\r\nid: 7\r\ndata: a\r\ndata:b\r\n\r\ndata: c\rdata: d\r\r", events);
  EXPECT_EQ(events, (std::vector<std::string>{"a\nb", "c\nd"}));
  parser.feed("data: incomplete", events);
  EXPECT_EQ(events.size(), 2u);  // no blank line yet
  parser.feed("\n\n", events);
  EXPECT_EQ(events.back(), "incomplete");
  // A newline inside a JSON string is escaped ("\\n"), so it does not end the line.
  parser.feed(R"(data: {"text":" cat\ndata: x"})"
              "\n\n",
              events);
  EXPECT_EQ(nlohmann::json::parse(events.back())["text"], " cat\ndata: x");
}

// ---- /metrics ----

TEST(PrometheusValue, ReadsTheServersGauges) {
  Metrics metrics;
  const std::string text = metrics.render({.running = 3, .waiting = 2, .kv_blocks_used = 17, .kv_blocks_total = 64});
  EXPECT_EQ(prometheus_value(text, "roofline_kv_blocks_used"), 17);
  EXPECT_EQ(prometheus_value(text, "roofline_kv_blocks_total"), 64);
  EXPECT_EQ(prometheus_value(text, "roofline_requests_running"), 3);
  EXPECT_EQ(prometheus_value(text, "roofline_requests_waiting"), 2);
  EXPECT_FALSE(prometheus_value(text, "roofline_kv_blocks"));  // a prefix of a name is not the name
  EXPECT_FALSE(prometheus_value(text, "no_such_metric"));
}

// ---- prompts ----

TEST(Prompts, RandomTokensHaveTheDrawnLengthsAndNoSpecialTokens) {
  const Tokenizer tokenizer = Tokenizer::from_path(test::fixture_model());
  const auto prompts = random_token_prompts(200, LengthDistribution::parse("uniform:5:40"),
                                            LengthDistribution::parse("normal:20:5"), tokenizer, 3);
  ASSERT_EQ(prompts.size(), 200u);
  for (const BenchPrompt& p : prompts) {
    ASSERT_GE(p.ids.size(), 5u);
    ASSERT_LE(p.ids.size(), 40u);
    ASSERT_GE(p.max_tokens, 1);
    for (int32_t id : p.ids) {
      ASSERT_TRUE(id >= 0 && id < tokenizer.vocab_size());
      ASSERT_FALSE(tokenizer.is_special(id));
    }
  }
  const auto again = random_token_prompts(200, LengthDistribution::parse("uniform:5:40"),
                                          LengthDistribution::parse("normal:20:5"), tokenizer, 3);
  EXPECT_EQ(again[17].ids, prompts[17].ids);
}

TEST(Prompts, TextWindowsOrLines) {
  const Tokenizer tokenizer = Tokenizer::from_path(test::fixture_model());
  const std::string text = "The quick brown fox jumps over the lazy dog.\n\nA second line of text here.\n";
  const auto windows =
      text_prompts(10, text, LengthDistribution::fixed(6), LengthDistribution::fixed(4), &tokenizer, 1);
  const std::vector<int32_t> all = tokenizer.encode(text, false);
  for (const BenchPrompt& p : windows) {
    ASSERT_EQ(p.ids.size(), 6u);
    EXPECT_NE(std::search(all.begin(), all.end(), p.ids.begin(), p.ids.end()), all.end());  // a real window
    EXPECT_EQ(p.max_tokens, 4);
  }
  const auto lines = text_prompts(5, text, LengthDistribution::fixed(6), LengthDistribution::fixed(4), nullptr, 1);
  for (const BenchPrompt& p : lines) {
    EXPECT_TRUE(p.ids.empty());
    EXPECT_TRUE(p.text == "The quick brown fox jumps over the lazy dog." || p.text == "A second line of text here.")
        << p.text;
  }
  EXPECT_THROW(text_prompts(1, "\n \n", LengthDistribution::fixed(6), LengthDistribution::fixed(4), nullptr, 1), Error);
}

// ---- plot ----

TEST(LatencyPlot, LabelledAxesAndOnePointPerLoad) {
  EXPECT_EQ(nice_tick_step(100, 5), 20);
  EXPECT_EQ(nice_tick_step(7, 5), 2);
  EXPECT_NEAR(nice_tick_step(0.3, 5), 0.1, 1e-12);
  const std::string svg = latency_vs_load_svg(
      {{"2 req/s", 80, 10, 15, 5, 6}, {"1 req/s", 40, 8, 9, 4, 4.5}, {"burst", 120, 300, 600, 9, 14}},
      "model <x>: latency");
  EXPECT_EQ(svg.rfind("<svg", 0), 0u);
  EXPECT_NE(svg.find("</svg>"), std::string::npos);
  EXPECT_NE(svg.find("output throughput (tok/s)"), std::string::npos);
  EXPECT_NE(svg.find("TTFT (ms)"), std::string::npos);
  EXPECT_NE(svg.find("TPOT (ms)"), std::string::npos);
  EXPECT_NE(svg.find("model &lt;x&gt;: latency"), std::string::npos);  // escaped
  size_t circles = 0;
  for (size_t at = svg.find("<circle"); at != std::string::npos; at = svg.find("<circle", at + 1)) ++circles;
  EXPECT_EQ(circles, 3u * 4u);  // 3 loads x (TTFT, TPOT) x (p50, p95)
}

// ---- the whole loop against the real server ----

TEST(LoadGenerator, BurstAgainstTheServerCompletesEveryRequest) {
  test::EngineHarness harness;
  ServedModel model{.name = "qwen3-f32",
                    .tokenizer = &harness.tokenizer,
                    .chat_template = nullptr,
                    .context_length = 256,
                    .vocab_size = 384,
                    .generation = {}};
  HttpServerConfig http;
  http.port = 0;
  http.api_key = "k";
  HttpServer server(harness.engine, model, harness.metrics, http);
  const int port = server.bind();
  harness.engine.start();
  std::thread listener([&] { server.run(); });
  ASSERT_TRUE(test::eventually([&] { return server_healthy("127.0.0.1", port); }));

  const ServedModelInfo info = probe_server("127.0.0.1", port, "k");
  EXPECT_EQ(info.id, "qwen3-f32");
  EXPECT_EQ(info.max_model_len, 256);
  EXPECT_THROW(probe_server("127.0.0.1", port, "wrong"), Error);

  LoadConfig config;
  config.port = port;
  config.api_key = "k";
  config.model = info.id;
  config.concurrency = 4;
  config.metrics_interval_s = 0.01;
  const auto prompts = random_token_prompts(8, LengthDistribution::parse("uniform:4:24"), LengthDistribution::fixed(12),
                                            harness.tokenizer, 1);
  const LoadResult result = run_load(config, prompts);
  ASSERT_EQ(result.records.size(), 8u);
  for (const RequestRecord& r : result.records) {
    EXPECT_TRUE(r.ok()) << r.status << " " << r.error;
    EXPECT_EQ(r.output_tokens, 12);  // ignore_eos: every output reaches max_tokens
    EXPECT_EQ(r.prompt_tokens, int(prompts[size_t(r.index)].ids.size()));
    EXPECT_EQ(r.finish_reason, "length");
    EXPECT_GE(r.ttft_s, 0);
    EXPECT_LE(r.ttft_s, r.e2e_s);
    EXPECT_GT(r.tpot_s, 0);
    EXPECT_GE(r.sent_s, r.scheduled_s);
  }
  EXPECT_FALSE(result.kv.empty());
  const LoadSummary s = summarize(result);
  EXPECT_EQ(s.completed, 8);
  EXPECT_EQ(s.failed, 0);
  EXPECT_EQ(s.output_tokens, 8 * 12);
  EXPECT_GT(s.output_throughput, 0);
  EXPECT_LE(s.ttft_ms.p50, s.ttft_ms.p95);
  EXPECT_LE(s.max_running, 4 + 1);  // the concurrency cap held (a sample may straddle a hand-over)
  const nlohmann::json j = to_json(result, s);
  EXPECT_EQ(j["requests"]["completed"], 8);
  EXPECT_EQ(j["records"].size(), 8u);

  // A wrong key: every request fails with 401, recorded rather than thrown.
  config.api_key = "wrong";
  const LoadSummary denied =
      summarize(run_load(config, std::vector<BenchPrompt>(prompts.begin(), prompts.begin() + 2)));
  EXPECT_EQ(denied.failed, 2);
  EXPECT_EQ(denied.failures.at("401"), 2);

  server.stop();
  listener.join();
  harness.engine.stop();
}

}  // namespace
}  // namespace roofline::server
