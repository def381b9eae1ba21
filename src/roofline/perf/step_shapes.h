// The model's dimensions as one device sees them in one step: heads, MLP columns and vocabulary split over
// tensor parallelism (Megatron-style), sequences split over data parallelism. Shared by the cost, memory and
// communication models so that all three price the same shapes. Counts are doubles: they only feed sums.
#pragma once
#include <cstdint>
#include <vector>

#include "roofline/perf/workload.h"

namespace roofline {
struct ModelSpec;
}

namespace roofline::perf {

constexpr double kLogitBytes = 4;       // logits are f32 (sampling and the loss want the precision)
constexpr double kInt4GroupSize = 128;  // int4 weights: one bf16 scale per 128 weights of a row

struct StepShapes {
  double layers = 0, hidden = 0, head_dim = 0;
  double heads = 0, kv_heads = 0;  // per device; KV heads replicate when there are fewer than tp
  double q_dim = 0, kv_dim = 0;    // per device: heads * head_dim, kv_heads * head_dim
  double ffn = 0;                  // MLP width per device
  double vocab = 0;                // lm_head rows per device (vocab-parallel)
  double sequences = 0;            // per replica
  double tokens = 0;               // per replica: sequences * seq
  double head_tokens = 0;          // rows through the lm_head: prefill needs only each sequence's last token
  double attended_pairs = 0;       // (query, key) pairs scored per sequence per head (causal, sliding window)
  double keys_read = 0;            // distinct cached keys read per sequence per KV head
  // Bytes per element as the workload stores them (Workload::activations, kv_cache, weights); an fp8 KV
  // element carries its share of its vector's f32 scale.
  double activation_bytes = 2, kv_bytes = 2;
  double dense_weight_bytes = 2;   // norms, biases, embeddings: 4 with f32 weights, else 2
};

StepShapes step_shapes(const ModelSpec& spec, const Workload& workload);

// Bytes of one [rows, cols] linear weight stored as `dtype`, scales included (see WeightDType).
double linear_weight_bytes(double rows, double cols, WeightDType dtype);
// Bytes per element of the weights that are not linear (norms, biases, embeddings) beside `dtype`.
double dense_weight_bytes(WeightDType dtype);

// Every weight tensor one device holds, for counting parameters and bytes the same way everywhere.
struct WeightTensor {
  const char* name;
  double elements;   // per instance
  double rows;       // for linear weights: output rows (scales are per row)
  bool linear;       // a matmul weight: stored as the workload's WeightDType; otherwise dense_weight_bytes
  double repeats;    // instances (num_layers for per-layer tensors)
};
std::vector<WeightTensor> device_weight_tensors(const ModelSpec& spec, int tp);

}  // namespace roofline::perf
