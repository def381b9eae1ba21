// The training forward and backward pass of one ModelSpec (GPT-2 and Llama families) on the CPU in f32.
// Activations of each layer are kept for backward, or, with checkpoint_activations, only each layer's
// input is kept and the layer is recomputed just before its backward (one layer's activations live at
// a time). Gradients accumulate (+=) into grads() until zero_grads(), so micro-batches add up.
#pragma once
#include <cstdint>
#include <memory>
#include <vector>

#include "roofline/core/thread_pool.h"
#include "roofline/model/model_spec.h"
#include "roofline/train/device_memory_plan.h"
#include "roofline/train/ops/cross_entropy.h"
#include "roofline/train/ops/rope.h"
#include "roofline/train/params.h"

namespace roofline::train {

// Model FLOPs per trained token (forward + backward: 6 x the matmul parameters + attention), for MFU.
double train_flops_per_token(const ModelSpec& spec, int64_t T);

class TrainModel {
 public:
  TrainModel(ModelSpec spec, ThreadPool& pool, bool checkpoint_activations = false);
  ~TrainModel();

  const ModelSpec& spec() const { return spec_; }
  const ParamLayout& layout() const { return layout_; }
  std::vector<float>& params() { return params_; }
  const std::vector<float>& params() const { return params_; }
  std::vector<float>& grads() { return grads_; }
  void zero_grads();
  bool checkpoint_activations() const { return checkpoint_; }

  // windows [B, T+1]: inputs windows[:, :T], targets windows[:, 1:] (a target < 0 is ignored).
  // forward_backward adds d(grad_scale * loss_sum)/d(params) into grads(); pass 1/(tokens in the whole
  // step) for the mean loss. Returns the loss sum and count of this micro-batch.
  CrossEntropyResult forward_backward(const int32_t* windows, int64_t B, int64_t T, float grad_scale);
  CrossEntropyResult forward_loss(const int32_t* windows, int64_t B, int64_t T);

  // Model FLOPs per trained token (forward + backward, 6N + attention), for MFU.
  double flops_per_token(int64_t T) const { return train_flops_per_token(spec_, T); }
  // Bytes of activations the last forward kept (for reports): the Activations of buffers().
  size_t activation_bytes() const;
  // Every buffer this model holds (parameters, gradients, activations, the backward's buffers, scratch), one
  // entry per allocation, by capacity, under the names CpuTrainPlan::model_buffers() (cpu_memory_plan.h) uses.
  std::vector<DeviceBuffer> buffers() const;

 private:
  struct LayerActs;
  void prepare(int64_t B, int64_t T);
  CrossEntropyResult run(const int32_t* windows, int64_t B, int64_t T, float grad_scale, bool backward);
  void layer_forward(int64_t l, const float* x_in, LayerActs& a, float* x_out);
  void layer_backward(int64_t l, const float* x_in, LayerActs& a, float* dres);

  ModelSpec spec_;
  ThreadPool& pool_;
  bool checkpoint_;
  ParamLayout layout_;
  std::vector<float> params_, grads_;
  RopeTables rope_;
  int64_t B_ = 0, T_ = 0;
  std::vector<int32_t> inputs_, targets_;
  std::vector<std::vector<float>> residual_;  // [L + 1][M, H]: each layer's input, then the last output
  std::vector<std::unique_ptr<LayerActs>> acts_;  // L of them, or 1 reused with checkpointing
  std::vector<float> final_norm_out_, final_mean_, final_rstd_;
  std::vector<float> dres_, d_hidden_, d_ffn_a_, d_ffn_b_, d_attn_, dq_, dk_, dv_, ce_scratch_;
};

}  // namespace roofline::train
