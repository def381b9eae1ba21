#include "roofline/server/metrics.h"

#include <algorithm>

#include <fmt/format.h>

namespace roofline::server {

namespace {
// The shortest text that reads back as the same double ("0.1", "1", "2.5e-05"), as Prometheus parses it.
std::string number(double v) { return fmt::format("{}", v); }

void header(std::string& out, std::string_view name, std::string_view type, std::string_view help) {
  out += fmt::format("# HELP {} {}\n# TYPE {} {}\n", name, help, name, type);
}

void gauge(std::string& out, std::string_view name, std::string_view help, double value) {
  header(out, name, "gauge", help);
  out += fmt::format("{} {}\n", name, number(value));
}

void counter(std::string& out, std::string_view name, std::string_view help, int64_t value) {
  header(out, name, "counter", help);
  out += fmt::format("{} {}\n", name, value);
}
}  // namespace

Histogram::Histogram(std::vector<double> upper_bounds)
    : upper_bounds_(std::move(upper_bounds)), counts_(upper_bounds_.size(), 0) {}

void Histogram::observe(double value) {
  const auto it = std::lower_bound(upper_bounds_.begin(), upper_bounds_.end(), value);  // first bound >= value
  if (it != upper_bounds_.end()) counts_[size_t(it - upper_bounds_.begin())]++;
  sum_ += value;
  count_++;
}

void Histogram::render(std::string& out, std::string_view name, std::string_view help) const {
  header(out, name, "histogram", help);
  int64_t cumulative = 0;
  for (size_t i = 0; i < upper_bounds_.size(); ++i) {
    cumulative += counts_[i];
    out += fmt::format("{}_bucket{{le=\"{}\"}} {}\n", name, number(upper_bounds_[i]), cumulative);
  }
  out += fmt::format("{}_bucket{{le=\"+Inf\"}} {}\n{}_sum {}\n{}_count {}\n", name, count_, name, number(sum_), name,
                     count_);
}

std::string_view outcome_label(RequestOutcome outcome) {
  switch (outcome) {
    case RequestOutcome::kCompleted: return "completed";
    case RequestOutcome::kCancelled: return "cancelled";
    case RequestOutcome::kTimeout: return "timeout";
    case RequestOutcome::kRejected: return "rejected";
    case RequestOutcome::kInvalid: return "invalid";
    case RequestOutcome::kError: return "error";
  }
  return "unknown";
}

// Latency buckets span a tiny model on a CPU (sub-millisecond steps) to a large one (tens of seconds).
Metrics::Metrics()
    : ttft_({0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60}),
      tpot_({0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5}),
      e2e_({0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600}) {}

void Metrics::count_request(RequestOutcome outcome) {
  std::lock_guard lock(mutex_);
  requests_[size_t(outcome)]++;
}

void Metrics::add_prompt_tokens(int64_t n) {
  std::lock_guard lock(mutex_);
  prompt_tokens_ += n;
}

void Metrics::add_generated_tokens(int64_t n) {
  std::lock_guard lock(mutex_);
  generated_tokens_ += n;
}

void Metrics::observe_ttft(double seconds) {
  std::lock_guard lock(mutex_);
  ttft_.observe(seconds);
}

void Metrics::observe_tpot(double seconds) {
  std::lock_guard lock(mutex_);
  tpot_.observe(seconds);
}

void Metrics::observe_e2e(double seconds) {
  std::lock_guard lock(mutex_);
  e2e_.observe(seconds);
}

std::string Metrics::render(const EngineGauges& g) const {
  std::lock_guard lock(mutex_);
  std::string out;
  header(out, "roofline_requests_total", "counter", "HTTP generation requests by how they ended.");
  for (int i = 0; i < kNumRequestOutcomes; ++i)
    out += fmt::format("roofline_requests_total{{status=\"{}\"}} {}\n", outcome_label(RequestOutcome(i)),
                       requests_[size_t(i)]);
  gauge(out, "roofline_requests_running", "Sequences (one per choice) the scheduler is running.", g.running);
  gauge(out, "roofline_requests_waiting", "Sequences waiting for admission, preempted ones included.", g.waiting);
  gauge(out, "roofline_kv_blocks_used", "KV cache blocks held by sequences.", g.kv_blocks_used);
  gauge(out, "roofline_kv_blocks_total", "KV cache blocks in the pool.", g.kv_blocks_total);
  gauge(out, "roofline_kv_slots_held", "KV token slots held: blocks in use plus reserved ones.", g.kv_slots_held);
  gauge(out, "roofline_kv_slots_wasted", "KV token slots held that no token fills.", g.kv_slots_wasted);
  gauge(out, "roofline_kv_waste_ratio", "KV slots wasted / held (internal fragmentation and reservation).",
        g.kv_slots_held > 0 ? double(g.kv_slots_wasted) / double(g.kv_slots_held) : 0.0);
  gauge(out, "roofline_prefix_cache_hit_ratio", "Prompt tokens found in the prefix cache / tokens looked up.",
        g.prefix_cache_hit_ratio);
  counter(out, "roofline_engine_steps_total", "Engine steps that ran a batch.", g.steps);
  header(out, "roofline_engine_seconds_total", "counter",
         "Engine thread time per phase: schedule (pick the batch), model (run it), output (sample, detokenize).");
  for (const auto& [phase, seconds] : {std::pair{"schedule", g.schedule_s}, {"model", g.model_s}, {"output", g.output_s}})
    out += fmt::format("roofline_engine_seconds_total{{phase=\"{}\"}} {}\n", phase, number(seconds));
  counter(out, "roofline_engine_prefill_steps_total", "Engine steps that ran prompt tokens.", g.prefill_steps);
  gauge(out, "roofline_engine_prefill_model_seconds", "Model time of the steps that ran prompt tokens, since start.",
        g.prefill_model_s);
  counter(out, "roofline_preemptions_total", "Sequences preempted to free KV blocks (they recompute).", g.preemptions);
  counter(out, "roofline_prompt_tokens_total", "Prompt tokens of accepted sequences.", prompt_tokens_);
  counter(out, "roofline_generated_tokens_total", "Tokens sampled, over all sequences.", generated_tokens_);
  ttft_.render(out, "roofline_ttft_seconds", "Time from arrival to the first token.");
  tpot_.render(out, "roofline_tpot_seconds", "Mean time per output token after the first, per sequence.");
  e2e_.render(out, "roofline_e2e_seconds", "Time from arrival to the last token, per request.");
  return out;
}

}  // namespace roofline::server
