// roofline report --baseline "ARGS" --candidate "ARGS": the same workload under two configurations (ARGS are
// `roofline generate` flags), then throughput, p50/p95 per-token latency, peak memory, GPU utilisation, a
// per-op profile, quality against the baseline (perplexity, KL divergence, top-1 agreement on a text) and a
// decision: accept, reject or review (perf/quality.h has the rules).
//
// Each configuration runs in a child process of its own (fork before anything is loaded), so its peak memory
// (RSS high-water mark, or device memory) and its device state are its own. A child prints one JSON object
// into a pipe and writes its logits over the quality text to a file; the parent compares them.
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>
#include <numeric>
#include <optional>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "commands.h"
#include "common.h"
#include "roofline/backend/cpu/cpu_backend.h"
#include "roofline/backend/cpu/memory_bandwidth.h"
#include "roofline/backend/timed_backend.h"
#include "roofline/core/atomic_file.h"
#include "roofline/core/error.h"
#include "roofline/core/stats.h"
#include "roofline/engine/sampler.h"
#include "roofline/model/decoder.h"
#include "roofline/perf/held_out_text.h"
#include "roofline/perf/nvml_sampler.h"
#include "roofline/perf/op_profile.h"
#include "roofline/perf/op_recorder.h"
#include "roofline/perf/quality.h"
#include "roofline/perf/report_html.h"
#include "roofline/perf/run_estimate.h"

#ifdef ROOFLINE_HAVE_CUDA
#include <cuda_runtime_api.h>

#include "roofline/backend/cuda/cuda_backend.h"
#include "roofline/backend/cuda/cuda_runtime_info.h"
#include "roofline/perf/cuda/cuda_event_clock.h"
#endif

namespace roofline::app {

namespace {

using nlohmann::json;

// Words of ARGS as a POSIX shell splits them: blanks separate; '...' is literal; "..." and bare words
// take backslash escapes.
std::vector<std::string> split_args(const std::string& text, const std::string& flag) {
  std::vector<std::string> words;
  std::string word;
  bool in_word = false;
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (c == ' ' || c == '\t' || c == '\n') {
      if (in_word) words.push_back(word), word.clear(), in_word = false;
    } else if (c == '\'') {
      const size_t end = text.find('\'', i + 1);
      if (end == std::string::npos) fail("{}: unmatched ' in \"{}\"", flag, text);
      word += text.substr(i + 1, end - i - 1), in_word = true, i = end;
    } else if (c == '"') {
      for (++i, in_word = true; i < text.size() && text[i] != '"'; ++i) {
        if (text[i] == '\\' && i + 1 < text.size() && (text[i + 1] == '"' || text[i + 1] == '\\')) ++i;
        word += text[i];
      }
      if (i >= text.size()) fail("{}: unmatched \" in \"{}\"", flag, text);
    } else if (c == '\\' && i + 1 < text.size()) {
      word += text[++i], in_word = true;
    } else {
      word += c, in_word = true;
    }
  }
  if (in_word) words.push_back(word);
  return words;
}

// One side of the comparison: the `roofline generate` flags it was given.
struct Config {
  std::string label, args;
  std::string model, prompt, tokens;
  DeviceOptions device;
  SamplingOptions sampling;
};

Config parse_config(const std::string& label, const std::string& args) {
  Config c;
  c.label = label;
  c.args = args;
  CLI::App app{"roofline generate flags (--" + label + ")"};
  int64_t ignored_n = 0;
  std::vector<std::string> ignored_stop;
  bool ignored_flag = false;
  app.add_option("-m,--model", c.model)->required();
  app.add_option("-p,--prompt", c.prompt);
  app.add_option("--tokens", c.tokens);
  // Accepted so that any generate command line works; the workload's size comes from report's own flags.
  app.add_option("-n,--max-tokens", ignored_n);
  app.add_option("--stop", ignored_stop);
  app.add_flag("--ignore-eos,--json", ignored_flag);
  c.device.add_to(&app);
  c.sampling.add_to(&app);
  std::vector<std::string> words = split_args(args, "--" + label);
  std::reverse(words.begin(), words.end());  // CLI11 takes a vector last argument first
  try {
    app.parse(words);
  } catch (const CLI::ParseError& e) {
    fail("--{} \"{}\": {} (ARGS are `roofline generate` flags, e.g. \"-m DIR --threads 2\")", label, args, e.what());
  }
  return c;
}

struct Workload {
  std::string kind = "generate";  // generate | decode | prefill
  std::optional<std::string> prompt;  // report's --prompt / --prompt-file (else ARGS' -p, else the default)
  int64_t new_tokens = 32;
  int runs = 3;
  std::string quality_text;
  int64_t quality_tokens = 256;  // at most this many tokens of the text are scored
  std::string hw;                // roofs override for the profile
  std::string calibration;       // the calibration file hw names an entry of ("" : the default one)
};

double now_seconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// Peak resident set of this process (VmHWM), bytes.
double peak_rss_bytes() {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line))
    if (line.rfind("VmHWM:", 0) == 0) return std::stod(line.substr(6)) * 1024.0;
  return 0;
}

