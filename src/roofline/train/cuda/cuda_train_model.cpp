#include "roofline/train/cuda/cuda_train_model.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <cmath>
#include <numeric>
#include <vector>

#include "roofline/backend/cuda/cuda_backend.h"
#include "roofline/backend/cuda/ceilings.h"
#include "roofline/core/error.h"
#include "roofline/train/cuda/device_array.h"
#include "roofline/train/cuda/flash_attention.h"
#include "roofline/backend/cuda/lt_gemm.h"
#include "roofline/train/cuda/kernels.h"
#include "roofline/train/cuda/op_profile.h"
#include "roofline/train/device_memory_plan.h"
#include "roofline/train/scratch_sizes.h"
#include "roofline/train/model.h"
#include "roofline/train/ops/rope.h"

namespace roofline::train::cuda {
namespace {

using ::roofline::cuda::GemmGelu;  // the cuBLASLt wrapper of backend/cuda
using ::roofline::cuda::GemmOperand;
using ::roofline::cuda::LtGemm;
using ::roofline::GemmAlgorithmTable;

using C = DeviceMemoryCategory;

// What one layer's backward needs from its forward. M = B*T rows; QKV = (Hq + 2 Hkv) * D; F2 = F (GELU) or
// 2F (SwiGLU: gate | up per row).
// Sized by plan_cuda_training (device_memory_plan.h), which the estimate counts too.
struct LayerActs {
  DeviceArray<bf16> ln1{C::Activations};                                 // [M, H]
  DeviceArray<float> ln1_mean{C::Activations}, ln1_rstd{C::Activations}; // [M]
  DeviceArray<bf16> qkv{C::Activations};                                 // [M, QKV], q and k after RoPE
  DeviceArray<bf16> attn{C::Activations};                                // [M, Hq*D]
  DeviceArray<float> lse{C::Activations};                                // [B, Hq, T]
  DeviceArray<float> x_mid{C::Activations};  // [M, H]: the residual after the attention branch
  DeviceArray<bf16> ln2{C::Activations};                                 // [M, H]
  DeviceArray<float> ln2_mean{C::Activations}, ln2_rstd{C::Activations}; // [M]
  DeviceArray<bf16> ffn_in{C::Activations}, ffn_h{C::Activations};       // [M, F2], [M, F]
  size_t bytes() const {
    return ln1.bytes() + ln1_mean.bytes() + ln1_rstd.bytes() + qkv.bytes() + attn.bytes() + lse.bytes() +
           x_mid.bytes() + ln2.bytes() + ln2_mean.bytes() + ln2_rstd.bytes() + ffn_in.bytes() + ffn_h.bytes();
  }
};

class CudaTrainModel final : public Trainable {
 public:
  CudaTrainModel(ModelSpec spec, bool checkpoint, const float* params, const OptimizerConfig& optimizer,
                 bool tune_gemms);
  ~CudaTrainModel() override;

  const ModelSpec& spec() const override { return spec_; }
  const ParamLayout& layout() const override { return layout_; }
  CrossEntropyResult forward_backward(const int32_t* windows, int64_t B, int64_t T, float grad_scale) override {
    return run(windows, B, T, grad_scale, true);
  }
  CrossEntropyResult forward_loss(const int32_t* windows, int64_t B, int64_t T) override {
    return run(windows, B, T, 0.0f, false);
  }
  void zero_grads() override {
    ROOFLINE_CUDA_CHECK(cudaMemsetAsync(grads_.get(), 0, grads_.bytes(), stream_));
  }
  size_t activation_bytes() const override;
  size_t device_bytes_in_use() const override {
    size_t free = 0, total = 0;
    ROOFLINE_CUDA_CHECK(cudaMemGetInfo(&free, &total));
    return total - free;
  }
  DeviceMemoryAccount device_memory() const override;
  double grad_norm() override;
  void clip_and_step(Optimizer& optimizer, double norm, double max_norm, double lr) override;
  const float* host_params() override;
  void optimizer_state_to_host(Optimizer& optimizer) override;
  void optimizer_state_from_host(Optimizer& optimizer) override;
  void copy_grads_to_host(float* out) override {
    ROOFLINE_CUDA_CHECK(cudaStreamSynchronize(stream_));
    ROOFLINE_CUDA_CHECK(cudaMemcpy(out, grads_.get(), grads_.bytes(), cudaMemcpyDeviceToHost));
  }
  nlohmann::json gemm_algorithms() const override {
    const GemmAlgorithmTable table = gemm_->algorithms();
    return table.empty() ? nlohmann::json(nullptr) : table.to_json();
  }
  bool use_gemm_algorithms(const nlohmann::json& table) override {
    return gemm_->use_algorithms(GemmAlgorithmTable::from_json(table, "the checkpoint's gemm_algorithms"));
  }

 private:
  void prepare(int64_t B, int64_t T);
  void copy_async(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind);
  int64_t upload_tokens(const int32_t* windows, int64_t B, int64_t T);
  void upload_token_groups();
  CrossEntropyResult run(const int32_t* windows, int64_t B, int64_t T, float grad_scale, bool backward);
  void layer_forward(int64_t l, const float* x, LayerActs& a, float* x_out);
  void layer_backward(int64_t l, const float* x, LayerActs& a);
  LayerActs& acts(int64_t l) { return *acts_[checkpoint_ ? 0 : size_t(l)]; }
  FlashAttentionShape attention_shape() const;
  double attention_forward_flops() const;

