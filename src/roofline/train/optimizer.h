// Optimizers over the flat parameter buffer, learning-rate schedules and gradient clipping.
// AdamW follows torch.optim.AdamW (decoupled decay p *= 1 - lr*wd, bias-corrected moments, eps added to
// sqrt(v_hat)); plain SGD is p -= lr * g (optionally with decoupled decay). Every loop is element-wise over
// fixed chunks, so results do not depend on the thread count.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "roofline/core/thread_pool.h"
#include "roofline/train/params.h"

namespace roofline::train {

enum class OptimizerKind { AdamW, SGD };
enum class ScheduleKind { Constant, Cosine, Linear, Wsd };

OptimizerKind parse_optimizer(const std::string& name);  // "adamw" | "sgd"; Error otherwise
ScheduleKind parse_schedule(const std::string& name);    // "constant" | "cosine" | "linear" | "wsd"
std::string schedule_name(ScheduleKind kind);

struct ScheduleConfig {
  ScheduleKind kind = ScheduleKind::Cosine;
  double lr = 3e-4;
  double min_lr_ratio = 0.1;     // floor of cosine / linear / wsd, as a fraction of lr
  int64_t warmup = 0;            // linear warmup steps from lr/warmup to lr
  int64_t total_steps = 1;
  double decay_fraction = 0.2;   // wsd: the last fraction of the steps decays linearly
};

// Learning rate of 0-based step `step`.
double learning_rate(const ScheduleConfig& config, int64_t step);

struct OptimizerConfig {
  OptimizerKind kind = OptimizerKind::AdamW;
  double beta1 = 0.9, beta2 = 0.95, eps = 1e-8;
  double weight_decay = 0.0;
  bool decay_embeddings = false;  // by default norms, biases and embeddings get no decay
};

// Whether weight decay applies to a parameter: matrices always, embeddings when asked, never norms or biases.
bool weight_decay_applies(const ParamInfo& param, const OptimizerConfig& config);

class Optimizer {
 public:
  Optimizer(OptimizerConfig config, const ParamLayout& layout);
  // One update with learning rate lr; step() counts from 1 after the first call.
  void update(ThreadPool& pool, std::vector<float>& params, const std::vector<float>& grads, double lr);
  int64_t step() const { return step_; }
  const OptimizerConfig& config() const { return config_; }
  // State for checkpoints: the moments (AdamW only; empty for SGD) and the step count.
  std::vector<float>& m() { return m_; }
  std::vector<float>& v() { return v_; }
  void set_step(int64_t step) { step_ = step; }
  // Bytes of the state it holds: the f32 weight-decay mask and, with AdamW, the moments.
  size_t state_bytes() const;

 private:
  OptimizerConfig config_;
  std::vector<float> decay_mask_;  // 1 where weight decay applies, else 0 (per element)
  std::vector<float> m_, v_;
  int64_t step_ = 0;
};

// The L2 norm of all gradients (accumulated in double over kGradNormChunks fixed chunks).
inline constexpr int64_t kGradNormChunks = 64;
double global_grad_norm(ThreadPool& pool, const std::vector<float>& grads);
// Scales grads by max_norm / (norm + 1e-6) when norm > max_norm (torch's clip_grad_norm_). max_norm <= 0: off.
void clip_grads(ThreadPool& pool, std::vector<float>& grads, double norm, double max_norm);

}  // namespace roofline::train