// Times of one run of the workload.
struct RunTimes {
  double prefill_seconds = 0;             // prompt forward + choosing the first token (time to first token)
  std::vector<double> step_seconds;       // each decode step: forward of one token + choosing the next
};

RunTimes run_once(Decoder& decoder, const std::vector<int32_t>& prompt, int64_t new_tokens, const std::string& kind,
                  const SamplingParams& sampling) {
  const ModelSpec& spec = decoder.spec();
  KvCache cache = decoder.new_cache(int64_t(prompt.size()) + new_tokens + 1);
  Sampler sampler(sampling);
  std::vector<int32_t> context = prompt;
  std::vector<float> row(size_t(spec.vocab_size));
  auto choose = [&](const Tensor& logits) {
    std::copy_n(logits.ptr<float>(), row.size(), row.begin());
    context.push_back(sampler.sample(row, context, prompt.size()));
  };
  RunTimes t;
  double t0 = now_seconds();
  choose(decoder.forward(prompt, cache, false));
  t.prefill_seconds = now_seconds() - t0;
  if (kind == "prefill") return t;
  // generate: new_tokens in all (the first came from the prefill); decode: new_tokens decode steps.
  const int64_t steps = kind == "decode" ? new_tokens : new_tokens - 1;
  for (int64_t i = 0; i < steps; ++i) {
    t0 = now_seconds();
    const int32_t last = context.back();
    choose(decoder.forward(std::span<const int32_t>(&last, 1), cache, false));
    t.step_seconds.push_back(now_seconds() - t0);
  }
  return t;
}

perf::WeightDType weight_dtype_of(DType dtype) {
  switch (dtype) {
    case DType::F32: return perf::WeightDType::F32;
    case DType::F16: return perf::WeightDType::F16;
    case DType::BF16: return perf::WeightDType::BF16;
    default: fail("report: the estimate has no price for {} weights", dtype_name(dtype));
  }
}

perf::StorageDType storage_dtype_of(DType dtype) {
  switch (dtype) {
    case DType::F32: return perf::StorageDType::F32;
    case DType::F16: return perf::StorageDType::F16;
    case DType::F8E4M3: return perf::StorageDType::FP8;
    case DType::BF16: return perf::StorageDType::BF16;
    default: fail("report: the estimate has no price for {} storage", dtype_name(dtype));
  }
}

