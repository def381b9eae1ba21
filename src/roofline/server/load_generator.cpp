#include "roofline/server/load_generator.h"

#include <fmt/format.h>
#include <httplib.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <mutex>
#include <random>
#include <thread>

#include "roofline/core/error.h"
#include "roofline/tokenizer/tokenizer.h"

namespace roofline::server {

using Clock = std::chrono::steady_clock;
using Json = nlohmann::json;

namespace {

double seconds_between(Clock::time_point from, Clock::time_point to) {
  return std::chrono::duration<double>(to - from).count();
}

// The ids a random prompt may use: every id the tokenizer has a token for, special tokens left out.
std::vector<int32_t> ordinary_ids(const Tokenizer& tokenizer) {
  std::vector<int32_t> ids;
  for (int64_t id = 0; id < tokenizer.vocab_size(); ++id)
    if (!tokenizer.is_special(int32_t(id)) && !tokenizer.id_to_token(int32_t(id)).empty()) ids.push_back(int32_t(id));
  ROOFLINE_CHECK(!ids.empty(), "the tokenizer has no ordinary tokens to build random prompts from");
  return ids;
}

}  // namespace

std::vector<BenchPrompt> random_token_prompts(int count, const LengthDistribution& prompt_len,
                                              const LengthDistribution& output_len, const Tokenizer& tokenizer,
                                              uint64_t seed) {
  const std::vector<int32_t> vocab = ordinary_ids(tokenizer);
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<size_t> pick(0, vocab.size() - 1);
  std::vector<BenchPrompt> prompts(size_t(std::max(count, 0)));
  for (BenchPrompt& p : prompts) {
    p.ids.resize(size_t(prompt_len.sample(rng)));
    for (int32_t& id : p.ids) id = vocab[pick(rng)];
    p.max_tokens = output_len.sample(rng);
  }
  return prompts;
}

std::vector<BenchPrompt> text_prompts(int count, const std::string& text, const LengthDistribution& prompt_len,
                                      const LengthDistribution& output_len, const Tokenizer* tokenizer, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<BenchPrompt> prompts(size_t(std::max(count, 0)));
  if (tokenizer) {
    const std::vector<int32_t> ids = tokenizer->encode(text, /*add_special_tokens=*/false);
    ROOFLINE_CHECK(!ids.empty(), "the prompt text holds no tokens");
    for (BenchPrompt& p : prompts) {
      const size_t length = std::min(size_t(prompt_len.sample(rng)), ids.size());
      const size_t start = std::uniform_int_distribution<size_t>(0, ids.size() - length)(rng);
      p.ids.assign(ids.begin() + ptrdiff_t(start), ids.begin() + ptrdiff_t(start + length));
      p.max_tokens = output_len.sample(rng);
    }
    return prompts;
  }
  std::vector<std::string> lines;
  for (size_t begin = 0; begin < text.size();) {
    size_t end = text.find('\n', begin);
    if (end == std::string::npos) end = text.size();
    std::string line = text.substr(begin, end - begin);
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.find_first_not_of(" \t") != std::string::npos) lines.push_back(std::move(line));
    begin = end + 1;
  }
  ROOFLINE_CHECK(!lines.empty(), "the prompt text has no non-empty line");
  std::shuffle(lines.begin(), lines.end(), rng);
  for (size_t i = 0; i < prompts.size(); ++i) {
    prompts[i].text = lines[i % lines.size()];
    prompts[i].max_tokens = output_len.sample(rng);
  }
  return prompts;
}

// ---- SSE ----

void SseParser::end_line(std::vector<std::string>& events) {
  if (line_.empty()) {  // a blank line ends the event
    if (has_data_) events.push_back(std::move(data_));
    data_.clear();
    has_data_ = false;
    return;
  }
  if (line_[0] == ':') return line_.clear();  // a comment
  const size_t colon = line_.find(':');
  const std::string_view name = std::string_view(line_).substr(0, colon);
  if (name == "data") {
    std::string_view value =
        colon == std::string::npos ? std::string_view() : std::string_view(line_).substr(colon + 1);
    if (!value.empty() && value[0] == ' ') value.remove_prefix(1);
    if (has_data_) data_ += '\n';
    data_ += value;
    has_data_ = true;
  }
  line_.clear();
}

