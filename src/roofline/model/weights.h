// The weights of one decoder model, resolved from a checkpoint by the architecture's naming table.
// Views into the mmapped checkpoint wherever the stored layout is the one the kernels use; GPT-2's Conv1D
// weights ([in, out]) are transposed once at load into owned tensors of the same dtype.
#pragma once
#include <string>
#include <vector>

#include "roofline/core/tensor.h"
#include "roofline/formats/safetensors.h"
#include "roofline/model/model_spec.h"

namespace roofline {

// A linear layer: weight [out, in] in its stored dtype, optional bias [out].
struct Linear {
  Tensor weight;
  Tensor bias;  // undefined when the layer has no bias
  const Tensor* bias_ptr() const { return bias.defined() ? &bias : nullptr; }
};

struct Norm {
  Tensor weight;  // [dim]
  Tensor bias;    // [dim], LayerNorm only
};

struct LayerWeights {
  Norm attn_norm;          // input_layernorm / ln_1
  Linear q, k, v, o;       // q: [Hq*D, hidden], k/v: [Hkv*D, hidden], o: [hidden, Hq*D]
  Norm q_norm, k_norm;     // [D], Qwen3 only
  Norm mlp_norm;           // post_attention_layernorm / ln_2
  Linear gate, up, down;   // gated MLP: gate/up [F, hidden], down [hidden, F]; GPT-2: up = c_fc, down = c_proj
};

struct ModelWeights {
  Tensor token_embedding;     // [V, hidden]
  Tensor position_embedding;  // [max_positions, hidden], learned positions only
  std::vector<LayerWeights> layers;
  Norm final_norm;
  Linear lm_head;             // shares token_embedding's storage when embeddings are tied

  // Bytes of weight data one decode step streams (every weight once; the embedding row is negligible).
  size_t decode_bytes() const;
  // The dtype most weights are stored in (for reports).
  DType stored_dtype() const;
};

// Resolves every weight the spec needs; throws roofline::Error naming the missing tensor or the
// shape mismatch (expected vs found) and the checkpoint directory.
ModelWeights load_weights(const ModelSpec& spec, const Checkpoint& checkpoint);

class Backend;
// The weights on backend's device, ready for a Decoder there. On the CPU: the same views (no copy). On a
// device: matrices and embeddings as `matrix_dtype` (biases in the backend's activation dtype, norms in
// f32), uploaded once; a tied lm_head shares the embedding's copy.
ModelWeights upload_weights(const ModelWeights& host, Backend& backend, DType matrix_dtype);
// The same with matrices in the checkpoint's own dtype (its stored_dtype()): a bf16 checkpoint runs bf16
// GEMMs; an f16 or f32 one keeps its precision (slower GEMMs) rather than being rounded to bf16.
ModelWeights upload_weights(const ModelWeights& host, Backend& backend);

}  // namespace roofline
