#include "roofline/perf/memory_budget.h"

#include <algorithm>

#include "roofline/model/model_spec.h"
#include "roofline/perf/step_shapes.h"

namespace roofline::perf {

namespace {

constexpr double kGradientBytes = 4;   // f32 gradients: micro-batches accumulate into them (the CUDA trainer's)
constexpr double kOptimizerBytes = 12; // fp32 master weight + fp32 first and second moments
constexpr double kTrainLogitBytes = 2;         // bf16 logits of the fused cross-entropy
constexpr double kTrainLogitChunkBytes = 1 << 30;  // the rows of one cross-entropy chunk, at most
constexpr double kLseBytes = 4;        // flash attention keeps one f32 log-sum-exp per query row per head

// Bytes a training forward saves per token per layer for the backward: the inputs of every op that needs
// one. Norms: their input (the residual stream) and output (the projections' input); attention: q, k, v,
// the output (also o_proj's input) and the row log-sum-exp; MLP: gate and up (SwiGLU) or the pre-GELU
// values, and the down projection's input. Rope needs nothing (a rotation by known angles).
double saved_bytes_per_token_per_layer(const ModelSpec& spec, const StepShapes& s) {
  const bool gated = spec.mlp == MlpKind::GatedSiLU;
  double elements = 4 * s.hidden + 2 * s.q_dim + 2 * s.kv_dim + (gated ? 3 : 2) * s.ffn;
  if (spec.qk_norm) elements += s.q_dim + s.kv_dim;
  return elements * kActivationBytes + s.heads * kLseBytes;
}

}  // namespace

double parameters_per_device(const ModelSpec& spec, int tp) {
  double n = 0;
  for (const WeightTensor& t : device_weight_tensors(spec, tp)) n += t.elements * t.repeats;
  return n;
}

double weight_bytes_per_device(const ModelSpec& spec, WeightDType dtype, int tp) {
  double bytes = 0;
  for (const WeightTensor& t : device_weight_tensors(spec, tp))
    bytes += t.repeats * (t.linear ? linear_weight_bytes(t.rows, t.elements / t.rows, dtype) : 2 * t.elements);
  return bytes;
}

double kv_cache_bytes_per_token(const ModelSpec& spec, int tp) {
  Workload w;
  w.tp = tp;
  const StepShapes s = step_shapes(spec, w);
  return 2 * s.layers * s.kv_dim * kKvBytes;
}

MemoryBudget memory_budget(const ModelSpec& spec, const Workload& w) {
  validate(w, spec);
  const StepShapes s = step_shapes(spec, w);
  MemoryBudget m;
  const double params = parameters_per_device(spec, w.tp);
  m.weights = weight_bytes_per_device(spec, w.weights, w.tp) / (w.zero >= 3 ? w.dp : 1);
  m.kv_cache_per_token = kv_cache_bytes_per_token(spec, w.tp);
  if (w.kind != WorkloadKind::Train) {
    double cached = double(w.context + w.seq);
    if (spec.sliding_window > 0) cached = std::min(cached, double(spec.sliding_window));
    m.kv_cache = s.sequences * cached * m.kv_cache_per_token;
    // Attention buffers are dead by the time the MLP runs, so a layer needs the larger of the two.
    const double attention = 2 * s.q_dim + 2 * s.kv_dim;
    const double mlp = (spec.mlp == MlpKind::GatedSiLU ? 3 : 2) * s.ffn;
    m.activations = s.tokens * (2 * s.hidden + std::max(attention, mlp)) * kActivationBytes +
                    s.head_tokens * s.vocab * kLogitBytes;
    return m;
  }
  const double per_layer = s.tokens * saved_bytes_per_token_per_layer(spec, s);
  const double saved = w.checkpointing ? s.layers * s.tokens * s.hidden * kActivationBytes + per_layer  // inputs + one layer live
                                       : s.layers * per_layer;
  // The cross-entropy is fused and chunked: bf16 logits of one chunk of rows at a time, overwritten by their
  // gradient, never the whole batch's (the CUDA trainer's chunk budget).
  m.activations = saved + std::min(s.tokens * s.vocab * kTrainLogitBytes, kTrainLogitChunkBytes);
  m.gradients = params * kGradientBytes / (w.zero >= 2 ? w.dp : 1);
  m.optimizer = params * kOptimizerBytes / (w.zero >= 1 ? w.dp : 1);
  return m;
}

}  // namespace roofline::perf