void SseParser::feed(std::string_view bytes, std::vector<std::string>& events) {
  for (char c : bytes) {
    if (c == '\n' && after_cr_) {  // the LF of a CRLF: the line already ended at the CR
      after_cr_ = false;
      continue;
    }
    after_cr_ = c == '\r';
    if (c == '\r' || c == '\n')
      end_line(events);
    else
      line_ += c;
  }
}

std::optional<double> prometheus_value(std::string_view text, std::string_view name) {
  size_t begin = 0;
  while (begin < text.size()) {
    size_t end = text.find('\n', begin);
    if (end == std::string_view::npos) end = text.size();
    const std::string_view line = text.substr(begin, end - begin);
    begin = end + 1;
    if (line.size() > name.size() && line.substr(0, name.size()) == name && line[name.size()] == ' ') {
      try {
        return std::stod(std::string(line.substr(name.size() + 1)));
      } catch (const std::exception&) {
        return std::nullopt;
      }
    }
  }
  return std::nullopt;
}

// ---- one request ----

namespace {

Json request_body(const LoadConfig& config, const BenchPrompt& prompt) {
  Json body = Json::object();
  if (!config.model.empty()) body["model"] = config.model;
  if (!prompt.ids.empty())
    body["prompt"] = prompt.ids;
  else
    body["prompt"] = prompt.text;
  body["max_tokens"] = prompt.max_tokens;
  body["temperature"] = config.temperature;
  body["stream"] = true;
  body["stream_options"] = {{"include_usage", true}};
  if (config.ignore_eos) body["ignore_eos"] = true;
  return body;
}

// Reads one SSE payload of a completion stream into the record; `now` is when its bytes arrived.
void take_event(const std::string& payload, Clock::time_point sent, Clock::time_point now,
                std::optional<Clock::time_point>& last_text, RequestRecord& r) {
  if (payload == "[DONE]") return;
  Json event;
  try {
    event = Json::parse(payload);
  } catch (const Json::parse_error&) {
    if (r.error.empty()) r.error = "an SSE event is not JSON: " + payload.substr(0, 200);
    return;
  }
  if (event.contains("error")) {
    const Json& e = event["error"];
    if (r.error.empty()) r.error = e.is_object() ? e.value("message", e.dump()) : e.dump();
    return;
  }
  if (const auto c = event.find("choices"); c != event.end() && c->is_array()) {
    for (const Json& choice : *c) {
      const auto text = choice.find("text");
      if (text != choice.end() && text->is_string() && !text->get_ref<const std::string&>().empty()) {
        if (!last_text)
          r.ttft_s = seconds_between(sent, now);
        else
          r.itl_s.push_back(seconds_between(*last_text, now));
        last_text = now;
      }
      if (const auto f = choice.find("finish_reason"); f != choice.end() && f->is_string())
        r.finish_reason = f->get<std::string>();
    }
  }
  if (const auto u = event.find("usage"); u != event.end() && u->is_object()) {
    r.prompt_tokens = u->value("prompt_tokens", r.prompt_tokens);
    r.output_tokens = u->value("completion_tokens", r.output_tokens);
  }
}

void send_request(const LoadConfig& config, const BenchPrompt& prompt, Clock::time_point start, RequestRecord& r) {
  httplib::Client client(config.host, config.port);
  client.set_connection_timeout(10, 0);
  const auto timeout = std::chrono::duration<double>(config.request_timeout_s);
  client.set_read_timeout(std::chrono::duration_cast<std::chrono::microseconds>(timeout));
  client.set_write_timeout(10, 0);

  httplib::Request req;
  req.method = "POST";
  req.path = "/v1/completions";
  req.set_header("Content-Type", "application/json");
  req.set_header("Accept", "text/event-stream");
  if (!config.api_key.empty()) req.set_header("Authorization", "Bearer " + config.api_key);
  req.body = request_body(config, prompt).dump();

  SseParser parser;
  std::vector<std::string> events;
  std::string error_body;  // the body of a non-200 answer
  std::optional<Clock::time_point> last_text;
  const Clock::time_point sent = Clock::now();
  r.sent_s = seconds_between(start, sent);
  r.prompt_tokens = int(prompt.ids.size());
  r.max_tokens = prompt.max_tokens;
  req.response_handler = [&](const httplib::Response& res) {
    r.status = res.status;
    return true;
  };
  req.content_receiver = [&](const char* data, size_t size, uint64_t, uint64_t) {
    const Clock::time_point now = Clock::now();
    if (r.status != 200) {
      if (error_body.size() < 4096) error_body.append(data, std::min(size, 4096 - error_body.size()));
      return true;
    }
    parser.feed(std::string_view(data, size), events);
    for (const std::string& payload : events) take_event(payload, sent, now, last_text, r);
    events.clear();
    return true;
  };
  const httplib::Result result = client.send(req);
  const Clock::time_point ended = Clock::now();
  if (!result) {
    r.status = 0;
    r.error = "no response: " + httplib::to_string(result.error());
    return;
  }
  r.status = result->status;
  if (r.status != 200) {
    std::string message = error_body;
    try {
      message = Json::parse(error_body).at("error").value("message", error_body);
    } catch (const std::exception&) {
    }
    r.error = fmt::format("HTTP {}: {}", r.status, message.empty() ? result->reason : message);
    return;
  }
  if (r.error.empty() && r.ttft_s < 0 && r.output_tokens > 0) r.error = "the stream carried no text";
  if (r.error.empty() && r.output_tokens == 0) r.error = "the stream ended without usage or tokens";
  r.e2e_s = seconds_between(sent, ended);
  if (r.ttft_s >= 0 && r.output_tokens > 1) r.tpot_s = (r.e2e_s - r.ttft_s) / double(r.output_tokens - 1);
}

// Samples /metrics every interval until stopped.
class MetricsSampler {
 public:
  MetricsSampler(const LoadConfig& config, Clock::time_point start, std::vector<KvSample>& out)
      : config_(config), start_(start), out_(out) {
    if (config.metrics_interval_s > 0) thread_ = std::thread([this] { loop(); });
  }
  ~MetricsSampler() { stop(); }
  void stop() {
    {
      std::lock_guard lock(mutex_);
      stopping_ = true;
    }
    wake_.notify_all();
    if (thread_.joinable()) thread_.join();
  }