// Runs in the child: the workload, a profiled run, the logits over the quality text (written to
// logits_path as raw f32 [rows, vocab]). quality_tokens empty: this side tokenizes the text itself (the
// baseline) and returns the ids.
json run_config(const Config& c, const Workload& w, std::vector<int32_t> quality_tokens, const std::string& logits_path) {
  RunnableModel rm = c.device.load(c.model);
  Decoder& decoder = *rm.decoder;
  const ModelSpec& spec = rm.spec();
  auto tokenizer = try_load_tokenizer(c.model);

  std::vector<int32_t> prompt;
  if (!w.prompt && !c.tokens.empty()) {
    prompt = parse_id_list(c.tokens, "--tokens");
  } else {
    const std::string text = w.prompt ? *w.prompt : !c.prompt.empty() ? c.prompt : "Once upon a time";
    if (!tokenizer) fail("{}: no tokenizer in the model directory; give the prompt as --tokens in ARGS", c.model);
    prompt = tokenizer->encode(text, /*add_special_tokens=*/true);
  }
  ROOFLINE_CHECK(!prompt.empty(), "{}: the prompt encodes to no tokens", c.label);
  const int64_t needed = int64_t(prompt.size()) + w.new_tokens + 1;
  if (spec.max_position_embeddings > 0 && needed > spec.max_position_embeddings)
    fail("{}: prompt ({} tokens) plus {} new tokens exceed the model's context of {}", c.label, prompt.size(),
         w.new_tokens, spec.max_position_embeddings);

  // Both sides must do the same work: greedy with a fixed seed unless ARGS set sampling flags.
  SamplingOptions so = c.sampling;
  if (!so.temperature) so.temperature = 0.0;
  if (!so.seed) so.seed = 0;
  const SamplingParams sampling = so.resolve(spec);

  // GPU counters (utilisation, device memory) while the timed runs go.
  perf::OpRecorder counters;
  std::unique_ptr<perf::NvmlSampler> nvml;
#ifdef ROOFLINE_HAVE_CUDA
  if (auto* cb = dynamic_cast<cuda::CudaBackend*>(rm.backend.get())) {
    char bus[64] = {};
    if (cudaDeviceGetPCIBusId(bus, sizeof bus, cb->device_index()) != cudaSuccess) bus[0] = 0;
    nvml = std::make_unique<perf::NvmlSampler>(counters, bus);
  }
#endif

  run_once(decoder, prompt, std::min<int64_t>(w.new_tokens, 2), w.kind, sampling);  // warm-up
  std::vector<double> latencies, ttft, throughput, run_seconds;  // run_seconds: what the estimate prices
  for (int r = 0; r < w.runs; ++r) {
    const RunTimes t = run_once(decoder, prompt, w.new_tokens, w.kind, sampling);
    const double decode = std::accumulate(t.step_seconds.begin(), t.step_seconds.end(), 0.0);
    ttft.push_back(t.prefill_seconds);
    run_seconds.push_back(w.kind == "prefill" ? t.prefill_seconds
                          : w.kind == "decode" ? decode
                                               : t.prefill_seconds + decode);
    if (w.kind == "prefill") {
      latencies.push_back(t.prefill_seconds);
      throughput.push_back(double(prompt.size()) / t.prefill_seconds);
    } else {
      latencies.insert(latencies.end(), t.step_seconds.begin(), t.step_seconds.end());
      throughput.push_back(w.kind == "decode" ? double(t.step_seconds.size()) / decode
                                              : double(w.new_tokens) / (t.prefill_seconds + decode));
    }
  }
  if (nvml) nvml->stop();
  const double rss = peak_rss_bytes();

  json out;
  out["label"] = c.label;
  out["args"] = c.args;
  out["model"] = c.model;
  out["backend"] = rm.backend->name();
  out["device"] = rm.backend->device() == Device::CPU ? "cpu" : "cuda";
  out["prompt_tokens"] = prompt.size();
  out["new_tokens"] = w.new_tokens;
  out["runs"] = w.runs;
  out["tokens_per_s"] = percentile(throughput, 0.5);
  out["tokens_per_s_runs"] = throughput;
  std::vector<double> ms(latencies.size());
  std::transform(latencies.begin(), latencies.end(), ms.begin(), [](double s) { return s * 1e3; });
  out["latency_ms"] = {{"p50", percentile(ms, 0.5)},
                       {"p95", percentile(ms, 0.95)},
                       {"mean", ms.empty() ? 0 : std::accumulate(ms.begin(), ms.end(), 0.0) / double(ms.size())}};
  out["latencies_ms"] = ms;
  out["ttft_ms"] = {{"p50", percentile(ttft, 0.5) * 1e3}, {"p95", percentile(ttft, 0.95) * 1e3}};
  out["host_rss_peak_bytes"] = rss;
  out["peak_memory_bytes"] = rss;
  out["memory_kind"] = "host RSS peak";
  out["gpu_util_percent"] = nullptr;
  for (const perf::CounterTrack& t : counters.counters()) {
    if (t.name == "gpu_util") out["gpu_util_percent"] = t.mean();
    if (t.name == "memory_used") {
      out["peak_memory_bytes"] = t.max() * double(1 << 20);
      out["memory_kind"] = "device memory used (peak, whole GPU)";
    }
  }
  if (nvml && !nvml->available()) out["gpu_counters_error"] = nvml->error();

  // The hardware that ran, by its key in the calibration file / built-in table.
  std::string device_key = "cpu";
#ifdef ROOFLINE_HAVE_CUDA
  if (auto* cb = dynamic_cast<cuda::CudaBackend*>(rm.backend.get()))
    for (const cuda::DeviceInfo& d : cuda::list_devices())
      if (d.index == cb->device_index()) device_key = perf::hardware_key(d.name);
#endif
  const std::string hw_name = w.hw.empty() ? device_key : w.hw;
  // One hardware description for the estimate and the profile's roofs.
  std::optional<perf::HardwareSpec> hardware;
  std::string hardware_error;
  try {
    hardware = perf::resolve_hardware(hw_name, perf::calibration_path_or_default(w.calibration));
    auto* cpu = dynamic_cast<CpuBackend*>(rm.backend.get());
    if (cpu != nullptr && w.hw.empty()) {
      // A CPU's bandwidth is the process's (a VM's guest can stream 1.5x more in one process than in the
      // next, by where its pages land), so the roofs use this process's, measured now with the engine's own
      // threads, as bench does.
      hardware->memory_bandwidth = measure_memory_read_bandwidth(cpu->pool());
      hardware->source += ", bandwidth measured now";
    }
  } catch (const std::exception& e) {
    hardware_error = e.what();
  }

  // The analytic floor of the same run (perf/run_estimate.h) beside what it measured.
  {
    perf::RunShape run;
    run.prompt_tokens = int64_t(prompt.size());
    run.prefill = w.kind != "decode";
    run.decode_steps = w.kind == "prefill" ? 0 : w.kind == "decode" ? w.new_tokens : w.new_tokens - 1;
    run.weights = weight_dtype_of(rm.weights.stored_dtype());
    run.activations = storage_dtype_of(rm.backend->activation_dtype());
    run.kv_cache = storage_dtype_of(decoder.kv_cache_dtype());
    try {
      if (!hardware) throw Error(hardware_error);
      out["estimate"] = perf::run_estimate_to_json(run, perf::estimate_run(spec, run, *hardware), *hardware,
                                                   percentile(run_seconds, 0.5));
    } catch (const std::exception& e) {
      out["estimate"] = {{"error", e.what()}};
    }
  }

  // One more run with every op timed (not one of the timed runs: timing perturbs a device's pipeline).
  {
    perf::OpRecorder recorder;
    {
      std::unique_ptr<perf::DeviceClock> clock;
#ifdef ROOFLINE_HAVE_CUDA
      if (auto* cb = dynamic_cast<cuda::CudaBackend*>(rm.backend.get()))
        clock = std::make_unique<perf::CudaEventClock>(cb->stream());
#endif
      TimedBackend timed(*rm.backend, &recorder.listener(std::move(clock)));
      Decoder profiled(spec, rm.weights, timed, rm.decoder->kv_cache_dtype());
      run_once(profiled, prompt, w.new_tokens, w.kind, sampling);
    }
    recorder.resolve();
    perf::Roofs roofs;
    if (hardware) roofs = perf::Roofs::from(*hardware);
    else roofs.hardware = hw_name + " (no figures: " + hardware_error + ")";
    out["profile"] = perf::to_json(perf::summarize(recorder.events(), roofs, recorder.device_timed()));
  }

  // Logits over the quality text.
  if (quality_tokens.empty()) {
    if (!tokenizer) fail("{}: no tokenizer in the model directory to encode the quality text", c.model);
    quality_tokens = tokenizer->encode(w.quality_text, /*add_special_tokens=*/true);
    int64_t cap = w.quality_tokens;
    if (spec.max_position_embeddings > 0) cap = std::min(cap, spec.max_position_embeddings);
    if (int64_t(quality_tokens.size()) > cap) quality_tokens.resize(size_t(cap));
  }
  int64_t rows = int64_t(quality_tokens.size());
  if (spec.max_position_embeddings > 0) rows = std::min(rows, spec.max_position_embeddings);
  ROOFLINE_CHECK(rows >= 2, "{}: the quality text gives {} tokens; at least 2 are needed", c.label, rows);
  for (int64_t i = 0; i < rows; ++i)
    ROOFLINE_CHECK(quality_tokens[size_t(i)] >= 0 && quality_tokens[size_t(i)] < spec.vocab_size,
                   "{}: quality token {} is outside this model's vocabulary of {} (the two configurations need the "
                   "same tokenizer)",
                   c.label, quality_tokens[size_t(i)], spec.vocab_size);
  KvCache cache = decoder.new_cache(rows);
  const Tensor& logits = decoder.forward(std::span<const int32_t>(quality_tokens.data(), size_t(rows)), cache, true);
  std::ofstream f(logits_path, std::ios::binary);
  f.write(static_cast<const char*>(logits.data()), std::streamsize(size_t(rows) * size_t(spec.vocab_size) * sizeof(float)));
  ROOFLINE_CHECK(f.good(), "{}: cannot write the quality logits to {}", c.label, logits_path);
  out["quality_rows"] = rows;
  out["vocab"] = spec.vocab_size;
  out["quality_tokens"] = std::vector<int32_t>(quality_tokens.begin(), quality_tokens.begin() + rows);
  return out;
}

