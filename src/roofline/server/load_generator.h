// The serving benchmark's load generator (`roofline bench serve`): sends streaming /v1/completions
// requests to an OpenAI-compatible server on a schedule (Poisson arrivals or a burst) with at most
// `concurrency` in flight, times every request from its SSE chunks, and samples the server's /metrics
// (KV blocks, running, waiting) while it runs. One thread and one HTTP connection per request in flight.
//
// What is measured, per request (times from the moment the request was sent):
//   ttft   until the first chunk that carries text
//   e2e    until the response ended
//   tpot   (e2e - ttft) / (output tokens - 1): the mean time per output token after the first
//   itl    the gaps between text chunks. A chunk may carry several tokens (the server batches what a step
//          produced, and holds back text that is not yet whole UTF-8), so ITL is per chunk, not per token.
// Output tokens come from the stream's final usage (stream_options.include_usage), not from counting
// chunks. Requests set ignore_eos (the server's vLLM-style extension) so that outputs reach max_tokens.
#pragma once
#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "roofline/server/load_stats.h"

namespace roofline {
class Tokenizer;
}

namespace roofline::server {

// One request's prompt: token ids (exact length) or text (the server counts its tokens).
struct BenchPrompt {
  std::vector<int32_t> ids;  // used when not empty
  std::string text;
  int max_tokens = 16;  // output tokens asked for
};

// Random-token prompts: ids drawn uniformly from the tokenizer's vocabulary, special tokens left out.
std::vector<BenchPrompt> random_token_prompts(int count, const LengthDistribution& prompt_len,
                                              const LengthDistribution& output_len, const Tokenizer& tokenizer,
                                              uint64_t seed);
// Prompts from a text: with a tokenizer, windows of prompt_len tokens at random places in the whole text
// (sent as ids, so lengths are exact); without one, its non-empty lines in random order (sent as text).
std::vector<BenchPrompt> text_prompts(int count, const std::string& text, const LengthDistribution& prompt_len,
                                      const LengthDistribution& output_len, const Tokenizer* tokenizer, uint64_t seed);

// Server-Sent Events, fed in pieces as they arrive: collects the "data:" payload of every complete event
// (several data lines join with '\n'). Comments, other fields and CR/CRLF line ends are handled.
class SseParser {
 public:
  // Appends the payloads of the events that `bytes` completes.
  void feed(std::string_view bytes, std::vector<std::string>& events);

 private:
  std::string line_;  // the incomplete line so far
  std::string data_;  // the event's data so far
  bool has_data_ = false;
  bool after_cr_ = false;  // the last byte was '\r' (a following '\n' belongs to it)
  void end_line(std::vector<std::string>& events);
};

// A Prometheus text exposition's value of an unlabelled sample `name` (the first line "name value").
std::optional<double> prometheus_value(std::string_view text, std::string_view name);

struct LoadConfig {
  std::string host = "127.0.0.1";
  int port = 8080;
  std::string api_key;    // sent as "Authorization: Bearer KEY" when not empty
  std::string model;      // the "model" field; empty leaves it out
  double rate = 0;        // requests/s, Poisson; 0 or inf: a burst (all at once)
  double duration_s = 0;  // no request is sent after this many seconds; 0: no cap
  int concurrency = 0;    // requests in flight at most; 0: no cap
  double temperature = 0;
  bool ignore_eos = true;
  uint64_t seed = 0;  // arrival times
  double request_timeout_s = 600;
  double metrics_interval_s = 0.25;  // /metrics scrape period; 0: none
};

struct RequestRecord {
  int index = 0;
  int status = 0;          // HTTP status; 0: no response (connection failed)
  std::string error;       // empty when it completed
  double scheduled_s = 0;  // arrival time in the schedule, after the run's start
  double sent_s = 0;       // when it was sent (later than scheduled when the concurrency cap held it)
  double ttft_s = -1, e2e_s = -1, tpot_s = -1;  // -1: not measured
  std::vector<double> itl_s;                    // gaps between text chunks
  int prompt_tokens = 0;                        // from usage (else the ids sent)
  int output_tokens = 0;                        // from usage
  int max_tokens = 0;
  std::string finish_reason;
  bool ok() const { return status == 200 && error.empty(); }
};

struct KvSample {
  double t_s = 0;  // after the run's start
  int kv_blocks_used = 0, kv_blocks_total = 0, running = 0, waiting = 0;
  int64_t kv_slots_held = 0, kv_slots_wasted = 0;
  int64_t engine_steps = 0;                                   // cumulative, as /metrics counts them
  double engine_schedule_s = 0, engine_model_s = 0, engine_output_s = 0;
  int64_t engine_prefill_steps = 0;
  double engine_prefill_model_s = 0;
};

struct LoadResult {
  LoadConfig config;
  double duration_s = 0;               // from the start until the last request ended
  int not_sent = 0;                    // scheduled after the duration cap
  std::vector<RequestRecord> records;  // sent requests, by index
  std::vector<KvSample> kv;
};

// Runs the prompts against the server on the config's schedule and returns when every sent request has
// ended. Throws roofline::Error only for bad arguments; request failures are recorded, not thrown.
LoadResult run_load(const LoadConfig& config, const std::vector<BenchPrompt>& prompts);

// Throughput, latency percentiles (milliseconds) and failures of one run.
struct LoadSummary {
  int sent = 0, completed = 0, failed = 0, not_sent = 0;
  std::map<std::string, int> failures;  // by status: "429", "500", "connection", "stream_error", ...
  double duration_s = 0;
  int64_t input_tokens = 0, output_tokens = 0;
  double request_throughput = 0;      // completed requests / s
  double output_throughput = 0;       // output tok/s
  double total_token_throughput = 0;  // (input + output) tok/s
  Summary ttft_ms, tpot_ms, itl_ms, e2e_ms;
  double kv_peak_used = 0, kv_mean_used = 0;  // fraction of the KV blocks, over the /metrics samples
  int kv_peak_blocks = 0, kv_blocks_total = 0;
  double kv_waste = 0;  // wasted / held KV slots, summed over the samples (slot-weighted mean)
  // The engine thread over the run (last sample minus first): steps and seconds per phase.
  int64_t engine_steps = 0;
  double engine_schedule_s = 0, engine_model_s = 0, engine_output_s = 0;
  int64_t engine_prefill_steps = 0;
  double engine_prefill_model_s = 0;
  // Steps that ran no prompt tokens, from the /metrics samples between which no prompt step ran: with at
  // least half the run's peak of running sequences (a full batch) and with fewer (a burst's tail).
  struct DecodeSteps {
    int64_t steps = 0;
    double model_s = 0;
    double running_steps = 0;  // running sequences x steps: the mean batch is running_steps / steps
    double ms_each() const { return steps > 0 ? 1e3 * model_s / double(steps) : 0; }
    double mean_running() const { return steps > 0 ? running_steps / double(steps) : 0; }
  } decode_full, decode_partial;
  int max_running = 0, max_waiting = 0;
};
LoadSummary summarize(const LoadResult& result);

// What GET /v1/models says about the served model. Throws roofline::Error when the server does not answer
// (or answers 401: a wrong --api-key), naming the address.
struct ServedModelInfo {
  std::string id;
  int64_t max_model_len = 0;  // 0: not said
};
ServedModelInfo probe_server(const std::string& host, int port, const std::string& api_key);
// True when GET /health answers 200 within a second.
bool server_healthy(const std::string& host, int port);

// JSON of a run: config, summary, KV samples and (with records) every request.
nlohmann::json to_json(const LoadResult& result, const LoadSummary& summary, bool with_records = true);

}  // namespace roofline::server
