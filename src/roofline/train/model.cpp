#include "roofline/train/model.h"

#include <algorithm>
#include <cmath>

#include "roofline/core/error.h"
#include "roofline/train/ops/activations.h"
#include "roofline/train/ops/attention.h"
#include "roofline/train/ops/embedding.h"
#include "roofline/train/ops/linear.h"
#include "roofline/train/ops/norm.h"
#include "roofline/train/trainable.h"

namespace roofline::train {

// What one layer's backward needs from its forward. M = B*T rows.
struct TrainModel::LayerActs {
  std::vector<float> ln1_out, ln1_mean, ln1_rstd;  // [M, H], [M], [M]; the means for LayerNorm only
  std::vector<float> q_raw, k_raw, q_rstd, k_rstd; // Qwen3 q/k norm inputs [M, Hq*D] / [M, Hkv*D], stats
  std::vector<float> q, k, v;                      // after norm and RoPE: [M, Hq*D], [M, Hkv*D] x2
  std::vector<float> attn_out, lse;                // [M, Hq*D], [B, Hq, T]
  std::vector<float> x_mid;                        // [M, H]: input + attention branch
  std::vector<float> ln2_out, ln2_mean, ln2_rstd;  // [M, H], [M], [M]; the means for LayerNorm only
  std::vector<float> ffn_a, ffn_b, ffn_h;          // gated: gate, up, silu(gate)*up; GPT-2: fc, -, gelu(fc)
};

TrainModel::TrainModel(ModelSpec spec, ThreadPool& pool, bool checkpoint_activations)
    : spec_(std::move(spec)), pool_(pool), checkpoint_(checkpoint_activations), layout_(ParamLayout::build(spec_)) {
  ROOFLINE_CHECK(spec_.num_heads % spec_.num_kv_heads == 0, "model: heads {} not a multiple of kv heads {}",
                 spec_.num_heads, spec_.num_kv_heads);
  params_.assign(size_t(layout_.total), 0.0f);
  grads_.assign(size_t(layout_.total), 0.0f);
}

TrainModel::~TrainModel() = default;

void TrainModel::zero_grads() { std::fill(grads_.begin(), grads_.end(), 0.0f); }

void TrainModel::prepare(int64_t B, int64_t T) {
  ROOFLINE_CHECK(B > 0 && T > 0, "model: batch {} and sequence {} must be positive", B, T);
  if (spec_.position == PositionKind::Learned)
    ROOFLINE_CHECK(T <= spec_.max_position_embeddings,
                   "model: sequence length {} exceeds the model's {} learned positions", T,
                   spec_.max_position_embeddings);
  if (B == B_ && T == T_) return;
  B_ = B;
  T_ = T;
  const size_t M = size_t(B * T), H = size_t(spec_.hidden_size), F = size_t(spec_.intermediate_size);
  const size_t QD = size_t(spec_.q_dim()), KD = size_t(spec_.kv_dim());
  const bool layernorm = spec_.norm == NormKind::LayerNorm;  // RMSNorm needs no mean, only rstd
  inputs_.resize(M);
  targets_.resize(M);
  residual_.assign(size_t(spec_.num_layers + 1), std::vector<float>(M * H));
  acts_.clear();
  const size_t n_acts = checkpoint_ ? 1 : size_t(spec_.num_layers);
  for (size_t i = 0; i < n_acts; ++i) {
    auto a = std::make_unique<LayerActs>();
    a->ln1_out.resize(M * H);
    if (layernorm) a->ln1_mean.resize(M);
    a->ln1_rstd.resize(M);
    if (spec_.qk_norm) {
      a->q_raw.resize(M * QD);
      a->k_raw.resize(M * KD);
      a->q_rstd.resize(M * size_t(spec_.num_heads));
      a->k_rstd.resize(M * size_t(spec_.num_kv_heads));
    }
    a->q.resize(M * QD);
    a->k.resize(M * KD);
    a->v.resize(M * KD);
    a->attn_out.resize(M * QD);
    a->lse.resize(M * size_t(spec_.num_heads));
    a->x_mid.resize(M * H);
    a->ln2_out.resize(M * H);
    if (layernorm) a->ln2_mean.resize(M);
    a->ln2_rstd.resize(M);
    a->ffn_a.resize(M * F);
    if (spec_.mlp == MlpKind::GatedSiLU) a->ffn_b.resize(M * F);
    a->ffn_h.resize(M * F);
    acts_.push_back(std::move(a));
  }
  final_norm_out_.resize(M * H);
  if (layernorm) final_mean_.resize(M);
  final_rstd_.resize(M);
  dres_.resize(M * H);
  d_hidden_.resize(M * H);
  d_ffn_a_.resize(M * F);
  d_ffn_b_.resize(M * F);
  d_attn_.resize(M * QD);
  dq_.resize(M * QD);
  dk_.resize(M * KD);
  dv_.resize(M * KD);
  if (spec_.position == PositionKind::Rotary && rope_.positions < T) rope_ = make_rope_tables(spec_, T);
}

void TrainModel::layer_forward(int64_t l, const float* x, LayerActs& a, float* x_out) {
  const ModelSpec& s = spec_;
  const LayerSlots& w = layout_.layers[size_t(l)];
  const float* P = params_.data();
  const int64_t M = B_ * T_, H = s.hidden_size, F = s.intermediate_size, D = s.head_dim;
  const int64_t QD = s.q_dim(), KD = s.kv_dim();
  const float eps = float(s.norm_eps);
  ThreadPool& pool = pool_;

  if (s.norm == NormKind::LayerNorm)
    layernorm_forward(pool, x, slot(P, w.attn_norm_w), slot(P, w.attn_norm_b), a.ln1_out.data(), a.ln1_mean.data(),
                      a.ln1_rstd.data(), M, H, eps);
  else
    rmsnorm_forward(pool, x, slot(P, w.attn_norm_w), a.ln1_out.data(), a.ln1_rstd.data(), M, H, eps);

  float* q_dst = s.qk_norm ? a.q_raw.data() : a.q.data();
  float* k_dst = s.qk_norm ? a.k_raw.data() : a.k.data();
  linear_forward(pool, a.ln1_out.data(), slot(P, w.q_w), slot(P, w.q_b), q_dst, M, H, QD);
  linear_forward(pool, a.ln1_out.data(), slot(P, w.k_w), slot(P, w.k_b), k_dst, M, H, KD);
  linear_forward(pool, a.ln1_out.data(), slot(P, w.v_w), slot(P, w.v_b), a.v.data(), M, H, KD);
  if (s.qk_norm) {
    rmsnorm_forward(pool, a.q_raw.data(), slot(P, w.q_norm), a.q.data(), a.q_rstd.data(), M * s.num_heads, D, eps);
    rmsnorm_forward(pool, a.k_raw.data(), slot(P, w.k_norm), a.k.data(), a.k_rstd.data(), M * s.num_kv_heads, D, eps);
  }
  if (s.position == PositionKind::Rotary) {
    rope_forward(pool, a.q.data(), rope_, B_, T_, s.num_heads, D);
    rope_forward(pool, a.k.data(), rope_, B_, T_, s.num_kv_heads, D);
  }
  const AttentionShape shape{B_, T_, s.num_heads, s.num_kv_heads, D, s.sliding_window};
  attention_forward(pool, shape, a.q.data(), a.k.data(), a.v.data(), a.attn_out.data(), a.lse.data());
  linear_forward(pool, a.attn_out.data(), slot(P, w.o_w), slot(P, w.o_b), a.x_mid.data(), M, QD, H);
  for (int64_t i = 0; i < M * H; ++i) a.x_mid[size_t(i)] += x[i];

  if (s.norm == NormKind::LayerNorm)
    layernorm_forward(pool, a.x_mid.data(), slot(P, w.mlp_norm_w), slot(P, w.mlp_norm_b), a.ln2_out.data(),
                      a.ln2_mean.data(), a.ln2_rstd.data(), M, H, eps);
  else
    rmsnorm_forward(pool, a.x_mid.data(), slot(P, w.mlp_norm_w), a.ln2_out.data(), a.ln2_rstd.data(), M, H, eps);
  if (s.mlp == MlpKind::GatedSiLU) {
    linear_forward(pool, a.ln2_out.data(), slot(P, w.gate_w), slot(P, w.gate_b), a.ffn_a.data(), M, H, F);
    linear_forward(pool, a.ln2_out.data(), slot(P, w.up_w), slot(P, w.up_b), a.ffn_b.data(), M, H, F);
    swiglu_forward(pool, a.ffn_a.data(), a.ffn_b.data(), a.ffn_h.data(), M * F);
  } else {
    linear_forward(pool, a.ln2_out.data(), slot(P, w.up_w), slot(P, w.up_b), a.ffn_a.data(), M, H, F);
    gelu_forward(pool, a.ffn_a.data(), a.ffn_h.data(), M * F);
  }
  linear_forward(pool, a.ffn_h.data(), slot(P, w.down_w), slot(P, w.down_b), x_out, M, F, H);
  for (int64_t i = 0; i < M * H; ++i) x_out[i] += a.x_mid[size_t(i)];
}

// dres holds d(loss)/d(layer output) on entry and d(loss)/d(layer input) on return.
void TrainModel::layer_backward(int64_t l, const float* x, LayerActs& a, float* dres) {
  const ModelSpec& s = spec_;
  const LayerSlots& w = layout_.layers[size_t(l)];
  const float* P = params_.data();
  float* G = grads_.data();
  const int64_t M = B_ * T_, H = s.hidden_size, F = s.intermediate_size, D = s.head_dim;
  const int64_t QD = s.q_dim(), KD = s.kv_dim();
  ThreadPool& pool = pool_;

  // MLP branch: x_out = x_mid + down(act(...)); the residual passes dres through unchanged.
  float* dh = d_ffn_a_.data();  // d(ffn_h)
  linear_backward(pool, dres, a.ffn_h.data(), slot(P, w.down_w), dh, false, slot(G, w.down_w), slot(G, w.down_b),
                  M, F, H);
  if (s.mlp == MlpKind::GatedSiLU) {
    float* dgate = d_ffn_b_.data();
    // dup reuses a.ffn_h (no longer needed): written after it is read, element by element.
    float* dup = a.ffn_h.data();
    swiglu_backward(pool, dh, a.ffn_a.data(), a.ffn_b.data(), dgate, dup, M * F);
    linear_backward(pool, dgate, a.ln2_out.data(), slot(P, w.gate_w), d_hidden_.data(), false, slot(G, w.gate_w),
                    slot(G, w.gate_b), M, H, F);
    linear_backward(pool, dup, a.ln2_out.data(), slot(P, w.up_w), d_hidden_.data(), true, slot(G, w.up_w),
                    slot(G, w.up_b), M, H, F);
  } else {
    float* dfc = d_ffn_b_.data();
    gelu_backward(pool, dh, a.ffn_a.data(), dfc, M * F);
    linear_backward(pool, dfc, a.ln2_out.data(), slot(P, w.up_w), d_hidden_.data(), false, slot(G, w.up_w),
                    slot(G, w.up_b), M, H, F);
  }
  if (s.norm == NormKind::LayerNorm)
    layernorm_backward(pool, d_hidden_.data(), a.x_mid.data(), slot(P, w.mlp_norm_w), a.ln2_mean.data(),
                       a.ln2_rstd.data(), dres, true, slot(G, w.mlp_norm_w), slot(G, w.mlp_norm_b), M, H);
  else
    rmsnorm_backward(pool, d_hidden_.data(), a.x_mid.data(), slot(P, w.mlp_norm_w), a.ln2_rstd.data(), dres, true,
                     slot(G, w.mlp_norm_w), M, H);

  // Attention branch: x_mid = x + o(attention(...)).
  linear_backward(pool, dres, a.attn_out.data(), slot(P, w.o_w), d_attn_.data(), false, slot(G, w.o_w),
                  slot(G, w.o_b), M, QD, H);
  const AttentionShape shape{B_, T_, s.num_heads, s.num_kv_heads, D, s.sliding_window};
  attention_backward(pool, shape, a.q.data(), a.k.data(), a.v.data(), a.attn_out.data(), a.lse.data(),
                     d_attn_.data(), dq_.data(), dk_.data(), dv_.data());
  if (s.position == PositionKind::Rotary) {
    rope_backward(pool, dq_.data(), rope_, B_, T_, s.num_heads, D);
    rope_backward(pool, dk_.data(), rope_, B_, T_, s.num_kv_heads, D);
  }
  const float* dq = dq_.data();
  const float* dk = dk_.data();
  if (s.qk_norm) {
    // The norms' dx needs a buffer apart from their dy. d_attn_ (attention's dO, [M, QD]) is dead once
    // attention_backward returns and takes dq; dq_ ([M, QD] >= [M, KD]) is then free and takes dk.
    rmsnorm_backward(pool, dq_.data(), a.q_raw.data(), slot(P, w.q_norm), a.q_rstd.data(), d_attn_.data(), false,
                     slot(G, w.q_norm), M * s.num_heads, D);
    rmsnorm_backward(pool, dk_.data(), a.k_raw.data(), slot(P, w.k_norm), a.k_rstd.data(), dq_.data(), false,
                     slot(G, w.k_norm), M * s.num_kv_heads, D);
    dq = d_attn_.data();
    dk = dq_.data();
  }
  linear_backward(pool, dq, a.ln1_out.data(), slot(P, w.q_w), d_hidden_.data(), false, slot(G, w.q_w),
                  slot(G, w.q_b), M, H, QD);
  linear_backward(pool, dk, a.ln1_out.data(), slot(P, w.k_w), d_hidden_.data(), true, slot(G, w.k_w),
                  slot(G, w.k_b), M, H, KD);
  linear_backward(pool, dv_.data(), a.ln1_out.data(), slot(P, w.v_w), d_hidden_.data(), true, slot(G, w.v_w),
                  slot(G, w.v_b), M, H, KD);
  if (s.norm == NormKind::LayerNorm)
    layernorm_backward(pool, d_hidden_.data(), x, slot(P, w.attn_norm_w), a.ln1_mean.data(), a.ln1_rstd.data(), dres,
                       true, slot(G, w.attn_norm_w), slot(G, w.attn_norm_b), M, H);
  else
    rmsnorm_backward(pool, d_hidden_.data(), x, slot(P, w.attn_norm_w), a.ln1_rstd.data(), dres, true,
                     slot(G, w.attn_norm_w), M, H);
}

CrossEntropyResult TrainModel::run(const int32_t* windows, int64_t B, int64_t T, float grad_scale, bool backward) {
  prepare(B, T);
  const ModelSpec& s = spec_;
  const int64_t M = B * T, H = s.hidden_size, V = s.vocab_size, L = s.num_layers;
  for (int64_t b = 0; b < B; ++b)
    for (int64_t t = 0; t < T; ++t) {
      const int32_t in = windows[b * (T + 1) + t];
      ROOFLINE_CHECK(in >= 0 && in < V, "model: token id {} is outside the vocabulary ({})", in, V);
      inputs_[size_t(b * T + t)] = in;
      targets_[size_t(b * T + t)] = windows[b * (T + 1) + t + 1];
    }
  const float* P = params_.data();
  float* G = grads_.data();
  embedding_forward(pool_, inputs_.data(), slot(P, layout_.wte), slot(P, layout_.wpe), residual_[0].data(), B, T, H);
  for (int64_t l = 0; l < L; ++l)
    layer_forward(l, residual_[size_t(l)].data(), *acts_[checkpoint_ ? 0 : size_t(l)], residual_[size_t(l + 1)].data());
  const float eps = float(s.norm_eps);
  const float* last = residual_[size_t(L)].data();
  if (s.norm == NormKind::LayerNorm)
    layernorm_forward(pool_, last, slot(P, layout_.final_norm_w), slot(P, layout_.final_norm_b),
                      final_norm_out_.data(), final_mean_.data(), final_rstd_.data(), M, H, eps);
  else
    rmsnorm_forward(pool_, last, slot(P, layout_.final_norm_w), final_norm_out_.data(), final_rstd_.data(), M, H, eps);
  CrossEntropyResult ce = lm_head_cross_entropy(pool_, final_norm_out_.data(), slot(P, layout_.lm_head),
                                                targets_.data(), M, H, V, grad_scale,
                                                backward ? d_hidden_.data() : nullptr,
                                                backward ? slot(G, layout_.lm_head) : nullptr, ce_scratch_);
  if (!backward) return ce;

  if (s.norm == NormKind::LayerNorm)
    layernorm_backward(pool_, d_hidden_.data(), last, slot(P, layout_.final_norm_w), final_mean_.data(),
                       final_rstd_.data(), dres_.data(), false, slot(G, layout_.final_norm_w),
                       slot(G, layout_.final_norm_b), M, H);
  else
    rmsnorm_backward(pool_, d_hidden_.data(), last, slot(P, layout_.final_norm_w), final_rstd_.data(), dres_.data(),
                     false, slot(G, layout_.final_norm_w), M, H);
  for (int64_t l = L - 1; l >= 0; --l) {
    LayerActs& a = *acts_[checkpoint_ ? 0 : size_t(l)];
    if (checkpoint_) {
      // Recompute this layer's activations from its saved input; the output it rewrites is identical.
      std::vector<float>& out = residual_[size_t(l + 1)];
      layer_forward(l, residual_[size_t(l)].data(), a, out.data());
    }
    layer_backward(l, residual_[size_t(l)].data(), a, dres_.data());
  }
  embedding_backward(pool_, inputs_.data(), dres_.data(), slot(G, layout_.wte), slot(G, layout_.wpe), B, T, H);
  return ce;
}

CrossEntropyResult TrainModel::forward_backward(const int32_t* windows, int64_t B, int64_t T, float grad_scale) {
  return run(windows, B, T, grad_scale, true);
}

CrossEntropyResult TrainModel::forward_loss(const int32_t* windows, int64_t B, int64_t T) {
  return run(windows, B, T, 0.0f, false);
}

double train_flops_per_token(const ModelSpec& s, int64_t T) {
  double matmul_params = double(s.parameter_count()) - double(s.vocab_size * s.hidden_size);  // embedding lookup
  if (s.position == PositionKind::Learned) matmul_params -= double(s.max_position_embeddings * s.hidden_size);
  if (s.tied_embeddings) matmul_params += double(s.vocab_size * s.hidden_size);  // the lm_head matmul
  // Attention scores and weighted sum: 2 * 2 * T/2 * q_dim per token forward (causal), x3 with backward.
  const double attention = 6.0 * double(s.num_layers) * double(T) * double(s.q_dim());
  return 6.0 * matmul_params + attention;
}

size_t TrainModel::activation_bytes() const {
  size_t total = 0;
  for (const DeviceBuffer& b : buffers())
    if (b.category == DeviceMemoryCategory::Activations) total += b.bytes();
  return total;
}

std::vector<DeviceBuffer> TrainModel::buffers() const {
  using C = DeviceMemoryCategory;
  std::vector<DeviceBuffer> out;
  auto add = [&](const char* name, C category, const auto& v) {
    if (v.capacity() > 0) out.push_back({name, category, v.capacity(), sizeof(v[0])});
  };
  add("parameters (f32)", C::Weights, params_);
  add("gradients (f32)", C::Gradients, grads_);
  for (const auto& r : residual_) add("residual stream (f32)", C::Activations, r);
  // RMSNorm keeps no means: its statistics are the rstd alone.
  const bool layernorm = spec_.norm == NormKind::LayerNorm;
  const char* layer_norm_stats = layernorm ? "ln1, ln2 mean and rstd (f32)" : "ln1, ln2 rstd (f32)";
  const char* final_norm_stats = layernorm ? "final norm mean and rstd (f32)" : "final norm rstd (f32)";
  for (const auto& a : acts_) {
    for (const auto* v : {&a->ln1_out, &a->ln2_out}) add("ln1, ln2 out (f32)", C::Activations, *v);
    for (const auto* v : {&a->ln1_mean, &a->ln1_rstd, &a->ln2_mean, &a->ln2_rstd})
      add(layer_norm_stats, C::Activations, *v);
    add("q before qk-norm (f32)", C::Activations, a->q_raw);
    add("k before qk-norm (f32)", C::Activations, a->k_raw);
    add("q-norm rstd (f32)", C::Activations, a->q_rstd);
    add("k-norm rstd (f32)", C::Activations, a->k_rstd);
    for (const auto* v : {&a->q, &a->attn_out}) add("q, attention out (f32)", C::Activations, *v);
    for (const auto* v : {&a->k, &a->v}) add("k, v (f32)", C::Activations, *v);
    add("attention lse (f32)", C::Activations, a->lse);
    add("x_mid (f32)", C::Activations, a->x_mid);
    for (const auto* v : {&a->ffn_a, &a->ffn_b, &a->ffn_h})
      add("ffn pre-activations and output (f32)", C::Activations, *v);
  }
  add("final norm out (f32)", C::Activations, final_norm_out_);
  for (const auto* v : {&final_mean_, &final_rstd_}) add(final_norm_stats, C::Activations, *v);
  for (const auto* v : {&dres_, &d_hidden_}) add("dres, d_hidden (f32)", C::Workspace, *v);
  for (const auto* v : {&d_ffn_a_, &d_ffn_b_}) add("d_ffn_a, d_ffn_b (f32)", C::Workspace, *v);
  for (const auto* v : {&d_attn_, &dq_}) add("d_attn, dq (f32)", C::Workspace, *v);
  for (const auto* v : {&dk_, &dv_}) add("dk, dv (f32)", C::Workspace, *v);
  for (const auto* v : {&inputs_, &targets_}) add("token ids: inputs, targets (i32)", C::Workspace, *v);
  for (const auto* v : {&rope_.cos, &rope_.sin}) add("rope cos, sin (f32)", C::Workspace, *v);
  add("logits chunk (f32)", C::Workspace, ce_scratch_);
  return out;
}

namespace {

// The CPU model behind the device-neutral interface of the training loop.
class CpuTrainable final : public Trainable {
 public:
  CpuTrainable(ModelSpec spec, ThreadPool& pool, bool checkpoint, const float* params)
      : pool_(pool), model_(std::move(spec), pool, checkpoint) {
    std::copy(params, params + model_.layout().total, model_.params().begin());
  }
  const ModelSpec& spec() const override { return model_.spec(); }
  const ParamLayout& layout() const override { return model_.layout(); }
  CrossEntropyResult forward_backward(const int32_t* windows, int64_t B, int64_t T, float grad_scale) override {
    return model_.forward_backward(windows, B, T, grad_scale);
  }
  CrossEntropyResult forward_loss(const int32_t* windows, int64_t B, int64_t T) override {
    return model_.forward_loss(windows, B, T);
  }
  void zero_grads() override { model_.zero_grads(); }
  size_t activation_bytes() const override { return model_.activation_bytes(); }
  double grad_norm() override { return global_grad_norm(pool_, model_.grads()); }
  void clip_and_step(Optimizer& optimizer, double norm, double max_norm, double lr) override {
    clip_grads(pool_, model_.grads(), norm, max_norm);
    optimizer.update(pool_, model_.params(), model_.grads(), lr);
  }
  const float* host_params() override { return model_.params().data(); }
  void optimizer_state_to_host(Optimizer&) override {}  // the moments live in the host optimizer already
  void optimizer_state_from_host(Optimizer&) override {}
  void copy_grads_to_host(float* out) override { std::copy(model_.grads().begin(), model_.grads().end(), out); }

 private:
  ThreadPool& pool_;
  TrainModel model_;
};

}  // namespace

std::unique_ptr<Trainable> make_cpu_trainable(ModelSpec spec, ThreadPool& pool, bool checkpoint_activations,
                                              const float* params) {
  return std::make_unique<CpuTrainable>(std::move(spec), pool, checkpoint_activations, params);
}

}  // namespace roofline::train
