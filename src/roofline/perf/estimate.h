// The roofline estimate of one step: each op's time floor, max(FLOPs / peak FLOP/s, bytes / bandwidth),
// which roof binds it, and the totals; the memory budget; the communication time; and, where the hardware
// figures carry one (calibrated GPUs), the fixed cost of each kernel launch, which is what a decode step of
// many small kernels pays beyond its bytes. Communication is assumed not to overlap compute (time = floor +
// kernel overhead + communication), so the estimate is pessimistic for an engine that overlaps.
#pragma once
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "roofline/perf/comm_model.h"
#include "roofline/perf/cost_model.h"
#include "roofline/perf/hardware.h"
#include "roofline/perf/memory_budget.h"
#include "roofline/perf/workload.h"

namespace roofline {
struct ModelSpec;
}

namespace roofline::perf {

enum class Bound { Compute, Memory, Communication };
std::string_view to_string(Bound bound);

struct OpEstimate {
  OpCost cost;
  double peak_flops = 0;       // the roof this op's FLOPs run against (fp8 or bf16)
  double effective_flops = 0;  // the rate its FLOPs are priced at: peak_flops, or its products' shape rate
  bool shape_priced = false;   // effective_flops comes from the hardware's GEMM rate table
  double time_s = 0;           // max(flops / effective_flops, bytes / bandwidth)
  Bound bound = Bound::Memory;  // by intensity: compute when flops / peak_flops >= bytes / bandwidth
};

// The FLOP/s the products of `cost` run at on `hw`: with a GEMM rate table (and bf16 products), each product
// at its shape's time from the table less the kernel's fixed cost (hw.kernel_overhead_s, which the estimate
// adds per kernel), never faster than the peak (products on the decode kernels, runs_on_decode_kernels, at the peak), combined as
// total FLOPs over total seconds; otherwise the peak.
double effective_flops(const OpCost& cost, const HardwareSpec& hw);

struct Estimate {
  Workload workload;
  HardwareSpec hardware;
  std::vector<OpEstimate> ops;
  MemoryBudget memory;
  CommCost comm;
  double flops = 0, bytes = 0;  // per device, one step
  double compute_bound_s = 0;   // summed floors of the compute-bound ops
  double memory_bound_s = 0;    // summed floors of the memory-bound ops
  double floor_s = 0;           // compute_bound_s + memory_bound_s
  double kernels = 0;           // kernel launches in the step (OpCost::kernels)
  double overhead_s = 0;        // kernels x the hardware's kernel_overhead_s: the fixed cost of launching them
  double time_s = 0;            // floor_s + overhead_s + comm.time_s (no overlap)
  Bound bound = Bound::Memory;  // communication when comm.time_s > floor_s, else the roof with more time
  double tokens = 0;            // tokens processed in the step over all devices (batch x seq)
  double tokens_per_s = 0;      // tokens / time_s
  double model_flops = 0;       // flops without the checkpointing recompute (what MFU counts; HFU counts all)
  double mfu_ceiling = 0;       // model_flops / (time_s x peak): the best model-FLOPs utilisation possible
  double mbu_ceiling = 0;       // bytes / (time_s x bandwidth): the best bandwidth utilisation possible
  double peak_flops = 0;        // the peak used for MFU (fp8 when the matmuls run in fp8)
  bool matmuls_by_shape = false;  // some op was priced from the hardware's GEMM rate table
  bool fits = true;             // memory.total() <= hardware.memory_capacity (true when capacity is unknown)
};

// How the engine stores activations and its KV cache on that hardware (Workload::activations, kv_cache): f32 on
// a CPU, bf16 on a GPU; bf16 for training anywhere (as the training model prices it).
StorageDType engine_storage_dtype(const HardwareSpec& hardware, WorkloadKind kind);

// Throws roofline::Error for an invalid workload, or communication without an interconnect bandwidth.
Estimate estimate(const ModelSpec& spec, const Workload& workload, const HardwareSpec& hardware);

// The smallest batch (a multiple of dp, at most 65536 per replica) at which a memory-bound inference step
// stops being memory-bound; 0 when none does (e.g. the KV cache read dominates at every batch).
int64_t batch_leaving_memory_bound(const ModelSpec& spec, const Workload& workload, const HardwareSpec& hardware);

// What to change to move the step, one sentence each, most useful first: for the binding roof (batching or
// quantising for memory, fp8 or more devices for compute, fewer collectives for communication) and for a
// memory budget that does not fit.
std::vector<std::string> levers(const ModelSpec& spec, const Estimate& estimate);

// The --json contract: flops, bytes, time_s, bound, memory_bytes{weights, kv_cache, activations, gradients,
// optimizer, ...}, ops[{name, group, phase, repeats, flops, bytes, intensity, effective_flops_per_s,
// [gemms: [[M, N, K, batch], ...], shape_priced], time_s, bound}], matmul_pricing ("shape_table" | "peak"),
// tokens_per_s, mfu_ceiling, hardware{... (a rate table as its point count)}, workload{...},
// communication{...}, levers[...].
nlohmann::json estimate_to_json(const ModelSpec& spec, const Estimate& estimate);

}  // namespace roofline::perf
