#include "roofline/perf/estimate.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

#include "roofline/core/error.h"
#include "roofline/model/model_spec.h"

namespace roofline::perf {

std::string_view to_string(Bound bound) {
  switch (bound) {
    case Bound::Compute: return "compute";
    case Bound::Memory: return "memory";
    case Bound::Communication: return "communication";
  }
  return "?";
}

StorageDType engine_storage_dtype(const HardwareSpec& hardware, WorkloadKind kind) {
  return is_cpu(hardware) && kind != WorkloadKind::Train ? StorageDType::F32 : StorageDType::BF16;
}

namespace {

// Only bf16 products use the table: it measures bf16 GEMMs, and an fp8 rate by shape was not measured (fp8
// products keep the fp8 peak). Nor do products of at most 8 rows (decode's projections up to 8 sequences,
// prefill's lm_head up to 8, decode attention's one query row per head): the table measured cuBLASLt from 16
// rows, whose time there is mostly its fixed cost, and the decode kernels' time is their reads (the bytes' roof). Attention's products run in the engine's fused
// kernels, not cuBLASLt; the table's rate for their batched shape is the nearest measured stand-in for what
// tensor cores reach there.
bool priced_by_table(const OpCost& cost, const GemmShape& g, const HardwareSpec& hw) {
  return !cost.fp8 && !hw.gemm_bf16_rates.empty() && !runs_on_decode_kernels(g);
}

}  // namespace

// A product's time from the table is what calibrate timed back to back: it holds the fixed cost every kernel
// pays (the gap after the previous kernel, the ramp before its reads stream), which the estimate adds once per
// kernel as kernel_overhead_s (calibrate measures both). It is taken out here, or small products (decode's
// 16..64 rows, 512-wide projections) would pay it twice; never below the product's time at the peak.
double effective_flops(const OpCost& cost, const HardwareSpec& hw) {
  const double peak = hw.peak_flops(cost.fp8);
  double flops = 0, seconds = 0;
  for (const GemmShape& g : cost.gemms) {
    flops += g.flops();
    const double at_peak_s = g.flops() / peak;
    seconds += priced_by_table(cost, g, hw)
                   ? std::max(at_peak_s, g.flops() / hw.gemm_bf16_rates.rate(g) - hw.kernel_overhead_s)
                   : at_peak_s;
  }
  return seconds > 0 ? flops / seconds : peak;
}

Estimate estimate(const ModelSpec& spec, const Workload& workload, const HardwareSpec& hw) {
  Estimate e;
  e.workload = workload;
  e.hardware = hw;
  for (const OpCost& cost : step_costs(spec, workload)) {
    OpEstimate op;
    op.cost = cost;
    op.peak_flops = hw.peak_flops(cost.fp8);
    op.effective_flops = effective_flops(cost, hw);
    op.shape_priced = std::any_of(cost.gemms.begin(), cost.gemms.end(),
                                  [&](const GemmShape& g) { return priced_by_table(cost, g, hw); });
    e.matmuls_by_shape = e.matmuls_by_shape || op.shape_priced;
    const double compute_s = cost.flops / op.effective_flops, memory_s = cost.bytes / hw.memory_bandwidth;
    // The roof is chosen by intensity against the peak's ridge, as a roofline plot places the op; the shape's
    // rate moves only the time. A small-M product's measured rate is low because its time is the weight read:
    // calling it compute-bound would send the levers (batch more, quantise) the wrong way.
    op.bound = cost.flops / op.peak_flops >= memory_s ? Bound::Compute : Bound::Memory;
    op.time_s = std::max(compute_s, memory_s);
    (op.bound == Bound::Compute ? e.compute_bound_s : e.memory_bound_s) += op.time_s;
    e.flops += cost.flops;
    if (cost.phase != OpPhase::Recompute) e.model_flops += cost.flops;
    e.bytes += cost.bytes;
    e.kernels += cost.kernels;
    e.ops.push_back(std::move(op));
  }
  ROOFLINE_CHECK(workload.threads == 0 || is_cpu(hw),
                 "--threads {}: sizes the CPU trainer's per-thread scratch; --hw {} is not a CPU", workload.threads,
                 hw.name);
  e.memory = memory_budget(spec, workload, train_memory_target(hw, workload.threads));
  e.comm = comm_costs(spec, workload, hw.interconnect_bandwidth);
  e.floor_s = e.compute_bound_s + e.memory_bound_s;
  e.overhead_s = e.kernels * hw.kernel_overhead_s;
  e.time_s = e.floor_s + e.overhead_s + e.comm.time_s;
  e.bound = e.comm.time_s > e.floor_s              ? Bound::Communication
            : e.compute_bound_s >= e.memory_bound_s ? Bound::Compute
                                                    : Bound::Memory;
  e.tokens = double(workload.batch) * double(workload.seq);
  e.tokens_per_s = e.tokens / e.time_s;
  e.peak_flops = hw.peak_flops(workload.weights == WeightDType::FP8);
  e.mfu_ceiling = e.model_flops / (e.time_s * e.peak_flops);
  e.mbu_ceiling = e.bytes / (e.time_s * hw.memory_bandwidth);
  e.fits = hw.memory_capacity <= 0 || e.memory.total() <= hw.memory_capacity;
  return e;
}

int64_t batch_leaving_memory_bound(const ModelSpec& spec, const Workload& workload, const HardwareSpec& hw) {
  constexpr int64_t kMaxPerReplica = 65536;
  auto memory_bound = [&](int64_t per_replica) {
    Workload w = workload;
    w.batch = per_replica * w.dp;
    return estimate(spec, w, hw).bound == Bound::Memory;
  };
  if (!memory_bound(kMaxPerReplica)) {
    int64_t lo = 1, hi = kMaxPerReplica;  // invariant: memory-bound at lo (or lo == 1), not at hi
    if (!memory_bound(lo)) return workload.dp;
    while (hi - lo > 1) {
      const int64_t mid = lo + (hi - lo) / 2;
      (memory_bound(mid) ? lo : hi) = mid;
    }
    return hi * workload.dp;
  }
  return 0;
}

namespace {

std::string gb(double bytes) { return fmt::format("{:.1f} GB", bytes / 1e9); }

double bytes_of(const Estimate& e, std::string_view name) {
  double sum = 0;
  for (const OpEstimate& op : e.ops)
    if (op.cost.name == name) sum += op.cost.bytes;
  return sum;
}

double weight_read_bytes(const Estimate& e) {
  double sum = 0;
  for (const OpEstimate& op : e.ops)
    if (op.cost.matmul && op.cost.phase == OpPhase::Forward) sum += op.cost.bytes;  // mostly the weights
  return sum;
}

}  // namespace

std::vector<std::string> levers(const ModelSpec& spec, const Estimate& e) {
  std::vector<std::string> out;
  const Workload& w = e.workload;
  const bool train = w.kind == WorkloadKind::Train;
  if (e.bound == Bound::Communication) {
    out.push_back(fmt::format(
        "communication ({:.3g} s) exceeds the compute/memory floor ({:.3g} s), with no overlap assumed: overlap "
        "collectives with compute, or send fewer bytes per FLOP",
        e.comm.time_s, e.floor_s));
    if (w.tp > 1)
      out.push_back("tensor parallelism all-reduces the activations twice per layer: lower --tp (use --dp for "
                    "throughput) or keep tp inside one NVLink domain");
    if (train && w.dp > 1)
      out.push_back("the gradient all-reduce is fixed per step: raise the batch per replica to amortise it" +
                    std::string(w.zero == 3 ? "; ZeRO-3 adds two parameter all-gathers: stage 1 or 2 if memory allows"
                                            : ""));
  } else if (e.bound == Bound::Memory) {
    if (train) {
      out.push_back("memory-bound training: too few tokens per step to reuse each weight; raise --batch or --seq");
    } else {
      const double kv = bytes_of(e, "attention_scores") + bytes_of(e, "attention_values");
      const int64_t batch = batch_leaving_memory_bound(spec, w, e.hardware);
      if (batch > 0)
        out.push_back(fmt::format("memory-bound: every weight is read once per step for the whole batch; batch "
                                  "more (the step turns compute-bound at batch ~{})",
                                  batch));
      else if (kv > 0)
        out.push_back(fmt::format(
            "memory-bound at every batch: each sequence's KV cache read grows with the batch as fast as its "
            "FLOPs; batching still amortises the weights up to batch ~{:.0f}, where the KV reads match them",
            std::ceil(weight_read_bytes(e) / (kv / double(w.batch_per_replica())))));
      if (w.weights != WeightDType::INT4)
        out.push_back(fmt::format("quantize weights: they are {:.0f}% of the bytes (--dtype int8/fp8 halves bf16, "
                                  "int4 quarters it{})",
                                  100 * weight_read_bytes(e) / e.bytes,
                                  w.weights == WeightDType::F32 ? "; bf16 alone halves f32" : ""));
      if (kv > 0.2 * e.bytes)
        out.push_back(fmt::format("the KV cache read is {:.0f}% of the bytes: shorter context, fewer KV heads, or a "
                                  "quantized KV cache{}",
                                  100 * kv / e.bytes, w.kv_cache == StorageDType::FP8 ? "" : " (--kv-dtype fp8)"));
    }
  } else {
    out.push_back(fmt::format("compute-bound (MFU ceiling {:.0f}%): fewer or cheaper FLOPs, or more devices", 100 * e.mfu_ceiling));
    if (e.hardware.peak_fp8_flops > e.hardware.peak_bf16_flops && w.weights != WeightDType::FP8 && !train)
      out.push_back(fmt::format("fp8 matmuls (--dtype fp8) run at {:.0f} instead of {:.0f} TFLOP/s here",
                                e.hardware.peak_fp8_flops / 1e12, e.hardware.peak_bf16_flops / 1e12));
    if (w.checkpointing)
      out.push_back("checkpointing recomputes every layer's forward (about a third more FLOPs): turn it off if "
                    "activations fit");
    out.push_back("more devices: --tp splits each step's FLOPs, --dp splits the batch");
  }
  if (e.overhead_s > 0.2 * e.time_s)
    out.push_back(fmt::format("kernel launches are {:.0f}% of the step ({:.0f} kernels at {:.1f} us): fuse kernels, "
                              "replay the step as a graph with programmatic dependent launch, or batch more",
                              100 * e.overhead_s / e.time_s, e.kernels, 1e6 * e.hardware.kernel_overhead_s));
  if (!e.fits)
    out.push_back(fmt::format("does not fit: needs {} of {} per device; raise --tp{}, quantize weights, or shrink "
                              "batch/context",
                              gb(e.memory.total()), gb(e.hardware.memory_capacity),
                              train ? ", --zero, --checkpointing" : ""));
  return out;
}

nlohmann::json estimate_to_json(const ModelSpec& spec, const Estimate& e) {
  const Workload& w = e.workload;
  nlohmann::json ops = nlohmann::json::array();
  for (const OpEstimate& op : e.ops) {
    const OpCost& c = op.cost;
    nlohmann::json row = {{"name", c.name},
                          {"group", to_string(c.group)},
                          {"phase", to_string(c.phase)},
                          {"repeats", c.repeats},
                          {"flops", c.flops},
                          {"bytes", c.bytes},
                          {"intensity", c.intensity()},
                          {"effective_flops_per_s", op.effective_flops},
                          {"time_s", op.time_s},
                          {"bound", to_string(op.bound)}};
    if (!c.gemms.empty()) {
      nlohmann::json gemms = nlohmann::json::array();
      for (const GemmShape& g : c.gemms) gemms.push_back({g.m, g.n, g.k, g.batch});
      row["gemms"] = gemms;
      row["shape_priced"] = op.shape_priced;
    }
    ops.push_back(std::move(row));
  }
  nlohmann::json comm_ops = nlohmann::json::array();
  for (const CommOp& op : e.comm.ops)
    comm_ops.push_back({{"name", op.name},
                        {"count", op.count},
                        {"bytes", op.bytes},
                        {"time_s", e.hardware.interconnect_bandwidth > 0 ? op.bytes / e.hardware.interconnect_bandwidth : 0.0}});
  nlohmann::json hardware = hardware_to_json(e.hardware);
  hardware["ridge_flops_per_byte"] = e.hardware.ridge_point(w.weights == WeightDType::FP8);
  if (hardware.contains("gemm_bf16_rates")) {  // the table belongs to the hardware file; its size says enough here
    hardware.erase("gemm_bf16_rates");
    hardware["gemm_bf16_rate_points"] = e.hardware.gemm_bf16_rates.points().size();
  }
  const MemoryBudget& m = e.memory;
  nlohmann::json workload = {{"kind", to_string(w.kind)},
                             {"batch", w.batch},
                             {"seq", w.seq},
                             {"context", w.context},
                             {"dtype", to_string(w.weights)},
                             {"activation_dtype", to_string(w.activations)},
                             {"kv_dtype", to_string(w.kv_cache)},
                             {"tp", w.tp},
                             {"dp", w.dp},
                             {"zero", w.zero},
                             {"checkpointing", w.checkpointing},
                             {"devices", w.tp * w.dp}};
  if (m.cpu_threads > 0) workload["threads"] = m.cpu_threads;  // the CPU trainer's, whose scratch is counted
  return {
      {"scope", "one step on one device; tokens_per_s over all devices"},
      {"model", {{"architecture", spec.architecture}, {"parameters", spec.parameter_count()}}},
      {"workload", workload},
      {"hardware", hardware},
      {"flops", e.flops},
      {"model_flops", e.model_flops},
      {"bytes", e.bytes},
      {"intensity", e.flops / e.bytes},
      {"time_s", e.time_s},
      {"floor_s", e.floor_s},
      {"kernels", e.kernels},
      {"kernel_overhead_s", e.overhead_s},
      {"compute_bound_s", e.compute_bound_s},
      {"memory_bound_s", e.memory_bound_s},
      {"bound", to_string(e.bound)},
      {"matmul_pricing", e.matmuls_by_shape ? "shape_table" : "peak"},
      {"tokens", e.tokens},
      {"tokens_per_s", e.tokens_per_s},
      {"mfu_ceiling", e.mfu_ceiling},
      {"mbu_ceiling", e.mbu_ceiling},
      {"memory_bytes",
       {{"weights", m.weights},
        {"kv_cache", m.kv_cache},
        {"activations", m.activations},
        {"gradients", m.gradients},
        {"optimizer", m.optimizer},
        {"workspace", m.workspace},
        {"context", m.context},
        {"total", m.total()},
        {"kv_cache_per_token", m.kv_cache_per_token},
        {"capacity", e.hardware.memory_capacity},
        {"fits", e.fits}}},
      {"communication",
       {{"bytes", e.comm.bytes}, {"time_s", e.comm.time_s}, {"overlap_with_compute", false}, {"ops", comm_ops}}},
      {"ops", ops},
      {"levers", levers(spec, e)},
  };
}

}  // namespace roofline::perf