  // Building blocks over parameter offsets (-1: absent).
  void norm_forward(const float* x, int64_t w, int64_t b, bf16* y, float* mean, float* rstd);
  // next_bias: the bias (-1: none) of the linear layer whose output gradient the resulting dres is; its
  // gradient comes out of the norm's partial sums.
  void norm_backward(const float* dy, const float* x, int64_t w, int64_t b, const float* mean, const float* rstd,
                     bool accumulate, int64_t next_bias);
  void linear(const char* op, const bf16* x, int64_t w, int64_t b, bf16* y, int64_t in, int64_t out);
  void linear_residual(const char* op, const bf16* x, int64_t w, int64_t b, const float* residual, float* y,
                       int64_t in, int64_t out);
  // op names the three products for the profile: {dW, db, dX}.
  void linear_backward(const char* const (&op)[3], const bf16* dy, const bf16* x, int64_t w, int64_t b, void* dx,
                       cudaDataType dx_type, int64_t in, int64_t out);
  void linear_param_grads(const char* dw_op, const char* db_op, const bf16* dy, const bf16* x, int64_t w, int64_t b,
                          int64_t in, int64_t out);
  void mlp_in_forward(LayerActs& a, const LayerSlots& w);
  void mlp_out_backward(LayerActs& a, const LayerSlots& w);
  double gemm_flops(int64_t M, int64_t N, int64_t K) const { return 2.0 * double(M) * double(N) * double(K); }
  float* P(int64_t offset) const { return params_.get() + offset; }
  float* G(int64_t offset) const { return grads_.get() + offset; }
  bf16* W(int64_t offset) const { return weights_bf16_.get() + offset; }

  ModelSpec spec_;
  bool checkpoint_;
  ParamLayout layout_;
  OptimizerConfig optimizer_config_;
  cudaStream_t stream_ = nullptr;
  std::unique_ptr<LtGemm> gemm_;
  std::unique_ptr<OpProfile> profile_;
  // GPT-2's GELU in the GEMM epilogues (forward: the MLP-in product; backward: the MLP-out dX product). On
  // unless ROOFLINE_TRAIN_GELU_EPILOGUE=0; each turns itself off if cuBLASLt has no algorithm for it.
  bool gelu_forward_epilogue_ = false, gelu_backward_epilogue_ = false;
  // The bias gradients of the q|k|v and MLP-in products written by their weight-gradient GEMMs (cuBLASLt's
  // BGRADB epilogue) into bias_sums_, then added to the gradient: no separate pass over dY. Off unless
  // ROOFLINE_TRAIN_BGRAD_EPILOGUE=1: on the H100 it made those GEMMs ~0.5 ms slower (qkv dW 1.12 -> 1.58 ms,
  // MLP-in dW 1.37 -> 1.91) than the column-sum kernel it saves (~1.0 ms -> 0.1); GPT-2 465.7k tok/s off,
  // 462-464k on. Turns itself off if cuBLASLt has no algorithm for it.
  bool bias_grad_epilogue_ = false;
  int64_t QD_, KD_, QKV_, F_, F2_;

  // Every device buffer below is sized from plan_ (plan_cuda_training), the estimate's count of them.
  CudaTrainPlan plan_;
  size_t in_use_before_ = 0;  // cudaMemGetInfo's in-use before the first allocation
  std::unique_ptr<NotedDeviceBytes> gemm_workspace_noted_;
  DeviceArray<float> params_{C::Optimizer}, grads_{C::Gradients};  // [total] each, the ParamLayout
  DeviceArray<float> m_{C::Optimizer}, v_{C::Optimizer};
  DeviceArray<bf16> weights_bf16_{C::Weights};     // [total]: the bf16 working copy of params_
  DeviceArray<uint8_t> decay_mask_{C::Optimizer};  // [total]: 1 where weight decay applies
  std::vector<float> host_params_;

