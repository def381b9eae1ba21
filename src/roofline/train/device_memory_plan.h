// Every buffer the CUDA trainer (train/cuda/cuda_train_model.cpp) holds on the device, computed on the host
// from (spec, batch, seq, checkpointing, optimizer): the trainer sizes its allocations from this plan, and
// `roofline estimate --workload train` counts the same plan, so the two cannot drift apart. Plain C++ (no CUDA)
// so the estimate and the CPU tests use it without a GPU.
//
// What the plan does not hold, and cudaMemGetInfo's "in use" does: the CUDA context (module code, the local
// memory the driver reserves for the kernels' stacks, printf / malloc heaps), cuBLASLt's own handle state,
// cudaMalloc's rounding of each allocation to its page size, and anything other processes hold on the device.
#pragma once
#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

#include "roofline/model/model_spec.h"
#include "roofline/train/scratch_sizes.h"
#include "roofline/train/optimizer.h"

namespace roofline::train {

// The estimate's memory_bytes keys, in that order.
enum class DeviceMemoryCategory {
  Weights,      // the bf16 working copy of the parameters (what the GEMMs read)
  Gradients,    // f32, one per parameter (micro-batches accumulate into them)
  Optimizer,    // f32 master weights, AdamW's two f32 moments, the weight-decay mask (1 byte per parameter)
  Activations,  // kept from the forward for the backward: the f32 residual stream at every layer boundary,
                // each layer's saved set (one layer's when checkpointing), the final norm's output
  Workspace,    // the backward's gradient buffers, one chunk of bf16 logits, reduction partials, token ids,
                // RoPE tables, the cuBLASLt workspace
};
constexpr int kDeviceMemoryCategories = 5;
std::string_view to_string(DeviceMemoryCategory category);

// Rows of one cross-entropy chunk: chunks of equal size (the last may be shorter), as few as kLogitsChunkBytes allows.
int64_t cross_entropy_chunk_rows(int64_t rows, int64_t vocab);

// One buffer: `count` allocations of `elements` elements of `element_bytes` each.
struct DeviceBuffer {
  const char* name;
  DeviceMemoryCategory category;
  size_t elements;
  size_t element_bytes;
  size_t count = 1;
  size_t bytes() const { return elements * element_bytes * count; }
};

// Bytes of the buffers in one category, and of all of them (the CUDA and the CPU plan count the same way).
size_t buffer_bytes(std::span<const DeviceBuffer> buffers, DeviceMemoryCategory category);
size_t buffer_bytes(std::span<const DeviceBuffer> buffers);

struct CudaTrainPlan {
  // Parameters (the CPU's flat ParamLayout), each [params]: f32 master, f32 gradients, bf16 copy, u8 decay mask,
  // and with AdamW the f32 moments m and v.
  size_t params = 0;
  bool adamw = true;
  size_t grad_norm_partials = 0;  // doubles
  // One micro-batch of B sequences of T tokens, M = B*T rows; 0 when B or T is 0 (before the first batch).
  int64_t B = 0, T = 0, M = 0;
  bool checkpoint = false;
  // One layer's saved set (LayerActs), in elements: bf16 ln1 [M, H], f32 ln1 mean and rstd [M], bf16 q|k|v
  // [M, QKV] (q and k after RoPE), bf16 attention output [M, QD], f32 log-sum-exp [M, Hq], f32 x_mid [M, H],
  // bf16 ln2 [M, H], f32 ln2 mean and rstd [M], bf16 ffn_in [M, F2] (gate|up, or pre-GELU), bf16 ffn_h [M, F].
  size_t ln = 0, norm_stats = 0, qkv = 0, attn = 0, lse = 0, x_mid = 0, ffn_in = 0, ffn_h = 0;
  int64_t saved_layers = 0;   // L, or 1 (recomputed per layer) with checkpointing
  size_t residual = 0;        // f32 [M, H], L + 1 of them
  int64_t residuals = 0;
  // Backward buffers: f32 dres, d_hidden [M, H]; bf16 dres [M, H], d_ffn_h [M, F], d_ffn_in [M, F2],
  // d_attn [M, QD], dqkv [M, QKV].
  size_t d_hidden = 0, d_ffn_h = 0, d_ffn_in = 0, d_attn = 0, dqkv = 0;
  size_t norm_partials = 0, bias_partials = 0, bias_sums = 0;  // floats
  size_t attention_workspace = 0;                               // bytes
  int64_t ce_rows = 0;
  size_t logits = 0;        // bf16 [ce_rows, V]
  size_t batch_tokens = 0;  // int32: inputs M, targets M, and the embedding gradient's CSR (<= 3M + 1)
  size_t rope_table = 0;    // f32 [T, D/2], cos and sin (RoPE only)

  std::vector<DeviceBuffer> buffers() const;  // every device allocation, in the order the trainer makes them
  size_t bytes(DeviceMemoryCategory category) const;
  size_t total_bytes() const;
};

// What the CUDA trainer allocates for `spec` at micro-batch [batch, seq] (both 0: the parameters only).
CudaTrainPlan plan_cuda_training(const ModelSpec& spec, int64_t batch, int64_t seq, bool checkpoint_activations,
                                 OptimizerKind optimizer);

}  // namespace roofline::train
