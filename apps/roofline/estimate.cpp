// roofline estimate: the analytic roofline of one step (perf/estimate.h) for a model shape on a hardware
// description, as a table grouped by phase and layer type, or as JSON.
#include <cmath>
#include <cstdio>
#include <filesystem>

#include <fmt/format.h>

#include "commands.h"
#include "roofline/core/error.h"
#include "roofline/model/model_spec.h"
#include "roofline/model/presets.h"
#include "roofline/perf/estimate.h"

namespace roofline::app {

namespace {

// 15.0G, 537M, 12.3k: SI prefixes for table cells.
std::string si(double v, const char* unit = "") {
  static const char* prefixes[] = {"", "k", "M", "G", "T", "P", "E"};
  int p = 0;
  while (std::abs(v) >= 999.5 && p < 6) v /= 1000, ++p;
  const int decimals = v == 0 ? 0 : std::abs(v) < 10 ? 2 : std::abs(v) < 100 ? 1 : 0;  // three significant digits
  return fmt::format("{:.{}f}{}{}{}", v, decimals, *unit ? " " : "", prefixes[p], unit);
}

std::string duration(double s) {
  if (s >= 1) return fmt::format("{:.3g} s", s);
  if (s >= 1e-3) return fmt::format("{:.3g} ms", s * 1e3);
  if (s >= 1e-6 || s == 0) return fmt::format("{:.3g} us", s * 1e6);
  return fmt::format("{:.3g} ns", s * 1e9);
}

std::string join(const std::vector<std::string>& items) {
  std::string out;
  for (const std::string& s : items) out += (out.empty() ? "" : ", ") + s;
  return out;
}

void print_table(const std::string& model, const perf::Estimate& e, const std::vector<std::string>& levers) {
  using namespace perf;
  const Workload& w = e.workload;
  const HardwareSpec& hw = e.hardware;
  std::printf("%s, %s: %s, batch %lld x %lld token%s, context %lld, %s weights, tp %d x dp %d%s%s\n",
              model.c_str(), hw.name.c_str(), std::string(to_string(w.kind)).c_str(), (long long)w.batch,
              (long long)w.seq, w.seq == 1 ? "" : "s", (long long)w.context, std::string(to_string(w.weights)).c_str(),
              w.tp, w.dp, w.zero ? fmt::format(", ZeRO-{}", w.zero).c_str() : "",
              w.checkpointing ? ", checkpointing" : "");
  std::printf("hardware: %s\n", hw.description.c_str());
  std::printf("          %s bf16%s, %s, %s%s; ridge point %.0f FLOP/byte\n", si(hw.peak_bf16_flops, "FLOP/s").c_str(),
              hw.peak_fp8_flops > 0 ? (", " + si(hw.peak_fp8_flops, "FLOP/s") + " fp8").c_str() : "",
              si(hw.memory_bandwidth, "B/s").c_str(), hw.memory_capacity > 0 ? si(hw.memory_capacity, "B").c_str() : "capacity unknown",
              hw.interconnect_bandwidth > 0 ? (", interconnect " + si(hw.interconnect_bandwidth, "B/s")).c_str() : "",
              hw.ridge_point(w.weights == WeightDType::FP8));
  // With a GEMM rate table each product runs at its shape's rate: a column says which.
  const bool by_shape = e.matmuls_by_shape;
  if (by_shape)
    std::printf("          matmuls priced by shape: %zu measured bf16 GEMM rates (M x N x K), capped at the peak;\n"
                "          column FLOP/s: the rate that priced each op\n",
                hw.gemm_bf16_rates.points().size());
  std::printf("\n%-22s %9s %9s %9s%s %10s %6s  %s\n", "op (per device)", "FLOPs", "bytes", "FLOP/B",
              by_shape ? fmt::format(" {:>9}", "FLOP/s").c_str() : "", "time", "share", "bound");
  // Rows grouped by phase, then by layer type, in the order the step runs them.
  for (OpPhase phase : {OpPhase::Forward, OpPhase::Recompute, OpPhase::Backward, OpPhase::Update}) {
    for (OpGroup group : {OpGroup::Embedding, OpGroup::Layer, OpGroup::Head, OpGroup::Optimizer}) {
      bool header = false;
      for (const OpEstimate& op : e.ops) {
        const OpCost& c = op.cost;
        if (c.phase != phase || c.group != group) continue;
        if (!header) {
          std::string title = std::string(to_string(group));
          if (group == OpGroup::Layer) title += fmt::format(" (x{:.0f})", c.repeats);
          if (w.kind == WorkloadKind::Train) title = std::string(to_string(phase)) + ": " + title;
          std::printf("%s\n", title.c_str());
          header = true;
        }
        std::printf("  %-20s %9s %9s %9.3g%s %10s %5.1f%%  %s\n", c.name.c_str(), si(c.flops).c_str(),
                    si(c.bytes, "B").c_str(), c.intensity(),
                    by_shape ? fmt::format(" {:>9}", si(op.effective_flops)).c_str() : "", duration(op.time_s).c_str(),
                    100 * op.time_s / e.time_s, std::string(to_string(op.bound)).c_str());
      }
    }
  }
  const char* rate_cell = by_shape ? "          " : "";  // the FLOP/s column, blank on these rows
  std::printf("%-22s %9s %9s %9.3g%s %10s %5.1f%%  %s\n", "total (compute+memory)", si(e.flops).c_str(),
              si(e.bytes, "B").c_str(), e.flops / e.bytes, rate_cell, duration(e.floor_s).c_str(),
              100 * e.floor_s / e.time_s, e.compute_bound_s >= e.memory_bound_s ? "compute" : "memory");
  if (e.overhead_s > 0)
    std::printf("%-22s %9s %9s %9s%s %10s %5.1f%%  %.0f kernels x %.2f us\n", "kernel overhead", "", "", "", rate_cell,
                duration(e.overhead_s).c_str(), 100 * e.overhead_s / e.time_s, e.kernels, 1e6 * hw.kernel_overhead_s);
  for (const CommOp& c : e.comm.ops)
    std::printf("  %-20s %9s %9s %9s%s %10s %5.1f%%  communication\n", c.name.c_str(), "", si(c.bytes, "B").c_str(), "",
                rate_cell, duration(c.bytes / hw.interconnect_bandwidth).c_str(),
                100 * c.bytes / hw.interconnect_bandwidth / e.time_s);

  const MemoryBudget& m = e.memory;
  std::printf("\nmemory per device: weights %s, KV cache %s (%s/token), activations %s, gradients %s, optimizer %s\n",
              si(m.weights, "B").c_str(), si(m.kv_cache, "B").c_str(), si(m.kv_cache_per_token, "B").c_str(),
              si(m.activations, "B").c_str(), si(m.gradients, "B").c_str(), si(m.optimizer, "B").c_str());
  if (m.workspace > 0 && is_cpu(hw))
    std::printf("                   workspace %s (backward buffers, logits chunk, per-thread attention scores and "
                "GEMM panels of %d thread%s, batches)\n",
                si(m.workspace, "B").c_str(), m.cpu_threads, m.cpu_threads == 1 ? "" : "s");
  else if (m.workspace > 0 || m.context > 0)
    std::printf("                   workspace %s (backward buffers, logits chunk, cuBLASLt), CUDA context ~%s\n",
                si(m.workspace, "B").c_str(), si(m.context, "B").c_str());
  std::printf("                   total %s of %s: %s\n", si(m.total(), "B").c_str(),
              hw.memory_capacity > 0 ? si(hw.memory_capacity, "B").c_str() : "unknown",
              e.fits ? "fits" : "DOES NOT FIT");
  std::printf("step: %s (compute-bound ops %s + memory-bound ops %s + kernel overhead %s + communication %s, not "
              "overlapped)\n",
              duration(e.time_s).c_str(), duration(e.compute_bound_s).c_str(), duration(e.memory_bound_s).c_str(),
              duration(e.overhead_s).c_str(), duration(e.comm.time_s).c_str());
  std::printf("      %s tokens/s over %d device%s; MFU ceiling %.1f%%, bandwidth (MBU) ceiling %.1f%%\n",
              si(e.tokens_per_s).c_str(), w.tp * w.dp, w.tp * w.dp == 1 ? "" : "s", 100 * e.mfu_ceiling,
              100 * e.mbu_ceiling);
  std::printf("bound: %s\n", std::string(to_string(e.bound)).c_str());
  for (const std::string& lever : levers) std::printf("  - %s\n", lever.c_str());
  std::printf("assumes: %s activations, %s KV cache, fused attention (scores stay on chip), each byte moved once,\n"
              "         %s\n",
              std::string(to_string(w.activations)).c_str(), std::string(to_string(w.kv_cache)).c_str(),
              by_shape ? "bf16 matmuls at the rate calibrate measured for their shape (attention's per-head products "
                         "as batched GEMMs)"
                       : "peaks as stated (datasheet peaks are not reachable: `roofline calibrate` measures real ones)");
}

}  // namespace

Run add_estimate(CLI::App& root) {
  struct Options {
    std::string model, preset, hw, workload, dtype = "bf16", kv_dtype = "auto", activation_dtype = "auto", calibration;
    int64_t batch = 0, seq = 0, context = 0;
    int tp = 1, dp = 1, zero = 0, threads = 0;
    bool checkpointing = false, json = false;
  };
  auto o = std::make_shared<Options>();
  CLI::App* cmd = root.add_subcommand(
      "estimate", "Analytic roofline of one step: FLOPs, bytes and time floor per op, the binding roof, memory "
                  "budget and communication");
  auto* m = cmd->add_option("-m,--model", o->model, "Model directory (its config.json gives the shape)");
  auto* p = cmd->add_option("--preset", o->preset, "Named model shape: " + join(preset_names()));
  m->excludes(p);
  cmd->add_option("--hw", o->hw,
                  "Hardware: " + join(perf::builtin_hardware_names()) +
                      ", a name stored by `roofline calibrate`, or a JSON file of the same fields")
      ->required();
  cmd->add_option("--workload", o->workload, "What one step does")
      ->required()
      ->check(CLI::IsMember({"decode", "prefill", "train"}));
  cmd->add_option("--batch", o->batch, "Sequences per step, over all devices (split over --dp)")->required();
  cmd->add_option("--seq", o->seq, "New tokens per sequence in the step (decode: 1; prefill/train: sequence length)")
      ->required();
  cmd->add_option("--context", o->context, "Tokens per sequence already in the KV cache before the step (default 0)");
  cmd->add_option("--tp", o->tp, "Tensor-parallel devices (Megatron-style; default 1)");
  cmd->add_option("--dp", o->dp, "Data-parallel replicas (default 1)");
  cmd->add_option("--zero", o->zero, "ZeRO stage for train: 0 none, 1 optimizer state, 2 + gradients, 3 + parameters");
  cmd->add_option("--dtype", o->dtype,
                  "Linear weights: bf16, f16, f32 (a checkpoint run as stored), fp8 (W8A8), int8 or int4 (weight-only, "
                  "group 128)")
      ->check(CLI::IsMember({"bf16", "f16", "f32", "fp8", "int8", "int4"}));
  cmd->add_option("--kv-dtype", o->kv_dtype,
                  "KV cache entries: auto (the engine's on that hardware: f32 on a CPU, bf16 on a GPU), f32, bf16, f16 "
                  "or fp8 (e4m3, as --kv-cache-dtype fp8 serves)")
      ->check(CLI::IsMember({"auto", "f32", "bf16", "f16", "fp8"}));
  cmd->add_option("--activation-dtype", o->activation_dtype,
                  "Activations between ops: auto (f32 on a CPU, bf16 on a GPU; bf16 for train), f32, bf16 or f16")
      ->check(CLI::IsMember({"auto", "f32", "bf16", "f16"}));
  cmd->add_flag("--checkpointing", o->checkpointing, "Train: recompute each layer's forward in backward");
  cmd->add_option("--threads", o->threads,
                  "Train on a CPU (--hw cpu): the threads `roofline train --threads` will run, each with its own "
                  "attention scores and GEMM panels (default: one per hardware thread, as roofline train)")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--calibration", o->calibration,
                  "Calibrated hardware file (default: $XDG_CONFIG_HOME/roofline/hardware.json or "
                  "~/.config/roofline/hardware.json)")
      ->check(CLI::ExistingFile);
  cmd->add_flag("--json", o->json, "Print JSON instead of the table");
  return [o]() {
    ROOFLINE_CHECK(!o->model.empty() || !o->preset.empty(), "estimate: give -m DIR or --preset NAME (presets: {})",
                   join(preset_names()));
    const ModelSpec spec = o->model.empty() ? preset_spec(o->preset) : load_model_spec(o->model);
    const std::string name =
        o->model.empty() ? o->preset : std::filesystem::path(o->model).lexically_normal().filename().string();
    perf::Workload w;
    perf::parse_workload_kind(o->workload, &w.kind);
    perf::parse_weight_dtype(o->dtype, &w.weights);
    w.batch = o->batch, w.seq = o->seq, w.context = o->context;
    w.tp = o->tp, w.dp = o->dp, w.zero = o->zero, w.checkpointing = o->checkpointing, w.threads = o->threads;
    const perf::HardwareSpec hw = perf::resolve_hardware(o->hw, perf::calibration_path_or_default(o->calibration));
    const perf::StorageDType engine = perf::engine_storage_dtype(hw, w.kind);
    w.activations = engine, w.kv_cache = engine;
    if (o->activation_dtype != "auto") perf::parse_storage_dtype(o->activation_dtype, &w.activations);
    if (o->kv_dtype != "auto") perf::parse_storage_dtype(o->kv_dtype, &w.kv_cache);
    perf::validate(w, spec);
    const perf::Estimate e = perf::estimate(spec, w, hw);
    if (o->json) {
      nlohmann::json j = perf::estimate_to_json(spec, e);
      j["model"]["name"] = name;
      std::printf("%s\n", j.dump(1).c_str());
    } else {
      print_table(name, e, perf::levers(spec, e));
    }
    return 0;
  };
}

}  // namespace roofline::app