 private:
  void loop() {
    httplib::Client client(config_.host, config_.port);
    client.set_connection_timeout(2, 0);
    client.set_read_timeout(5, 0);
    const auto interval =
        std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(config_.metrics_interval_s));
    Clock::time_point next = Clock::now();
    std::unique_lock lock(mutex_);
    for (;;) {
      lock.unlock();
      sample(client);
      lock.lock();
      next += interval;
      if (wake_.wait_until(lock, next, [&] { return stopping_; })) break;
    }
    lock.unlock();
    sample(client);  // the state at the end
  }
  void sample(httplib::Client& client) {
    const httplib::Result res = client.Get("/metrics");
    if (!res || res->status != 200) return;
    KvSample s;
    s.t_s = seconds_between(start_, Clock::now());
    auto value = [&](const char* name) { return int(prometheus_value(res->body, name).value_or(0)); };
    s.kv_blocks_used = value("roofline_kv_blocks_used");
    s.kv_blocks_total = value("roofline_kv_blocks_total");
    s.running = value("roofline_requests_running");
    s.waiting = value("roofline_requests_waiting");
    auto count = [&](const char* name) { return int64_t(prometheus_value(res->body, name).value_or(0)); };
    s.kv_slots_held = count("roofline_kv_slots_held");
    s.kv_slots_wasted = count("roofline_kv_slots_wasted");
    s.engine_steps = count("roofline_engine_steps_total");
    auto seconds = [&](const char* phase) {
      return prometheus_value(res->body, fmt::format("roofline_engine_seconds_total{{phase=\"{}\"}}", phase)).value_or(0);
    };
    s.engine_schedule_s = seconds("schedule");
    s.engine_model_s = seconds("model");
    s.engine_output_s = seconds("output");
    s.engine_prefill_steps = count("roofline_engine_prefill_steps_total");
    s.engine_prefill_model_s = prometheus_value(res->body, "roofline_engine_prefill_model_seconds").value_or(0);
    out_.push_back(s);  // only this thread writes until stop() joins it
  }

