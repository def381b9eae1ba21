#include "roofline/perf/memory_budget.h"

#include <algorithm>

#include "roofline/core/thread_pool.h"
#include "roofline/model/model_spec.h"
#include "roofline/perf/hardware.h"
#include "roofline/perf/step_shapes.h"
#include "roofline/train/cpu_memory_plan.h"
#include "roofline/train/device_memory_plan.h"

namespace roofline::perf {

namespace {

// Qwen3's q/k norms (which the CUDA trainer does not run) save their inputs too: bf16 q and k per token.
double qk_norm_saved_bytes_per_token(const ModelSpec& spec, const StepShapes& s) {
  return spec.qk_norm ? (s.q_dim + s.kv_dim) * s.activation_bytes : 0;
}

// A trainer's plan (CUDA or CPU) by the budget's keys, ZeRO sharding the parameter state over dp.
template <typename Plan>
void count_train_plan(const Plan& plan, const Workload& w, MemoryBudget& m) {
  using train::DeviceMemoryCategory;
  m.weights = double(plan.bytes(DeviceMemoryCategory::Weights)) / (w.zero >= 3 ? w.dp : 1);
  m.gradients = double(plan.bytes(DeviceMemoryCategory::Gradients)) / (w.zero >= 2 ? w.dp : 1);
  m.optimizer = double(plan.bytes(DeviceMemoryCategory::Optimizer)) / (w.zero >= 1 ? w.dp : 1);
  m.activations = double(plan.bytes(DeviceMemoryCategory::Activations));
  m.workspace = double(plan.bytes(DeviceMemoryCategory::Workspace));
}

}  // namespace

TrainMemoryTarget train_memory_target(const HardwareSpec& hw, int threads) {
  TrainMemoryTarget target;
  target.cpu = is_cpu(hw);
  if (target.cpu) target.cpu_threads = threads > 0 ? threads : ThreadPool::hardware_threads();
  return target;
}

ModelSpec tensor_parallel_slice(const ModelSpec& spec, int tp) {
  if (tp <= 1) return spec;
  ModelSpec s = spec;
  s.num_heads = spec.num_heads / tp;
  s.num_kv_heads = std::max<int64_t>(1, spec.num_kv_heads / tp);
  s.intermediate_size = spec.intermediate_size / tp;
  s.vocab_size = (spec.vocab_size + tp - 1) / tp;
  return s;
}

double parameters_per_device(const ModelSpec& spec, int tp) {
  double n = 0;
  for (const WeightTensor& t : device_weight_tensors(spec, tp)) n += t.elements * t.repeats;
  return n;
}

double weight_bytes_per_device(const ModelSpec& spec, WeightDType dtype, int tp) {
  double bytes = 0;
  for (const WeightTensor& t : device_weight_tensors(spec, tp))
    bytes += t.repeats * (t.linear ? linear_weight_bytes(t.rows, t.elements / t.rows, dtype)
                                   : dense_weight_bytes(dtype) * t.elements);
  return bytes;
}

double kv_cache_bytes_per_token(const ModelSpec& spec, int tp, StorageDType dtype) {
  Workload w;
  w.tp = tp;
  w.kv_cache = dtype;
  const StepShapes s = step_shapes(spec, w);
  return 2 * s.layers * s.kv_dim * s.kv_bytes;
}

MemoryBudget memory_budget(const ModelSpec& spec, const Workload& w, const TrainMemoryTarget& target) {
  validate(w, spec);
  const StepShapes s = step_shapes(spec, w);
  MemoryBudget m;
  m.weights = weight_bytes_per_device(spec, w.weights, w.tp) / (w.zero >= 3 ? w.dp : 1);
  m.kv_cache_per_token = kv_cache_bytes_per_token(spec, w.tp, w.kv_cache);
  if (w.kind != WorkloadKind::Train) {
    double cached = double(w.context + w.seq);
    if (spec.sliding_window > 0) cached = std::min(cached, double(spec.sliding_window));
    m.kv_cache = s.sequences * cached * m.kv_cache_per_token;
    // Attention buffers are dead by the time the MLP runs, so a layer needs the larger of the two.
    const double attention = 2 * s.q_dim + 2 * s.kv_dim;
    const double mlp = (spec.mlp == MlpKind::GatedSiLU ? 3 : 2) * s.ffn;
    m.activations = s.tokens * (2 * s.hidden + std::max(attention, mlp)) * s.activation_bytes +
                    s.head_tokens * s.vocab * kLogitBytes;
    return m;
  }
  // The trainer's buffers for one replica's micro-batch, as it allocates them (AdamW). The parameter count is
  // the trainer's ParamLayout of this device's slice.
  const ModelSpec slice = tensor_parallel_slice(spec, w.tp);
  if (target.cpu) {
    // The CPU trainer runs Qwen3's q/k norms itself: its plan holds their saved inputs.
    count_train_plan(train::plan_cpu_training(slice, w.batch_per_replica(), w.seq, w.checkpointing,
                                              train::OptimizerKind::AdamW, target.cpu_threads),
                     w, m);
    m.cpu_threads = target.cpu_threads;
    return m;
  }
  const train::CudaTrainPlan plan =
      train::plan_cuda_training(slice, w.batch_per_replica(), w.seq, w.checkpointing, train::OptimizerKind::AdamW);
  count_train_plan(plan, w, m);
  m.activations += double(plan.saved_layers) * s.tokens * qk_norm_saved_bytes_per_token(spec, s);
  m.context = kTrainContextBytes;
  return m;
}

}  // namespace roofline::perf
