// Memory budget (ZeRO and tensor-parallel sharding) and communication volumes.
#include <gtest/gtest.h>

#include "perf_test_util.h"
#include "roofline/model/model_spec.h"
#include "roofline/perf/comm_model.h"
#include "roofline/perf/memory_budget.h"

namespace roofline::perf {
namespace {

using test::workload;

Workload train(int dp, int zero) {
  Workload w = workload(WorkloadKind::Train, 8 * dp, 2048);
  w.dp = dp;
  w.zero = zero;
  return w;
}

// The CUDA trainer's: a bf16 weight copy, f32 gradients (micro-batches accumulate into them), f32 master
// weights, AdamW moments and a u8 weight-decay mask.
TEST(MemoryBudget, MixedPrecisionTrainingIsNineteenBytesPerParameter) {
  const ModelSpec spec = preset_spec("llama-1b");
  const double P = double(spec.parameter_count());
  EXPECT_DOUBLE_EQ(parameters_per_device(spec, 1), P);
  const MemoryBudget m = memory_budget(spec, train(1, 0));
  EXPECT_DOUBLE_EQ(m.weights, 2 * P);
  EXPECT_DOUBLE_EQ(m.gradients, 4 * P);
  EXPECT_DOUBLE_EQ(m.optimizer, 13 * P);
  EXPECT_EQ(m.kv_cache, 0);
  EXPECT_GT(m.activations, 0);
}

TEST(MemoryBudget, ZeroStagesShardOptimizerThenGradientsThenParameters) {
  const ModelSpec spec = preset_spec("llama-1b");
  const MemoryBudget z0 = memory_budget(spec, train(8, 0));
  const MemoryBudget z1 = memory_budget(spec, train(8, 1));
  const MemoryBudget z2 = memory_budget(spec, train(8, 2));
  const MemoryBudget z3 = memory_budget(spec, train(8, 3));
  EXPECT_DOUBLE_EQ(z1.optimizer, z0.optimizer / 8);
  EXPECT_DOUBLE_EQ(z1.gradients, z0.gradients);
  EXPECT_DOUBLE_EQ(z1.weights, z0.weights);
  EXPECT_DOUBLE_EQ(z2.optimizer, z0.optimizer / 8);
  EXPECT_DOUBLE_EQ(z2.gradients, z0.gradients / 8);
  EXPECT_DOUBLE_EQ(z2.weights, z0.weights);
  EXPECT_DOUBLE_EQ(z3.optimizer, z0.optimizer / 8);
  EXPECT_DOUBLE_EQ(z3.gradients, z0.gradients / 8);
  EXPECT_DOUBLE_EQ(z3.weights, z0.weights / 8);
  for (const MemoryBudget& m : {z1, z2, z3}) EXPECT_DOUBLE_EQ(m.activations, z0.activations);
}

TEST(MemoryBudget, TensorParallelDividesWeightsAndKv) {
  const ModelSpec spec = preset_spec("llama-8b");
  Workload w = workload(WorkloadKind::Decode, 16, 1, 4096);
  const MemoryBudget one = memory_budget(spec, w);
  w.tp = 2;
  const MemoryBudget two = memory_budget(spec, w);
  // Everything but the (tiny) norm weights splits.
  EXPECT_NEAR(two.weights / one.weights, 0.5, 1e-4);
  EXPECT_GT(two.weights, one.weights / 2);
  EXPECT_DOUBLE_EQ(two.kv_cache, one.kv_cache / 2);
  EXPECT_DOUBLE_EQ(one.kv_cache, 16 * 4097 * 131072.0);
}

TEST(MemoryBudget, QuantizedWeights) {
  const ModelSpec spec = preset_spec("llama-8b");
  const double bf16 = weight_bytes_per_device(spec, WeightDType::BF16, 1);
  EXPECT_NEAR(bf16, 2 * 8.03e9, 0.01e9);
  // The embedding table stays bf16 (1.05 GB of 8B llama's 16 GB); the linear weights shrink.
  const double table = 2.0 * 128256 * 4096;
  EXPECT_NEAR(weight_bytes_per_device(spec, WeightDType::INT8, 1) - table, (bf16 - table) / 2, 0.001 * bf16);
  EXPECT_NEAR(weight_bytes_per_device(spec, WeightDType::INT4, 1) - table, (bf16 - table) * 0.515625 / 2, 0.001 * bf16);
}

TEST(MemoryBudget, CheckpointingKeepsLayerInputsOnly) {
  const ModelSpec spec = preset_spec("llama-1b");
  Workload w = train(1, 0);
  const double full = memory_budget(spec, w).activations;
  w.checkpointing = true;
  const double ckpt = memory_budget(spec, w).activations;
  EXPECT_LT(ckpt, full / 2);
  // Layer inputs (the f32 residual stream): (L + 1) x tokens x hidden x 4 bytes, plus one layer's saved set.
  EXPECT_GT(ckpt, 17.0 * 8 * 2048 * 2048 * 4);
}

TEST(CommModel, SingleDeviceSendsNothing) {
  const CommCost c = comm_costs(preset_spec("llama-8b"), workload(WorkloadKind::Decode, 1, 1, 10), 0);
  EXPECT_TRUE(c.empty());
  EXPECT_EQ(c.time_s, 0);
}

TEST(CommModel, DataParallelGradientAllReduce) {
  const ModelSpec spec = preset_spec("llama-1b");
  const double grads = 2 * double(spec.parameter_count());
  const CommCost c = comm_costs(spec, train(8, 1), 100e9);
  ASSERT_EQ(c.ops.size(), 1u);
  EXPECT_DOUBLE_EQ(c.bytes, 2.0 * 7 / 8 * grads);
  EXPECT_DOUBLE_EQ(c.time_s, c.bytes / 100e9);
  // ZeRO-3: reduce-scatter the gradients, all-gather the parameters in forward and backward: 1.5x.
  EXPECT_DOUBLE_EQ(comm_costs(spec, train(8, 3), 100e9).bytes, 3.0 * 7 / 8 * grads);
}

TEST(CommModel, TensorParallelAllReducesTwicePerLayer) {
  const ModelSpec spec = preset_spec("llama-8b");
  Workload w = workload(WorkloadKind::Prefill, 2, 1000);
  w.tp = 4;
  const CommCost c = comm_costs(spec, w, 450e9);
  const double activation = 2 * 1000 * 4096 * 2.0;
  EXPECT_DOUBLE_EQ(c.bytes, 2 * 32 * (2.0 * 3 / 4) * activation);
  Workload t = workload(WorkloadKind::Train, 2, 1000);
  t.tp = 4;
  EXPECT_DOUBLE_EQ(comm_costs(spec, t, 450e9).bytes, 2 * c.bytes);  // forward and backward
  EXPECT_HAS(test::error_of([&] { comm_costs(spec, w, 0); }), "interconnect");
}

}  // namespace
}  // namespace roofline::perf
