// The training model on one CUDA GPU, with the contract of TrainModel (see trainable.h), in mixed precision:
// f32 master weights, f32 gradients and f32 AdamW moments on the device in the CPU's flat ParamLayout (so
// checkpoints, import/export and optimizer state files are the CPU's code), a bf16 working copy of the
// weights that the fused optimizer kernel rewrites each step, bf16 activations into GEMMs with f32
// accumulation, and the residual stream in f32. q/k/v and gate/up are one GEMM each: their weights are
// adjacent in the ParamLayout. With checkpoint_activations only each layer's input is kept and the layer is
// recomputed just before its backward.
#pragma once
#include <memory>

#include "roofline/train/trainable.h"

namespace roofline::train::cuda {

// Throws a clear Error for what the CUDA path does not support (Qwen3 q/k norms, head_dim other than 64 or 128).
// tune_gemms: time cuBLASLt's candidates for each GEMM form and keep the fastest (LtGemm::enable_tuning).
std::unique_ptr<Trainable> make_cuda_trainable(ModelSpec spec, bool checkpoint_activations, const float* params,
                                               const OptimizerConfig& optimizer, bool tune_gemms = false);

// The measured bf16 GEMM ceiling of this GPU (FLOP/s), for MFU.
double measured_gemm_peak_flops();

}  // namespace roofline::train::cuda
