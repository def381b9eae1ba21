#include "roofline/perf/run_estimate.h"

#include "roofline/core/error.h"
#include "roofline/perf/estimate.h"

namespace roofline::perf {

RunEstimate estimate_run(const ModelSpec& spec, const RunShape& run, const HardwareSpec& hw) {
  ROOFLINE_CHECK(run.prompt_tokens >= 1, "run estimate: the prompt has {} tokens", run.prompt_tokens);
  ROOFLINE_CHECK(run.decode_steps >= 0, "run estimate: {} decode steps", run.decode_steps);
  Workload w;
  w.weights = run.weights;
  w.activations = run.activations;
  w.kv_cache = run.kv_cache;
  RunEstimate r;
  const char* prefill_bound = "memory";
  if (run.prefill) {
    w.kind = WorkloadKind::Prefill;
    w.seq = run.prompt_tokens;
    w.context = 0;
    const Estimate p = estimate(spec, w, hw);
    r.prefill_s = p.time_s;
    prefill_bound = p.bound == Bound::Compute ? "compute" : "memory";
  }
  const char* decode_bound = "memory";
  if (run.decode_steps > 0) {
    // Every term of a decode step is linear in its context (keys read, pairs scored), so the steps' sum is
    // their count times the step at the mean context; the mean may be fractional, so average its neighbours.
    r.mean_context = double(run.prompt_tokens) + double(run.decode_steps - 1) / 2;
    w.kind = WorkloadKind::Decode;
    w.seq = 1;
    w.context = int64_t(r.mean_context);
    const Estimate lo = estimate(spec, w, hw);
    w.context += 1;
    const Estimate hi = estimate(spec, w, hw);
    const double frac = r.mean_context - double(int64_t(r.mean_context));
    r.decode_step_s = (1 - frac) * lo.time_s + frac * hi.time_s;
    decode_bound = lo.bound == Bound::Compute ? "compute" : "memory";
  }
  r.total_s = r.prefill_s + double(run.decode_steps) * r.decode_step_s;
  r.bound = r.prefill_s >= double(run.decode_steps) * r.decode_step_s ? prefill_bound : decode_bound;
  return r;
}

nlohmann::json run_estimate_to_json(const RunShape& run, const RunEstimate& e, const HardwareSpec& hw,
                                    double measured_s) {
  nlohmann::json j = {{"hardware", hw.name},
                      {"hardware_source", hw.source},
                      {"weights", to_string(run.weights)},
                      {"activations", to_string(run.activations)},
                      {"kv_cache", to_string(run.kv_cache)},
                      {"prefill_ms", e.prefill_s * 1e3},
                      {"decode_ms", e.decode_step_s * 1e3},
                      {"decode_steps", run.decode_steps},
                      {"mean_context", e.mean_context},
                      {"total_ms", e.total_s * 1e3},
                      {"bound", e.bound},
                      {"measured_ms", nullptr},
                      {"measured_over_estimate", nullptr}};
  if (measured_s > 0 && e.total_s > 0) {
    j["measured_ms"] = measured_s * 1e3;
    j["measured_over_estimate"] = measured_s / e.total_s;
  }
  return j;
}

}  // namespace roofline::perf
