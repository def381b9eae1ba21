#include "roofline/train/cpu_memory_plan.h"

#include <algorithm>

#include "roofline/train/data.h"
#include "roofline/train/ops/attention.h"
#include "roofline/train/ops/cross_entropy.h"
#include "roofline/train/ops/reduce.h"
#include "roofline/train/params.h"

namespace roofline::train {

CpuTrainPlan plan_cpu_training(const ModelSpec& spec, int64_t batch, int64_t seq, bool checkpoint_activations,
                               OptimizerKind optimizer, int threads) {
  CpuTrainPlan p;
  p.params = size_t(ParamLayout::build(spec).total);
  p.adamw = optimizer == OptimizerKind::AdamW;
  p.checkpoint = checkpoint_activations;
  p.threads = std::max(threads, 1);
  p.L = spec.num_layers;
  p.H = spec.hidden_size;
  p.QD = spec.q_dim();
  p.KD = spec.kv_dim();
  p.F = spec.intermediate_size;
  p.heads = spec.num_heads;
  p.kv_heads = spec.num_kv_heads;
  p.head_dim = spec.head_dim;
  p.V = spec.vocab_size;
  p.gated = spec.mlp == MlpKind::GatedSiLU;
  p.layernorm = spec.norm == NormKind::LayerNorm;
  p.rotary = spec.position == PositionKind::Rotary;
  p.qk_norm = spec.qk_norm;
  if (spec.qkv_bias) p.widest_bias = std::max({p.widest_bias, p.QD, p.KD});
  if (spec.output_bias) p.widest_bias = std::max(p.widest_bias, p.H);
  if (spec.mlp_bias) p.widest_bias = std::max({p.widest_bias, p.F, p.H});
  if (batch <= 0 || seq <= 0) return p;
  p.B = batch;
  p.T = seq;
  p.M = batch * seq;
  p.saved_layers = checkpoint_activations ? 1 : p.L;
  p.ce_rows = lm_head_chunk_rows(p.M, p.V);
  p.gemm = gemm_packing();
  return p;
}

std::vector<DeviceBuffer> CpuTrainPlan::model_buffers() const {
  using C = DeviceMemoryCategory;
  std::vector<DeviceBuffer> b = {
      {"parameters (f32)", C::Weights, params, 4},
      {"gradients (f32)", C::Gradients, params, 4},
  };
  if (M == 0) return b;
  const size_t m = size_t(M), S = size_t(saved_layers);
  // Activations: the layer boundaries, then each saved layer's set (model.cpp's LayerActs), then the final norm.
  // LayerNorm keeps each row's mean and rstd, RMSNorm only the rstd.
  b.push_back({"residual stream (f32)", C::Activations, m * H, 4, size_t(L + 1)});
  b.push_back({"ln1, ln2 out (f32)", C::Activations, m * H, 4, 2 * S});
  if (layernorm)
    b.push_back({"ln1, ln2 mean and rstd (f32)", C::Activations, m, 4, 4 * S});
  else
    b.push_back({"ln1, ln2 rstd (f32)", C::Activations, m, 4, 2 * S});
  if (qk_norm) {
    b.push_back({"q before qk-norm (f32)", C::Activations, m * QD, 4, S});
    b.push_back({"k before qk-norm (f32)", C::Activations, m * KD, 4, S});
    b.push_back({"q-norm rstd (f32)", C::Activations, m * heads, 4, S});
    b.push_back({"k-norm rstd (f32)", C::Activations, m * kv_heads, 4, S});
  }
  b.push_back({"q, attention out (f32)", C::Activations, m * QD, 4, 2 * S});
  b.push_back({"k, v (f32)", C::Activations, m * KD, 4, 2 * S});
  b.push_back({"attention lse (f32)", C::Activations, m * heads, 4, S});
  b.push_back({"x_mid (f32)", C::Activations, m * H, 4, S});
  // GELU: fc and gelu(fc); SwiGLU: gate, up and silu(gate) * up.
  b.push_back({"ffn pre-activations and output (f32)", C::Activations, m * F, 4, (gated ? 3 : 2) * S});
  b.push_back({"final norm out (f32)", C::Activations, m * H, 4});
  if (layernorm)
    b.push_back({"final norm mean and rstd (f32)", C::Activations, m, 4, 2});
  else
    b.push_back({"final norm rstd (f32)", C::Activations, m, 4});
  // The backward's buffers (one set, reused by every layer).
  b.push_back({"dres, d_hidden (f32)", C::Workspace, m * H, 4, 2});
  b.push_back({"d_ffn_a, d_ffn_b (f32)", C::Workspace, m * F, 4, 2});
  b.push_back({"d_attn, dq (f32)", C::Workspace, m * QD, 4, 2});
  b.push_back({"dk, dv (f32)", C::Workspace, m * KD, 4, 2});
  b.push_back({"token ids: inputs, targets (i32)", C::Workspace, m, 4, 2});
  if (rotary) b.push_back({"rope cos, sin (f32)", C::Workspace, size_t(T) * size_t(head_dim / 2), 4, 2});
  b.push_back({"logits chunk (f32)", C::Workspace, size_t(ce_rows) * size_t(V), 4});
  return b;
}

std::vector<DeviceBuffer> CpuTrainPlan::optimizer_buffers() const {
  using C = DeviceMemoryCategory;
  std::vector<DeviceBuffer> b = {{"weight-decay mask (f32)", C::Optimizer, params, 4}};
  if (adamw) b.push_back({"AdamW m, v (f32)", C::Optimizer, params, 4, 2});
  return b;
}

std::vector<DeviceBuffer> CpuTrainPlan::thread_buffers() const {
  using C = DeviceMemoryCategory;
  if (M == 0) return {};
  // Attention's tasks are (sequence, head) in the forward and (sequence, KV head) in the backward: no more threads
  // than tasks hold score matrices. Any thread may run a tile of a GEMM.
  const size_t forward_threads = size_t(std::min<int64_t>(threads, B * heads));
  const size_t backward_threads = size_t(std::min<int64_t>(threads, B * kv_heads));
  return {
      {"attention scores, forward (f32, per thread)", C::Workspace, attention_scores_floats(T), 4, forward_threads},
      {"attention P, dP, backward (f32, per thread)", C::Workspace, attention_scores_floats(T), 4,
       2 * backward_threads},
      {"GEMM packed A panels (f32, per thread)", C::Workspace, gemm.a_floats, 4, size_t(threads)},
      {"GEMM packed B panels (f32, per thread)", C::Workspace, gemm.b_floats, 4, size_t(threads)},
  };
}

std::vector<DeviceBuffer> CpuTrainPlan::transient_buffers() const {
  using C = DeviceMemoryCategory;
  std::vector<DeviceBuffer> b = {{"gradient-norm partials (f64)", C::Workspace, size_t(kGradNormChunks), 8}};
  if (M == 0) return b;
  const size_t chunks = size_t(reduce_chunks(M));
  b.push_back({"cross-entropy row losses (f64)", C::Workspace, size_t(M), 8});
  if (layernorm)  // the weight and bias sums (2H) and their partials (2H per chunk of rows)
    b.push_back({"layernorm backward sums and partials (f32)", C::Workspace, (chunks + 1) * 2 * size_t(H), 4});
  else
    b.push_back({"rmsnorm backward partials (f32)", C::Workspace, chunks * size_t(H), 4});
  if (qk_norm)
    b.push_back({"qk-norm backward partials (f32)", C::Workspace,
                 size_t(reduce_chunks(M * heads)) * size_t(head_dim), 4});
  if (widest_bias > 0) b.push_back({"bias gradient partials (f32)", C::Workspace, chunks * size_t(widest_bias), 4});
  return b;
}

DeviceBuffer CpuTrainPlan::largest_transient() const {
  const std::vector<DeviceBuffer> b = transient_buffers();
  return *std::max_element(b.begin(), b.end(),
                           [](const DeviceBuffer& x, const DeviceBuffer& y) { return x.bytes() < y.bytes(); });
}

std::vector<DeviceBuffer> CpuTrainPlan::batch_buffers() const {
  if (M == 0) return {};
  return {{"batches in flight (i32 [B, T+1])", DeviceMemoryCategory::Workspace, size_t(B) * size_t(T + 1), 4,
           size_t(kLoaderPrefetch + 1)}};
}

std::vector<DeviceBuffer> CpuTrainPlan::buffers() const {
  std::vector<DeviceBuffer> all = model_buffers();
  for (const auto& part : {optimizer_buffers(), thread_buffers(), std::vector<DeviceBuffer>{largest_transient()},
                           batch_buffers()})
    all.insert(all.end(), part.begin(), part.end());
  return all;
}

size_t CpuTrainPlan::bytes(DeviceMemoryCategory category) const { return buffer_bytes(buffers(), category); }

size_t CpuTrainPlan::total_bytes() const { return buffer_bytes(buffers()); }

}  // namespace roofline::train