  const LoadConfig& config_;
  Clock::time_point start_;
  std::vector<KvSample>& out_;
  std::mutex mutex_;
  std::condition_variable wake_;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace

LoadResult run_load(const LoadConfig& config, const std::vector<BenchPrompt>& prompts) {
  ROOFLINE_CHECK(config.rate >= 0, "the request rate must be >= 0 (got {})", config.rate);
  ROOFLINE_CHECK(config.concurrency >= 0, "the concurrency must be >= 0 (got {})", config.concurrency);
  ROOFLINE_CHECK(config.duration_s >= 0, "the duration must be >= 0 s (got {})", config.duration_s);
  LoadResult result;
  result.config = config;
  const std::vector<double> arrivals = arrival_times(int(prompts.size()), config.rate, config.seed);
  std::vector<RequestRecord> records(prompts.size());

  std::mutex mutex;
  std::condition_variable slot_freed;
  int in_flight = 0;
  Clock::time_point last_end;
  std::vector<std::thread> workers;
  workers.reserve(prompts.size());

  const Clock::time_point start = Clock::now();
  const Clock::time_point deadline =
      config.duration_s > 0
          ? start + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(config.duration_s))
          : Clock::time_point::max();
  last_end = start;
  {
    MetricsSampler sampler(config, start, result.kv);
    size_t sent = 0;
    for (; sent < prompts.size(); ++sent) {
      const Clock::time_point due =
          start + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(arrivals[sent]));
      if (due > deadline) break;
      std::this_thread::sleep_until(due);
      std::unique_lock lock(mutex);
      if (config.concurrency > 0 &&
          !slot_freed.wait_until(lock, deadline, [&] { return in_flight < config.concurrency; }))
        break;  // the duration ran out while every slot was busy
      ++in_flight;
      lock.unlock();
      RequestRecord& r = records[sent];
      r.index = int(sent);
      r.scheduled_s = arrivals[sent];
      workers.emplace_back([&, i = sent] {
        send_request(config, prompts[i], start, records[i]);
        std::lock_guard guard(mutex);
        --in_flight;
        last_end = std::max(last_end, Clock::now());
        slot_freed.notify_all();
      });
    }
    for (std::thread& w : workers) w.join();
    sampler.stop();
    result.not_sent = int(prompts.size() - sent);
    records.resize(sent);
  }
  result.duration_s = seconds_between(start, last_end);
  result.records = std::move(records);
  return result;
}

ServedModelInfo probe_server(const std::string& host, int port, const std::string& api_key) {
  httplib::Client client(host, port);
  client.set_connection_timeout(5, 0);
  client.set_read_timeout(30, 0);
  httplib::Headers headers;
  if (!api_key.empty()) headers.emplace("Authorization", "Bearer " + api_key);
  const httplib::Result res = client.Get("/v1/models", headers);
  if (!res) fail("no server answers at http://{}:{} ({})", host, port, httplib::to_string(res.error()));
  if (res->status == 401) fail("http://{}:{} wants an API key (--api-key), or another one", host, port);
  if (res->status != 200) fail("GET http://{}:{}/v1/models answered {}: {}", host, port, res->status, res->body);
  ServedModelInfo info;
  try {
    const Json models = Json::parse(res->body);
    const Json& first = models.at("data").at(0);
    info.id = first.at("id").get<std::string>();
    info.max_model_len = first.value("max_model_len", int64_t(0));
  } catch (const std::exception& e) {
    fail("GET http://{}:{}/v1/models: unexpected answer ({}): {}", host, port, e.what(), res->body.substr(0, 200));
  }
  return info;
}

bool server_healthy(const std::string& host, int port) {
  httplib::Client client(host, port);
  client.set_connection_timeout(1, 0);
  client.set_read_timeout(1, 0);
  const httplib::Result res = client.Get("/health");
  return res && res->status == 200;
}

