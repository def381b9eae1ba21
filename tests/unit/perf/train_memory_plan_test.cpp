// The CUDA trainer's device buffer plan (train/device_memory_plan.h) against byte counts worked out by hand for
// Llama 1B at seq 2048 (the configurations measured on an H100), and the train estimate's memory_bytes against
// the same plan, term by term: the trainer allocates from the plan, the estimate counts it. On a CPU the estimate
// counts the CPU trainer's plan instead (train/cpu_memory_plan.h; tests/unit/train holds it against the trainer).
#include <gtest/gtest.h>

#include "perf_test_util.h"
#include "roofline/core/error.h"
#include "roofline/core/thread_pool.h"
#include "roofline/model/model_spec.h"
#include "roofline/perf/estimate.h"
#include "roofline/perf/memory_budget.h"
#include "roofline/train/cpu_memory_plan.h"
#include "roofline/train/device_memory_plan.h"

namespace roofline::perf {
namespace {

using train::CudaTrainPlan;
using train::DeviceMemoryCategory;
using train::OptimizerKind;

// llama-1b: H 2048, L 16, 32 heads of 64 (8 KV heads: QD 2048, KD 512, QKV 3072), SwiGLU F 8192 (F2 16384),
// vocab 128256, tied embeddings: 1,235,814,400 parameters.
constexpr size_t kParams = 1'235'814'400;
constexpr size_t kH = 2048, kQD = 2048, kQKV = 3072, kF = 8192, kF2 = 16384, kHeads = 32, kV = 128256;

// Bytes per token of one layer's saved set: ln1, ln2 bf16 (2 x 2H), four f32 norm statistics (16), q|k|v bf16
// (2 QKV), attention output bf16 (2 QD), f32 lse per head (4 Hq), f32 x_mid (4H), ffn_in bf16 (2 F2), ffn_h bf16 (2F).
constexpr size_t kLayerBytesPerToken = 4 * kH + 16 + 2 * kQKV + 2 * kQD + 4 * kHeads + 4 * kH + 2 * kF2 + 2 * kF;
static_assert(kLayerBytesPerToken == 75'920);
// Plus the f32 residual stream at the 17 layer boundaries and the final norm (bf16 out + f32 mean, rstd).
constexpr size_t kBoundaryBytesPerToken = 17 * 4 * kH + 2 * kH + 8;
static_assert(kBoundaryBytesPerToken == 143'368);
// The backward's buffers per token: f32 dres, d_hidden (8H), bf16 dres (2H), d_ffn_h (2F), d_ffn_in (2 F2),
// d_attn (2 QD), dq|dk|dv (2 QKV).
constexpr size_t kBackwardBytesPerToken = 8 * kH + 2 * kH + 2 * kF + 2 * kF2 + 2 * kQD + 2 * kQKV;
static_assert(kBackwardBytesPerToken == 79'872);

// Workspace of M = B * 2048 rows: the above, one logits chunk (4,096 rows: 1 GiB fits 4,186, so 2 chunks at
// M = 8192 and 12 at 49152, both of 4,096), norm partials (M/16 blocks x 3H f32), bias partials (M/64 x 16384
// f32), bias sums, attention delta (B x 32 x 2048 f32), token ids (5M + 1 i32), losses (M f32), RoPE cos and
// sin (2048 x 32 f32 each), grad-norm partials (1024 f64), the loss sum (f64), cuBLASLt's 32 MiB.
size_t workspace_bytes(size_t B) {
  const size_t M = B * 2048;
  return M * kBackwardBytesPerToken + 4096 * kV * 2 + M / 16 * 3 * kH * 4 + M / 64 * kF2 * 4 + kF2 * 4 +
         B * kHeads * 2048 * 4 + (5 * M + 1) * 4 + M * 4 + 2 * 2048 * 32 * 4 + 1024 * 8 + 8 + (size_t(32) << 20);
}

// The budget's terms are the plan's categories, plus `context` (the CUDA context allowance, 0 on a CPU).
template <typename Plan>
void expect_budget_is_plan(const MemoryBudget& m, const Plan& p, double context) {
  EXPECT_EQ(m.weights, double(p.bytes(DeviceMemoryCategory::Weights)));
  EXPECT_EQ(m.gradients, double(p.bytes(DeviceMemoryCategory::Gradients)));
  EXPECT_EQ(m.optimizer, double(p.bytes(DeviceMemoryCategory::Optimizer)));
  EXPECT_EQ(m.activations, double(p.bytes(DeviceMemoryCategory::Activations)));
  EXPECT_EQ(m.workspace, double(p.bytes(DeviceMemoryCategory::Workspace)));
  EXPECT_EQ(m.kv_cache, 0);
  EXPECT_EQ(m.context, context);
  EXPECT_EQ(m.total(), double(p.total_bytes()) + context);
}

void expect_plan(const CudaTrainPlan& p, size_t activations, size_t workspace) {
  EXPECT_EQ(p.params, kParams);
  EXPECT_EQ(p.bytes(DeviceMemoryCategory::Weights), 2 * kParams);     // bf16 copy
  EXPECT_EQ(p.bytes(DeviceMemoryCategory::Gradients), 4 * kParams);   // f32
  EXPECT_EQ(p.bytes(DeviceMemoryCategory::Optimizer), 13 * kParams);  // f32 master, m, v + u8 decay mask
  EXPECT_EQ(p.bytes(DeviceMemoryCategory::Activations), activations);
  EXPECT_EQ(p.bytes(DeviceMemoryCategory::Workspace), workspace);
  EXPECT_EQ(p.total_bytes(), 19 * kParams + activations + workspace);
}

TEST(CudaTrainPlan, Llama1bBatch4) {
  const CudaTrainPlan p = train::plan_cuda_training(preset_spec("llama-1b"), 4, 2048, false, OptimizerKind::AdamW);
  EXPECT_EQ(p.ce_rows, 4096);
  const size_t M = 8192;
  expect_plan(p, M * (16 * kLayerBytesPerToken + kBoundaryBytesPerToken), workspace_bytes(4));
  EXPECT_EQ(p.bytes(DeviceMemoryCategory::Activations), 11'125'456'896u);  // 10.36 GiB
  EXPECT_EQ(p.bytes(DeviceMemoryCategory::Workspace), 1'761'353'740u);     // 1.64 GiB
  EXPECT_EQ(p.total_bytes(), 36'367'284'236u);                             // 33.87 GiB
}

TEST(CudaTrainPlan, Llama1bBatch4Checkpointed) {
  const CudaTrainPlan p = train::plan_cuda_training(preset_spec("llama-1b"), 4, 2048, true, OptimizerKind::AdamW);
  const size_t M = 8192;
  expect_plan(p, M * (kLayerBytesPerToken + kBoundaryBytesPerToken), workspace_bytes(4));  // one layer's set
  EXPECT_EQ(p.total_bytes(), 27'038'234'636u);  // 25.18 GiB
}

TEST(CudaTrainPlan, Llama1bBatch24Checkpointed) {
  const CudaTrainPlan p = train::plan_cuda_training(preset_spec("llama-1b"), 24, 2048, true, OptimizerKind::AdamW);
  EXPECT_EQ(p.ce_rows, 4096);
  const size_t M = 49152;
  expect_plan(p, M * (kLayerBytesPerToken + kBoundaryBytesPerToken), workspace_bytes(24));
  EXPECT_EQ(p.bytes(DeviceMemoryCategory::Workspace), 5'143'994'380u);  // 4.79 GiB
  EXPECT_EQ(p.total_bytes(), 39'402'911'756u);                          // 36.70 GiB
}

TEST(CudaTrainPlan, SgdHasNoMomentsAndNoBatchHasOnlyParameters) {
  const ModelSpec spec = preset_spec("llama-1b");
  const CudaTrainPlan p = train::plan_cuda_training(spec, 0, 0, false, OptimizerKind::SGD);
  EXPECT_EQ(p.bytes(DeviceMemoryCategory::Optimizer), 5 * kParams);
  EXPECT_EQ(p.bytes(DeviceMemoryCategory::Activations), 0u);
  EXPECT_EQ(p.bytes(DeviceMemoryCategory::Workspace), 1024 * 8 + 8 + (size_t(32) << 20));
}

// The estimate's train memory is the plan, key by key, plus the context allowance.
TEST(CudaTrainPlan, TrainEstimateCountsThePlan) {
  const ModelSpec spec = preset_spec("llama-1b");
  for (const auto& [batch, checkpointing] : {std::pair{4, false}, std::pair{4, true}, std::pair{24, true}}) {
    Workload w = test::workload(WorkloadKind::Train, batch, 2048);
    w.checkpointing = checkpointing;
    const MemoryBudget m = memory_budget(spec, w);
    const CudaTrainPlan p = train::plan_cuda_training(spec, batch, 2048, checkpointing, OptimizerKind::AdamW);
    expect_budget_is_plan(m, p, kTrainContextBytes);
  }
}

// Every buffer of the plan is in exactly one category.
TEST(CudaTrainPlan, CategoriesSumToTheBuffers) {
  const CudaTrainPlan p = train::plan_cuda_training(preset_spec("gpt2-124m"), 8, 1024, false, OptimizerKind::AdamW);
  size_t sum = 0;
  for (int c = 0; c < train::kDeviceMemoryCategories; ++c) sum += p.bytes(DeviceMemoryCategory(c));
  EXPECT_EQ(sum, p.total_bytes());
  EXPECT_EQ(p.rope_table, 0u);  // learned positions: no RoPE tables
  EXPECT_EQ(p.ffn_in, p.ffn_h);  // GELU: one pre-activation column per output column
}

// On a CPU the train budget is the CPU trainer's plan, key by key, with no CUDA context.
TEST(CpuTrainPlan, TrainEstimateOnACpuCountsTheCpuPlan) {
  ModelSpec qk_normed = preset_spec("llama-134m");
  qk_normed.qk_norm = true;  // the CPU trainer runs q/k norms: their saved inputs are in its plan, counted once
  for (const ModelSpec& spec : {preset_spec("gpt2-124m"), qk_normed})
    for (const bool checkpointing : {false, true}) {
      SCOPED_TRACE(spec.model_type + (checkpointing ? " checkpointed" : ""));
      Workload w = test::workload(WorkloadKind::Train, 4, 256);
      w.checkpointing = checkpointing;
      const MemoryBudget m = memory_budget(spec, w, TrainMemoryTarget{.cpu = true, .cpu_threads = 8});
      const train::CpuTrainPlan p = train::plan_cpu_training(spec, 4, 256, checkpointing, OptimizerKind::AdamW, 8);
      expect_budget_is_plan(m, p, 0);
    }
}

// Which trainer the estimate counts follows the hardware: a CPU (by name, or calibrated as one under another name)
// gets the CPU plan with one thread per hardware thread, a GPU the CUDA plan.
TEST(CpuTrainPlan, TheHardwarePicksTheTrainer) {
  HardwareSpec cpu;
  cpu.name = "cpu";
  cpu.peak_bf16_flops = 1e12;
  cpu.memory_bandwidth = 1e11;
  HardwareSpec renamed = cpu;
  renamed.name = "workstation";
  EXPECT_FALSE(is_cpu(renamed));
  renamed.measured = {{"device", "cpu"}, {"threads", 4}};
  EXPECT_TRUE(is_cpu(renamed));
  EXPECT_TRUE(is_cpu(cpu));
  EXPECT_FALSE(is_cpu(builtin_hardware("h100")));
  EXPECT_FALSE(train_memory_target(builtin_hardware("h100")).cpu);
  EXPECT_EQ(train_memory_target(cpu).cpu_threads, ThreadPool::hardware_threads());

  const ModelSpec spec = preset_spec("gpt2-124m");
  const Workload w = test::workload(WorkloadKind::Train, 4, 256);
  const Estimate on_cpu = estimate(spec, w, cpu);
  const train::CpuTrainPlan p =
      train::plan_cpu_training(spec, 4, 256, false, OptimizerKind::AdamW, ThreadPool::hardware_threads());
  EXPECT_EQ(on_cpu.memory.total(), double(p.total_bytes()));
  EXPECT_EQ(on_cpu.memory.weights, 4.0 * double(p.params));  // f32, where the CUDA trainer's bf16 copy is 2
  const Estimate on_gpu = estimate(spec, w, builtin_hardware("h100"));
  EXPECT_EQ(on_gpu.memory.weights, 2.0 * double(p.params));
  EXPECT_EQ(on_gpu.memory.context, kTrainContextBytes);
  // --threads: the CPU plan for that many threads, named in the JSON; a GPU or an inference workload refuses it.
  Workload threaded = w;
  threaded.threads = 3;
  EXPECT_EQ(train_memory_target(cpu, 3).cpu_threads, 3);
  const Estimate three = estimate(spec, threaded, cpu);
  EXPECT_EQ(three.memory.total(),
            double(train::plan_cpu_training(spec, 4, 256, false, OptimizerKind::AdamW, 3).total_bytes()));
  EXPECT_EQ(three.memory.cpu_threads, 3);
  EXPECT_EQ(estimate_to_json(spec, three)["workload"]["threads"], 3);
  EXPECT_FALSE(estimate_to_json(spec, on_gpu)["workload"].contains("threads"));
  EXPECT_THROW(estimate(spec, threaded, builtin_hardware("h100")), roofline::Error);
  Workload decode_threaded = test::workload(WorkloadKind::Decode, 8, 1, 512);
  decode_threaded.threads = 3;
  EXPECT_THROW(validate(decode_threaded, spec), roofline::Error);
  // Inference budgets do not depend on the hardware.
  const Workload decode = test::workload(WorkloadKind::Decode, 8, 1, 512);
  EXPECT_EQ(estimate(spec, decode, cpu).memory.total(),
            estimate(spec, decode, builtin_hardware("h100")).memory.total());
}

}  // namespace
}  // namespace roofline::perf
