#include "roofline/perf/run_estimate.h"

#include "roofline/core/error.h"

namespace roofline::perf {

RunEstimate estimate_run(const ModelSpec& spec, const RunShape& run, const HardwareSpec& hw) {
  ROOFLINE_CHECK(run.prompt_tokens >= 1, "run estimate: the prompt has {} tokens", run.prompt_tokens);
  ROOFLINE_CHECK(run.decode_steps >= 0, "run estimate: {} decode steps", run.decode_steps);
  Workload w;
  w.weights = run.weights;
  w.activations = run.activations;
  w.kv_cache = run.kv_cache;
  RunEstimate r;
  Bound prefill_bound = Bound::Memory, decode_bound = Bound::Memory;
  if (run.prefill) {
    w.kind = WorkloadKind::Prefill;
    w.seq = run.prompt_tokens;
    w.context = 0;
    const Estimate p = estimate(spec, w, hw);
    r.prefill_s = p.time_s;
    prefill_bound = p.bound;
    r.matmuls_by_shape = p.matmuls_by_shape;
  }
  // Each step at its own context: an op's time is the larger of its compute and memory times, and windows
  // clamp the keys read, so the steps are not linear in the context (and an estimate costs microseconds).
  w.kind = WorkloadKind::Decode;
  w.seq = 1;
  for (int64_t i = 0; i < run.decode_steps; ++i) {
    w.context = run.prompt_tokens + i;
    const Estimate d = estimate(spec, w, hw);
    r.decode_s += d.time_s;
    decode_bound = d.bound;
    r.matmuls_by_shape = r.matmuls_by_shape || d.matmuls_by_shape;
  }
  r.total_s = r.prefill_s + r.decode_s;
  r.bound = r.prefill_s >= r.decode_s ? prefill_bound : decode_bound;
  return r;
}

nlohmann::json run_estimate_to_json(const RunShape& run, const RunEstimate& e, const HardwareSpec& hw,
                                    double measured_s) {
  nlohmann::json j = {{"hardware", hw.name},
                      {"hardware_source", hw.source},
                      {"matmul_pricing", e.matmuls_by_shape ? "shape_table" : "peak"},
                      {"weights", to_string(run.weights)},
                      {"activations", to_string(run.activations)},
                      {"kv_cache", to_string(run.kv_cache)},
                      {"prefill_ms", e.prefill_s * 1e3},
                      {"decode_ms", e.decode_s * 1e3},
                      {"decode_steps", run.decode_steps},
                      {"total_ms", e.total_s * 1e3},
                      {"bound", to_string(e.bound)},
                      {"measured_ms", nullptr},
                      {"measured_over_estimate", nullptr}};
  if (measured_s > 0 && e.total_s > 0) {
    j["measured_ms"] = measured_s * 1e3;
    j["measured_over_estimate"] = measured_s / e.total_s;
  }
  return j;
}

}  // namespace roofline::perf