// Runs run_config in a child process and returns its JSON; a failure there is thrown here with its message.
json run_in_child(const Config& c, const Workload& w, const std::vector<int32_t>& quality_tokens,
                  const std::string& logits_path) {
  std::fflush(stdout);
  std::fflush(stderr);
  int fds[2];
  if (pipe(fds) != 0) fail("report: pipe failed: {}", std::strerror(errno));
  const pid_t pid = fork();
  if (pid < 0) fail("report: fork failed: {}", std::strerror(errno));
  if (pid == 0) {
    close(fds[0]);
    std::string text;
    int code = 0;
    try {
      text = run_config(c, w, quality_tokens, logits_path).dump(-1, ' ', false, json::error_handler_t::replace);
    } catch (const std::exception& e) {
      text = json{{"error", e.what()}}.dump(-1, ' ', false, json::error_handler_t::replace);
      code = 1;
    }
    for (size_t done = 0; done < text.size();) {
      const ssize_t n = write(fds[1], text.data() + done, text.size() - done);
      if (n <= 0) break;
      done += size_t(n);
    }
    close(fds[1]);
    std::fflush(stdout);
    std::fflush(stderr);
    _exit(code);  // the parent owns everything else: no destructors, no atexit
  }
  close(fds[1]);
  std::string text;
  char buf[65536];
  for (ssize_t n; (n = read(fds[0], buf, sizeof buf)) != 0;) {
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) break;
    text.append(buf, size_t(n));
  }
  close(fds[0]);
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (WIFSIGNALED(status)) fail("report: the {} run died of signal {} ({})", c.label, WTERMSIG(status), strsignal(WTERMSIG(status)));
  json j;
  try {
    j = json::parse(text);
  } catch (const std::exception&) {
    fail("report: the {} run ended (exit {}) without a result", c.label, WIFEXITED(status) ? WEXITSTATUS(status) : -1);
  }
  if (j.contains("error")) fail("report: {} ({}): {}", c.label, c.args, j["error"].get<std::string>());
  return j;
}

