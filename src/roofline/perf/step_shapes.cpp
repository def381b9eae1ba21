#include "roofline/perf/step_shapes.h"

#include <algorithm>

#include "roofline/model/model_spec.h"

namespace roofline::perf {

namespace {

// Sum over positions p = first..last of min(p, window) (window <= 0: no limit): the keys a causal query at
// position p (1-based: it sees itself and everything before) attends to.
double sum_min(double first, double last, double window) {
  auto sum = [](double a, double b) { return b < a ? 0.0 : (a + b) * (b - a + 1) / 2; };
  if (window <= 0 || last <= window) return sum(first, last);
  if (first >= window) return window * (last - first + 1);
  return sum(first, window) + window * (last - window);
}

}  // namespace

StepShapes step_shapes(const ModelSpec& spec, const Workload& w) {
  StepShapes s;
  const double tp = w.tp;
  s.layers = double(spec.num_layers);
  s.hidden = double(spec.hidden_size);
  s.head_dim = double(spec.head_dim);
  s.heads = double(spec.num_heads) / tp;
  s.kv_heads = std::max(1.0, double(spec.num_kv_heads) / tp);
  s.q_dim = s.heads * s.head_dim;
  s.kv_dim = s.kv_heads * s.head_dim;
  s.ffn = double(spec.intermediate_size) / tp;
  s.vocab = double(spec.vocab_size) / tp;
  s.sequences = double(w.batch_per_replica());
  s.tokens = double(w.tokens_per_replica());
  s.head_tokens = w.kind == WorkloadKind::Prefill ? s.sequences : s.tokens;

  const double C = double(w.context), T = double(w.seq), W = double(spec.sliding_window);
  // Query i of the step sits at position C + i + 1 (1-based) and sees keys 1..C+i+1 (causal).
  s.attended_pairs = w.dense_causal_flops ? T * (W > 0 ? std::min(C + T, W) : C + T) : sum_min(C + 1, C + T, W);
  s.keys_read = W > 0 ? std::min(C + T, W + T - 1) : C + T;
  s.activation_bytes = bytes_of(w.activations);
  // An F8E4M3 cache keeps an f32 scale per (token, kv head) vector beside its codes (backend.h KvScales).
  s.kv_bytes = bytes_of(w.kv_cache) + (w.kv_cache == StorageDType::FP8 ? 4.0 / s.head_dim : 0.0);
  s.dense_weight_bytes = dense_weight_bytes(w.weights);
  return s;
}

double linear_weight_bytes(double rows, double cols, WeightDType dtype) {
  const double n = rows * cols;
  switch (dtype) {
    case WeightDType::BF16:
    case WeightDType::F16: return 2 * n;
    case WeightDType::F32: return 4 * n;
    case WeightDType::FP8: return n + 4;  // one f32 scale per tensor
    case WeightDType::INT8: return n + 2 * rows;
    case WeightDType::INT4: return 0.5 * n + 2 * rows * ((cols + kInt4GroupSize - 1) / kInt4GroupSize);
  }
  return 2 * n;
}

double dense_weight_bytes(WeightDType dtype) { return dtype == WeightDType::F32 ? 4 : 2; }

std::vector<WeightTensor> device_weight_tensors(const ModelSpec& spec, int tp) {
  Workload w;
  w.tp = tp;
  const StepShapes s = step_shapes(spec, w);
  const double H = s.hidden, L = s.layers, F = s.ffn;
  const double norm = spec.norm == NormKind::LayerNorm ? 2 * H : H;  // LayerNorm has a bias
  const bool gated = spec.mlp == MlpKind::GatedSiLU;
  std::vector<WeightTensor> t = {
      {"embedding", s.vocab * H, s.vocab, false, 1},  // vocab-parallel, gathered, never streamed whole
      {"attn_norm", norm, 1, false, L},
      {"q_proj", s.q_dim * H, s.q_dim, true, L},
      {"k_proj", s.kv_dim * H, s.kv_dim, true, L},
      {"v_proj", s.kv_dim * H, s.kv_dim, true, L},
      {"o_proj", H * s.q_dim, H, true, L},
      {"mlp_norm", norm, 1, false, L},
      {"up_proj", F * H, F, true, L},
      {"down_proj", H * F, H, true, L},
      {"final_norm", norm, 1, false, 1},
  };
  if (gated) t.push_back({"gate_proj", F * H, F, true, L});
  if (spec.qkv_bias) t.push_back({"qkv_bias", s.q_dim + 2 * s.kv_dim, 1, false, L});
  if (spec.output_bias) t.push_back({"o_bias", H, 1, false, L});
  if (spec.mlp_bias) t.push_back({"mlp_bias", (gated ? 2 : 1) * F + H, 1, false, L});
  if (spec.qk_norm) t.push_back({"qk_norm", 2 * s.head_dim, 1, false, L});
  if (spec.position == PositionKind::Learned)
    t.push_back({"position_embedding", double(spec.max_position_embeddings) * H, 1, false, 1});
  // A tied lm_head reads the (bf16) embedding table; an untied one is a linear weight of its own.
  if (!spec.tied_embeddings) t.push_back({"lm_head", s.vocab * H, s.vocab, true, 1});
  return t;
}

}  // namespace roofline::perf
