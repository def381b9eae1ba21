// Server metrics in the Prometheus text exposition format (version 0.0.4), served at GET /metrics.
// Counters and histograms live here (thread-safe: HTTP handlers and the engine thread both record);
// gauges (queue lengths, KV blocks) are a snapshot the engine publishes after every step.
#pragma once
#include <array>
#include <cstdint>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

namespace roofline::server {

// A cumulative histogram: bucket i counts observations <= upper_bounds[i]; +Inf is implied.
class Histogram {
 public:
  explicit Histogram(std::vector<double> upper_bounds);
  void observe(double value);
  // Appends # HELP, # TYPE and the _bucket/_sum/_count lines.
  void render(std::string& out, std::string_view name, std::string_view help) const;
  int64_t count() const { return count_; }

 private:
  std::vector<double> upper_bounds_;
  std::vector<int64_t> counts_;  // per bucket, not cumulative (render sums them)
  double sum_ = 0;
  int64_t count_ = 0;
};

// How an HTTP generation request (one /v1/completions or /v1/chat/completions call, whatever its n) ended.
enum class RequestOutcome {
  kCompleted,  // every choice finished (stop or length)
  kCancelled,  // the client disconnected
  kTimeout,    // ran past --request-timeout
  kRejected,   // 429 queue full, 503 draining
  kInvalid,    // 400/401/404/413: bad input, never queued
  kError,      // the engine failed
};
inline constexpr int kNumRequestOutcomes = 6;
std::string_view outcome_label(RequestOutcome outcome);

// The engine's state after its latest step.
struct EngineGauges {
  int running = 0;  // sequences (one per choice) the scheduler runs
  int waiting = 0;  // sequences waiting for admission (including preempted ones)
  int kv_blocks_used = 0;
  int kv_blocks_total = 0;
  int64_t kv_slots_held = 0;    // token slots of the blocks in use, plus a static batch's reservation
  int64_t kv_slots_wasted = 0;  // of those, slots no token fills (serving::KvOccupancy)
  double prefix_cache_hit_ratio = 0;  // hit tokens / looked-up tokens since start
  int64_t preemptions = 0;
  // Where the engine thread's time went, summed since start: choosing the batch, running the model
  // (GPU time plus launch, until the chosen ids are back), and turning its output into tokens and events.
  int64_t steps = 0;
  double schedule_s = 0, model_s = 0, output_s = 0;
  int64_t prefill_steps = 0;   // steps that ran prompt tokens (with or without decodes): never recorded
  double prefill_model_s = 0;  // their share of model_s
};

class Metrics {
 public:
  Metrics();

  void count_request(RequestOutcome outcome);
  void add_prompt_tokens(int64_t n);
  void add_generated_tokens(int64_t n);
  void observe_ttft(double seconds);  // arrival to first token
  void observe_tpot(double seconds);  // mean time per output token after the first, per sequence
  void observe_e2e(double seconds);   // arrival to the last token

  std::string render(const EngineGauges& gauges) const;

 private:
  mutable std::mutex mutex_;
  std::array<int64_t, kNumRequestOutcomes> requests_{};
  int64_t prompt_tokens_ = 0, generated_tokens_ = 0;
  Histogram ttft_, tpot_, e2e_;
};

}  // namespace roofline::server
