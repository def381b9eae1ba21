#include "roofline/train/optimizer.h"

#include <cmath>
#include <numbers>

#include "roofline/core/error.h"
#include "roofline/train/ops/reduce.h"

namespace roofline::train {

OptimizerKind parse_optimizer(const std::string& name) {
  if (name == "adamw") return OptimizerKind::AdamW;
  if (name == "sgd") return OptimizerKind::SGD;
  fail("unknown optimizer '{}' (expected adamw or sgd)", name);
}

ScheduleKind parse_schedule(const std::string& name) {
  if (name == "constant") return ScheduleKind::Constant;
  if (name == "cosine") return ScheduleKind::Cosine;
  if (name == "linear") return ScheduleKind::Linear;
  if (name == "wsd") return ScheduleKind::Wsd;
  fail("unknown schedule '{}' (expected constant, cosine, linear or wsd)", name);
}

std::string schedule_name(ScheduleKind kind) {
  switch (kind) {
    case ScheduleKind::Constant: return "constant";
    case ScheduleKind::Cosine: return "cosine";
    case ScheduleKind::Linear: return "linear";
    case ScheduleKind::Wsd: return "wsd";
  }
  return "?";
}

double learning_rate(const ScheduleConfig& c, int64_t step) {
  if (c.warmup > 0 && step < c.warmup) return c.lr * double(step + 1) / double(c.warmup);
  if (c.kind == ScheduleKind::Constant) return c.lr;
  const double min_lr = c.lr * c.min_lr_ratio;
  const int64_t span = std::max<int64_t>(1, c.total_steps - c.warmup);
  const double progress = std::clamp(double(step - c.warmup) / double(span), 0.0, 1.0);
  switch (c.kind) {
    case ScheduleKind::Cosine: return min_lr + 0.5 * (c.lr - min_lr) * (1.0 + std::cos(std::numbers::pi * progress));
    case ScheduleKind::Linear: return c.lr + (min_lr - c.lr) * progress;
    case ScheduleKind::Wsd: {
      const double start = 1.0 - std::clamp(c.decay_fraction, 0.0, 1.0);
      if (progress <= start || start >= 1.0) return c.lr;
      return c.lr + (min_lr - c.lr) * (progress - start) / (1.0 - start);
    }
    default: return c.lr;
  }
}

bool weight_decay_applies(const ParamInfo& p, const OptimizerConfig& config) {
  return p.kind == ParamKind::Matrix || (p.kind == ParamKind::Embedding && config.decay_embeddings);
}

Optimizer::Optimizer(OptimizerConfig config, const ParamLayout& layout) : config_(config) {
  decay_mask_.assign(size_t(layout.total), 0.0f);
  for (const ParamInfo& p : layout.params) {
    if (weight_decay_applies(p, config_)) std::fill(decay_mask_.begin() + p.offset, decay_mask_.begin() + p.offset + p.numel, 1.0f);
  }
  if (config_.kind == OptimizerKind::AdamW) {
    m_.assign(size_t(layout.total), 0.0f);
    v_.assign(size_t(layout.total), 0.0f);
  }
}

size_t Optimizer::state_bytes() const {
  return (decay_mask_.capacity() + m_.capacity() + v_.capacity()) * sizeof(float);
}

void Optimizer::update(ThreadPool& pool, std::vector<float>& params, const std::vector<float>& grads, double lr) {
  ++step_;
  const int64_t n = int64_t(params.size());
  const float decay_step = float(lr * config_.weight_decay);
  float* p = params.data();
  const float* g = grads.data();
  const float* mask = decay_mask_.data();
  if (config_.kind == OptimizerKind::SGD) {
    const float lrf = float(lr);
    for_rows(pool, n, 1 << 14, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) {
        if (decay_step != 0.0f) p[i] *= 1.0f - decay_step * mask[i];
        p[i] -= lrf * g[i];
      }
    });
    return;
  }
  // torch.optim.AdamW (single-tensor path): p *= 1 - lr*wd; m, v updated; p -= lr/bc1 * m / (sqrt(v)/sqrt(bc2) + eps)
  const double bc1 = 1.0 - std::pow(config_.beta1, double(step_));
  const double bc2 = 1.0 - std::pow(config_.beta2, double(step_));
  const float step_size = float(lr / bc1), bc2_sqrt = float(std::sqrt(bc2));
  const float b1 = float(config_.beta1), b2 = float(config_.beta2), eps = float(config_.eps);
  float* m = m_.data();
  float* v = v_.data();
  for_rows(pool, n, 1 << 14, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) {
      if (decay_step != 0.0f) p[i] *= 1.0f - decay_step * mask[i];
      m[i] = b1 * m[i] + (1.0f - b1) * g[i];
      v[i] = b2 * v[i] + (1.0f - b2) * g[i] * g[i];
      p[i] -= step_size * m[i] / (std::sqrt(v[i]) / bc2_sqrt + eps);
    }
  });
}

double global_grad_norm(ThreadPool& pool, const std::vector<float>& grads) {
  const int64_t n = int64_t(grads.size());
  constexpr int64_t kChunks = kGradNormChunks;
  std::vector<double> partial(kChunks, 0.0);
  for_rows(pool, kChunks, 1, [&](int64_t c0, int64_t c1) {
    for (int64_t c = c0; c < c1; ++c) {
      double s = 0;
      for (int64_t i = n * c / kChunks; i < n * (c + 1) / kChunks; ++i) s += double(grads[size_t(i)]) * grads[size_t(i)];
      partial[size_t(c)] = s;
    }
  });
  double total = 0;
  for (double s : partial) total += s;
  return std::sqrt(total);
}

void clip_grads(ThreadPool& pool, std::vector<float>& grads, double norm, double max_norm) {
  if (max_norm <= 0 || !(norm > max_norm)) return;
  const float coef = float(max_norm / (norm + 1e-6));
  float* g = grads.data();
  for_rows(pool, int64_t(grads.size()), 1 << 14, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) g[i] *= coef;
  });
}

}  // namespace roofline::train
