// Helpers for the perf tests: model shapes from their public configs, and sums over op lists.
#pragma once
#include <string>
#include <vector>

#include "roofline/model/presets.h"
#include "roofline/perf/cost_model.h"
#include "roofline/perf/workload.h"

namespace roofline::perf::test {

inline Workload workload(WorkloadKind kind, int64_t batch, int64_t seq, int64_t context = 0) {
  Workload w;
  w.kind = kind;
  w.batch = batch;
  w.seq = seq;
  w.context = context;
  return w;
}

inline double sum_if(const std::vector<OpCost>& ops, bool (*keep)(const OpCost&), double OpCost::*field) {
  double s = 0;
  for (const OpCost& op : ops)
    if (keep(op)) s += op.*field;
  return s;
}

inline double matmul_flops(const std::vector<OpCost>& ops) {
  return sum_if(ops, [](const OpCost& op) { return op.matmul; }, &OpCost::flops);
}

// Message of the roofline::Error (or any std::exception) that f throws; "" when it does not throw.
template <typename F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const std::exception& e) {
    return e.what();
  }
  return "";
}

}  // namespace roofline::perf::test

#define EXPECT_HAS(msg, part) EXPECT_NE((msg).find(part), std::string::npos) << (msg)
