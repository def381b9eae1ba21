// Device memory one step needs, per device, in bytes: what must fit in the accelerator's memory.
// Mixed-precision training keeps bf16 weights and gradients plus fp32 master weights and two fp32 AdamW
// moments: 2 + 2 + 12 bytes per parameter before ZeRO shards them over dp (Rajbhandari et al., 2020).
#pragma once
#include "roofline/perf/workload.h"

namespace roofline {
struct ModelSpec;
}

namespace roofline::perf {

struct MemoryBudget {
  double weights = 0;      // parameters as stored (bf16 or quantised), split over tp; ZeRO-3 also over dp
  double kv_cache = 0;     // inference: bf16 K and V of the replica's sequences at context + seq tokens
  double activations = 0;  // train: saved for backward (all layers, or layer inputs when checkpointing)
                           // inference: one layer's working set plus the logits
  double gradients = 0;    // train: bf16; ZeRO-2 and 3 shard them over dp
  double optimizer = 0;    // train: fp32 master weights + two fp32 moments; ZeRO-1 and up shard them over dp
  double kv_cache_per_token = 0;  // bf16 K and V of one token over all layers, on this device

  double total() const { return weights + kv_cache + activations + gradients + optimizer; }
};

MemoryBudget memory_budget(const ModelSpec& spec, const Workload& workload);

// Parameters one device holds with tensor parallelism tp (before any ZeRO sharding).
double parameters_per_device(const ModelSpec& spec, int tp);
// Their bytes: linear weights as `dtype` (with scales), norms, biases and embeddings as bf16.
double weight_bytes_per_device(const ModelSpec& spec, WeightDType dtype, int tp);
// 2 (K and V) x layers x kv_heads x head_dim x 2 bytes (bf16); KV heads split over tp (replicated when fewer).
double kv_cache_bytes_per_token(const ModelSpec& spec, int tp = 1);

}  // namespace roofline::perf
