// roofline bench: prefill and decode speed of B sequences on the CPU or a GPU, against the roofs measured in
// the same run: memory bandwidth (CPU streaming read; GPU device copy, read + write) and, on the GPU, the
// bf16 GEMM rate. A step's floor is max(bytes / bandwidth, FLOPs / GEMM rate); the report says which binds
// and how close the measured step comes to it.
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
#include "roofline/core/stats.h"
#include "roofline/core/atomic_file.h"
#include "roofline/core/error.h"
#include "roofline/core/thread_pool.h"
#include "roofline/model/decoder.h"
#include "roofline/model/presets.h"
#ifdef ROOFLINE_HAVE_CUDA
#include "roofline/backend/cuda/ceilings.h"
#include "roofline/backend/cuda/cuda_backend.h"
#include "roofline/backend/cuda/cuda_runtime_info.h"
#endif

namespace roofline::app {

namespace {
double now_seconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}
// Multiply-accumulate weights a token passes through (every projection and the lm_head).
double matmul_parameters(const ModelWeights& w) {
  auto n = [](const Linear& l) { return double(l.weight.numel()); };
  double total = n(w.lm_head);
  for (const LayerWeights& L : w.layers)
    total += n(L.q) + n(L.k) + n(L.v) + n(L.o) + (L.gate.weight.defined() ? n(L.gate) : 0.0) + n(L.up) + n(L.down);
  return total;
}

struct Ceilings {
  double bandwidth = 0;   // bytes/s
  double gemm_flops = 0;  // FLOP/s (0: not measured)
  std::string device;
};

Ceilings measure_ceilings(Backend& backend, int threads) {
  Ceilings c;
#ifdef ROOFLINE_HAVE_CUDA
  Backend* device = &backend;
  while (auto* timed = dynamic_cast<TimedBackend*>(device)) device = &timed->inner();  // under `profile`
  if (auto* gpu = dynamic_cast<cuda::CudaBackend*>(device)) {
    std::fprintf(stderr, "measuring copy bandwidth and bf16 GEMM rate (8192^3) ...\n");
    const cuda::GpuCeilings g = cuda::measure_gpu_ceilings(*gpu, 8192);
    c.bandwidth = g.copy_bytes_per_s;
    c.gemm_flops = g.gemm_bf16_flops_per_s;
    const auto devices = cuda::list_devices();
    c.device = devices.empty() ? "cuda" : devices[size_t(gpu->device_index())].name;
    return c;
  }
#endif
  std::fprintf(stderr, "measuring memory read bandwidth with %d threads ...\n", threads);
  ThreadPool pool(threads);
  c.bandwidth = measure_memory_read_bandwidth(pool, size_t(1) << 30);
  c.device = "cpu, " + cpu_isa_name() + ", " + std::to_string(threads) + " threads";
  (void)backend;
  return c;
}
}  // namespace