std::vector<float> read_floats(const std::string& path, size_t count) {
  std::vector<float> v(count);
  std::ifstream f(path, std::ios::binary);
  f.read(reinterpret_cast<char*>(v.data()), std::streamsize(count * sizeof(float)));
  ROOFLINE_CHECK(f.gcount() == std::streamsize(count * sizeof(float)), "{}: expected {} floats", path, count);
  return v;
}

std::string text_report(const json& r) {
  const json& b = r["baseline"];
  const json& c = r["candidate"];
  auto row = [](const std::string& name, const std::string& x, const std::string& y, const std::string& z = "") {
    return fmt::format("{:<22} {:<28} {:<28} {}\n", name, x, y, z);
  };
  auto mib = [](const json& v) { return fmt::format("{:.1f} MiB", v.get<double>() / (1 << 20)); };
  const json& w = r["workload"];
  std::string s = fmt::format("roofline report: {} workload, {} prompt tokens, {} new tokens, {} runs each\n",
                              w["kind"].get<std::string>(), b["prompt_tokens"].get<int64_t>(),
                              w["new_tokens"].get<int64_t>(), w["runs"].get<int>());
  s += fmt::format("baseline:  {}\ncandidate: {}\n\n", b["args"].get<std::string>(), c["args"].get<std::string>());
  s += row("", "baseline", "candidate");
  s += row("backend", b["backend"].get<std::string>(), c["backend"].get<std::string>());
  s += row("throughput", fmt::format("{:.2f} tok/s", b["tokens_per_s"].get<double>()),
           fmt::format("{:.2f} tok/s", c["tokens_per_s"].get<double>()), fmt::format("{:.3f}x", r["speedup"].get<double>()));
  const char* lat = w["kind"] == "prefill" ? "prefill latency" : "per-token latency";
  s += row(std::string(lat) + " p50", fmt::format("{:.3f} ms", b["latency_ms"]["p50"].get<double>()),
           fmt::format("{:.3f} ms", c["latency_ms"]["p50"].get<double>()));
  s += row(std::string(lat) + " p95", fmt::format("{:.3f} ms", b["latency_ms"]["p95"].get<double>()),
           fmt::format("{:.3f} ms", c["latency_ms"]["p95"].get<double>()));
  if (w["kind"] != "prefill")
    s += row("time to first token", fmt::format("{:.3f} ms", b["ttft_ms"]["p50"].get<double>()),
             fmt::format("{:.3f} ms", c["ttft_ms"]["p50"].get<double>()));
  s += row("peak memory", mib(b["peak_memory_bytes"]), mib(c["peak_memory_bytes"]), b["memory_kind"].get<std::string>());
  if (!b["gpu_util_percent"].is_null() || !c["gpu_util_percent"].is_null()) {
    auto util = [](const json& v) { return v.is_null() ? std::string("-") : fmt::format("{:.0f} %", v.get<double>()); };
    s += row("GPU utilisation", util(b["gpu_util_percent"]), util(c["gpu_util_percent"]));
  }
  auto verdict = [](const json& side) {
    const json& v = side["profile"]["verdict"];
    return fmt::format("{} ({:.0f}%)", v["bottleneck"].get<std::string>(), 100.0 * v["share"].get<double>());
  };
  s += row("bottleneck", verdict(b), verdict(c));
  // The analytic floor of each side's run, and how far above it the side ran.
  auto has_estimate = [](const json& side) {
    return side.contains("estimate") && side["estimate"].is_object() && !side["estimate"].contains("error");
  };
  auto floor_of = [&](const json& side) {
    if (side.contains("estimate") && side["estimate"].contains("error"))
      return "- (" + side["estimate"]["error"].get<std::string>() + ")";
    if (!has_estimate(side)) return std::string("-");
    const json& e = side["estimate"];
    return fmt::format("{:.3f} ms ({})", e["total_ms"].get<double>(), e["hardware"].get<std::string>());
  };
  auto source_of = [&](const json& side) {
    return has_estimate(side) ? side["estimate"]["hardware_source"].get<std::string>() : std::string("-");
  };
  const std::string sources = source_of(b) == source_of(c) ? source_of(b) : source_of(b) + " / " + source_of(c);
  auto ratio_of = [&](const json& side) {
    if (!has_estimate(side) || side["estimate"]["measured_over_estimate"].is_null()) return std::string("-");
    const json& e = side["estimate"];
    return fmt::format("{:.2f}x", e["measured_over_estimate"].get<double>());
  };
  auto by_shape = [&](const json& side) {
    return has_estimate(side) && side["estimate"].value("matmul_pricing", std::string()) == "shape_table";
  };
  s += row("estimate (floor)", floor_of(b), floor_of(c),
           "roofline estimate of the same run (" + sources + ")" +
               (by_shape(b) || by_shape(c) ? "; matmuls priced by GEMM shape" : ""));
  s += row("measured / estimate", ratio_of(b), ratio_of(c), "1.00x = at the roof");
  if (r["quality"].is_object()) {
    const json& q = r["quality"];
    const double pb = q["ppl_baseline"].get<double>(), pc = q["ppl_candidate"].get<double>();
    s += row("perplexity", fmt::format("{:.4f}", pb), fmt::format("{:.4f}", pc),
             fmt::format("{:+.2f}%", pb > 0 ? 100.0 * (pc - pb) / pb : 0));
    s += row("KL vs baseline", "", fmt::format("{:.4g} nats", q["kl"].get<double>()));
    s += row("top-1 agreement", "", fmt::format("{:.1f}%", 100.0 * q["top1_agreement"].get<double>()),
             fmt::format("over {} positions", q["positions"].get<int64_t>()));
  }
  std::string decision = r["decision"].get<std::string>();
  for (char& ch : decision) ch = char(std::toupper(static_cast<unsigned char>(ch)));
  s += "\ndecision: " + decision + "\n";
  for (const json& reason : r["reasons"]) s += "  - " + reason.get<std::string>() + "\n";
  return s;
}

}  // namespace