  int64_t B_ = 0, T_ = 0, M_ = 0, ce_rows_ = 0;
  PinnedArray<int32_t> batch_host_;            // inputs [M], targets [M], CSR of rows by token
  DeviceArray<int32_t> batch_{C::Workspace};
  int64_t unique_tokens_ = 0;
  DeviceArray<float> rope_cos_{C::Workspace}, rope_sin_{C::Workspace};  // [T, D/2]
  std::vector<DeviceArray<float>> residual_;   // [L + 1][M, H], Activations
  std::vector<std::unique_ptr<LayerActs>> acts_;
  DeviceArray<bf16> final_out_{C::Activations};  // [M, H]
  DeviceArray<float> final_mean_{C::Activations}, final_rstd_{C::Activations};
  DeviceArray<float> dres_{C::Workspace}, d_hidden_{C::Workspace};  // [M, H] f32
  // [M,H], [M,F], [M,F2], [M,QD], [M,QKV]
  DeviceArray<bf16> dres_bf16_{C::Workspace}, d_ffn_h_{C::Workspace}, d_ffn_in_{C::Workspace}, d_attn_{C::Workspace},
      dqkv_{C::Workspace};
  DeviceArray<float> norm_partials_{C::Workspace}, bias_partials_{C::Workspace}, bias_sums_{C::Workspace};
  DeviceArray<unsigned char> attention_workspace_{C::Workspace};
  DeviceArray<bf16> logits_{C::Workspace};       // [ce_rows, V]
  DeviceArray<float> losses_{C::Workspace};      // [M]
  DeviceArray<double> reduce_partials_{C::Workspace}, scalar_{C::Workspace};
  PinnedArray<double> scalar_host_;
};

CudaTrainModel::CudaTrainModel(ModelSpec spec, bool checkpoint, const float* params, const OptimizerConfig& optimizer,
                               bool tune_gemms)
    : spec_(std::move(spec)), checkpoint_(checkpoint), layout_(ParamLayout::build(spec_)),
      optimizer_config_(optimizer) {
  const ModelSpec& s = spec_;
  if (s.qk_norm) fail("--device cuda: q/k norms (Qwen3) are not supported by CUDA training yet; use --device cpu");
  ROOFLINE_CHECK(s.num_kv_heads > 0 && s.num_heads % s.num_kv_heads == 0,
                 "model: heads {} not a multiple of kv heads {}", s.num_heads, s.num_kv_heads);
  if (s.head_dim != 64 && s.head_dim != 128)
    fail("--device cuda: head_dim {} has no training attention kernel (64 and 128 do); use --device cpu", s.head_dim);
  QD_ = s.q_dim();
  KD_ = s.kv_dim();
  QKV_ = QD_ + 2 * KD_;
  F_ = s.intermediate_size;
  F2_ = s.mlp == MlpKind::GatedSiLU ? 2 * F_ : F_;
  const int64_t H = s.hidden_size;
  // The fused q|k|v and gate|up products rely on these tensors being adjacent in the layout.
  for (const LayerSlots& w : layout_.layers) {
    ROOFLINE_CHECK(w.k_w == w.q_w + QD_ * H && w.v_w == w.k_w + KD_ * H, "cuda train: q/k/v weights not adjacent");
    ROOFLINE_CHECK(w.q_b < 0 || (w.k_b == w.q_b + QD_ && w.v_b == w.k_b + KD_), "cuda train: q/k/v biases not adjacent");
    if (s.mlp == MlpKind::GatedSiLU) {
      ROOFLINE_CHECK(w.up_w == w.gate_w + F_ * H, "cuda train: gate/up weights not adjacent");
      ROOFLINE_CHECK(w.gate_b < 0 || w.up_b == w.gate_b + F_, "cuda train: gate/up biases not adjacent");
    }
  }
  int device_count = 0;
  if (cudaGetDeviceCount(&device_count) != cudaSuccess || device_count == 0)
    fail("--device cuda: no CUDA GPU is visible");
  ROOFLINE_CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
  in_use_before_ = device_bytes_in_use();  // the context exists now (the stream made it); nothing of ours yet
  plan_ = plan_cuda_training(s, 0, 0, checkpoint_, optimizer_config_.kind);
  gemm_ = std::make_unique<LtGemm>(stream_, kTrainGemmWorkspaceBytes);
  gemm_workspace_noted_ = std::make_unique<NotedDeviceBytes>(C::Workspace, kTrainGemmWorkspaceBytes);
  profile_ = std::make_unique<OpProfile>(stream_);
  if (profile_->enabled()) gemm_->enable_survey();
  if (tune_gemms) gemm_->enable_tuning();
  const char* gelu_env = std::getenv("ROOFLINE_TRAIN_GELU_EPILOGUE");
  gelu_forward_epilogue_ = gelu_backward_epilogue_ =
      s.mlp == MlpKind::GeluTanh && !(gelu_env && std::strcmp(gelu_env, "0") == 0);
  const char* bgrad_env = std::getenv("ROOFLINE_TRAIN_BGRAD_EPILOGUE");
  bias_grad_epilogue_ = bgrad_env && std::strcmp(bgrad_env, "1") == 0;

  const size_t n = plan_.params;
  ROOFLINE_CHECK(n == size_t(layout_.total), "cuda train: plan of {} parameters, layout of {}", n, layout_.total);
  params_.resize(n);
  grads_.resize(n);
  weights_bf16_.resize(n);
  ROOFLINE_CUDA_CHECK(cudaMemcpy(params_.get(), params, n * sizeof(float), cudaMemcpyHostToDevice));
  f32_to_bf16(params_.get(), weights_bf16_.get(), int64_t(n), stream_);
  std::vector<uint8_t> mask(n, 0);
  for (const ParamInfo& p : layout_.params)
    if (weight_decay_applies(p, optimizer_config_)) std::fill_n(mask.begin() + p.offset, p.numel, uint8_t(1));
  decay_mask_.resize(n);
  ROOFLINE_CUDA_CHECK(cudaMemcpy(decay_mask_.get(), mask.data(), n, cudaMemcpyHostToDevice));
  if (optimizer_config_.kind == OptimizerKind::AdamW) {
    m_.resize(n);
    v_.resize(n);
    ROOFLINE_CUDA_CHECK(cudaMemsetAsync(m_.get(), 0, m_.bytes(), stream_));
    ROOFLINE_CUDA_CHECK(cudaMemsetAsync(v_.get(), 0, v_.bytes(), stream_));
  }
  reduce_partials_.resize(plan_.grad_norm_partials);
  ROOFLINE_CHECK(reduce_partials_.size() >= sum_squares_partials(int64_t(n)), "cuda train: grad-norm partials");
  scalar_.resize(1);
  scalar_host_.resize(1);
  zero_grads();
  ROOFLINE_CUDA_CHECK(cudaStreamSynchronize(stream_));
}

CudaTrainModel::~CudaTrainModel() {
  if (stream_) {
    cudaStreamSynchronize(stream_);
    if (profile_) std::fputs((profile_->table() + gemm_->survey()).c_str(), stderr);
    profile_.reset();
    gemm_.reset();
    cudaStreamDestroy(stream_);
  }
}

void CudaTrainModel::prepare(int64_t B, int64_t T) {
  ROOFLINE_CHECK(B > 0 && T > 0, "model: batch {} and sequence {} must be positive", B, T);
  if (spec_.position == PositionKind::Learned)
    ROOFLINE_CHECK(T <= spec_.max_position_embeddings,
                   "model: sequence length {} exceeds the model's {} learned positions", T,
                   spec_.max_position_embeddings);
  if (B == B_ && T == T_) return;
  ROOFLINE_CUDA_CHECK(cudaStreamSynchronize(stream_));
  B_ = B;
  T_ = T;
  M_ = B * T;
  const CudaTrainPlan& p = plan_ = plan_cuda_training(spec_, B, T, checkpoint_, optimizer_config_.kind);
  // inputs M + targets M + unique tokens U + starts U + 1 + rows M, with U <= M.
  batch_host_.resize(p.batch_tokens);
  batch_.resize(p.batch_tokens);
  residual_.clear();
  for (int64_t l = 0; l < p.residuals; ++l) residual_.emplace_back(C::Activations, p.residual);
  acts_.clear();
  for (int64_t i = 0; i < p.saved_layers; ++i) {
    auto a = std::make_unique<LayerActs>();
    a->ln1.resize(p.ln);
    a->ln1_mean.resize(p.norm_stats);
    a->ln1_rstd.resize(p.norm_stats);
    a->qkv.resize(p.qkv);
    a->attn.resize(p.attn);
    a->lse.resize(p.lse);
    a->x_mid.resize(p.x_mid);
    a->ln2.resize(p.ln);
    a->ln2_mean.resize(p.norm_stats);
    a->ln2_rstd.resize(p.norm_stats);
    a->ffn_in.resize(p.ffn_in);
    a->ffn_h.resize(p.ffn_h);
    acts_.push_back(std::move(a));
  }
  final_out_.resize(p.ln);
  final_mean_.resize(p.norm_stats);
  final_rstd_.resize(p.norm_stats);
  dres_.resize(p.d_hidden);
  d_hidden_.resize(p.d_hidden);
  dres_bf16_.resize(p.d_hidden);
  d_ffn_h_.resize(p.d_ffn_h);
  d_ffn_in_.resize(p.d_ffn_in);
  d_attn_.resize(p.d_attn);
  dqkv_.resize(p.dqkv);
  norm_partials_.resize(p.norm_partials);
  bias_partials_.resize(p.bias_partials);
  bias_sums_.resize(p.bias_sums);
  ROOFLINE_CHECK(norm_partials_.size() >= norm_partials_floats(M_, spec_.hidden_size) &&
                     bias_partials_.size() >= bias_grad_partials_floats(M_, int64_t(p.bias_sums)),
                 "cuda train: the plan's reduction partials are smaller than the kernels need");
  attention_workspace_.resize(p.attention_workspace);
  ROOFLINE_CHECK(p.attention_workspace >= flash_attention_backward_workspace(attention_shape()),
                 "cuda train: the plan's attention workspace is smaller than the kernel needs");
  ce_rows_ = p.ce_rows;
  logits_.resize(p.logits);
  losses_.resize(size_t(M_));
  if (spec_.position == PositionKind::Rotary) {
    const RopeTables tables = make_rope_tables(spec_, T);
    ROOFLINE_CHECK(tables.cos.size() == p.rope_table, "cuda train: rope table of {} floats, plan {}",
                   tables.cos.size(), p.rope_table);
    rope_cos_.resize(p.rope_table);
    rope_sin_.resize(p.rope_table);
    ROOFLINE_CUDA_CHECK(cudaMemcpy(rope_cos_.get(), tables.cos.data(), rope_cos_.bytes(), cudaMemcpyHostToDevice));
    ROOFLINE_CUDA_CHECK(cudaMemcpy(rope_sin_.get(), tables.sin.data(), rope_sin_.bytes(), cudaMemcpyHostToDevice));
  }
}

FlashAttentionShape CudaTrainModel::attention_shape() const {
  FlashAttentionShape s;
  s.B = B_;
  s.T = T_;
  s.Hq = spec_.num_heads;
  s.Hkv = spec_.num_kv_heads;
  s.D = spec_.head_dim;
  s.window = spec_.sliding_window;
  s.ld_q = QKV_;
  s.ld_kv = QKV_;
  s.ld_o = QD_;
  return s;
}

// A copy between pinned host memory and the device, ordered on the compute stream.
void CudaTrainModel::copy_async(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind) {
  ROOFLINE_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, kind, stream_));
}

