// roofline bench serve: a load generator for an OpenAI-compatible server (this engine's `roofline serve`,
// or any server with streaming /v1/completions). Poisson arrivals at --rate or a --burst, prompt and
// output lengths drawn from distributions, random-token or text prompts; reports throughput, TTFT / TPOT /
// ITL / end-to-end percentiles, failures by status and KV usage over time (from /metrics), as a table and
// JSON; --sweep runs several rates and --plot draws latency against load.
//
// Without --url and with -m DIR it starts `roofline serve -m DIR --port 0 [--serve-args]` as a child
// process, waits until it listens, runs, and stops it with SIGTERM (a clean drain), so that one command
// does the whole run. The load generation and statistics live in src/roofline/server/load_generator.h.
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

#include "commands.h"
#include "common.h"
#include "roofline/core/atomic_file.h"
#include "roofline/core/error.h"
#include "roofline/server/latency_plot.h"
#include "roofline/server/load_generator.h"

extern char** environ;

namespace roofline::app {
namespace {

using namespace std::chrono_literals;
using server::LoadSummary;

// "http://host:port[/]" -> host, port (plain HTTP only).
void parse_url(const std::string& url, std::string& host, int& port) {
  std::string rest = url;
  if (rest.rfind("https://", 0) == 0) fail("--url: https is not supported ({}); use http://", url);
  if (rest.rfind("http://", 0) == 0) rest = rest.substr(7);
  while (!rest.empty() && rest.back() == '/') rest.pop_back();
  if (rest.size() >= 3 && rest.substr(rest.size() - 3) == "/v1") rest.resize(rest.size() - 3);
  if (rest.find('/') != std::string::npos) fail("--url: '{}' has a path; give http://HOST:PORT", url);
  const size_t colon = rest.rfind(':');
  host = colon == std::string::npos ? rest : rest.substr(0, colon);
  port = 80;
  if (colon != std::string::npos) {
    try {
      size_t used = 0;
      port = std::stoi(rest.substr(colon + 1), &used);
      if (used != rest.size() - colon - 1) throw std::invalid_argument("trailing");
    } catch (const std::exception&) {
      fail("--url: '{}' has no valid port", url);
    }
  }
  if (host.empty() || port < 1 || port > 65535) fail("--url: '{}' is not http://HOST:PORT", url);
}

// Splits "--max-num-seqs 64 --kv-memory '2 GiB'" like a shell would (quotes and backslashes, no expansion).
std::vector<std::string> split_args(const std::string& text) {
  std::vector<std::string> args;
  std::string current;
  bool in_word = false;
  char quote = 0;
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (quote) {
      if (c == quote)
        quote = 0;
      else if (c == '\\' && quote == '"' && i + 1 < text.size())
        current += text[++i];
      else
        current += c;
    } else if (c == '\'' || c == '"') {
      quote = c;
      in_word = true;
    } else if (c == '\\' && i + 1 < text.size()) {
      current += text[++i];
      in_word = true;
    } else if (std::isspace(static_cast<unsigned char>(c))) {
      if (in_word) args.push_back(std::move(current));
      current.clear();
      in_word = false;
    } else {
      current += c;
      in_word = true;
    }
  }
  if (quote) fail("--serve-args: unbalanced quote in '{}'", text);
  if (in_word) args.push_back(std::move(current));
  return args;
}

bool has_flag(const std::vector<std::string>& args, const std::string& flag) {
  for (const std::string& a : args)
    if (a == flag || a.rfind(flag + "=", 0) == 0) return true;
  return false;
}

std::string tail_of_file(const std::string& path, size_t lines) {
  std::string text;
  try {
    text = read_file(path);
  } catch (const Error&) {
    return {};
  }
  size_t pos = text.size();
  for (size_t n = 0; n <= lines && pos > 0; ++n) {
    const size_t nl = text.rfind('\n', pos - 1);
    if (nl == std::string::npos) return text;
    pos = nl;
  }
  return text.substr(pos + 1);
}

// `roofline serve` as a child process: this binary, its output in a log file. Stopped by the destructor.
class ServerProcess {
 public:
  ServerProcess(const std::string& model, std::vector<std::string> extra, std::string log_path, double start_timeout_s)
      : log_path_(std::move(log_path)) {
    std::vector<std::string> args = {"roofline", "serve", "-m", model};
    if (!has_flag(extra, "--port")) args.insert(args.end(), {"--port", "0"});
    args.insert(args.end(), extra.begin(), extra.end());
    for (const std::string& a : args) command_ += (command_.empty() ? "" : " ") + a;
    std::vector<char*> argv;
    for (std::string& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, log_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    posix_spawn_file_actions_adddup2(&actions, STDOUT_FILENO, STDERR_FILENO);
    posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
    const int rc = posix_spawn(&pid_, "/proc/self/exe", &actions, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    if (rc != 0) fail("cannot start `{}`: {}", command_, std::strerror(rc));
    std::fprintf(stderr, "bench serve: started `%s` (pid %d, log %s)\n", command_.c_str(), int(pid_),
                 log_path_.c_str());

    // The server prints "listening on http://HOST:PORT" once it has bound its socket.
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(start_timeout_s);
    const std::string marker = "listening on http://";
    while (port_ == 0) {
      if (!alive()) fail("`{}` exited with {} before listening; its log ends:\n{}", command_, exit_code_, tail());
      if (std::chrono::steady_clock::now() > deadline)
        fail("`{}` did not listen within {} s (--server-timeout); its log ends:\n{}", command_, start_timeout_s,
             tail());
      const std::string log = read_file(log_path_);
      if (const size_t at = log.find(marker); at != std::string::npos) {
        const size_t end = log.find('\n', at);
        if (end != std::string::npos) {
          const std::string address = log.substr(at + marker.size(), end - at - marker.size());
          const size_t colon = address.rfind(':');
          host_ = address.substr(0, colon);
          port_ = std::atoi(address.c_str() + colon + 1);
          if (host_ == "0.0.0.0") host_ = "127.0.0.1";
        }
      }
      if (port_ == 0) std::this_thread::sleep_for(100ms);
    }
  }
  ~ServerProcess() {
    try {
      stop();
    } catch (...) {
    }
  }
  ServerProcess(const ServerProcess&) = delete;
  ServerProcess& operator=(const ServerProcess&) = delete;

  const std::string& host() const { return host_; }
  int port() const { return port_; }
  const std::string& command() const { return command_; }

  // SIGTERM (the server drains), then SIGKILL after 60 s. Returns the exit status (-1: killed).
  int stop() {
    if (pid_ <= 0) return exit_code_;
    kill(pid_, SIGTERM);
    const auto deadline = std::chrono::steady_clock::now() + 60s;
    while (alive() && std::chrono::steady_clock::now() < deadline) std::this_thread::sleep_for(50ms);
    if (alive()) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
      pid_ = 0;
      exit_code_ = -1;
    }
    return exit_code_;
  }

 private:
  bool alive() {
    if (pid_ <= 0) return false;
    int status = 0;
    if (waitpid(pid_, &status, WNOHANG) != pid_) return true;
    exit_code_ = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    pid_ = 0;
    return false;
  }
  std::string tail() const { return tail_of_file(log_path_, 20); }

  std::string log_path_, command_, host_;
  pid_t pid_ = 0;
  int port_ = 0, exit_code_ = 0;
};

// "1,2,4,8" or "0.5, inf" -> rates (inf or "burst": all at once).
std::vector<double> parse_rates(const std::string& text) {
  std::vector<double> rates;
  std::stringstream in(text);
  std::string item;
  while (std::getline(in, item, ',')) {
    item.erase(0, item.find_first_not_of(" \t"));
    item.erase(item.find_last_not_of(" \t") + 1);
    if (item == "inf" || item == "burst") {
      rates.push_back(INFINITY);
      continue;
    }
    size_t used = 0;
    double r = 0;
    try {
      r = std::stod(item, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (used == 0 || used != item.size() || !(r > 0) || !std::isfinite(r))
      fail("--sweep: '{}' is not a rate in requests/s (positive, or inf)", item);
    rates.push_back(r);
  }
  if (rates.empty()) fail("--sweep: no rates in '{}'", text);
  return rates;
}

std::string rate_label(double rate) {
  return rate == 0 || std::isinf(rate) ? std::string("burst") : fmt::format("{:g} req/s", rate);
}

void print_summary(const std::string& title, const LoadSummary& s) {
  auto line = [](const char* key, const std::string& value) { std::printf("%-34s %s\n", key, value.c_str()); };
  std::printf("---------- %s ----------\n", title.c_str());
  line("requests completed / sent",
       fmt::format("{} / {}{}", s.completed, s.sent,
                   s.not_sent ? fmt::format(" ({} not sent: --duration)", s.not_sent) : ""));
  if (s.failed) {
    std::string by;
    for (const auto& [status, n] : s.failures) by += fmt::format("{}{}: {}", by.empty() ? "" : ", ", status, n);
    line("failed", fmt::format("{} ({})", s.failed, by));
  }
  line("duration", fmt::format("{:.2f} s", s.duration_s));
  line("input / output tokens", fmt::format("{} / {}", s.input_tokens, s.output_tokens));
  line("request throughput", fmt::format("{:.2f} req/s", s.request_throughput));
  line("output token throughput", fmt::format("{:.1f} tok/s", s.output_throughput));
  line("total token throughput", fmt::format("{:.1f} tok/s", s.total_token_throughput));
  std::printf("%-34s %10s %10s %10s %10s\n", "latency (ms)", "mean", "p50", "p95", "p99");
  auto row = [](const char* name, const server::Summary& m) {
    std::printf("%-34s %10.2f %10.2f %10.2f %10.2f\n", name, m.mean, m.p50, m.p95, m.p99);
  };
  row("  TTFT", s.ttft_ms);
  row("  TPOT", s.tpot_ms);
  row("  ITL (per chunk)", s.itl_ms);
  row("  end to end", s.e2e_ms);
  line("KV blocks used (peak / mean)", fmt::format("{:.1f}% / {:.1f}% (peak {} of {} blocks)", 100 * s.kv_peak_used,
                                                   100 * s.kv_mean_used, s.kv_peak_blocks, s.kv_blocks_total));
  if (s.engine_steps > 0)
    line("engine steps (schedule/model/output)",
         fmt::format("{} steps, {:.2f} ms each: {:.2f} / {:.2f} / {:.2f} s", s.engine_steps,
                     1e3 * (s.engine_schedule_s + s.engine_model_s + s.engine_output_s) / double(s.engine_steps),
                     s.engine_schedule_s, s.engine_model_s, s.engine_output_s));
  if (s.engine_steps > 0)
    line("  steps with prompt tokens", fmt::format("{} steps, model {:.2f} s ({:.2f} ms each)", s.engine_prefill_steps,
                                                 s.engine_prefill_model_s,
                                                 s.engine_prefill_steps ? 1e3 * s.engine_prefill_model_s / double(s.engine_prefill_steps) : 0.0));
  auto decode_line = [&](const char* name, const server::LoadSummary::DecodeSteps& d) {
    if (d.steps > 0)
      line(name, fmt::format("{} steps, {:.2f} ms each ({:.0f} running on average)", d.steps, d.ms_each(),
                             d.mean_running()));
  };
  decode_line("  decode-only, full batch", s.decode_full);  // >= half the peak of running sequences
  decode_line("  decode-only, fewer running", s.decode_partial);
  line("KV slots wasted (of those held)", fmt::format("{:.2f}%", 100 * s.kv_waste));
  line("sequences running / waiting (max)", fmt::format("{} / {}", s.max_running, s.max_waiting));
}

}  // namespace

Run add_bench_serve(CLI::App& bench) {
  struct Options {
    std::string url = "http://127.0.0.1:8080", api_key, model, tokenizer, serve_args, server_log, prompt_file;
    std::string prompt_len = "128", output_len = "128", json_path, sweep, plot_path;
    double rate = 0, duration = 0, temperature = 0, request_timeout = 600, server_timeout = 600,
           metrics_interval = 0.25;
    int burst = 0, requests = 100, concurrency = 0, warmup = 1;
    uint64_t seed = 0;
    bool no_ignore_eos = false;
  };
  auto o = std::make_shared<Options>();
  CLI::App* cmd = bench.add_subcommand(
      "serve", "Load-test an OpenAI-compatible server: throughput, TTFT/TPOT/E2E percentiles, KV usage");
  auto* url =
      cmd->add_option("--url", o->url, "Server to load (default: start `roofline serve -m DIR` when -m is given)")
          ->capture_default_str();
  cmd->add_option("--api-key", o->api_key, "Sent as 'Authorization: Bearer KEY' (and given to a server it starts)");
  cmd->add_option("-m,--model", o->model,
                  "Model directory: its tokenizer makes random-token prompts; without --url, the server to start");
  cmd->add_option("--tokenizer", o->tokenizer, "tokenizer.json or directory for prompts (default: the -m directory)");
  cmd->add_option("--serve-args", o->serve_args,
                  "Flags for the server it starts, e.g. \"--max-num-seqs 64 --threads 8\"");
  cmd->add_option("--server-log", o->server_log, "Where the started server's output goes (default: a temp file)");
  cmd->add_option("--server-timeout", o->server_timeout, "Seconds the started server may take to listen")
      ->check(CLI::Range(1.0, 1e6))
      ->capture_default_str();
  auto* rate = cmd->add_option("--rate", o->rate, "Poisson arrivals at this many requests/s (default: a burst)")
                   ->check(CLI::PositiveNumber);
  auto* burst =
      cmd->add_option("--burst", o->burst, "Send N requests at once (sets --requests)")->check(CLI::Range(1, 1 << 20));
  auto* sweep =
      cmd->add_option("--sweep", o->sweep, "Run each rate in turn, e.g. \"1,2,4,8,inf\": a latency-vs-load table");
  rate->excludes(burst);
  sweep->excludes(rate)->excludes(burst);
  cmd->add_option("-n,--requests", o->requests, "Requests per run")
      ->check(CLI::Range(1, 1 << 20))
      ->capture_default_str();
  cmd->add_option("--duration", o->duration, "Send no request after this many seconds (per run; 0: no cap)")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--concurrency", o->concurrency, "Requests in flight at most (0: no cap)")
      ->check(CLI::Range(0, 1 << 16));
  cmd->add_option("--prompt-len", o->prompt_len, "Prompt tokens: N, uniform:MIN:MAX, normal:MEAN:SD, exponential:MEAN")
      ->capture_default_str();
  cmd->add_option("--output-len", o->output_len, "Output tokens (max_tokens), same forms as --prompt-len")
      ->capture_default_str();
  cmd->add_option("--prompt-file", o->prompt_file,
                  "Text prompts: token windows of --prompt-len from this file (with a tokenizer), else its lines");
  cmd->add_option("--warmup", o->warmup, "Requests sent (one at a time, not measured) before the first run")
      ->check(CLI::Range(0, 1 << 16))
      ->capture_default_str();
  cmd->add_option("--temperature", o->temperature, "Sampling temperature")
      ->check(CLI::Range(0.0, 2.0))
      ->capture_default_str();
  cmd->add_flag("--no-ignore-eos", o->no_ignore_eos,
                "Let outputs end at EOS (default: ignore_eos, so they reach --output-len)");
  cmd->add_option("--seed", o->seed, "Seed of the prompts and arrival times")->capture_default_str();
  cmd->add_option("--request-timeout", o->request_timeout, "Seconds a request may wait for its next bytes")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  cmd->add_option("--metrics-interval", o->metrics_interval, "Seconds between /metrics samples (0: none)")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  cmd->add_option("--json", o->json_path, "Write the config, summaries, KV samples and every request as JSON");
  cmd->add_option("--plot", o->plot_path, "Write an SVG of p50/p95 TTFT and TPOT against output throughput");
  return [o, url]() {
    const server::LengthDistribution prompt_len = server::LengthDistribution::parse(o->prompt_len);
    const server::LengthDistribution output_len = server::LengthDistribution::parse(o->output_len);
    if (o->burst > 0) o->requests = o->burst;
    const std::vector<double> rates = !o->sweep.empty() ? parse_rates(o->sweep) : std::vector<double>{o->rate};

    // Prompts first: a bad flag should fail before a server starts.
    std::optional<Tokenizer> tokenizer;
    const std::string tokenizer_path = !o->tokenizer.empty() ? o->tokenizer : o->model;
    if (!tokenizer_path.empty()) tokenizer = Tokenizer::from_path(tokenizer_path);
    std::string prompt_source;
    std::vector<server::BenchPrompt> prompts;
    if (!o->prompt_file.empty()) {
      prompts = server::text_prompts(o->requests, read_file(o->prompt_file), prompt_len, output_len,
                                     tokenizer ? &*tokenizer : nullptr, o->seed);
      prompt_source = tokenizer ? "token windows of " + o->prompt_file : "lines of " + o->prompt_file;
    } else {
      if (!tokenizer)
        fail(
            "bench serve: random-token prompts need the model's tokenizer: give -m DIR or --tokenizer PATH "
            "(or text prompts with --prompt-file)");
      prompts = server::random_token_prompts(o->requests, prompt_len, output_len, *tokenizer, o->seed);
      prompt_source = "random tokens";
    }

    // The server: the one at --url, or one started here.
    std::unique_ptr<ServerProcess> child;
    std::string host;
    int port = 0;
    std::filesystem::path temp_log;
    std::string log_path;
    if (url->count() == 0 && !o->model.empty()) {
      std::vector<std::string> serve_args = split_args(o->serve_args);
      if (!o->api_key.empty() && !has_flag(serve_args, "--api-key"))
        serve_args.insert(serve_args.end(), {"--api-key", o->api_key});
      log_path = o->server_log;
      if (log_path.empty()) {
        temp_log = std::filesystem::temp_directory_path() / fmt::format("roofline-bench-serve-{}.log", getpid());
        log_path = temp_log.string();
      }
      child = std::make_unique<ServerProcess>(o->model, serve_args, log_path, o->server_timeout);
      host = child->host();
      port = child->port();
      const auto deadline = std::chrono::steady_clock::now() + 30s;
      while (!server::server_healthy(host, port)) {
        if (std::chrono::steady_clock::now() > deadline) fail("the started server does not answer /health");
        std::this_thread::sleep_for(100ms);
      }
    } else {
      parse_url(o->url, host, port);
    }
    const server::ServedModelInfo served = server::probe_server(host, port, o->api_key);
    const std::string base_url = fmt::format("http://{}:{}", host, port);

    // prompt + max_tokens must fit the model's context, or the server answers 400.
    int clamped = 0;
    if (served.max_model_len > 1) {
      for (server::BenchPrompt& p : prompts) {
        const int64_t context = served.max_model_len;
        const int64_t prompt_tokens = p.ids.empty() ? 0 : int64_t(p.ids.size());
        if (prompt_tokens + p.max_tokens <= context) continue;
        ++clamped;
        p.max_tokens = int(std::max<int64_t>(1, std::min<int64_t>(p.max_tokens, context / 2)));
        if (!p.ids.empty() && int64_t(p.ids.size()) + p.max_tokens > context)
          p.ids.resize(size_t(context - p.max_tokens));
      }
      if (clamped)
        std::fprintf(stderr, "bench serve: %d of %zu prompts shortened to fit the context of %lld tokens\n", clamped,
                     prompts.size(), (long long)served.max_model_len);
    }
    std::printf("%-34s %s (%s)%s\n", "server", base_url.c_str(), served.id.c_str(),
                child ? " started by this run" : "");
    const bool whole_lines = !o->prompt_file.empty() && !tokenizer;  // --prompt-len does not apply
    const std::string prompt_desc =
        whole_lines ? prompt_source : prompt_len.describe() + " tokens (" + prompt_source + ")";
    std::printf("%-34s %zu per run; prompt %s, output %s tokens%s\n", "workload", prompts.size(), prompt_desc.c_str(),
                output_len.describe().c_str(), o->no_ignore_eos ? "" : " (ignore_eos)");

    nlohmann::json out = nlohmann::json::object();
    out["server"] = {{"url", base_url},
                     {"model", served.id},
                     {"max_model_len", served.max_model_len},
                     {"started_by_bench", bool(child)},
                     {"command", child ? child->command() : ""}};
    out["workload"] = {{"requests_per_run", prompts.size()},
                       {"prompt_len", whole_lines ? nlohmann::json(nullptr) : nlohmann::json(prompt_len.describe())},
                       {"output_len", output_len.describe()},
                       {"prompts", prompt_source},
                       {"prompts_shortened_to_fit", clamped},
                       {"seed", o->seed}};
    out["runs"] = nlohmann::json::array();
    std::vector<server::LoadPoint> points;
    std::vector<std::pair<double, LoadSummary>> table;
    // Warm-up: the first requests pay one-time costs (allocations, page faults of the weights, lazy
    // initialisation) that would otherwise land in the first run's TTFT.
    if (o->warmup > 0) {
      server::LoadConfig warm;
      warm.host = host;
      warm.port = port;
      warm.api_key = o->api_key;
      warm.model = served.id;
      warm.concurrency = 1;
      warm.metrics_interval_s = 0;
      warm.request_timeout_s = o->request_timeout;
      std::vector<server::BenchPrompt> warm_prompts;
      for (int i = 0; i < o->warmup; ++i) warm_prompts.push_back(prompts[size_t(i) % prompts.size()]);
      for (const server::RequestRecord& r : server::run_load(warm, warm_prompts).records)
        if (!r.ok()) fail("bench serve: a warm-up request failed: {}", r.error);
    }
    for (double r : rates) {
      server::LoadConfig config;
      config.host = host;
      config.port = port;
      config.api_key = o->api_key;
      config.model = served.id;
      config.rate = r;
      config.duration_s = o->duration;
      config.concurrency = o->concurrency;
      config.temperature = o->temperature;
      config.ignore_eos = !o->no_ignore_eos;
      config.seed = o->seed + 1;
      config.request_timeout_s = o->request_timeout;
      config.metrics_interval_s = o->metrics_interval;
      std::fprintf(stderr, "bench serve: %s, %zu requests%s ...\n", rate_label(r).c_str(), prompts.size(),
                   o->concurrency ? fmt::format(", at most {} in flight", o->concurrency).c_str() : "");
      const server::LoadResult result = server::run_load(config, prompts);
      const LoadSummary s = server::summarize(result);
      print_summary(rate_label(r), s);
      std::fflush(stdout);
      out["runs"].push_back(server::to_json(result, s));
      points.push_back(
          {rate_label(r), s.output_throughput, s.ttft_ms.p50, s.ttft_ms.p95, s.tpot_ms.p50, s.tpot_ms.p95});
      table.emplace_back(r, s);
    }
    if (table.size() > 1) {
      std::printf("\n%-12s %8s %10s %9s %9s %9s %9s %9s %8s %7s\n", "offered", "req/s", "out tok/s", "TTFT p50",
                  "TTFT p95", "TPOT p50", "TPOT p95", "E2E p50", "KV peak", "failed");
      for (const auto& [r, s] : table)
        std::printf("%-12s %8.2f %10.1f %9.1f %9.1f %9.2f %9.2f %9.1f %7.1f%% %7d\n", rate_label(r).c_str(),
                    s.request_throughput, s.output_throughput, s.ttft_ms.p50, s.ttft_ms.p95, s.tpot_ms.p50,
                    s.tpot_ms.p95, s.e2e_ms.p50, 100 * s.kv_peak_used, s.failed);
      std::printf("(latencies in ms)\n");
    }

    int failed = 0;
    for (const auto& [r, s] : table) failed += s.failed;
    if (child) {
      const int rc = child->stop();
      if (rc != 0)
        std::fprintf(stderr, "bench serve: the server exited with %d; its log: %s\n", rc, log_path.c_str());
      else if (!temp_log.empty())
        std::filesystem::remove(temp_log);
      out["server"]["exit_code"] = rc;
    }
    if (!o->json_path.empty()) write_file_atomically(o->json_path, out.dump(1) + "\n");
    if (!o->plot_path.empty())
      write_file_atomically(
          o->plot_path,
          server::latency_vs_load_svg(points, fmt::format("{}: latency against load ({} prompt, {} output tokens)",
                                                          served.id, prompt_len.describe(), output_len.describe())));
    // Failed requests are results (429s under overload, say), not an error of the benchmark.
    if (failed) std::fprintf(stderr, "bench serve: %d requests failed (see failures above)\n", failed);
    return 0;
  };
}

}  // namespace roofline::app