Run add_report(CLI::App& root) {
  struct Options {
    std::string baseline, candidate, prompt, prompt_file, quality_text_file, json_path, html_path;
    Workload workload;
    perf::Thresholds thresholds;
  };
  auto o = std::make_shared<Options>();
  CLI::App* cmd = root.add_subcommand(
      "report", "Compare two configurations on the same workload: speed, latency, memory, quality against the "
                "baseline, and a decision (accept / reject / review)");
  cmd->add_option("--baseline", o->baseline, "`roofline generate` flags of the baseline, e.g. \"-m DIR --threads 2\"")
      ->required();
  cmd->add_option("--candidate", o->candidate, "`roofline generate` flags of the candidate, e.g. \"-m DIR --device cuda\"")
      ->required();
  cmd->add_option("--workload", o->workload.kind,
                  "generate (prefill + new tokens), decode (per-token steps) or prefill (the prompt only)")
      ->check(CLI::IsMember({"generate", "decode", "prefill"}))
      ->capture_default_str();
  auto* p = cmd->add_option("--prompt", o->prompt, "Prompt text (default: ARGS' -p, else \"Once upon a time\")");
  auto* pf = cmd->add_option("--prompt-file", o->prompt_file, "Read the prompt from this file");
  p->excludes(pf);
  cmd->add_option("-n,--new-tokens", o->workload.new_tokens, "Tokens to generate per run (decode: decode steps)")
      ->check(CLI::Range(int64_t(1), int64_t(1) << 20))
      ->capture_default_str();
  cmd->add_option("--runs", o->workload.runs, "Timed runs of each configuration (after one warm-up)")
      ->check(CLI::Range(1, 10000))
      ->capture_default_str();
  cmd->add_option("--quality-text", o->quality_text_file,
                  "Text to score perplexity, KL and top-1 agreement on (default: a public-domain passage built in)");
  cmd->add_option("--quality-tokens", o->workload.quality_tokens, "Score at most this many tokens of the text")
      ->check(CLI::Range(int64_t(2), int64_t(1) << 20))
      ->capture_default_str();
  cmd->add_option("--max-ppl-increase", o->thresholds.max_ppl_increase,
                  "Largest relative perplexity increase accepted (0.01: +1%)")
      ->capture_default_str();
  cmd->add_option("--max-kl", o->thresholds.max_kl, "Largest mean KL(baseline || candidate) accepted, nats")
      ->capture_default_str();
  cmd->add_option("--min-top1", o->thresholds.min_top1, "Least top-1 agreement accepted (0..1)")->capture_default_str();
  cmd->add_option("--min-speedup", o->thresholds.min_speedup,
                  "Least candidate/baseline throughput that counts as a gain (within [2-X, X): review)")
      ->capture_default_str();
  cmd->add_option("--hw", o->workload.hw,
                  "Hardware for the roofs and the estimate: a name (h100, h200, a100, cpu, or one stored by "
                  "`roofline calibrate`) or a JSON file (default: the device that ran)");
  cmd->add_option("--calibration", o->workload.calibration,
                  "Calibrated hardware file that --hw names an entry of (default: $XDG_CONFIG_HOME/roofline/"
                  "hardware.json or ~/.config/roofline/hardware.json)")
      ->check(CLI::ExistingFile);
  auto* json_opt = cmd->add_option("--json", o->json_path, "Print the report as JSON (with FILE: write it there)")
                       ->expected(0, 1);
  cmd->add_option("--html", o->html_path, "Write a self-contained HTML page with the charts to this file");
  return [o, p, pf, json_opt]() {
    Workload w = o->workload;
    if (p->count()) w.prompt = o->prompt;
    if (pf->count()) w.prompt = read_file(o->prompt_file);
    w.quality_text = o->quality_text_file.empty() ? std::string(perf::default_held_out_text())
                                                  : read_file(o->quality_text_file);
    if (w.kind == "generate" && w.new_tokens < 1) fail("report: -n must be at least 1");
    const Config baseline = parse_config("baseline", o->baseline);
    const Config candidate = parse_config("candidate", o->candidate);

    char dir_template[] = "/tmp/roofline-report-XXXXXX";
    if (!mkdtemp(dir_template)) fail("report: cannot make a temporary directory: {}", std::strerror(errno));
    const std::string dir = dir_template;
    const std::string base_logits = dir + "/baseline.f32", cand_logits = dir + "/candidate.f32";
    struct Cleanup {
      std::string dir, a, b;
      ~Cleanup() {
        std::remove(a.c_str());
        std::remove(b.c_str());
        rmdir(dir.c_str());
      }
    } cleanup{dir, base_logits, cand_logits};

    std::fprintf(stderr, "report: running the baseline (%s) ...\n", baseline.args.c_str());
    json b = run_in_child(baseline, w, {}, base_logits);
    const std::vector<int32_t> tokens = b["quality_tokens"].get<std::vector<int32_t>>();
    std::fprintf(stderr, "report: running the candidate (%s) ...\n", candidate.args.c_str());
    json c = run_in_child(candidate, w, tokens, cand_logits);

    json quality = nullptr;
    std::optional<perf::QualityMetrics> q;
    std::string quality_error;
    if (b["vocab"] != c["vocab"]) {
      quality_error = fmt::format("the vocabularies differ ({} and {} tokens): quality cannot be compared",
                                  b["vocab"].get<int64_t>(), c["vocab"].get<int64_t>());
    } else {
      const int64_t vocab = b["vocab"].get<int64_t>();
      const int64_t rows = std::min(b["quality_rows"].get<int64_t>(), c["quality_rows"].get<int64_t>());
      const std::vector<float> lb = read_floats(base_logits, size_t(rows * vocab));
      const std::vector<float> lc = read_floats(cand_logits, size_t(rows * vocab));
      q = perf::compare_logits(lb, lc, vocab, std::span<const int32_t>(tokens.data(), size_t(rows)));
      quality = {{"ppl_baseline", q->ppl_baseline},
                 {"ppl_candidate", q->ppl_candidate},
                 {"kl", q->kl},
                 {"top1_agreement", q->top1_agreement},
                 {"positions", q->positions},
                 {"text", o->quality_text_file.empty() ? "built-in (Alice's Adventures in Wonderland, chapter I)"
                                                       : o->quality_text_file}};
    }
    for (json* side : {&b, &c}) side->erase("quality_tokens");

    const perf::Decision d =
        perf::decide(b["tokens_per_s"].get<double>(), c["tokens_per_s"].get<double>(), q, o->thresholds,
                     b["peak_memory_bytes"].get<double>(), c["peak_memory_bytes"].get<double>());
    json report = {{"workload", {{"kind", w.kind}, {"new_tokens", w.new_tokens}, {"runs", w.runs}}},
                   {"baseline", b},
                   {"candidate", c},
                   {"quality", quality},
                   {"speedup", d.speedup},
                   {"thresholds", {{"max_ppl_increase", o->thresholds.max_ppl_increase},
                                   {"max_kl", o->thresholds.max_kl},
                                   {"min_top1", o->thresholds.min_top1},
                                   {"min_speedup", o->thresholds.min_speedup}}},
                   {"decision", d.decision},
                   {"reasons", d.reasons}};
    if (!quality_error.empty()) report["reasons"].insert(report["reasons"].begin(), quality_error);
    if (!d.quality_pass) report["quality_pass"] = nullptr;
    else report["quality_pass"] = *d.quality_pass;

    const std::string dumped = report.dump(1, ' ', false, json::error_handler_t::replace) + "\n";
    if (json_opt->count() && o->json_path.empty()) {
      std::cout << dumped;
    } else {
      std::cout << text_report(report);
      if (!o->json_path.empty()) write_file_atomically(o->json_path, dumped);
    }
    std::cout.flush();
    if (!o->html_path.empty()) write_file_atomically(o->html_path, perf::render_report_html(report));
    return 0;
  };
}

}  // namespace roofline::app