// Inputs and targets, staged in pinned memory and copied on the compute stream. Returns the number of targets
// (rows with a loss).
int64_t CudaTrainModel::upload_tokens(const int32_t* windows, int64_t B, int64_t T) {
  const int64_t M = B * T, V = spec_.vocab_size;
  int32_t* inputs = batch_host_.get();
  int32_t* targets = inputs + M;
  int64_t count = 0;
  for (int64_t b = 0; b < B; ++b)
    for (int64_t t = 0; t < T; ++t) {
      const int32_t in = windows[b * (T + 1) + t];
      ROOFLINE_CHECK(in >= 0 && in < V, "model: token id {} is outside the vocabulary ({})", in, V);
      const int32_t target = windows[b * (T + 1) + t + 1];
      ROOFLINE_CHECK(target < V, "model: target id {} is outside the vocabulary ({})", target, V);
      inputs[b * T + t] = in;
      targets[b * T + t] = target;
      count += target >= 0;
    }
  copy_async(batch_.get(), inputs, size_t(2 * M) * sizeof(int32_t), cudaMemcpyHostToDevice);
  return count;
}

// The rows grouped by token for the embedding gradient, built on the host while the GPU runs the forward
// pass (the run launches it first), then copied behind it on the stream.
void CudaTrainModel::upload_token_groups() {
  const int64_t M = M_;
  const int32_t* inputs = batch_host_.get();
  int32_t* targets = batch_host_.get() + M;
  // rows_by_token: row indices stably sorted by token; unique tokens and their start offsets.
  std::vector<int32_t> order(static_cast<size_t>(M));
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int32_t a, int32_t b) { return inputs[a] < inputs[b]; });
  std::vector<int32_t> unique, starts;
  for (int64_t i = 0; i < M; ++i)
    if (i == 0 || inputs[order[size_t(i)]] != inputs[order[size_t(i - 1)]]) {
      unique.push_back(inputs[order[size_t(i)]]);
      starts.push_back(int32_t(i));
    }
  starts.push_back(int32_t(M));
  unique_tokens_ = int64_t(unique.size());
  int32_t* csr = targets + M;
  std::copy(unique.begin(), unique.end(), csr);
  std::copy(starts.begin(), starts.end(), csr + unique_tokens_);
  std::copy(order.begin(), order.end(), csr + 2 * unique_tokens_ + 1);
  const size_t used = size_t(M + 2 * unique_tokens_ + 1);
  copy_async(batch_.get() + 2 * M, csr, used * sizeof(int32_t), cudaMemcpyHostToDevice);
}

