#include "roofline/train/device_memory_plan.h"

#include <algorithm>

#include "roofline/train/params.h"

namespace roofline::train {

std::string_view to_string(DeviceMemoryCategory category) {
  switch (category) {
    case DeviceMemoryCategory::Weights: return "weights";
    case DeviceMemoryCategory::Gradients: return "gradients";
    case DeviceMemoryCategory::Optimizer: return "optimizer";
    case DeviceMemoryCategory::Activations: return "activations";
    case DeviceMemoryCategory::Workspace: return "workspace";
  }
  return "?";
}

int64_t cross_entropy_chunk_rows(int64_t rows, int64_t vocab) {
  if (rows <= 0 || vocab <= 0) return 0;
  const int64_t max_rows = std::clamp<int64_t>(int64_t(kLogitsChunkBytes / (size_t(vocab) * 2)), 1, rows);
  const int64_t chunks = (rows + max_rows - 1) / max_rows;
  return (rows + chunks - 1) / chunks;
}

CudaTrainPlan plan_cuda_training(const ModelSpec& spec, int64_t batch, int64_t seq, bool checkpoint_activations,
                                 OptimizerKind optimizer) {
  CudaTrainPlan p;
  p.params = size_t(ParamLayout::build(spec).total);
  p.adamw = optimizer == OptimizerKind::AdamW;
  p.grad_norm_partials = size_t(kGradNormBlocks);
  p.checkpoint = checkpoint_activations;
  if (batch <= 0 || seq <= 0) return p;
  p.B = batch;
  p.T = seq;
  p.M = batch * seq;
  const size_t M = size_t(p.M), H = size_t(spec.hidden_size), V = size_t(spec.vocab_size);
  const size_t QD = size_t(spec.q_dim()), QKV = QD + 2 * size_t(spec.kv_dim());
  const size_t F = size_t(spec.intermediate_size), F2 = spec.mlp == MlpKind::GatedSiLU ? 2 * F : F;
  p.ln = M * H;
  p.norm_stats = M;
  p.qkv = M * QKV;
  p.attn = M * QD;
  p.lse = M * size_t(spec.num_heads);
  p.x_mid = M * H;
  p.ffn_in = M * F2;
  p.ffn_h = M * F;
  p.saved_layers = checkpoint_activations ? 1 : spec.num_layers;
  p.residual = M * H;
  p.residuals = spec.num_layers + 1;
  p.d_hidden = M * H;
  p.d_ffn_h = M * F;
  p.d_ffn_in = M * F2;
  p.d_attn = M * QD;
  p.dqkv = M * QKV;
  const int64_t widest_bias = int64_t(std::max({H, QKV, F2}));
  p.norm_partials = norm_backward_partials_floats(p.M, spec.hidden_size);
  p.bias_partials = bias_grad_partials_floats(p.M, widest_bias);
  p.bias_sums = size_t(widest_bias);
  p.attention_workspace = std::max<size_t>(1, attention_backward_workspace_bytes(batch, spec.num_heads, seq));
  p.ce_rows = cross_entropy_chunk_rows(p.M, spec.vocab_size);
  p.logits = size_t(p.ce_rows) * V;
  p.batch_tokens = 5 * M + 1;
  if (spec.position == PositionKind::Rotary) p.rope_table = size_t(seq) * size_t(spec.head_dim / 2);
  return p;
}

std::vector<DeviceBuffer> CudaTrainPlan::buffers() const {
  using C = DeviceMemoryCategory;
  std::vector<DeviceBuffer> b = {
      {"master weights (f32)", C::Optimizer, params, 4},
      {"gradients (f32)", C::Gradients, params, 4},
      {"weights (bf16 copy)", C::Weights, params, 2},
      {"weight-decay mask (u8)", C::Optimizer, params, 1},
  };
  if (adamw) {
    b.push_back({"AdamW m (f32)", C::Optimizer, params, 4});
    b.push_back({"AdamW v (f32)", C::Optimizer, params, 4});
  }
  b.push_back({"grad-norm partials (f64)", C::Workspace, grad_norm_partials, 8});
  b.push_back({"loss sum (f64)", C::Workspace, 1, 8});
  b.push_back({"cuBLASLt workspace", C::Workspace, kTrainGemmWorkspaceBytes, 1});
  if (M == 0) return b;
  const size_t L = size_t(saved_layers);
  b.push_back({"token ids + embedding-grad CSR (i32)", C::Workspace, batch_tokens, 4});
  b.push_back({"residual stream (f32) x (L+1)", C::Activations, residual, 4, size_t(residuals)});
  b.push_back({"ln1, ln2 (bf16)", C::Activations, ln, 2, 2 * L});
  b.push_back({"norm mean, rstd (f32)", C::Activations, norm_stats, 4, 4 * L});
  b.push_back({"q|k|v (bf16)", C::Activations, qkv, 2, L});
  b.push_back({"attention out (bf16)", C::Activations, attn, 2, L});
  b.push_back({"attention lse (f32)", C::Activations, lse, 4, L});
  b.push_back({"x_mid (f32)", C::Activations, x_mid, 4, L});
  b.push_back({"ffn_in (bf16)", C::Activations, ffn_in, 2, L});
  b.push_back({"ffn_h (bf16)", C::Activations, ffn_h, 2, L});
  b.push_back({"final norm out (bf16)", C::Activations, ln, 2});
  b.push_back({"final norm mean, rstd (f32)", C::Activations, norm_stats, 4, 2});
  b.push_back({"dres, d_hidden (f32)", C::Workspace, d_hidden, 4, 2});
  b.push_back({"dres (bf16)", C::Workspace, d_hidden, 2});
  b.push_back({"d_ffn_h (bf16)", C::Workspace, d_ffn_h, 2});
  b.push_back({"d_ffn_in (bf16)", C::Workspace, d_ffn_in, 2});
  b.push_back({"d_attn (bf16)", C::Workspace, d_attn, 2});
  b.push_back({"dq|dk|dv (bf16)", C::Workspace, dqkv, 2});
  b.push_back({"norm partials (f32)", C::Workspace, norm_partials, 4});
  b.push_back({"bias partials (f32)", C::Workspace, bias_partials, 4});
  b.push_back({"bias sums (f32)", C::Workspace, bias_sums, 4});
  b.push_back({"attention backward delta", C::Workspace, attention_workspace, 1});
  b.push_back({"logits chunk (bf16)", C::Workspace, logits, 2});
  b.push_back({"losses (f32)", C::Workspace, size_t(M), 4});
  if (rope_table) b.push_back({"rope cos, sin (f32)", C::Workspace, rope_table, 4, 2});
  return b;
}

size_t buffer_bytes(std::span<const DeviceBuffer> buffers, DeviceMemoryCategory category) {
  size_t total = 0;
  for (const DeviceBuffer& b : buffers)
    if (b.category == category) total += b.bytes();
  return total;
}

size_t buffer_bytes(std::span<const DeviceBuffer> buffers) {
  size_t total = 0;
  for (const DeviceBuffer& b : buffers) total += b.bytes();
  return total;
}

size_t CudaTrainPlan::bytes(DeviceMemoryCategory category) const { return buffer_bytes(buffers(), category); }

size_t CudaTrainPlan::total_bytes() const { return buffer_bytes(buffers()); }

}  // namespace roofline::train
