// Matmuls priced by their GEMM shape: the shapes the cost model gives each op, and the estimate with a rate
// table against sums computed here by hand.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>

#include "perf_test_util.h"
#include "roofline/model/model_spec.h"
#include "roofline/perf/estimate.h"
#include "roofline/perf/run_estimate.h"

namespace roofline::perf {
namespace {

using test::workload;

// Rates that depend on M alone: 200 TFLOP/s at 1024 rows, 800 at 4096, whatever N and K; so 400 at 2048 (the
// geometric middle), 200 below 1024 and 800 above 4096 (clamped). No kernel overhead unless asked: with one,
// each product's time is the table's less that fixed cost (TheKernelsFixedCostIsCountedOnce).
HardwareSpec h100_with_rates(double at_1024 = 200e12, double at_4096 = 800e12, double kernel_overhead_s = 0) {
  std::vector<GemmRatePoint> points;
  for (int64_t m : {1024, 4096})
    for (int64_t n : {512, 8192})
      for (int64_t k : {512, 8192}) points.push_back({m, n, k, m == 1024 ? at_1024 : at_4096});
  HardwareSpec h = builtin_hardware("h100");
  h.gemm_bf16_rates = GemmRateTable(points, "test");
  h.kernel_overhead_s = kernel_overhead_s;
  return h;
}

const OpEstimate& find(const Estimate& e, const std::string& name, OpPhase phase = OpPhase::Forward) {
  auto it = std::find_if(e.ops.begin(), e.ops.end(),
                         [&](const OpEstimate& op) { return op.cost.name == name && op.cost.phase == phase; });
  if (it == e.ops.end()) throw std::runtime_error("no op " + name);
  return *it;
}

TEST(GemmShapes, LinearLayersAndTheirBackward) {
  const ModelSpec spec = preset_spec("llama-1b");  // hidden 2048, 32 heads of 64, 8 KV heads, ffn 8192
  const std::vector<OpCost> ops = step_costs(spec, workload(WorkloadKind::Train, 4, 2048));
  auto op = [&](const std::string& name, OpPhase phase) {
    for (const OpCost& c : ops)
      if (c.name == name && c.phase == phase) return c;
    throw std::runtime_error("no op " + name);
  };
  auto shape = [](const GemmShape& g) { return std::vector<double>{g.m, g.n, g.k, g.batch}; };
  const OpCost k_fwd = op("k_proj", OpPhase::Forward), k_bwd = op("k_proj", OpPhase::Backward);
  ASSERT_EQ(k_fwd.gemms.size(), 1u);
  EXPECT_EQ(shape(k_fwd.gemms[0]), (std::vector<double>{8192, 512, 2048, 1}));
  ASSERT_EQ(k_bwd.gemms.size(), 2u);
  EXPECT_EQ(shape(k_bwd.gemms[0]), (std::vector<double>{8192, 2048, 512, 1}));  // dX = dY . W
  EXPECT_EQ(shape(k_bwd.gemms[1]), (std::vector<double>{512, 2048, 8192, 1}));  // dW = dY^T . X
  // The products carry all of a bias-free matmul's FLOPs, per layer.
  for (const OpCost* c : {&k_fwd, &k_bwd}) {
    double flops = 0;
    for (const GemmShape& g : c->gemms) flops += g.flops();
    EXPECT_DOUBLE_EQ(flops * c->repeats, c->flops) << c->name;
  }
  EXPECT_EQ(shape(op("lm_head", OpPhase::Forward).gemms[0]), (std::vector<double>{8192, 128256, 2048, 1}));
  // Attention: per (sequence, head) products, batched over 4 sequences x 32 heads.
  EXPECT_EQ(shape(op("attention_scores", OpPhase::Forward).gemms[0]), (std::vector<double>{2048, 2048, 64, 128}));
  EXPECT_EQ(shape(op("attention_values", OpPhase::Forward).gemms[0]), (std::vector<double>{2048, 64, 2048, 128}));
  EXPECT_EQ(op("attention_scores", OpPhase::Backward).gemms.size(), 3u);
  EXPECT_EQ(op("attention_values", OpPhase::Backward).gemms.size(), 2u);
  EXPECT_TRUE(op("rope", OpPhase::Forward).gemms.empty());
  // Decode: one query row per sequence against the cached keys.
  const std::vector<OpCost> decode = step_costs(spec, workload(WorkloadKind::Decode, 8, 1, 100));
  for (const OpCost& c : decode) {
    if (c.name != "attention_scores") continue;
    EXPECT_EQ(shape(c.gemms[0]), (std::vector<double>{1, 101, 64, 256}));
  }
}

TEST(EstimateByShape, PrefillIsTheSumOfPerOpFloorsAtTheirShapesRates) {
  const ModelSpec spec = preset_spec("llama-1b");
  const HardwareSpec hw = h100_with_rates(200e12, 800e12, 2e-6);
  const Estimate e = estimate(spec, workload(WorkloadKind::Prefill, 1, 2048), hw);
  EXPECT_TRUE(e.matmuls_by_shape);
  // By hand: projections run 2048 rows (400 TFLOP/s), attention's 32 heads x 2048 rows clamp at 4096 (800);
  // the lm_head's single row (prefill samples the last token) runs the GEMV, at the peak as the rest. A
  // product's time from the table loses the 2 us the kernel overhead adds back.
  double expected = 0;
  for (const OpEstimate& op : e.ops) {
    const std::string& n = op.cost.name;
    double rate = 989e12;
    if (n == "q_proj" || n == "k_proj" || n == "v_proj" || n == "o_proj" || n == "gate_proj" || n == "up_proj" ||
        n == "down_proj")
      rate = 400e12;
    else if (n == "attention_scores" || n == "attention_values")
      rate = 800e12;
    if (rate < 989e12) {
      const double product = op.cost.gemms.at(0).flops();
      rate = product / std::max(product / 989e12, product / rate - 2e-6);
    }
    EXPECT_NEAR(op.effective_flops, rate, 1e-6 * rate) << n;
    expected += std::max(op.cost.flops / rate, op.cost.bytes / 3.35e12);
  }
  EXPECT_NEAR(e.floor_s, expected, 1e-12 * expected);
  EXPECT_NEAR(e.time_s, expected + e.kernels * 2e-6, 1e-12 * expected);
  // One op spelled out: q_proj's 16 layers of 2 x 2048^3 FLOPs at 400 TFLOP/s, less the 2 us each.
  EXPECT_NEAR(find(e, "q_proj").time_s, 16 * (2.0 * 2048 * 2048 * 2048 / 400e12 - 2e-6), 1e-15);
  EXPECT_EQ(find(e, "q_proj").bound, Bound::Compute);
  // The MFU ceiling stays relative to the peak, not to the table.
  EXPECT_NEAR(e.mfu_ceiling, e.model_flops / (e.time_s * 989e12), 1e-12);
  // Slower matmuls than the peak: the shape-aware estimate is longer.
  EXPECT_GT(e.time_s, estimate(spec, workload(WorkloadKind::Prefill, 1, 2048), builtin_hardware("h100")).time_s);
}

TEST(EstimateByShape, BackwardCombinesItsProductsByTime) {
  const ModelSpec spec = preset_spec("llama-1b");
  const Estimate e = estimate(spec, workload(WorkloadKind::Train, 1, 2048), h100_with_rates());
  // k_proj backward: dX has 2048 rows (400 TFLOP/s), dW 512 rows (clamped at 1024: 200), equal FLOPs each:
  // 2 F / (F / 400 + F / 200) = 266.7 TFLOP/s.
  EXPECT_NEAR(find(e, "k_proj", OpPhase::Backward).effective_flops, 2 / (1 / 400e12 + 1 / 200e12), 1e3);
  // q_proj backward: both products 2048 rows.
  EXPECT_NEAR(find(e, "q_proj", OpPhase::Backward).effective_flops, 400e12, 1e3);
  // gate_proj: dW has 8192 rows (clamped at 4096: 800).
  EXPECT_NEAR(find(e, "gate_proj", OpPhase::Backward).effective_flops, 2 / (1 / 400e12 + 1 / 800e12), 1e3);
  EXPECT_TRUE(find(e, "adamw", OpPhase::Update).effective_flops == 989e12);
}

// An H100 whose 16-row GEMMs run at 10 TFLOP/s (the weight read dominates them) and 4096-row ones at 800.
HardwareSpec h100_with_slow_small_m() {
  std::vector<GemmRatePoint> points;
  for (int64_t m : {16, 4096})
    for (int64_t n : {512, 8192})
      for (int64_t k : {512, 8192}) points.push_back({m, n, k, m == 16 ? 10e12 : 800e12});
  HardwareSpec hw = builtin_hardware("h100");
  hw.gemm_bf16_rates = GemmRateTable(points, "test");
  return hw;
}

TEST(EstimateByShape, TheRoofFollowsIntensityNotTheTablesRate) {
  // 16 rows at 10 TFLOP/s (the weight read dominates such a GEMM): q_proj's time is the table's, 16 layers of
  // 2 x 16 x 2048^2 FLOPs at 10 TFLOP/s = 215 us, above its 40 us of bytes; it stays memory-bound (intensity ~16).
  const HardwareSpec hw = h100_with_slow_small_m();
  const Estimate e = estimate(preset_spec("llama-1b"), workload(WorkloadKind::Decode, 16, 1, 128), hw);
  const OpEstimate& q = find(e, "q_proj");
  EXPECT_NEAR(q.time_s, 16 * 2.0 * 16 * 2048 * 2048 / 10e12, 1e-15);
  EXPECT_GT(q.time_s, 2 * q.cost.bytes / 3.35e12);
  EXPECT_EQ(q.bound, Bound::Memory);
  EXPECT_EQ(e.bound, Bound::Memory);
}

TEST(EstimateByShape, GemvRowsAreNotPricedFromTheTable) {
  // At most 8 rows the engine runs its own memory-bound GEMV (k and v fused into q's kernel), not the
  // cuBLASLt GEMM the table measured from 16 rows up: a clamped 16-row rate (its time mostly cuBLASLt's fixed
  // cost) must not price it above its weight read. Here 16 rows run at 10 TFLOP/s, so 8 rows at that rate
  // would take 16 x 2 x 8 x 512 x 2048 / 10e12 = 27 us for k_proj against its 34 MB / 3.35 TB/s = 10 us.
  const HardwareSpec hw = h100_with_slow_small_m();
  const ModelSpec spec = preset_spec("llama-1b");
  for (int64_t batch : {1, 4, 8}) {
    const Estimate e = estimate(spec, workload(WorkloadKind::Decode, batch, 1, 128), hw);
    const Estimate at_peak = estimate(spec, workload(WorkloadKind::Decode, batch, 1, 128), builtin_hardware("h100"));
    for (const char* name : {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj", "lm_head"}) {
      const OpEstimate& op = find(e, name);
      EXPECT_FALSE(op.shape_priced) << name << " batch " << batch;
      EXPECT_EQ(op.effective_flops, op.peak_flops) << name << " batch " << batch;
      EXPECT_DOUBLE_EQ(op.time_s, find(at_peak, name).time_s) << name << " batch " << batch;
    }
  }
  // Prefill's lm_head runs one row per sequence: a GEMV up to 8 sequences, a GEMM from 9.
  EXPECT_FALSE(find(estimate(spec, workload(WorkloadKind::Prefill, 8, 256), hw), "lm_head").shape_priced);
  EXPECT_TRUE(find(estimate(spec, workload(WorkloadKind::Prefill, 9, 256), hw), "lm_head").shape_priced);
  // From 9 rows the backend runs cuBLASLt: the table prices it (clamped at its 16-row rate).
  EXPECT_TRUE(find(estimate(spec, workload(WorkloadKind::Decode, 9, 1, 128), hw), "k_proj").shape_priced);
}

TEST(EstimateByShape, TheKernelsFixedCostIsCountedOnce) {
  // A table measured on a GPU that behaves as the estimate models it: each GEMM takes the fixed cost every
  // kernel pays (launch gap, ramp: kernel_overhead_s, which calibrate measures too) plus the larger of its
  // FLOPs at the peak and its bytes at the bandwidth. The estimate adds kernel_overhead_s per kernel; pricing
  // the product at the table's rate as well would count that fixed cost twice.
  const double peak = 989e12, bandwidth = 3.35e12, fixed = 5e-6;
  auto measured_s = [&](double m, double n, double k) {
    return fixed + std::max(2 * m * n * k / peak, 2 * (m * k + n * k + m * n) / bandwidth);
  };
  std::vector<GemmRatePoint> points;
  for (int64_t m : {16, 2048})
    for (int64_t n : {512, 2048, 8192})
      for (int64_t k : {512, 2048, 8192})
        points.push_back({m, n, k, 2.0 * double(m) * double(n) * double(k) / measured_s(double(m), double(n), double(k))});
  HardwareSpec hw = builtin_hardware("h100");
  hw.gemm_bf16_rates = GemmRateTable(points, "test");
  hw.kernel_overhead_s = fixed;
  const ModelSpec spec = preset_spec("llama-1b");
  // Prefill of 2048 tokens: q_proj is a 2048^3 product, k_proj 2048 x 512 x 2048; each one kernel per layer.
  const Estimate e = estimate(spec, workload(WorkloadKind::Prefill, 1, 2048), hw);
  for (const char* name : {"q_proj", "k_proj", "down_proj"}) {
    const OpEstimate& op = find(e, name);
    const GemmShape& g = op.cost.gemms.at(0);
    EXPECT_NEAR(op.time_s / op.cost.repeats + fixed, measured_s(g.m, g.n, g.k), 1e-12) << name;
  }
  // Decode of 16 sequences: the 16-row products' time is their weight read; the table's extra is the fixed cost.
  const Estimate d = estimate(spec, workload(WorkloadKind::Decode, 16, 1, 128), hw);
  const OpEstimate& q = find(d, "q_proj");
  EXPECT_NEAR(q.time_s / q.cost.repeats + fixed, measured_s(16, 2048, 2048), 1e-12);
  // Never faster than the peak, whatever the table says.
  for (const OpEstimate& op : e.ops) EXPECT_LE(op.effective_flops, op.peak_flops) << op.cost.name;
}

TEST(EstimateByShape, NeverAboveThePeak) {
  const Estimate e = estimate(preset_spec("llama-1b"), workload(WorkloadKind::Prefill, 1, 2048),
                              h100_with_rates(2000e12, 3000e12));
  for (const OpEstimate& op : e.ops) EXPECT_LE(op.effective_flops, 989e12) << op.cost.name;
  EXPECT_DOUBLE_EQ(find(e, "q_proj").effective_flops, 989e12);
}

TEST(EstimateByShape, Fp8MatmulsKeepTheFp8Peak) {
  Workload w = workload(WorkloadKind::Prefill, 16, 128);  // 16 sequences: the lm_head's 16 rows run cuBLASLt
  w.weights = WeightDType::FP8;
  const Estimate e = estimate(preset_spec("llama-1b"), w, h100_with_rates());
  EXPECT_FALSE(find(e, "q_proj").shape_priced);
  EXPECT_DOUBLE_EQ(find(e, "q_proj").effective_flops, 1979e12);
  EXPECT_TRUE(find(e, "lm_head").shape_priced);  // tied to the bf16 embedding: a bf16 product
  EXPECT_TRUE(find(e, "attention_scores").shape_priced);
}

TEST(EstimateByShape, WithoutATableEveryOpRunsAtThePeak) {
  const ModelSpec spec = preset_spec("llama-1b");
  for (WorkloadKind kind : {WorkloadKind::Decode, WorkloadKind::Prefill, WorkloadKind::Train}) {
    const bool decode = kind == WorkloadKind::Decode;
    const Estimate e = estimate(spec, workload(kind, 2, decode ? 1 : 512, decode ? 64 : 0), builtin_hardware("h100"));
    EXPECT_FALSE(e.matmuls_by_shape);
    for (const OpEstimate& op : e.ops) {
      EXPECT_FALSE(op.shape_priced);
      EXPECT_EQ(op.effective_flops, op.peak_flops);
      EXPECT_EQ(op.time_s, std::max(op.cost.flops / op.peak_flops, op.cost.bytes / 3.35e12));
    }
    EXPECT_EQ(estimate_to_json(spec, e).at("matmul_pricing"), "peak");
  }
}

TEST(EstimateByShape, JsonSaysWhichRatePricedEachOp) {
  const ModelSpec spec = preset_spec("llama-1b");
  const nlohmann::json j = estimate_to_json(spec, estimate(spec, workload(WorkloadKind::Prefill, 1, 2048), h100_with_rates()));
  EXPECT_EQ(j.at("matmul_pricing"), "shape_table");
  EXPECT_EQ(j.at("hardware").at("gemm_bf16_rate_points"), 8);
  EXPECT_FALSE(j.at("hardware").contains("gemm_bf16_rates"));  // the table stays in the hardware file
  bool seen = false;
  for (const nlohmann::json& op : j.at("ops")) {
    ASSERT_TRUE(op.contains("effective_flops_per_s")) << op.dump();
    if (op.at("name") != "q_proj") continue;
    seen = true;
    EXPECT_NEAR(op.at("effective_flops_per_s").get<double>(), 400e12, 1e3);
    EXPECT_EQ(op.at("gemms"), nlohmann::json::parse("[[2048.0, 2048.0, 2048.0, 1.0]]"));
    EXPECT_EQ(op.at("shape_priced"), true);
  }
  EXPECT_TRUE(seen);
}

// A run says it used the table only when one of its steps priced a matmul from it: a batch-1 decode runs the
// GEMV and the decode attention kernel (one query row per head), priced by their bytes, even on hardware that
// has a table.
TEST(EstimateByShape, ARunSaysWhetherTheTablePricedIt) {
  const ModelSpec spec = preset_spec("llama-1b");
  RunShape decode_only;
  decode_only.prompt_tokens = 16;
  decode_only.prefill = false;
  decode_only.decode_steps = 4;
  const RunEstimate d = estimate_run(spec, decode_only, h100_with_rates());
  EXPECT_FALSE(d.matmuls_by_shape);
  EXPECT_EQ(run_estimate_to_json(decode_only, d, h100_with_rates(), 0)["matmul_pricing"], "peak");
  RunShape with_prefill = decode_only;
  with_prefill.prefill = true;
  const RunEstimate p = estimate_run(spec, with_prefill, h100_with_rates());
  EXPECT_TRUE(p.matmuls_by_shape);
  EXPECT_EQ(run_estimate_to_json(with_prefill, p, h100_with_rates(), 0)["matmul_pricing"], "shape_table");
}

}  // namespace
}  // namespace roofline::perf