void CudaTrainModel::norm_forward(const float* x, int64_t w, int64_t b, bf16* y, float* mean, float* rstd) {
  const float eps = float(spec_.norm_eps);
  if (spec_.norm == NormKind::LayerNorm)
    layernorm_forward(x, P(w), b >= 0 ? P(b) : nullptr, y, mean, rstd, M_, spec_.hidden_size, eps, stream_);
  else
    rmsnorm_forward(x, P(w), y, rstd, M_, spec_.hidden_size, eps, stream_);
}

void CudaTrainModel::norm_backward(const float* dy, const float* x, int64_t w, int64_t b, const float* mean,
                                   const float* rstd, bool accumulate, int64_t next_bias) {
  const bool layernorm = spec_.norm == NormKind::LayerNorm;
  cuda::norm_backward(dy, x, P(w), layernorm ? mean : nullptr, rstd, dres_.get(), accumulate, dres_bf16_.get(), G(w),
                      layernorm && b >= 0 ? G(b) : nullptr, next_bias >= 0 ? G(next_bias) : nullptr,
                      norm_partials_.get(), M_, spec_.hidden_size, stream_);
}

void CudaTrainModel::linear(const char* op, const bf16* x, int64_t w, int64_t b, bf16* y, int64_t in, int64_t out) {
  gemm_->run(M_, out, in, {x, in, false}, {W(w), in, true}, y, CUDA_R_16BF, out, 0.0f, nullptr,
             b >= 0 ? W(b) : nullptr, CUDA_R_16BF);
  profile_->mark(op, gemm_flops(M_, out, in));
}

void CudaTrainModel::linear_residual(const char* op, const bf16* x, int64_t w, int64_t b, const float* residual,
                                     float* y, int64_t in, int64_t out) {
  gemm_->run(M_, out, in, {x, in, false}, {W(w), in, true}, y, CUDA_R_32F, out, 1.0f, residual,
             b >= 0 ? P(b) : nullptr, CUDA_R_32F);
  profile_->mark(op, gemm_flops(M_, out, in));
}

// dW[out, in] += dy^T . x;  db[out] += column sums of dy.
void CudaTrainModel::linear_param_grads(const char* dw_op, const char* db_op, const bf16* dy, const bf16* x, int64_t w,
                                        int64_t b, int64_t in, int64_t out) {
  if (b >= 0 && bias_grad_epilogue_) {
    try {  // nothing is accumulated if this throws (no algorithm: the plan fails before the product runs)
      gemm_->run(out, in, M_, {dy, out, true}, {x, in, false}, G(w), CUDA_R_32F, in, 1.0f, nullptr, nullptr,
                 CUDA_R_32F, {}, bias_sums_.get());
      profile_->mark(dw_op, gemm_flops(out, in, M_));
      add_in_place(bias_sums_.get(), G(b), out, stream_);
      profile_->mark(db_op);
      return;
    } catch (const Error& e) {
      std::fprintf(stderr, "cuda train: bias-gradient epilogue unavailable (%s); using the separate kernel\n",
                   e.what());
      bias_grad_epilogue_ = false;
    }
  }
  gemm_->run(out, in, M_, {dy, out, true}, {x, in, false}, G(w), CUDA_R_32F, in, 1.0f);
  profile_->mark(dw_op, gemm_flops(out, in, M_));
  if (b >= 0) {
    bias_grad(dy, M_, out, bias_partials_.get(), G(b), stream_);
    profile_->mark(db_op);
  }
}

// The parameter gradients, then dx[M, in] = dy . W.
void CudaTrainModel::linear_backward(const char* const (&op)[3], const bf16* dy, const bf16* x, int64_t w, int64_t b,
                                     void* dx, cudaDataType dx_type, int64_t in, int64_t out) {
  linear_param_grads(op[0], op[1], dy, x, w, b, in, out);
  gemm_->run(M_, in, out, {dy, out, false}, {W(w), in, false}, dx, dx_type, in);
  profile_->mark(op[2], gemm_flops(M_, in, out));
}

