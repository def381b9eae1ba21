// Bytes each device sends over the interconnect in one step, and the time that takes. Ring collectives:
// an all-reduce of S bytes over N devices sends 2(N-1)/N x S per device, a reduce-scatter or all-gather
// (N-1)/N x S. Time = bytes / the per-direction link bandwidth: the bandwidth term only (no per-collective
// latency), all devices on one NVLink-class domain, and no overlap with compute.
#pragma once
#include <string>
#include <vector>

#include "roofline/perf/workload.h"

namespace roofline {
struct ModelSpec;
}

namespace roofline::perf {

struct CommOp {
  std::string name;   // "tp_all_reduce", "dp_grad_all_reduce", ...
  double count = 0;   // collectives in the step
  double bytes = 0;   // sent per device, all `count` collectives together
};

struct CommCost {
  std::vector<CommOp> ops;
  double bytes = 0;   // sent per device in the step
  double time_s = 0;  // bytes / interconnect bandwidth

  bool empty() const { return ops.empty(); }
};

// Tensor parallel (Megatron-style): two all-reduces of the [tokens, hidden] bf16 activations per layer in
// the forward (after o_proj and after down_proj), two more in the backward, two more per recomputed layer.
// Data parallel (train): the bf16 gradients are all-reduced (ZeRO 1 and 2 do it as a reduce-scatter plus an
// all-gather of the updated parameters: the same bytes); ZeRO-3 reduce-scatters gradients and all-gathers
// the parameters twice (forward and backward).
// interconnect_bytes_per_s: per direction per device. Throws roofline::Error when communication is needed
// but the bandwidth is unknown (0).
CommCost comm_costs(const ModelSpec& spec, const Workload& workload, double interconnect_bytes_per_s);

}  // namespace roofline::perf
