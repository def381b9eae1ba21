// Every buffer the CPU trainer (`roofline train --device cpu`) holds in host memory, computed from (spec, batch,
// seq, checkpointing, optimizer, threads), in the categories of the CUDA plan (device_memory_plan.h), so that
// `roofline estimate --workload train --hw cpu` counts what the CPU trainer allocates. Everything is f32: there
// is no bf16 working copy and no separate master copy of the weights.
//
// Who holds what:
//  - the model (TrainModel::buffers() reports the same names and sizes): parameters, gradients, the residual
//    stream, each saved layer's activations (one layer's with checkpointing), the final norm's output, the
//    backward's buffers, token ids, the RoPE tables and the cross-entropy's chunk of logits;
//  - the optimizer: the weight-decay mask (f32, 1 or 0 per parameter) and AdamW's two moments;
//  - each thread that runs the kernels, for the thread's life (thread_local): attention's score tiles ([min(T, 64), T])
//    and the GEMM's packed panels;
//  - one op at a time, freed when it returns: reduction partials, the cross-entropy's per-row losses, the
//    gradient norm's partials; only the largest counts;
//  - the training loop: the batch being trained and the ones the loader has prefetched.
// Not counted: the process itself (code, libraries, thread stacks), the tokenizer, the data shards (mapped files),
// malloc's own overhead, and the initial parameters the trainer builds before the model copies them (freed before
// the optimizer allocates its state, so never part of the peak).
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

#include "roofline/model/model_spec.h"
#include "roofline/train/device_memory_plan.h"
#include "roofline/train/kernels/gemm.h"
#include "roofline/train/optimizer.h"

namespace roofline::train {

struct CpuTrainPlan {
  size_t params = 0;  // ParamLayout total
  bool adamw = true;
  bool checkpoint = false;
  int threads = 1;              // threads of the pool, the calling one included
  int64_t B = 0, T = 0, M = 0;  // one micro-batch, M = B*T rows; 0 when B or T is 0 (parameters and optimizer only)
  // Shapes from the spec.
  int64_t L = 0, H = 0, QD = 0, KD = 0, F = 0, heads = 0, kv_heads = 0, head_dim = 0, V = 0;
  bool gated = false, layernorm = false, rotary = false, qk_norm = false;
  int64_t saved_layers = 0;  // layers whose activations stay for the backward: L, or 1 with checkpointing
  int64_t widest_bias = 0;   // widest linear output that has a bias (0: none)
  int64_t ce_rows = 0;       // rows of the cross-entropy's chunk of logits
  GemmPacking gemm;          // floats each GEMM-running thread keeps packed

  std::vector<DeviceBuffer> model_buffers() const;      // what TrainModel holds, under TrainModel::buffers()' names
  std::vector<DeviceBuffer> optimizer_buffers() const;  // the optimizer's state
  std::vector<DeviceBuffer> thread_buffers() const;     // thread_local scratch, over the threads that can run it
  std::vector<DeviceBuffer> transient_buffers() const;  // allocated and freed within one op, one at a time
  std::vector<DeviceBuffer> batch_buffers() const;      // the training loop's windows in flight
  DeviceBuffer largest_transient() const;
  // Everything alive at the peak of a step: model, optimizer, threads, the largest transient, batches.
  std::vector<DeviceBuffer> buffers() const;
  size_t bytes(DeviceMemoryCategory category) const;
  size_t total_bytes() const;
};

// What the CPU trainer allocates for `spec` at micro-batch [batch, seq] (both 0: the parameters and the optimizer
// only), with a pool of `threads` threads (the trainer's default: one per hardware thread).
CpuTrainPlan plan_cpu_training(const ModelSpec& spec, int64_t batch, int64_t seq, bool checkpoint_activations,
                               OptimizerKind optimizer, int threads);

}  // namespace roofline::train
