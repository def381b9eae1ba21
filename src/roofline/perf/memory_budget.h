// Device memory one step needs, per device, in bytes: what must fit in the accelerator's memory.
// Training counts what the trainer of that hardware holds, buffer by buffer. On a GPU, the CUDA trainer
// (train/device_memory_plan.h, the plan the trainer allocates from): a bf16 working copy of the weights (2 bytes
// per parameter), f32 gradients (4), f32 master weights, two f32 AdamW moments and a weight-decay mask (13),
// before ZeRO shards them over dp (Rajbhandari et al., 2020); the saved activations; the backward's buffers and
// scratch (workspace); and an allowance for the CUDA context. On a CPU, the CPU trainer (train/cpu_memory_plan.h):
// all f32, so weights 4, gradients 4, an f32 decay mask and the two moments 12; f32 activations; the backward's
// buffers, the logits chunk, per-thread attention scores and GEMM panels, the batches in flight; no context.
#pragma once
#include "roofline/perf/workload.h"

namespace roofline {
struct ModelSpec;
}

namespace roofline::perf {

struct HardwareSpec;

struct MemoryBudget {
  double weights = 0;      // parameters as stored (bf16 or quantised; the CPU trainer's f32), split over tp;
                           // ZeRO-3 also over dp
  double kv_cache = 0;     // inference: bf16 K and V of the replica's sequences at context + seq tokens
  double activations = 0;  // train: saved for backward (all layers, or layer inputs when checkpointing)
                           // inference: one layer's working set plus the logits
  double gradients = 0;    // train: f32 (micro-batches accumulate into them); ZeRO-2 and 3 shard them over dp
  double optimizer = 0;    // train: f32 master weights + two f32 moments + the u8 decay mask (CPU: an f32 mask
                           // and the moments); ZeRO-1 and up shard
  double workspace = 0;    // train: the backward's gradient buffers, one logits chunk, partials, cuBLASLt's
                           // (CPU: per-thread attention scores and GEMM panels, the batches in flight)
  double context = 0;      // train: the CUDA context, cuBLASLt's state and allocation rounding (an allowance;
                           // 0 for the CPU trainer)
  double kv_cache_per_token = 0;  // K and V of one token over all layers (Workload::kv_cache), on this device
  int cpu_threads = 0;            // train on a CPU: the trainer's threads whose scratch the workspace counts

  double total() const { return weights + kv_cache + activations + gradients + optimizer + workspace + context; }
};

// Whose buffers a train budget counts: the CUDA trainer's (the default) or the CPU trainer's, whose scratch is
// per thread of its pool.
struct TrainMemoryTarget {
  bool cpu = false;
  int cpu_threads = 1;
};
// The CPU trainer with `threads` threads (0: one per hardware thread, what `roofline train --device cpu` runs by
// default) when `hw` is a CPU (is_cpu), else the CUDA trainer.
TrainMemoryTarget train_memory_target(const HardwareSpec& hw, int threads = 0);

MemoryBudget memory_budget(const ModelSpec& spec, const Workload& workload, const TrainMemoryTarget& target = {});

// What one device holds of the model with tensor parallelism tp: heads, MLP columns and vocabulary split
// (KV heads replicated when fewer than tp), for sizing the trainer's buffers per device.
ModelSpec tensor_parallel_slice(const ModelSpec& spec, int tp);

// The allowance for what cudaMemGetInfo counts beyond the trainer's own buffers (see MemoryBudget::context).
constexpr double kTrainContextBytes = 512.0 * (1 << 20);

// Parameters one device holds with tensor parallelism tp (before any ZeRO sharding).
double parameters_per_device(const ModelSpec& spec, int tp);
// Their bytes: linear weights as `dtype` (with scales), norms, biases and embeddings as dense_weight_bytes.
double weight_bytes_per_device(const ModelSpec& spec, WeightDType dtype, int tp);
// 2 (K and V) x layers x kv_heads x head_dim x the entry's bytes; KV heads split over tp (replicated when fewer).
double kv_cache_bytes_per_token(const ModelSpec& spec, int tp = 1, StorageDType dtype = StorageDType::BF16);

}  // namespace roofline::perf