// ffn_in = ln2 . W_in^T + b_in, then the activation into ffn_h.
void CudaTrainModel::mlp_in_forward(LayerActs& a, const LayerSlots& w) {
  const int64_t H = spec_.hidden_size;
  if (gelu_forward_epilogue_) {
    try {
      gemm_->run(M_, F_, H, {a.ln2.get(), H, false}, {W(w.up_w), H, true}, a.ffn_h.get(), CUDA_R_16BF, F_, 0.0f,
                 nullptr, w.up_b >= 0 ? W(w.up_b) : nullptr, CUDA_R_16BF,
                 {GemmGelu::Kind::Forward, a.ffn_in.get(), F_});
      profile_->mark("mlp in fwd + gelu", gemm_flops(M_, F_, H));
      return;
    } catch (const Error& e) {  // no algorithm for the fused form here: the separate pass below
      std::fprintf(stderr, "cuda train: GELU forward epilogue unavailable (%s); using the separate kernel\n", e.what());
      gelu_forward_epilogue_ = false;
    }
  }
  const bool gated = spec_.mlp == MlpKind::GatedSiLU;
  linear("mlp in fwd", a.ln2.get(), gated ? w.gate_w : w.up_w, gated ? w.gate_b : w.up_b, a.ffn_in.get(), H, F2_);
  if (gated) swiglu_forward(a.ffn_in.get(), a.ffn_h.get(), M_, F_, stream_);
  else gelu_forward(a.ffn_in.get(), a.ffn_h.get(), M_ * F_, stream_);
  profile_->mark("activation fwd");
}

// From dres (the MLP output's gradient) to d_ffn_in (the gradient of the activation's input). The output
// projection's bias gradient is not here: the norm backward that produced dres added it.
void CudaTrainModel::mlp_out_backward(LayerActs& a, const LayerSlots& w) {
  const int64_t H = spec_.hidden_size;
  if (gelu_backward_epilogue_) {
    bool fused = true;
    try {  // the dX product first: if it throws, nothing has been accumulated yet
      gemm_->run(M_, F_, H, {dres_bf16_.get(), H, false}, {W(w.down_w), F_, false}, d_ffn_in_.get(), CUDA_R_16BF, F_,
                 0.0f, nullptr, nullptr, CUDA_R_32F, {GemmGelu::Kind::Backward, a.ffn_in.get(), F_});
      profile_->mark("mlp out dX + dgelu", gemm_flops(M_, F_, H));
    } catch (const Error& e) {
      std::fprintf(stderr, "cuda train: GELU backward epilogue unavailable (%s); using the separate kernel\n",
                   e.what());
      gelu_backward_epilogue_ = fused = false;
    }
    if (fused) {
      linear_param_grads("mlp out dW", "", dres_bf16_.get(), a.ffn_h.get(), w.down_w, -1, F_, H);
      return;
    }
  }
  linear_backward({"mlp out dW", "", "mlp out dX"}, dres_bf16_.get(), a.ffn_h.get(), w.down_w, -1,
                  d_ffn_h_.get(), CUDA_R_16BF, F_, H);
  if (spec_.mlp == MlpKind::GatedSiLU) swiglu_backward(d_ffn_h_.get(), a.ffn_in.get(), d_ffn_in_.get(), M_, F_, stream_);
  else gelu_backward(d_ffn_h_.get(), a.ffn_in.get(), d_ffn_in_.get(), M_ * F_, stream_);
  profile_->mark("activation bwd");
}

// Multiply-adds of causal attention's two forward products (backward: five products, 2.5x).
double CudaTrainModel::attention_forward_flops() const {
  const int64_t W = spec_.sliding_window;
  double pairs = 0;  // (query, key) pairs attended, per sequence
  for (int64_t t = 0; t < T_; ++t) pairs += double(W > 0 ? std::min(t + 1, W) : t + 1);
  return 2.0 * 2.0 * double(B_) * double(spec_.num_heads) * double(spec_.head_dim) * pairs;
}

void CudaTrainModel::layer_forward(int64_t l, const float* x, LayerActs& a, float* x_out) {
  const ModelSpec& s = spec_;
  const LayerSlots& w = layout_.layers[size_t(l)];
  const int64_t H = s.hidden_size, D = s.head_dim;
  norm_forward(x, w.attn_norm_w, w.attn_norm_b, a.ln1.get(), a.ln1_mean.get(), a.ln1_rstd.get());
  profile_->mark("norm fwd");
  linear("qkv fwd", a.ln1.get(), w.q_w, w.q_b, a.qkv.get(), H, QKV_);
  bf16* q = a.qkv.get();
  if (s.position == PositionKind::Rotary) {
    rope_rotate(q, QKV_, rope_cos_.get(), rope_sin_.get(), B_, T_, s.num_heads, D, 1.0f, stream_);
    rope_rotate(q + QD_, QKV_, rope_cos_.get(), rope_sin_.get(), B_, T_, s.num_kv_heads, D, 1.0f, stream_);
    profile_->mark("rope fwd");
  }
  flash_attention_forward(attention_shape(), q, q + QD_, q + QD_ + KD_, a.attn.get(), a.lse.get(), stream_);
  profile_->mark("attention fwd", attention_forward_flops());
  linear_residual("attn out fwd", a.attn.get(), w.o_w, w.o_b, x, a.x_mid.get(), QD_, H);

  norm_forward(a.x_mid.get(), w.mlp_norm_w, w.mlp_norm_b, a.ln2.get(), a.ln2_mean.get(), a.ln2_rstd.get());
  profile_->mark("norm fwd");
  mlp_in_forward(a, w);
  linear_residual("mlp out fwd", a.ffn_h.get(), w.down_w, w.down_b, a.x_mid.get(), x_out, F_, H);
}