// ---- summary ----

LoadSummary summarize(const LoadResult& result) {
  LoadSummary s;
  s.sent = int(result.records.size());
  s.not_sent = result.not_sent;
  s.duration_s = result.duration_s;
  std::vector<double> ttft, tpot, itl, e2e;
  for (const RequestRecord& r : result.records) {
    if (!r.ok()) {
      ++s.failed;
      ++s.failures[r.status == 0 ? "connection" : r.status == 200 ? "stream_error" : std::to_string(r.status)];
      continue;
    }
    ++s.completed;
    s.input_tokens += r.prompt_tokens;
    s.output_tokens += r.output_tokens;
    if (r.ttft_s >= 0) ttft.push_back(r.ttft_s * 1e3);
    if (r.tpot_s >= 0) tpot.push_back(r.tpot_s * 1e3);
    if (r.e2e_s >= 0) e2e.push_back(r.e2e_s * 1e3);
    for (double gap : r.itl_s) itl.push_back(gap * 1e3);
  }
  if (s.duration_s > 0) {
    s.request_throughput = double(s.completed) / s.duration_s;
    s.output_throughput = double(s.output_tokens) / s.duration_s;
    s.total_token_throughput = double(s.input_tokens + s.output_tokens) / s.duration_s;
  }
  s.ttft_ms = summarize(ttft);
  s.tpot_ms = summarize(tpot);
  s.itl_ms = summarize(itl);
  s.e2e_ms = summarize(e2e);
  int used_samples = 0;
  int64_t held = 0, wasted = 0;
  for (const KvSample& k : result.kv) {
    held += k.kv_slots_held;
    wasted += k.kv_slots_wasted;
    s.max_running = std::max(s.max_running, k.running);
    s.max_waiting = std::max(s.max_waiting, k.waiting);
    if (k.kv_blocks_total <= 0) continue;
    s.kv_peak_blocks = std::max(s.kv_peak_blocks, k.kv_blocks_used);
    s.kv_blocks_total = k.kv_blocks_total;
    const double used = double(k.kv_blocks_used) / double(k.kv_blocks_total);
    s.kv_peak_used = std::max(s.kv_peak_used, used);
    s.kv_mean_used += used;
    ++used_samples;
  }
  if (used_samples > 0) s.kv_mean_used /= used_samples;
  s.kv_waste = held > 0 ? double(wasted) / double(held) : 0.0;
  if (result.kv.size() >= 2) {
    const KvSample &first = result.kv.front(), &last = result.kv.back();
    s.engine_steps = last.engine_steps - first.engine_steps;
    s.engine_schedule_s = last.engine_schedule_s - first.engine_schedule_s;
    s.engine_model_s = last.engine_model_s - first.engine_model_s;
    s.engine_output_s = last.engine_output_s - first.engine_output_s;
    s.engine_prefill_steps = last.engine_prefill_steps - first.engine_prefill_steps;
    s.engine_prefill_model_s = last.engine_prefill_model_s - first.engine_prefill_model_s;
  }
  // A decode step's cost depends on its batch, and a burst ends with a tail of few sequences: the mean step
  // hides both, so intervals without a prompt step are split by how many sequences ran (the mean of the two
  // samples around the interval).
  for (size_t i = 1; i < result.kv.size(); ++i) {
    const KvSample &a = result.kv[i - 1], &b = result.kv[i];
    const int64_t steps = b.engine_steps - a.engine_steps;
    if (steps <= 0 || b.engine_prefill_steps != a.engine_prefill_steps) continue;
    const double running = 0.5 * double(a.running + b.running);
    LoadSummary::DecodeSteps& d = 2 * running >= double(s.max_running) ? s.decode_full : s.decode_partial;
    d.steps += steps;
    d.model_s += b.engine_model_s - a.engine_model_s;
    d.running_steps += running * double(steps);
  }
  return s;
}

