// The bf16 GEMM rate a GPU really reaches for a given shape, measured by `roofline calibrate --device cuda` on
// a model-independent grid and interpolated between its points. One big-cube rate (8192^3) overstates what
// 2048-class shapes reach: waves of output tiles that do not fill every SM, shallow K that leaves the
// epilogue and prologue unamortised, and small M whose time is the weight read rather than the arithmetic.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace roofline::perf {

// One matrix product C[m, n] = A[m, k] . B[k, n], run `batch` times on independent operands (attention's
// per-head products). FLOPs: 2 * m * n * k * batch. Doubles: the cost model's dimensions are (per device).
struct GemmShape {
  double m = 0, n = 0, k = 0, batch = 1;
  double flops() const { return 2 * m * n * k * batch; }
};

// Up to this many rows the CUDA backend runs its own memory-bound GEMV (cuda::kGemvMaxM), not cuBLASLt: the
// table, measured on cuBLASLt from 16 rows up, does not describe it, and its time is its weight read.
constexpr double kGemvMaxRows = 8;
// A product of at most kGemvMaxRows rows runs on the engine's decode kernels, priced by its bytes: the GEMV for
// a projection, the decode attention kernel for decode's per-head products (one query row each, however many
// heads and sequences the batch holds).
inline bool runs_on_decode_kernels(const GemmShape& g) { return g.m <= kGemvMaxRows; }

struct GemmRatePoint {
  int64_t m = 0, n = 0, k = 0;
  double flops_per_s = 0;
};

class GemmRateTable {
 public:
  GemmRateTable() = default;
  // Refuses (roofline::Error, prefixed by `label`) a table that is not a full grid: every combination of the
  // M, N and K values it names present exactly once, each rate positive and finite.
  GemmRateTable(std::vector<GemmRatePoint> points, const std::string& label);

  bool empty() const { return points_.empty(); }
  const std::vector<GemmRatePoint>& points() const { return points_; }

  // FLOP/s for `shape`, interpolated over the grid (see gemm_rates.cpp for how and why); 0 for an empty table.
  double rate(const GemmShape& shape) const;

  // [[M, N, K, flops_per_s], ...] in the table's order; from_json refuses anything else with a message that
  // names the entry.
  nlohmann::json to_json() const;
  static GemmRateTable from_json(const nlohmann::json& j, const std::string& label);

 private:
  std::vector<GemmRatePoint> points_;
  std::vector<double> ms_, ns_, ks_;    // the grid's distinct values, ascending
  std::vector<double> log_rates_;       // by (m index, n index, k index), k fastest
  double log_rate_at(size_t mi, size_t ni, size_t ki) const;
};

// The grid calibrate measures: M, N and K in powers of two that cover the decode-to-training row counts and
// the layer widths of the models the engine runs (GPT-2 124M to Llama 8B, their lm_heads clamped at the edge).
// `quick`: a coarser grid for `calibrate --quick`.
std::vector<GemmShape> gemm_rate_grid(bool quick);

}  // namespace roofline::perf