// dres_ holds d(loss)/d(layer output) on entry and d(loss)/d(layer input) on return, dres_bf16_ its bf16 copy
// (written by the norm backward that produced it).
void CudaTrainModel::layer_backward(int64_t l, const float* x, LayerActs& a) {
  const ModelSpec& s = spec_;
  const LayerSlots& w = layout_.layers[size_t(l)];
  const int64_t H = s.hidden_size, D = s.head_dim;
  const bool gated = s.mlp == MlpKind::GatedSiLU;

  // MLP branch: x_out = x_mid + down(act(ffn_in)); the residual passes dres through.
  mlp_out_backward(a, w);
  linear_backward({"mlp in dW", "mlp in db", "mlp in dX"}, d_ffn_in_.get(), a.ln2.get(), gated ? w.gate_w : w.up_w,
                  gated ? w.gate_b : w.up_b, d_hidden_.get(), CUDA_R_32F, H, F2_);
  norm_backward(d_hidden_.get(), a.x_mid.get(), w.mlp_norm_w, w.mlp_norm_b, a.ln2_mean.get(), a.ln2_rstd.get(), true,
                w.o_b);
  profile_->mark("norm bwd");

  // Attention branch: x_mid = x + o(attention(...)); o's bias gradient came out of the norm backward above.
  linear_backward({"attn out dW", "", "attn out dX"}, dres_bf16_.get(), a.attn.get(), w.o_w, -1,
                  d_attn_.get(), CUDA_R_16BF, QD_, H);
  const bf16* q = a.qkv.get();
  bf16* dq = dqkv_.get();
  flash_attention_backward(attention_shape(), q, q + QD_, q + QD_ + KD_, a.attn.get(), a.lse.get(), d_attn_.get(), dq,
                           dq + QD_, dq + QD_ + KD_, attention_workspace_.get(), stream_);
  profile_->mark("attention bwd", 2.5 * attention_forward_flops());
  if (s.position == PositionKind::Rotary) {
    rope_rotate(dq, QKV_, rope_cos_.get(), rope_sin_.get(), B_, T_, s.num_heads, D, -1.0f, stream_);
    rope_rotate(dq + QD_, QKV_, rope_cos_.get(), rope_sin_.get(), B_, T_, s.num_kv_heads, D, -1.0f, stream_);
    profile_->mark("rope bwd");
  }
  linear_backward({"qkv dW", "qkv db", "qkv dX"}, dq, a.ln1.get(), w.q_w, w.q_b, d_hidden_.get(), CUDA_R_32F, H, QKV_);
  norm_backward(d_hidden_.get(), x, w.attn_norm_w, w.attn_norm_b, a.ln1_mean.get(), a.ln1_rstd.get(), true,
                l > 0 ? layout_.layers[size_t(l - 1)].down_b : -1);
  profile_->mark("norm bwd");
}

CrossEntropyResult CudaTrainModel::run(const int32_t* windows, int64_t B, int64_t T, float grad_scale, bool backward) {
  prepare(B, T);
  const ModelSpec& s = spec_;
  const int64_t M = M_, H = s.hidden_size, V = s.vocab_size, L = s.num_layers;
  CrossEntropyResult result;
  profile_->start();
  result.count = upload_tokens(windows, B, T);
  const int32_t* inputs = batch_.get();
  const int32_t* targets = inputs + M;

  embedding_forward(inputs, P(layout_.wte), layout_.wpe >= 0 ? P(layout_.wpe) : nullptr, residual_[0].get(), B, T, H,
                    stream_);
  profile_->mark("embedding fwd");
  for (int64_t l = 0; l < L; ++l) layer_forward(l, residual_[size_t(l)].get(), acts(l), residual_[size_t(l + 1)].get());
  if (backward) upload_token_groups();  // host work while the GPU runs the layers launched above
  const float* last = residual_[size_t(L)].get();
  norm_forward(last, layout_.final_norm_w, layout_.final_norm_b, final_out_.get(), final_mean_.get(), final_rstd_.get());
  profile_->mark("norm fwd");

  // The LM head and cross-entropy, chunk by chunk: bf16 logits [rows, V] -> dlogits in place -> dh, dW.
  for (int64_t r0 = 0; r0 < M; r0 += ce_rows_) {
    const int64_t rows = std::min(ce_rows_, M - r0);
    const bf16* h = final_out_.get() + r0 * H;
    gemm_->run(rows, V, H, {h, H, false}, {W(layout_.lm_head), H, true}, logits_.get(), CUDA_R_16BF, V);
    profile_->mark("lm head fwd", gemm_flops(rows, V, H));
    cross_entropy_rows(logits_.get(), targets + r0, losses_.get() + r0, rows, V, grad_scale, backward, stream_);
    profile_->mark("cross entropy");
    if (!backward) continue;
    gemm_->run(rows, H, V, {logits_.get(), V, false}, {W(layout_.lm_head), H, false}, d_hidden_.get() + r0 * H,
               CUDA_R_32F, H);
    profile_->mark("lm head dX", gemm_flops(rows, H, V));
    gemm_->run(V, H, rows, {logits_.get(), V, true}, {h, H, false}, G(layout_.lm_head), CUDA_R_32F, H, 1.0f);
    profile_->mark("lm head dW", gemm_flops(V, H, rows));
  }
  sum_in_order(losses_.get(), M, scalar_.get(), stream_);
  copy_async(scalar_host_.get(), scalar_.get(), sizeof(double), cudaMemcpyDeviceToHost);
  profile_->mark("loss sum");

  if (backward) {
    norm_backward(d_hidden_.get(), last, layout_.final_norm_w, layout_.final_norm_b, final_mean_.get(),
                  final_rstd_.get(), false, L > 0 ? layout_.layers[size_t(L - 1)].down_b : -1);
    profile_->mark("norm bwd");
    for (int64_t l = L - 1; l >= 0; --l) {
      // With checkpointing, recompute this layer from its saved input (the output it rewrites is identical).
      if (checkpoint_) layer_forward(l, residual_[size_t(l)].get(), acts(l), residual_[size_t(l + 1)].get());
      layer_backward(l, residual_[size_t(l)].get(), acts(l));
    }
    const int32_t* csr = targets + M;
    embedding_backward(dres_.get(), csr, csr + unique_tokens_, csr + 2 * unique_tokens_ + 1, unique_tokens_,
                       G(layout_.wte), layout_.wpe >= 0 ? G(layout_.wpe) : nullptr, B, T, H, stream_);
    profile_->mark("embedding bwd");
  }
  // The pinned batch buffer and the loss are free / ready once the stream is done with this micro-batch.
  ROOFLINE_CUDA_CHECK(cudaStreamSynchronize(stream_));
  profile_->flush();
  profile_->end_micro_batch();
  result.loss_sum = *scalar_host_.get();
  return result;
}

