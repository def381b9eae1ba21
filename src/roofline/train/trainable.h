// What the training loop needs from a model on some device: micro-batch forward/backward with gradients
// accumulating on that device, the global gradient norm, one optimizer step, and the state a checkpoint
// holds (f32 parameters in the ParamLayout order, optimizer moments) brought to the host. The CPU model
// (TrainModel) and the CUDA model (cuda/cuda_train_model.h) both satisfy it, so trainer.cpp has one loop.
#pragma once
#include <nlohmann/json.hpp>
#include <array>
#include <cstdint>
#include <memory>
#include <string>

#include "roofline/core/thread_pool.h"
#include "roofline/model/model_spec.h"
#include "roofline/train/device_memory_plan.h"
#include "roofline/train/ops/cross_entropy.h"
#include "roofline/train/optimizer.h"
#include "roofline/train/params.h"

namespace roofline::train {

// A device model's own account of its memory next to what the device reports (all 0 on the CPU).
struct DeviceMemoryAccount {
  std::array<size_t, kDeviceMemoryCategories> allocated{};  // live bytes the model allocated, by category (exact)
  size_t planned = 0;        // plan_cuda_training's total for the current micro-batch (equals the allocations)
  size_t in_use_before = 0;  // cudaMemGetInfo's in-use (whole device) before the model's first allocation
  size_t in_use = 0;         // cudaMemGetInfo's in-use now: allocations + CUDA context + rounding + other processes
  size_t capacity = 0;
  size_t allocated_total() const {
    size_t total = 0;
    for (size_t b : allocated) total += b;
    return total;
  }
};

class Trainable {
 public:
  virtual ~Trainable() = default;
  virtual const ModelSpec& spec() const = 0;
  virtual const ParamLayout& layout() const = 0;

  // As TrainModel: windows [B, T+1] on the host; gradients of grad_scale * loss_sum are added (+=).
  virtual CrossEntropyResult forward_backward(const int32_t* windows, int64_t B, int64_t T, float grad_scale) = 0;
  virtual CrossEntropyResult forward_loss(const int32_t* windows, int64_t B, int64_t T) = 0;
  virtual void zero_grads() = 0;
  virtual size_t activation_bytes() const = 0;
  // Device memory in use now (0 on the CPU).
  virtual size_t device_bytes_in_use() const { return 0; }
  virtual DeviceMemoryAccount device_memory() const { return {}; }

  // L2 norm of all gradients; then clip to max_norm (<= 0: off) and take one step of `optimizer`
  // (whose step count advances; its moments live wherever the model keeps them).
  virtual double grad_norm() = 0;
  virtual void clip_and_step(Optimizer& optimizer, double norm, double max_norm, double lr) = 0;

  // For checkpoints: the f32 parameters on the host (valid until the next call), the moments copied into
  // the host optimizer, and back after a resume loaded them there.
  virtual const float* host_params() = 0;
  virtual void optimizer_state_to_host(Optimizer& optimizer) = 0;
  virtual void optimizer_state_from_host(Optimizer& optimizer) = 0;  // reads the optimizer's moments
  // The accumulated gradients (f32, ParamLayout order) into out[layout().total] (tests, diagnostics).
  virtual void copy_grads_to_host(float* out) = 0;

  // The GEMM algorithms this model chose (a GemmAlgorithmTable as JSON, backend/gemm_algorithm_table.h; null
  // where cuBLASLt's heuristic alone chose, and on the CPU), kept in checkpoints so that a resumed run makes
  // the same choices; use_gemm_algorithms gives a checkpoint's before the first step and returns false where
  // they were made on another GPU or cuBLASLt version (and so are not used).
  virtual nlohmann::json gemm_algorithms() const { return nullptr; }
  virtual bool use_gemm_algorithms(const nlohmann::json& table) {
    (void)table;
    return true;
  }
};

// The CPU model (f32, threads of `pool`), starting from `params` (ParamLayout order).
std::unique_ptr<Trainable> make_cpu_trainable(ModelSpec spec, ThreadPool& pool, bool checkpoint_activations,
                                              const float* params);

}  // namespace roofline::train