Run add_bench(CLI::App& root) {
  struct Options {
    std::string model, preset = "llama-134m", dtype = "bf16", json_path;
    int64_t prompt = 128, generate = 64, batch = 1;
    bool ops = false;
    DeviceOptions device;
  };
  auto o = std::make_shared<Options>();
  CLI::App* cmd = root.add_subcommand(
      "bench", "Measure prefill and decode speed against the roofline (`bench tokenizer`: tokenizer speed; `bench serve`: load-test a server)");
  auto* m = cmd->add_option("-m,--model", o->model, "Model directory (default: a preset with random weights)");
  auto* p = cmd->add_option("--preset", o->preset, "Model shape with random weights: " + [] {
    std::string s;
    for (auto& n : preset_names()) s += (s.empty() ? "" : ", ") + n;
    return s;
  }());
  m->excludes(p);
  cmd->require_subcommand(0, 1);
  auto tokenizer_bench = add_bench_tokenizer(*cmd);
  CLI::App* tokenizer_cmd = cmd->get_subcommand("tokenizer");
  Run serve_bench = add_bench_serve(*cmd);
  CLI::App* serve_cmd = cmd->get_subcommand("serve");
  cmd->add_option("--dtype", o->dtype, "Weight dtype of a preset")->check(CLI::IsMember({"f32", "f16", "bf16"}));
  cmd->add_option("--prompt", o->prompt, "Prompt tokens per sequence (prefill), also the decode context")->check(CLI::Range(1, 1 << 20));
  cmd->add_option("-n,--generate", o->generate, "Tokens to decode per sequence")->check(CLI::Range(2, 1 << 20));
  cmd->add_option("-b,--batch", o->batch, "Sequences prefilled and decoded together")->check(CLI::Range(1, 4096));
  cmd->add_option("--json", o->json_path, "Also write the results as JSON to this file");
  cmd->add_flag("--ops", o->ops, "Also time each op kind during decode and print where the time goes");
  o->device.add_to(cmd);
  return [o, tokenizer_bench, tokenizer_cmd, serve_bench, serve_cmd]() {
    if (tokenizer_cmd->parsed()) return tokenizer_bench();
    if (serve_cmd->parsed()) return serve_bench();
    std::unique_ptr<Model> loaded;
    ModelSpec spec;
    ModelWeights random;
    const ModelWeights* host_weights;
    std::string name;
    if (!o->model.empty()) {
      loaded = Model::load(o->model);
      spec = loaded->spec;
      host_weights = &loaded->weights;
      name = o->model;
    } else {
      spec = preset_spec(o->preset);
      DType dtype;
      parse_dtype_loose(o->dtype, &dtype);
      std::fprintf(stderr, "making random %s weights for preset %s ...\n", o->dtype.c_str(), o->preset.c_str());
      random = random_weights(spec, dtype, 1);
      host_weights = &random;
      name = o->preset + " (" + o->dtype + ", random weights)";
    }
    auto backend = o->device.make_backend();
    const int threads = o->device.threads > 0 ? o->device.threads : ThreadPool::hardware_threads();
    const double t_upload = now_seconds();
    const ModelWeights weights = upload_weights(*host_weights, *backend);
    const double upload_s = now_seconds() - t_upload;
    const Ceilings roof = measure_ceilings(*backend, threads);

    TimedBackend timed(*backend);
    Backend& run_on = o->ops ? static_cast<Backend&>(timed) : *backend;
    Decoder decoder(spec, weights, run_on, o->device.kv_dtype(*backend));
    const int64_t B = o->batch, P = o->prompt, N = o->generate, context = P + N;
    if (spec.position == PositionKind::Learned && context > spec.max_position_embeddings)
      fail("--prompt + --generate = {} exceeds the model's {} positions", context, spec.max_position_embeddings);
    const int64_t block = 16, blocks_per_seq = (context + block - 1) / block;
    KvPool pool = decoder.new_pool(B * blocks_per_seq, block);
    std::vector<std::vector<int32_t>> tables(static_cast<size_t>(B)), prompts(static_cast<size_t>(B));
    std::mt19937 rng(7);
    std::uniform_int_distribution<int32_t> token(0, int32_t(spec.vocab_size - 1));
    for (int64_t b = 0; b < B; ++b) {
      for (int64_t i = 0; i < blocks_per_seq; ++i) tables[size_t(b)].push_back(int32_t(b * blocks_per_seq + i));
      prompts[size_t(b)].resize(size_t(P));
      for (int32_t& id : prompts[size_t(b)]) id = token(rng);
    }
    std::vector<SequenceStep> steps(static_cast<size_t>(B));
    Tensor ids = run_on.alloc(DType::I32, {B});
    Tensor host_ids = Tensor::empty(DType::I32, {B});

    // Prefill: every sequence's prompt in one step; one warm-up, then the median of three.
    std::fprintf(stderr, "prefill %lld x %lld tokens, then decode %lld steps of %lld ...\n", (long long)B,
                 (long long)P, (long long)N, (long long)B);
    for (int64_t b = 0; b < B; ++b) steps[size_t(b)] = {prompts[size_t(b)], 0, tables[size_t(b)], true};
    std::vector<double> prefill_runs;
    const Tensor* logits = nullptr;
    for (int r = 0; r < 4; ++r) {
      const PhaseScope phase("prefill");  // the profile's phase: the step and its argmax
      const double t0 = now_seconds();
      logits = &decoder.step(steps, pool);
      run_on.argmax(ids, *logits);
      run_on.download(ids, host_ids);
      if (r > 0) prefill_runs.push_back(now_seconds() - t0);
    }
    const double prefill_s = median(prefill_runs);
    timed.reset();

    // Decode: B sequences one token each per step; the chosen ids go back to the host and in again.
    std::vector<int32_t> next(host_ids.ptr<int32_t>(), host_ids.ptr<int32_t>() + B);
    std::vector<double> step_s;
    for (int64_t i = 0; i < N; ++i) {
      const PhaseScope phase("decode");
      const double ts = now_seconds();
      for (int64_t b = 0; b < B; ++b) steps[size_t(b)] = {std::span<const int32_t>(&next[size_t(b)], 1), P + i, tables[size_t(b)], true};
      logits = &decoder.step(steps, pool);
      run_on.argmax(ids, *logits);
      run_on.download(ids, host_ids);
      std::copy_n(host_ids.ptr<int32_t>(), B, next.begin());
      step_s.push_back(now_seconds() - ts);
    }
    // The first steps record (CUDA graphs); the steady state is what the median reports.
    std::vector<double> steady(step_s.begin() + std::min<int64_t>(3, N - 1), step_s.end());

    // Work and floors per decode step (B tokens) at the mean context, and per prefill.
    const double kv_token_bytes = double(spec.kv_bytes_per_token(decoder.kv_cache_dtype()));
    const double mean_context = double(P) + double(N) / 2.0;
    const double mm_params = matmul_parameters(weights);
    const double attn_flops_per_key = 4.0 * double(spec.num_layers) * double(spec.q_dim());
    const double step_bytes = double(weights.decode_bytes()) + kv_token_bytes * mean_context * double(B);
    const double step_flops = double(B) * (2.0 * mm_params + attn_flops_per_key * mean_context);
    const double step_median = median(steady);
    const double decode_tps = double(B) / step_median;
    const double memory_floor = step_bytes / roof.bandwidth;
    const double compute_floor = roof.gemm_flops > 0 ? step_flops / roof.gemm_flops : 0.0;
    const bool compute_binds = compute_floor > memory_floor;
    const double floor_s = std::max(memory_floor, compute_floor);
    const double roof_tps = double(B) / floor_s;
    const double prefill_tps = double(B * P) / prefill_s;
    const double prefill_flops = double(B) * (2.0 * mm_params * double(P) + attn_flops_per_key * double(P) * double(P) / 2.0);
    const double prefill_mfu = roof.gemm_flops > 0 ? prefill_flops / prefill_s / roof.gemm_flops : 0.0;

    nlohmann::json j = {
        {"model", name}, {"device", roof.device}, {"backend", backend->name()}, {"batch", B},
        {"parameters", spec.parameter_count()}, {"weight_bytes_per_step", weights.decode_bytes()},
        {"upload_seconds", upload_s},
        {"bytes_per_step", step_bytes}, {"flops_per_step", step_flops},
        {"memory_bandwidth_gb_s", roof.bandwidth / 1e9}, {"gemm_tflop_s", roof.gemm_flops / 1e12},
        {"prompt_tokens", P}, {"decode_tokens", N},
        {"prefill_seconds", prefill_s}, {"prefill_tokens_per_s", prefill_tps},
        {"prefill_tflop_s", prefill_flops / prefill_s / 1e12}, {"prefill_mfu", prefill_mfu},
        {"decode_tokens_per_s", decode_tps}, {"decode_ms_p50", step_median * 1e3},
        {"decode_ms_p90", percentile(steady, 0.9) * 1e3}, {"decode_ms_p99", percentile(steady, 0.99) * 1e3},
        {"decode_gb_s", step_bytes / step_median / 1e9}, {"decode_tflop_s", step_flops / step_median / 1e12},
        {"decode_bound", compute_binds ? "compute" : "memory"},
        {"roofline_tokens_per_s", roof_tps}, {"roofline_fraction", floor_s / step_median},
        {"replayed_steps", decoder.replayed_steps()}};
    std::printf("%-28s %s\n", "model", name.c_str());
    std::printf("%-28s %s (%s backend)\n", "device", roof.device.c_str(), backend->name().c_str());
    std::printf("%-28s %.1f M params, batch %lld, %.1f MB read per decode step\n", "workload",
                double(spec.parameter_count()) / 1e6, (long long)B, step_bytes / 1e6);
    std::printf("%-28s %.2f GB/s%s\n", "memory bandwidth", roof.bandwidth / 1e9,
                backend->device() == Device::CPU ? " (streaming read, measured now)" : " (device copy, read + write, measured now)");
    if (roof.gemm_flops > 0) std::printf("%-28s %.1f TFLOP/s (bf16 GEMM 8192^3, measured now)\n", "GEMM rate", roof.gemm_flops / 1e12);
    std::printf("%-28s %.1f tok/s (%.2f TFLOP/s%s)\n", "prefill", prefill_tps, prefill_flops / prefill_s / 1e12,
                roof.gemm_flops > 0 ? (", MFU " + std::to_string(int(100 * prefill_mfu + 0.5)) + "%").c_str() : "");
    std::printf("%-28s %.2f tok/s  p50 %.3f ms  p90 %.3f ms  p99 %.3f ms per step\n", "decode", decode_tps,
                step_median * 1e3, percentile(steady, 0.9) * 1e3, percentile(steady, 0.99) * 1e3);
    std::printf("%-28s %.2f tok/s (%s bound)\n", "roofline", roof_tps, compute_binds ? "compute" : "bandwidth");
    std::printf("%-28s %.1f%% (%.2f GB/s, %.2f TFLOP/s achieved)\n", "fraction of roofline", 100.0 * floor_s / step_median,
                step_bytes / step_median / 1e9, step_flops / step_median / 1e12);
    // A model whose weights fit in the last-level cache is partly read from cache, not DRAM: its fraction
    // of the DRAM roofline can pass 100%. Say so rather than report it as bandwidth.
    const long l3 = sysconf(_SC_LEVEL3_CACHE_SIZE);
    j["l3_cache_bytes"] = l3 > 0 ? l3 : 0;
    if (backend->device() == Device::CPU && l3 > 0 && double(weights.decode_bytes()) < 4.0 * double(l3))
      std::printf("%-28s weights (%.0f MB) are under 4x the L3 cache (%.0f MB): part of each step is served from\n"
                  "%-28s cache, so this fraction overstates DRAM efficiency; use a larger model (e.g. --preset llama-1b-v32k)\n",
                  "note", double(weights.decode_bytes()) / 1e6, double(l3) / 1e6, "");
    if (o->ops) {
      double total = 0;
      for (auto& [op, t] : timed.timings()) total += t.seconds;
      const double step_total = std::accumulate(step_s.begin(), step_s.end(), 0.0);
      std::printf("\n%-14s %10s %10s %8s\n", "decode op", "ms/step", "calls/step", "share");
      for (auto& [op, t] : timed.timings()) {
        std::printf("%-14s %10.3f %10.1f %7.1f%%\n", op.c_str(), t.seconds * 1e3 / double(N),
                    double(t.calls) / double(N), 100.0 * t.seconds / step_total);
        j["decode_ops"][op] = {{"ms_per_step", t.seconds * 1e3 / double(N)}, {"calls", t.calls}};
      }
      std::printf("%-14s %10.3f %10s %7.1f%%\n", "(outside)", (step_total - total) * 1e3 / double(N), "",
                  100.0 * (step_total - total) / step_total);
    }
    if (!o->json_path.empty()) write_file_atomically(o->json_path, j.dump(1) + "\n");
    return 0;
  };
}

}  // namespace roofline::app
