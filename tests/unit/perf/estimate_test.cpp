// The roofline estimate: which roof binds, the JSON contract, and the errors a user sees.
#include <gtest/gtest.h>

#include "perf_test_util.h"
#include "roofline/model/model_spec.h"
#include "roofline/perf/estimate.h"

namespace roofline::perf {
namespace {

using test::workload;

TEST(Estimate, DecodeFlipsFromMemoryToComputeAsTheBatchPassesTheRidge) {
  const ModelSpec spec = preset_spec("llama-8b");
  const HardwareSpec h100 = builtin_hardware("h100");
  EXPECT_EQ(estimate(spec, workload(WorkloadKind::Decode, 1, 1, 128), h100).bound, Bound::Memory);
  EXPECT_EQ(estimate(spec, workload(WorkloadKind::Decode, 2048, 1, 128), h100).bound, Bound::Compute);
  // bf16 weights: 2 FLOPs per 2 bytes per sequence, so the matmuls reach the ridge (~295 FLOP/byte) at a batch
  // of about 295; the KV reads and activations push it a little further.
  const int64_t batch = batch_leaving_memory_bound(spec, workload(WorkloadKind::Decode, 1, 1, 128), h100);
  EXPECT_GT(batch, 280);
  EXPECT_LT(batch, 450);
  EXPECT_EQ(estimate(spec, workload(WorkloadKind::Decode, batch - 1, 1, 128), h100).bound, Bound::Memory);
  EXPECT_NE(estimate(spec, workload(WorkloadKind::Decode, batch, 1, 128), h100).bound, Bound::Memory);
}

TEST(Estimate, DecodeTimeIsBytesOverBandwidth) {
  const ModelSpec spec = preset_spec("llama-8b");
  const HardwareSpec h100 = builtin_hardware("h100");
  const Estimate e = estimate(spec, workload(WorkloadKind::Decode, 1, 1, 4096), h100);
  EXPECT_NEAR(e.time_s, e.bytes / 3.35e12, 0.001 * e.time_s);  // ~4.6 ms: every op memory-bound
  EXPECT_NEAR(e.tokens_per_s, 1 / e.time_s, 1e-9);
  EXPECT_NEAR(e.mbu_ceiling, 1.0, 1e-3);
  EXPECT_LT(e.mfu_ceiling, 0.01);
  EXPECT_TRUE(e.fits);
  EXPECT_EQ(e.comm.time_s, 0);
}

TEST(Estimate, KernelOverheadCountsTheDecodersLaunches) {
  const ModelSpec spec = preset_spec("llama-1b");  // 16 layers, gated MLP, no qk-norm
  HardwareSpec gpu = builtin_hardware("h100");
  EXPECT_EQ(gpu.kernel_overhead_s, 0);  // datasheets state none: floors only
  const Estimate floors = estimate(spec, workload(WorkloadKind::Decode, 1, 1, 128), gpu);
  EXPECT_EQ(floors.overhead_s, 0);
  gpu.kernel_overhead_s = 2e-6;
  const Estimate e = estimate(spec, workload(WorkloadKind::Decode, 1, 1, 128), gpu);
  // Per layer: q|k|v with attn_norm in its prologue, rope (+ KV store), attention partials + reduction,
  // o_proj (adding into the residual), gate|up with mlp_norm and the SwiGLU, down = 7; then embedding,
  // final_norm, lm_head, sampling.
  EXPECT_EQ(e.kernels, 16 * 7 + 4);
  EXPECT_NEAR(e.overhead_s, e.kernels * 2e-6, 1e-15);
  EXPECT_DOUBLE_EQ(e.time_s, e.floor_s + e.overhead_s + e.comm.time_s);
  EXPECT_DOUBLE_EQ(e.floor_s, floors.floor_s);
  // Prefill runs every projection and the SwiGLU as kernels of their own, attention as one.
  const Estimate p = estimate(spec, workload(WorkloadKind::Prefill, 1, 2048), gpu);
  EXPECT_EQ(p.kernels, 16 * 12 + 4);
  EXPECT_LT(p.overhead_s, 0.1 * p.time_s);  // big kernels: the fixed cost is a small part
  // A slow launcher makes the decode step launch-bound, and the levers say so.
  gpu.kernel_overhead_s = 20e-6;
  const Estimate slow = estimate(spec, workload(WorkloadKind::Decode, 1, 1, 128), gpu);
  bool named = false;
  for (const std::string& lever : levers(spec, slow)) named = named || lever.find("kernel launches") != std::string::npos;
  EXPECT_TRUE(named);
  const nlohmann::json j = estimate_to_json(spec, slow);
  EXPECT_DOUBLE_EQ(j.at("kernel_overhead_s").get<double>(), slow.overhead_s);
  EXPECT_EQ(j.at("kernels").get<double>(), 16 * 7 + 4);
  EXPECT_DOUBLE_EQ(j.at("hardware").at("kernel_overhead_s").get<double>(), 20e-6);
}

TEST(Estimate, PrefillIsComputeBound) {
  const Estimate e = estimate(preset_spec("llama-8b"), workload(WorkloadKind::Prefill, 1, 4096), builtin_hardware("h100"));
  EXPECT_EQ(e.bound, Bound::Compute);
  EXPECT_GT(e.mfu_ceiling, 0.85);  // the rest: norms, rope, activations (memory-bound)
}

TEST(Estimate, CommunicationBindsSmallTensorParallelSteps) {
  // Prefill of 8192 tokens split over tp 8 on a slow link: the per-layer all-reduces dominate.
  HardwareSpec slow = builtin_hardware("h100");
  slow.interconnect_bandwidth = 10e9;
  Workload w = workload(WorkloadKind::Prefill, 1, 8192);
  w.tp = 8;
  const Estimate e = estimate(preset_spec("llama-8b"), w, slow);
  EXPECT_EQ(e.bound, Bound::Communication);
  EXPECT_DOUBLE_EQ(e.time_s, e.floor_s + e.comm.time_s);  // no overlap
  EXPECT_HAS(levers(preset_spec("llama-8b"), e)[0], "no overlap");
}

TEST(Estimate, LeversNameTheFix) {
  const ModelSpec spec = preset_spec("llama-8b");
  const HardwareSpec h100 = builtin_hardware("h100");
  const Estimate decode = estimate(spec, workload(WorkloadKind::Decode, 1, 1, 4096), h100);
  std::string all;
  for (const std::string& s : levers(spec, decode)) all += s + "\n";
  // At 4096 tokens of context each sequence reads 0.5 GB of KV cache for 17 GFLOP: 32 FLOP/byte, under the
  // ridge at any batch. Batching pays only until the KV reads match the 15 GB of weights (batch ~28).
  EXPECT_HAS(all, "memory-bound at every batch");
  EXPECT_HAS(all, "batch ~28");
  EXPECT_HAS(all, "quantize");
  EXPECT_HAS(all, "KV cache read");
  all.clear();
  for (const std::string& s : levers(spec, estimate(spec, workload(WorkloadKind::Decode, 1, 1, 128), h100)))
    all += s + "\n";
  EXPECT_HAS(all, "batch more");
  Workload big = workload(WorkloadKind::Train, 64, 8192);
  const Estimate train = estimate(spec, big, h100);
  EXPECT_FALSE(train.fits);  // 16 bytes/parameter alone is 128 GB
  all.clear();
  for (const std::string& s : levers(spec, train)) all += s + "\n";
  EXPECT_HAS(all, "does not fit");
  EXPECT_HAS(all, "--zero");
}

TEST(Estimate, JsonContract) {
  const ModelSpec spec = preset_spec("llama-8b");
  Workload w = workload(WorkloadKind::Train, 8, 1024);
  w.dp = 4;
  w.tp = 2;
  w.zero = 3;
  w.batch = 16;
  const nlohmann::json j = estimate_to_json(spec, estimate(spec, w, builtin_hardware("h100")));
  for (const char* key : {"flops", "bytes", "time_s", "tokens_per_s", "mfu_ceiling"}) {
    ASSERT_TRUE(j.contains(key)) << key;
    EXPECT_GT(j[key].get<double>(), 0) << key;
  }
  const std::string bound = j["bound"].get<std::string>();
  EXPECT_TRUE(bound == "compute" || bound == "memory" || bound == "communication") << bound;
  for (const char* key : {"weights", "kv_cache", "activations", "gradients", "optimizer"})
    EXPECT_TRUE(j["memory_bytes"][key].is_number()) << key;
  ASSERT_TRUE(j["ops"].is_array());
  ASSERT_FALSE(j["ops"].empty());
  for (const nlohmann::json& op : j["ops"])
    for (const char* key : {"name", "flops", "bytes", "intensity", "time_s", "bound"})
      EXPECT_TRUE(op.contains(key)) << key << " in " << op.dump();
  EXPECT_EQ(j["hardware"]["name"], "h100");
  EXPECT_EQ(j["workload"]["devices"], 8);
  EXPECT_EQ(j["communication"]["overlap_with_compute"], false);
  EXPECT_EQ(j["communication"]["ops"].size(), 3u);  // tp all-reduce, grad reduce-scatter, param all-gather
}

// The engine's storage on each hardware: the CPU engine keeps activations and the KV cache in f32, the GPU
// engine in bf16; training is priced in bf16 everywhere. The JSON names the storage the estimate assumed.
TEST(Estimate, EngineStorageFollowsTheHardware) {
  EXPECT_EQ(engine_storage_dtype(builtin_hardware("cpu"), WorkloadKind::Decode), StorageDType::F32);
  EXPECT_EQ(engine_storage_dtype(builtin_hardware("cpu"), WorkloadKind::Prefill), StorageDType::F32);
  EXPECT_EQ(engine_storage_dtype(builtin_hardware("cpu"), WorkloadKind::Train), StorageDType::BF16);
  EXPECT_EQ(engine_storage_dtype(builtin_hardware("h100"), WorkloadKind::Decode), StorageDType::BF16);
  const ModelSpec spec = preset_spec("llama-1b");
  Workload w = workload(WorkloadKind::Decode, 8, 1, 1000);
  w.kv_cache = StorageDType::FP8;
  const nlohmann::json j = estimate_to_json(spec, estimate(spec, w, builtin_hardware("h100")));
  EXPECT_EQ(j["workload"]["kv_dtype"], "fp8");
  EXPECT_EQ(j["workload"]["activation_dtype"], "bf16");
  EXPECT_DOUBLE_EQ(j["memory_bytes"]["kv_cache_per_token"].get<double>(), 2.0 * 16 * 8 * (64 + 4));  // + scales
  StorageDType parsed{};
  EXPECT_TRUE(parse_storage_dtype("f32", &parsed));
  EXPECT_EQ(parsed, StorageDType::F32);
  EXPECT_FALSE(parse_storage_dtype("int8", &parsed));
  WeightDType weights{};
  EXPECT_TRUE(parse_weight_dtype("f16", &weights));
  EXPECT_EQ(weights, WeightDType::F16);
}

TEST(Estimate, BadWorkloadsAreNamedErrors) {
  const ModelSpec spec = preset_spec("llama-8b");
  const HardwareSpec h100 = builtin_hardware("h100");
  auto error = [&](Workload w) { return test::error_of([&] { estimate(spec, w, h100); }); };
  Workload w = workload(WorkloadKind::Train, 8, 128);
  w.zero = 4;
  EXPECT_HAS(error(w), "--zero 4");
  EXPECT_HAS(error(workload(WorkloadKind::Decode, 0, 1)), "--batch 0");
  EXPECT_HAS(error(workload(WorkloadKind::Decode, 1, 0)), "--seq 0");
  w = workload(WorkloadKind::Decode, 1, 1);
  w.zero = 1;
  EXPECT_HAS(error(w), "train only");
  w = workload(WorkloadKind::Decode, 3, 1);
  w.dp = 2;
  EXPECT_HAS(error(w), "not divisible by --dp 2");
  w = workload(WorkloadKind::Decode, 1, 1);
  w.tp = 3;
  EXPECT_HAS(error(w), "--tp 3");
  w = workload(WorkloadKind::Train, 1, 128);
  w.weights = WeightDType::INT4;
  EXPECT_HAS(error(w), "--dtype int4");
  w = workload(WorkloadKind::Decode, 1, 1);
  w.tp = 2;
  EXPECT_HAS(test::error_of([&] { estimate(spec, w, builtin_hardware("cpu")); }), "interconnect");
}

TEST(Estimate, ParsesNames) {
  WorkloadKind kind;
  EXPECT_TRUE(parse_workload_kind("prefill", &kind));
  EXPECT_EQ(kind, WorkloadKind::Prefill);
  EXPECT_FALSE(parse_workload_kind("serve", &kind));
  WeightDType dtype;
  EXPECT_TRUE(parse_weight_dtype("int4", &dtype));
  EXPECT_EQ(dtype, WeightDType::INT4);
  EXPECT_FALSE(parse_weight_dtype("fp4", &dtype));
}

}  // namespace
}  // namespace roofline::perf
