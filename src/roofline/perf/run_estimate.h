// The estimate of one single-sequence run as `roofline report` times it: a prefill of the prompt, then decode
// steps whose context grows by one token each, priced by the analytic model (estimate.h) with the storage the
// engine really used (weights as loaded, its activation and KV cache dtypes). Beside the measured time it says
// how far the engine runs from its floor: measured / estimate, 1.0 at the roof.
#pragma once
#include <cstdint>

#include <nlohmann/json.hpp>

#include "roofline/perf/estimate.h"
#include "roofline/perf/hardware.h"
#include "roofline/perf/workload.h"

namespace roofline {
struct ModelSpec;
}

namespace roofline::perf {

struct RunShape {
  int64_t prompt_tokens = 1;
  int64_t decode_steps = 0;  // after the prefill; step i (0-based) runs with prompt_tokens + i tokens cached
  bool prefill = true;       // false: only the decode steps are timed (report's decode workload)
  WeightDType weights = WeightDType::BF16;
  StorageDType activations = StorageDType::BF16, kv_cache = StorageDType::BF16;
};

struct RunEstimate {
  double prefill_s = 0;  // the prompt's forward (and choosing the first token), 0 when not part of the run
  double decode_s = 0;   // the decode steps, each priced at its own context
  double total_s = 0;    // prefill_s + decode_s
  Bound bound = Bound::Memory;  // of the part that takes longer (of its last, longest-context step)
  bool matmuls_by_shape = false;  // some step priced a matmul from the GEMM rate table (Estimate::matmuls_by_shape)
};

// Throws roofline::Error for a shape the model cannot price (see validate()).
RunEstimate estimate_run(const ModelSpec& spec, const RunShape& run, const HardwareSpec& hardware);

// {hardware, hardware_source, matmul_pricing ("shape_table" | "peak", as estimate.h), weights, activations,
//  kv_cache, prefill_ms, decode_ms, decode_steps, total_ms, bound, measured_ms, measured_over_estimate}:
//  measured_s is the same run's measured time (<= 0: unknown).
nlohmann::json run_estimate_to_json(const RunShape& run, const RunEstimate& e, const HardwareSpec& hardware,
                                    double measured_s);

}  // namespace roofline::perf