namespace {
Json summary_json(const Summary& s) {
  return {{"count", s.count}, {"mean", s.mean}, {"min", s.min}, {"p50", s.p50},
          {"p95", s.p95},     {"p99", s.p99},   {"max", s.max}};
}
Json or_null(double seconds) { return seconds < 0 ? Json(nullptr) : Json(seconds); }
}  // namespace

Json to_json(const LoadResult& result, const LoadSummary& s, bool with_records) {
  const LoadConfig& c = result.config;
  const bool burst = c.rate == 0 || std::isinf(c.rate);
  Json j = Json::object();
  j["config"] = {{"rate", burst ? Json(nullptr) : Json(c.rate)},
                 {"burst", burst},
                 {"concurrency", c.concurrency},
                 {"duration_cap_s", c.duration_s},
                 {"temperature", c.temperature},
                 {"ignore_eos", c.ignore_eos},
                 {"seed", c.seed}};
  j["requests"] = {{"sent", s.sent}, {"completed", s.completed}, {"failed", s.failed}, {"not_sent", s.not_sent}};
  j["failures_by_status"] = s.failures;
  j["duration_s"] = s.duration_s;
  j["input_tokens"] = s.input_tokens;
  j["output_tokens"] = s.output_tokens;
  j["request_throughput"] = s.request_throughput;
  j["output_throughput"] = s.output_throughput;
  j["total_token_throughput"] = s.total_token_throughput;
  j["ttft_ms"] = summary_json(s.ttft_ms);
  j["tpot_ms"] = summary_json(s.tpot_ms);
  j["itl_ms"] = summary_json(s.itl_ms);
  j["e2e_ms"] = summary_json(s.e2e_ms);
  Json samples = Json::array();
  for (const KvSample& k : result.kv)
    samples.push_back({{"t_s", k.t_s},
                       {"kv_blocks_used", k.kv_blocks_used},
                       {"kv_blocks_total", k.kv_blocks_total},
                       {"running", k.running},
                       {"waiting", k.waiting},
                       {"kv_slots_held", k.kv_slots_held},
                       {"kv_slots_wasted", k.kv_slots_wasted},
                       {"engine_steps", k.engine_steps},
                       {"engine_model_s", k.engine_model_s},
                       {"engine_prefill_steps", k.engine_prefill_steps}});
  auto decode_json = [](const LoadSummary::DecodeSteps& d) {
    return Json{{"steps", d.steps}, {"model_s", d.model_s}, {"ms_each", d.ms_each()},
                {"mean_running", d.mean_running()}};
  };
  j["engine"] = {{"steps", s.engine_steps},
                 {"schedule_s", s.engine_schedule_s},
                 {"model_s", s.engine_model_s},
                 {"output_s", s.engine_output_s},
                 {"prefill_steps", s.engine_prefill_steps},
                 {"prefill_model_s", s.engine_prefill_model_s},
                 {"decode_full", decode_json(s.decode_full)},
                 {"decode_partial", decode_json(s.decode_partial)}};
  j["kv"] = {{"peak_used_fraction", s.kv_peak_used}, {"mean_used_fraction", s.kv_mean_used},
             {"peak_blocks_used", s.kv_peak_blocks}, {"blocks_total", s.kv_blocks_total},
             {"waste_fraction", s.kv_waste},
             {"max_running", s.max_running},         {"max_waiting", s.max_waiting},
             {"samples", std::move(samples)}};
  if (with_records) {
    Json records = Json::array();
    for (const RequestRecord& r : result.records)
      records.push_back({{"index", r.index},
                         {"status", r.status},
                         {"error", r.error.empty() ? Json(nullptr) : Json(r.error)},
                         {"scheduled_s", r.scheduled_s},
                         {"sent_s", r.sent_s},
                         {"ttft_s", or_null(r.ttft_s)},
                         {"tpot_s", or_null(r.tpot_s)},
                         {"e2e_s", or_null(r.e2e_s)},
                         {"prompt_tokens", r.prompt_tokens},
                         {"output_tokens", r.output_tokens},
                         {"max_tokens", r.max_tokens},
                         {"finish_reason", r.finish_reason},
                         {"itl_s", r.itl_s}});
    j["records"] = std::move(records);
  }
  return j;
}

}  // namespace roofline::server