size_t CudaTrainModel::activation_bytes() const {
  size_t total = final_out_.bytes() + final_mean_.bytes() + final_rstd_.bytes();
  for (const auto& r : residual_) total += r.bytes();
  for (const auto& a : acts_) total += a->bytes();
  return total;
}

DeviceMemoryAccount CudaTrainModel::device_memory() const {
  DeviceMemoryAccount a;
  for (int c = 0; c < kDeviceMemoryCategories; ++c) a.allocated[size_t(c)] = device_bytes_by_category()[size_t(c)];
  a.planned = plan_.total_bytes();
  a.in_use_before = in_use_before_;
  size_t free = 0, total = 0;
  ROOFLINE_CUDA_CHECK(cudaMemGetInfo(&free, &total));
  a.in_use = total - free;
  a.capacity = total;
  return a;
}

double CudaTrainModel::grad_norm() {
  profile_->start();
  sum_squares(grads_.get(), int64_t(grads_.size()), reduce_partials_.get(), scalar_.get(), stream_);
  copy_async(scalar_host_.get(), scalar_.get(), sizeof(double), cudaMemcpyDeviceToHost);
  profile_->mark("grad norm");
  ROOFLINE_CUDA_CHECK(cudaStreamSynchronize(stream_));
  profile_->flush();
  return std::sqrt(*scalar_host_.get());
}

void CudaTrainModel::clip_and_step(Optimizer& optimizer, double norm, double max_norm, double lr) {
  ROOFLINE_CHECK(optimizer.config().kind == optimizer_config_.kind, "cuda train: optimizer kind changed");
  const float coef = max_norm > 0 && norm > max_norm ? float(max_norm / (norm + 1e-6)) : 1.0f;
  const int64_t step = optimizer.step() + 1;
  optimizer.set_step(step);
  const OptimizerConfig& c = optimizer_config_;
  const int64_t n = int64_t(params_.size());
  const float decay_step = float(lr * c.weight_decay);
  profile_->start();
  if (c.kind == OptimizerKind::SGD) {
    sgd_update(params_.get(), weights_bf16_.get(), grads_.get(), decay_mask_.get(), n, float(lr), decay_step, coef,
               stream_);
    profile_->mark("optimizer");
    return;
  }
  const double bc1 = 1.0 - std::pow(c.beta1, double(step)), bc2 = 1.0 - std::pow(c.beta2, double(step));
  AdamWStep s;
  s.lr_weight_decay = decay_step;
  s.beta1 = float(c.beta1);
  s.beta2 = float(c.beta2);
  s.eps = float(c.eps);
  s.step_size = float(lr / bc1);
  s.bias2_sqrt = float(std::sqrt(bc2));
  s.grad_coef = coef;
  adamw_update(params_.get(), weights_bf16_.get(), grads_.get(), m_.get(), v_.get(), decay_mask_.get(), n, s, stream_);
  profile_->mark("optimizer");
}

const float* CudaTrainModel::host_params() {
  host_params_.resize(params_.size());
  ROOFLINE_CUDA_CHECK(cudaStreamSynchronize(stream_));
  ROOFLINE_CUDA_CHECK(cudaMemcpy(host_params_.data(), params_.get(), params_.bytes(), cudaMemcpyDeviceToHost));
  return host_params_.data();
}

void CudaTrainModel::optimizer_state_to_host(Optimizer& optimizer) {
  if (optimizer.config().kind != OptimizerKind::AdamW) return;
  ROOFLINE_CUDA_CHECK(cudaStreamSynchronize(stream_));
  ROOFLINE_CUDA_CHECK(cudaMemcpy(optimizer.m().data(), m_.get(), m_.bytes(), cudaMemcpyDeviceToHost));
  ROOFLINE_CUDA_CHECK(cudaMemcpy(optimizer.v().data(), v_.get(), v_.bytes(), cudaMemcpyDeviceToHost));
}

void CudaTrainModel::optimizer_state_from_host(Optimizer& o) {
  if (o.config().kind != OptimizerKind::AdamW) return;
  ROOFLINE_CHECK(o.m().size() == m_.size() && o.v().size() == v_.size(), "cuda train: optimizer state size mismatch");
  ROOFLINE_CUDA_CHECK(cudaStreamSynchronize(stream_));
  ROOFLINE_CUDA_CHECK(cudaMemcpy(m_.get(), o.m().data(), m_.bytes(), cudaMemcpyHostToDevice));
  ROOFLINE_CUDA_CHECK(cudaMemcpy(v_.get(), o.v().data(), v_.bytes(), cudaMemcpyHostToDevice));
}

}  // namespace

std::unique_ptr<Trainable> make_cuda_trainable(ModelSpec spec, bool checkpoint_activations, const float* params,
                                               const OptimizerConfig& optimizer, bool tune_gemms) {
  return std::make_unique<CudaTrainModel>(std::move(spec), checkpoint_activations, params, optimizer, tune_gemms);
}

double measured_gemm_peak_flops() {
  auto backend = roofline::cuda::make_cuda_backend(0);
  return roofline::cuda::measure_gpu_ceilings(*backend).gemm_bf16_flops_per_s;
}

}  // namespace roofline::train::cuda
