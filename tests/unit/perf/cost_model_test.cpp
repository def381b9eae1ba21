// FLOPs and bytes per step against numbers worked out by hand from the public model shapes.
#include <gtest/gtest.h>

#include "perf_test_util.h"
#include "roofline/core/error.h"
#include "roofline/model/model_spec.h"
#include "roofline/perf/cost_model.h"
#include "roofline/perf/memory_budget.h"

namespace roofline::perf {
namespace {

using test::workload;

// Llama 3 8B: hidden 4096, 32 layers, 32 heads, 8 KV heads of 128, MLP 14336, vocab 128256, untied.
constexpr double kH = 4096, kL = 32, kQ = 4096, kKV = 1024, kF = 14336, kV = 128256;
// Weights a matmul reads: every linear layer plus the lm_head (the embedding table is only gathered).
constexpr double kLlama8bMatmulParams = kL * (2 * kH * kQ + 2 * kH * kKV + 3 * kH * kF) + kV * kH;

TEST(CostModel, Llama8bHasEightBillionParameters) {
  EXPECT_NEAR(double(preset_spec("llama-8b").parameter_count()), 8.03e9, 0.005e9);
}

TEST(CostModel, Llama8bDecodeFlopsAreTwicePerParameterPlusAttention) {
  const ModelSpec spec = preset_spec("llama-8b");
  const double context = 4096;
  const std::vector<OpCost> ops = step_costs(spec, workload(WorkloadKind::Decode, 1, 1, int64_t(context)));
  // Each matmul weight is one multiply-add per token.
  EXPECT_DOUBLE_EQ(test::matmul_flops(ops), 2 * kLlama8bMatmulParams);
  // Attention: the one query scores context + 1 keys and mixes as many values: 2 x 2 FLOPs per pair per dim.
  const double attention = 4 * kL * (context + 1) * kQ;
  const double total = total_flops(ops);
  EXPECT_NEAR(total, 2 * kLlama8bMatmulParams + attention, 0.01 * total);
  // The usual "2N per token" rounding counts the gathered embedding as a matmul: we sit ~6.5% under it.
  EXPECT_NEAR(test::matmul_flops(ops) / (2 * 8.03e9), 1.0, 0.07);
}

TEST(CostModel, DecodeBytesAreWeightsPlusKvRead) {
  const ModelSpec spec = preset_spec("llama-8b");
  const double context = 4096;
  const std::vector<OpCost> ops = step_costs(spec, workload(WorkloadKind::Decode, 1, 1, int64_t(context)));
  const double weights = 2 * kLlama8bMatmulParams;
  const double kv_read = (context + 1) * kv_cache_bytes_per_token(spec);  // every cached K and V, bf16
  EXPECT_NEAR(total_bytes(ops), weights + kv_read, 0.005 * (weights + kv_read));
  // int4 weights: half a byte plus a bf16 scale per 128: 0.515625 bytes per weight.
  Workload int4 = workload(WorkloadKind::Decode, 1, 1, int64_t(context));
  int4.weights = WeightDType::INT4;
  EXPECT_NEAR(total_bytes(step_costs(spec, int4)), 0.515625 * kLlama8bMatmulParams + kv_read,
              0.005 * (weights / 4 + kv_read));
}

// The engine's storage: an f32 checkpoint streams 4 bytes per weight (and f32 norms and tables), an f32 KV
// cache (the CPU engine's) doubles the cached bytes, fp8 halves them (plus its scales); f32 activations double the per-token
// traffic between ops but change neither weights nor KV.
TEST(CostModel, StorageDtypesScaleTheirOwnBytesOnly) {
  const ModelSpec spec = preset_spec("llama-8b");
  const double context = 4096;
  const Workload base = workload(WorkloadKind::Decode, 1, 1, int64_t(context));
  const double kv_read = (context + 1) * kv_cache_bytes_per_token(spec);
  const double bf16 = total_bytes(step_costs(spec, base));
  Workload f32_weights = base;
  f32_weights.weights = WeightDType::F32;
  EXPECT_NEAR(total_bytes(step_costs(spec, f32_weights)) - bf16, 2 * kLlama8bMatmulParams, 0.001 * bf16);
  EXPECT_DOUBLE_EQ(weight_bytes_per_device(spec, WeightDType::F32, 1),
                   2 * weight_bytes_per_device(spec, WeightDType::BF16, 1));
  Workload f16_weights = base;
  f16_weights.weights = WeightDType::F16;
  EXPECT_DOUBLE_EQ(total_bytes(step_costs(spec, f16_weights)), bf16);
  Workload kv = base;
  kv.kv_cache = StorageDType::F32;
  EXPECT_NEAR(total_bytes(step_costs(spec, kv)) - bf16, kv_read, 0.001 * kv_read);
  kv.kv_cache = StorageDType::FP8;  // a byte per element plus an f32 scale per 128-element vector
  const double fp8_share = (1.0 + 4.0 / 128) / 2;
  EXPECT_NEAR(bf16 - total_bytes(step_costs(spec, kv)), kv_read * (1 - fp8_share), 0.001 * kv_read);
  EXPECT_DOUBLE_EQ(kv_cache_bytes_per_token(spec, 1, StorageDType::FP8), 131072 * fp8_share);
  Workload act = base;
  act.activations = StorageDType::F32;
  const double act_delta = total_bytes(step_costs(spec, act)) - bf16;
  EXPECT_GT(act_delta, 0.0);
  EXPECT_LT(act_delta, 0.001 * bf16);  // one token's activations are tiny next to 16 GB of weights
  // Prefill of 2048 tokens moves 2048x the activations: f32 about doubles the step's non-weight traffic (to
  // within 5%: some of it is not activations, and some activation traffic is f32 in both).
  const Workload prefill = workload(WorkloadKind::Prefill, 1, 2048, 0);
  Workload prefill_f32 = prefill;
  prefill_f32.activations = StorageDType::F32;
  const double w_and_kv = weight_bytes_per_device(spec, WeightDType::BF16, 1);
  const double activations_bf16 = total_bytes(step_costs(spec, prefill)) - w_and_kv;
  EXPECT_NEAR(total_bytes(step_costs(spec, prefill_f32)) - total_bytes(step_costs(spec, prefill)), activations_bf16,
              0.05 * activations_bf16);
  Workload fp8_act = base;
  fp8_act.activations = StorageDType::FP8;
  EXPECT_THROW(step_costs(spec, fp8_act), Error);
  Workload train = workload(WorkloadKind::Train, 1, 128, 0);
  train.kv_cache = StorageDType::F32;
  EXPECT_THROW(step_costs(spec, train), Error);
}

TEST(CostModel, KvCachePerTokenLlama8b) {
  EXPECT_DOUBLE_EQ(kv_cache_bytes_per_token(preset_spec("llama-8b")), 2 * 32 * 8 * 128 * 2);  // 131072
  EXPECT_DOUBLE_EQ(kv_cache_bytes_per_token(preset_spec("llama-8b"), 2), 131072 / 2);
  // 8 KV heads over tp 16: each device keeps one (replicated), not half of one.
  EXPECT_DOUBLE_EQ(kv_cache_bytes_per_token(preset_spec("llama-8b"), 16), 131072 / 8);
}

// GPT-2 124M training at sequence 1024: nanoGPT / PaLM count 6N + 12 L H Q T FLOPs per token (lm_head
// included through the tied embedding), about 860 MFLOP. That convention counts causal attention as dense.
TEST(CostModel, Gpt2TrainingFlopsPerTokenMatchTheStandardCount) {
  const ModelSpec spec = preset_spec("gpt2-124m");
  Workload w = workload(WorkloadKind::Train, 8, 1024);
  w.dense_causal_flops = true;
  const double tokens = 8 * 1024;
  EXPECT_NEAR(total_flops(step_costs(spec, w)) / tokens, 860e6, 0.02 * 860e6);
  // Executed FLOPs: causal attention does half the pairs (T(T+1)/2 instead of T^2), 6 L H T fewer per token
  // (the exact difference is 3 forward-equivalents x 4 FLOPs x L x H x (T - 1)/2 per token).
  w.dense_causal_flops = false;
  const double causal = total_flops(step_costs(spec, w)) / tokens;
  EXPECT_NEAR(causal, 860e6 - 6.0 * 12 * 768 * 1024, 0.02 * 860e6);
}

TEST(CostModel, TrainingIsThreeForwardsPlusRecomputeWhenCheckpointing) {
  const ModelSpec spec = preset_spec("llama-1b");
  Workload fwd = workload(WorkloadKind::Prefill, 4, 512);
  Workload train = workload(WorkloadKind::Train, 4, 512);
  const std::vector<OpCost> train_ops = step_costs(spec, train);
  auto phase_flops = [&](const std::vector<OpCost>& ops, OpPhase phase) {
    double s = 0;
    for (const OpCost& op : ops)
      if (op.phase == phase && op.matmul) s += op.flops;
    return s;
  };
  const double forward = phase_flops(train_ops, OpPhase::Forward);
  EXPECT_DOUBLE_EQ(phase_flops(train_ops, OpPhase::Backward), 2 * forward);  // dX and dW
  EXPECT_GT(forward, test::matmul_flops(step_costs(spec, fwd)));  // prefill runs the lm_head on last tokens only
  train.checkpointing = true;
  const std::vector<OpCost> ckpt = step_costs(spec, train);
  double layer_forward = 0;
  for (const OpCost& op : train_ops)
    if (op.phase == OpPhase::Forward && op.group == OpGroup::Layer) layer_forward += op.flops;
  EXPECT_DOUBLE_EQ(total_flops(ckpt) - total_flops(train_ops), layer_forward);
  // AdamW: 28 bytes per parameter (bf16 grad in, fp32 master and moments in and out, bf16 weight out).
  const OpCost& adam = train_ops.back();
  EXPECT_EQ(adam.name, "adamw");
  EXPECT_DOUBLE_EQ(adam.bytes, 28 * parameters_per_device(spec, 1));
}

TEST(CostModel, PrefillAttentionIsCausal) {
  const ModelSpec spec = preset_spec("llama-134m");
  const std::vector<OpCost> ops = step_costs(spec, workload(WorkloadKind::Prefill, 1, 1000));
  for (const OpCost& op : ops) {
    if (op.name == "attention_values") {  // 2 FLOPs x pairs x head_dim x heads x layers; pairs = T(T+1)/2
      EXPECT_DOUBLE_EQ(op.flops, 2.0 * (1000.0 * 1001 / 2) * 64 * 12 * 12);
    }
  }
}

TEST(CostModel, SlidingWindowCapsAttention) {
  ModelSpec spec = preset_spec("llama-134m");
  spec.sliding_window = 100;
  const std::vector<OpCost> ops = step_costs(spec, workload(WorkloadKind::Decode, 1, 1, 5000));
  for (const OpCost& op : ops) {
    if (op.name == "attention_values") {
      EXPECT_DOUBLE_EQ(op.flops, 2.0 * 100 * 64 * 12 * 12);
      // Reads 100 cached values per KV head plus writes the output row.
      EXPECT_DOUBLE_EQ(op.bytes, 12 * (100.0 * 4 * 64 * 2 + 768 * 2));
    }
  }
}

TEST(CostModel, TensorParallelSplitsMatmulsAndFp8MarksThem) {
  const ModelSpec spec = preset_spec("llama-8b");
  Workload w = workload(WorkloadKind::Decode, 8, 1, 1024);
  const double one = test::matmul_flops(step_costs(spec, w));
  w.tp = 4;
  EXPECT_DOUBLE_EQ(test::matmul_flops(step_costs(spec, w)), one / 4);
  w.weights = WeightDType::FP8;
  for (const OpCost& op : step_costs(spec, w)) EXPECT_EQ(op.fp8, op.matmul) << op.name;
}

}  // namespace
}  // namespace roofline::perf
