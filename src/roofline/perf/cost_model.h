// FLOPs and bytes moved, per op, for one step of a workload on one device: the numerators of the roofline.
// Bytes are compulsory traffic to device memory (each weight, cached key/value, activation read or written
// once; fused kernels assumed, e.g. attention scores never leave the chip). FLOPs count a multiply-add as 2.
//
// The op list follows the decoder (model/decoder.cpp): embedding; per layer attn_norm, q/k/v projections,
// [qk_norm], [rope], attention scores and values, o_proj, mlp_norm, [gate], up, activation, down; then
// final_norm, lm_head and sampling (inference) or cross_entropy (train). Training adds the backward of every
// op (matmuls: 2x the forward FLOPs, for dX and dW), the recomputed forward of every layer when
// checkpointing, and the AdamW update.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "roofline/perf/gemm_rates.h"
#include "roofline/perf/workload.h"

namespace roofline {
struct ModelSpec;
}

namespace roofline::perf {

enum class OpGroup { Embedding, Layer, Head, Optimizer };
enum class OpPhase { Forward, Backward, Recompute, Update };

struct OpCost {
  std::string name;  // "q_proj", "attention_scores", ...
  OpGroup group = OpGroup::Layer;
  OpPhase phase = OpPhase::Forward;
  double repeats = 1;  // instances in the step (num_layers for per-layer ops); flops and bytes cover all of them
  double flops = 0;    // FLOPs on this device for the whole step
  double bytes = 0;    // bytes to and from device memory
  bool fp8 = false;    // a matmul on fp8 weights and activations: priced at the fp8 peak where there is one
  bool matmul = false; // a matrix product (tensor cores); the rest is elementwise or attention
  double kernels = 0;  // kernel launches for the whole step, as the CUDA decoder launches them (fused ops: 0)
  // The matrix products of one instance (forward: one; backward: dX and dW; attention: its per-head products,
  // batched over heads and sequences), for pricing each at its shape's rate; empty for elementwise ops.
  std::vector<GemmShape> gemms;

  double intensity() const;  // FLOPs per byte (infinite when no bytes)
};

std::string_view to_string(OpGroup group);
std::string_view to_string(OpPhase phase);

// The ops of one step. Throws roofline::Error for an invalid workload (see validate()).
std::vector<OpCost> step_costs(const ModelSpec& spec, const Workload& workload);

double total_flops(const std::vector<OpCost>& ops);
double total_bytes(const std::vector<OpCost>& ops);

}  // namespace roofline::perf
