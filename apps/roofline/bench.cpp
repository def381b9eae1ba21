// roofline bench: decode and prefill speed on the CPU, against the bandwidth roofline measured in the same
// run (bytes read per decoded token over the machine's streaming read bandwidth).
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <numeric>
#include <random>

#include <unistd.h>

#include <nlohmann/json.hpp>

#include "commands.h"
#include "common.h"
#include "roofline/backend/cpu/cpu_features.h"
#include "roofline/backend/cpu/memory_bandwidth.h"
#include "roofline/backend/timed_backend.h"
#include "roofline/core/error.h"
#include "roofline/core/thread_pool.h"
#include "roofline/model/decoder.h"
#include "roofline/model/presets.h"
#include "roofline/core/atomic_file.h"

namespace roofline::app {

namespace {
double now_seconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}
double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}
double percentile(std::vector<double> v, double q) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[std::min(v.size() - 1, size_t(q * double(v.size())))];
}
}  // namespace

Run add_bench(CLI::App& root) {
  struct Options {
    std::string model, preset = "llama-134m", dtype = "bf16", json_path;
    int64_t prompt = 128, generate = 64;
    bool ops = false;
    DeviceOptions device;
  };
  auto o = std::make_shared<Options>();
  CLI::App* cmd = root.add_subcommand(
      "bench", "Measure prefill and decode speed against the memory-bandwidth roofline (`bench tokenizer`: tokenizer speed)");
  auto* m = cmd->add_option("-m,--model", o->model, "Model directory (default: a preset with random weights)");
  auto* p = cmd->add_option("--preset", o->preset, "Model shape with random weights: " + [] {
    std::string s;
    for (auto& n : preset_names()) s += (s.empty() ? "" : ", ") + n;
    return s;
  }());
  m->excludes(p);
  cmd->require_subcommand(0, 1);
  Run tokenizer_bench = add_bench_tokenizer(*cmd);
  CLI::App* tokenizer_cmd = cmd->get_subcommand("tokenizer");
  cmd->add_option("--dtype", o->dtype, "Weight dtype of a preset")->check(CLI::IsMember({"f32", "f16", "bf16"}));
  cmd->add_option("--prompt", o->prompt, "Prompt tokens (prefill), also the decode context")->check(CLI::Range(1, 1 << 20));
  cmd->add_option("-n,--generate", o->generate, "Tokens to decode")->check(CLI::Range(2, 1 << 20));
  cmd->add_option("--json", o->json_path, "Also write the results as JSON to this file");
  cmd->add_flag("--ops", o->ops, "Also time each op kind during decode and print where the time goes");
  o->device.add_to(cmd);
  return [o, tokenizer_bench, tokenizer_cmd]() {
    if (tokenizer_cmd->parsed()) return tokenizer_bench();
    std::unique_ptr<Model> loaded;
    ModelSpec spec;
    ModelWeights random;
    const ModelWeights* weights;
    std::string name;
    if (!o->model.empty()) {
      loaded = Model::load(o->model);
      spec = loaded->spec;
      weights = &loaded->weights;
      name = o->model;
    } else {
      spec = preset_spec(o->preset);
      DType dtype;
      parse_dtype_loose(o->dtype, &dtype);
      std::fprintf(stderr, "making random %s weights for preset %s ...\n", o->dtype.c_str(), o->preset.c_str());
      random = random_weights(spec, dtype, 1);
      weights = &random;
      name = o->preset + " (" + o->dtype + ", random weights)";
    }
    auto backend = o->device.make_backend();
    const int threads = o->device.threads > 0 ? o->device.threads : ThreadPool::hardware_threads();

    // The roof: streaming read bandwidth with the same number of threads, measured now.
    std::fprintf(stderr, "measuring memory read bandwidth with %d threads ...\n", threads);
    double bandwidth;
    {
      ThreadPool pool(threads);
      bandwidth = measure_memory_read_bandwidth(pool, size_t(1) << 30);
    }

    TimedBackend timed(*backend);
    Decoder decoder(spec, *weights, o->ops ? static_cast<Backend&>(timed) : *backend);
    const int64_t context = o->prompt + o->generate;
    KvCache cache = decoder.new_cache(context);
    std::mt19937 rng(7);
    std::uniform_int_distribution<int32_t> token(0, int32_t(spec.vocab_size - 1));
    std::vector<int32_t> prompt(size_t(o->prompt));
    for (int32_t& id : prompt) id = token(rng);

    std::fprintf(stderr, "prefill %lld tokens, then decode %lld ...\n", (long long)o->prompt, (long long)o->generate);
    double t0 = now_seconds();
    const Tensor* logits = &decoder.forward(prompt, cache, false);
    const double prefill_s = now_seconds() - t0;
    timed.reset();
    std::vector<double> step_s;
    for (int64_t i = 0; i < o->generate; ++i) {
      const float* row = logits->ptr<float>();
      int32_t next = int32_t(std::max_element(row, row + spec.vocab_size) - row);
      double ts = now_seconds();
      logits = &decoder.forward(std::span<const int32_t>(&next, 1), cache, false);
      step_s.push_back(now_seconds() - ts);
    }
    // Bytes a decode step must read: every weight once, plus the KV cache of the context so far (f32).
    const double kv_token_bytes = double(2 * spec.num_layers * spec.kv_dim()) * sizeof(float);
    const double mean_context = double(o->prompt) + double(o->generate) / 2.0;
    const double bytes_per_token = double(weights->decode_bytes()) + kv_token_bytes * mean_context;
    const double flops_per_token = 2.0 * double(spec.parameter_count()) + 4.0 * double(spec.num_layers) * mean_context * double(spec.q_dim());
    const double step_median = median(step_s);
    const double decode_tps = 1.0 / step_median;
    const double roof_tps = bandwidth / bytes_per_token;
    const double prefill_tps = double(o->prompt) / prefill_s;
    const double prefill_flops = 2.0 * double(spec.parameter_count()) * double(o->prompt);

    nlohmann::json j = {
        {"model", name}, {"device", "cpu"}, {"isa", cpu_isa_name()}, {"threads", threads},
        {"parameters", spec.parameter_count()}, {"weight_bytes_per_token", weights->decode_bytes()},
        {"bytes_per_token", bytes_per_token}, {"memory_read_bandwidth_gb_s", bandwidth / 1e9},
        {"prompt_tokens", o->prompt}, {"decode_tokens", o->generate},
        {"prefill_tokens_per_s", prefill_tps}, {"prefill_gflop_s", prefill_flops / prefill_s / 1e9},
        {"decode_tokens_per_s", decode_tps}, {"decode_ms_p50", step_median * 1e3},
        {"decode_ms_p90", percentile(step_s, 0.9) * 1e3}, {"decode_ms_p99", percentile(step_s, 0.99) * 1e3},
        {"decode_gb_s", bytes_per_token * decode_tps / 1e9}, {"decode_gflop_s", flops_per_token * decode_tps / 1e9},
        {"roofline_tokens_per_s", roof_tps}, {"roofline_fraction", decode_tps / roof_tps}};
    std::printf("%-28s %s\n", "model", name.c_str());
    std::printf("%-28s cpu, %s, %d threads\n", "device", cpu_isa_name().c_str(), threads);
    std::printf("%-28s %.1f M params, %.1f MB read per decoded token\n", "workload",
                double(spec.parameter_count()) / 1e6, bytes_per_token / 1e6);
    std::printf("%-28s %.2f GB/s (streaming read, measured now)\n", "memory bandwidth", bandwidth / 1e9);
    std::printf("%-28s %.1f tok/s (%.1f GFLOP/s)\n", "prefill", prefill_tps, prefill_flops / prefill_s / 1e9);
    std::printf("%-28s %.2f tok/s  p50 %.2f ms  p90 %.2f ms  p99 %.2f ms\n", "decode", decode_tps, step_median * 1e3,
                percentile(step_s, 0.9) * 1e3, percentile(step_s, 0.99) * 1e3);
    std::printf("%-28s %.2f tok/s at %.2f GB/s\n", "roofline (bandwidth)", roof_tps, bandwidth / 1e9);
    std::printf("%-28s %.1f%% (%.2f GB/s achieved)\n", "fraction of roofline", 100.0 * decode_tps / roof_tps,
                bytes_per_token * decode_tps / 1e9);
    // A model whose weights fit in the last-level cache is partly read from cache, not DRAM: its fraction
    // of the DRAM roofline can pass 100%. Say so rather than report it as bandwidth.
    const long l3 = sysconf(_SC_LEVEL3_CACHE_SIZE);
    j["l3_cache_bytes"] = l3 > 0 ? l3 : 0;
    if (l3 > 0 && double(weights->decode_bytes()) < 4.0 * double(l3))
      std::printf("%-28s weights (%.0f MB) are under 4x the L3 cache (%.0f MB): part of each step is served from\n"
                  "%-28s cache, so this fraction overstates DRAM efficiency; use a larger model (e.g. --preset llama-1b-v32k)\n",
                  "note", double(weights->decode_bytes()) / 1e6, double(l3) / 1e6, "");
    if (o->ops) {
      double total = 0;
      for (auto& [op, t] : timed.timings()) total += t.seconds;
      const double step_total = std::accumulate(step_s.begin(), step_s.end(), 0.0);
      std::printf("\n%-12s %10s %10s %8s\n", "decode op", "ms/token", "calls/tok", "share");
      for (auto& [op, t] : timed.timings()) {
        std::printf("%-12s %10.3f %10.1f %7.1f%%\n", op.c_str(), t.seconds * 1e3 / double(o->generate),
                    double(t.calls) / double(o->generate), 100.0 * t.seconds / step_total);
        j["decode_ops"][op] = {{"ms_per_token", t.seconds * 1e3 / double(o->generate)}, {"calls", t.calls}};
      }
      std::printf("%-12s %10.3f %10s %7.1f%%\n", "(outside)", (step_total - total) * 1e3 / double(o->generate), "",
                  100.0 * (step_total - total) / step_total);
    }
    if (!o->json_path.empty()) write_file_atomically(o->json_path, j.dump(1) + "\n");
    return 0;
  };
}

}  // namespace roofline::app
