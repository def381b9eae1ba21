// The trainable parameters of one ModelSpec as one flat f32 buffer (and gradients, optimizer moments of the
// same layout), so that the optimizer is one fused loop and a checkpoint is a few large writes.
// Matrices use the nn.Linear layout [out, in] for every architecture; GPT-2's Conv1D matrices ([in, out],
// q/k/v fused in c_attn) are converted at import and export only.
#pragma once
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "roofline/core/tensor.h"
#include "roofline/model/model_spec.h"
#include "roofline/model/weights.h"

namespace roofline::train {

enum class ParamKind { Matrix, Embedding, Norm, Bias };

struct ParamInfo {
  std::string name;  // internal, Llama-style ("model.layers.0.self_attn.q_proj.weight")
  Shape shape;
  int64_t offset = 0;  // into the flat buffer, in floats
  int64_t numel = 0;
  ParamKind kind = ParamKind::Matrix;
};

// Offsets of one layer's tensors; -1 when the architecture has no such tensor.
struct LayerSlots {
  int64_t attn_norm_w = -1, attn_norm_b = -1;
  int64_t q_w = -1, k_w = -1, v_w = -1, o_w = -1;  // [Hq*D, H], [Hkv*D, H], [Hkv*D, H], [H, Hq*D]
  int64_t q_b = -1, k_b = -1, v_b = -1, o_b = -1;
  int64_t q_norm = -1, k_norm = -1;                // [D], Qwen3
  int64_t mlp_norm_w = -1, mlp_norm_b = -1;
  int64_t gate_w = -1, up_w = -1, down_w = -1;     // [F, H], [F, H], [H, F] (GPT-2: up = c_fc, down = c_proj)
  int64_t gate_b = -1, up_b = -1, down_b = -1;
};

struct ParamLayout {
  std::vector<ParamInfo> params;
  int64_t total = 0;
  int64_t wte = -1, wpe = -1, final_norm_w = -1, final_norm_b = -1;
  int64_t lm_head = -1;  // == wte when tied
  std::vector<LayerSlots> layers;

  static ParamLayout build(const ModelSpec& spec);
  const ParamInfo* find(const std::string& name) const;
};

inline float* slot(float* base, int64_t offset) { return offset < 0 ? nullptr : base + offset; }
inline const float* slot(const float* base, int64_t offset) { return offset < 0 ? nullptr : base + offset; }

// GPT-2 style initialisation, deterministic for a seed: matrices and embeddings N(0, 0.02), the residual
// projections (o, down) N(0, 0.02 / sqrt(2 L)), norm weights 1, biases 0.
void init_params(const ModelSpec& spec, const ParamLayout& layout, float* data, uint64_t seed);

// Copies resolved checkpoint weights (any stored dtype) into the buffer as f32.
void import_params(const ModelSpec& spec, const ParamLayout& layout, const ModelWeights& weights, float* data);

// The buffer (parameters, or gradients of the same layout) as Hugging Face tensors, by the names and layouts
// of model/weights.cpp's tables (GPT-2: transformer.*, Conv1D [in, out], fused c_attn). Tied embeddings are
// written once. Views into `data` where the layout agrees, owned copies where it does not.
std::vector<std::pair<std::string, Tensor>> export_hf_tensors(const ModelSpec& spec, const ParamLayout& layout,
                                                             const float* data);

// config.json for the spec, with the architectures / model_type keys transformers and hf_config.cpp read.
std::string hf_config_json(const ModelSpec& spec);

}  // namespace roofline::train
