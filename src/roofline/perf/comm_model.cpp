#include "roofline/perf/comm_model.h"

#include "roofline/core/error.h"
#include "roofline/model/model_spec.h"
#include "roofline/perf/memory_budget.h"
#include "roofline/perf/step_shapes.h"

namespace roofline::perf {

namespace {

double all_reduce_factor(double n) { return 2 * (n - 1) / n; }
double gather_factor(double n) { return (n - 1) / n; }  // reduce-scatter or all-gather

}  // namespace

CommCost comm_costs(const ModelSpec& spec, const Workload& w, double interconnect_bytes_per_s) {
  validate(w, spec);
  const StepShapes s = step_shapes(spec, w);
  const bool train = w.kind == WorkloadKind::Train;
  CommCost c;
  if (w.tp > 1) {
    const double activation = s.tokens * s.hidden * s.activation_bytes;
    const double passes = train ? (w.checkpointing ? 3 : 2) : 1;  // forward, backward, recomputed forward
    const double count = 2 * s.layers * passes;
    c.ops.push_back({"tp_all_reduce", count, count * all_reduce_factor(w.tp) * activation});
  }
  if (train && w.dp > 1) {
    const double params = parameters_per_device(spec, w.tp);
    const double grads = params * 2, weights = params * 2;  // bf16
    if (w.zero < 3) {
      c.ops.push_back({"dp_grad_all_reduce", 1, all_reduce_factor(w.dp) * grads});
    } else {
      c.ops.push_back({"dp_grad_reduce_scatter", 1, gather_factor(w.dp) * grads});
      c.ops.push_back({"dp_param_all_gather", 2, 2 * gather_factor(w.dp) * weights});
    }
  }
  for (const CommOp& op : c.ops) c.bytes += op.bytes;
  if (c.bytes > 0) {
    ROOFLINE_CHECK(interconnect_bytes_per_s > 0,
                   "tp {} x dp {} needs the interconnect bandwidth, which this hardware description lacks "
                   "(give --hw a JSON file with \"interconnect_bytes_per_s\")",
                   w.tp, w.dp);
    c.time_s = c.bytes / interconnect_bytes_per_s;
  }
  return c;
}

}  // namespace roofline::perf
