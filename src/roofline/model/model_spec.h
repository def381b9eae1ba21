// One description for every supported architecture. Architectures differ by a handful of switches and by
// their weight names; the decoder reads only this struct.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "roofline/core/dtype.h"

namespace roofline {

enum class NormKind { RMSNorm, LayerNorm };
enum class MlpKind { GatedSiLU, GeluTanh };  // Llama-style SwiGLU, GPT-2 style fc -> gelu_new -> proj
enum class PositionKind { Rotary, Learned };
enum class RopeScalingKind { None, Linear, Llama3 };

struct RopeScaling {
  RopeScalingKind kind = RopeScalingKind::None;
  double factor = 1.0;
  double low_freq_factor = 1.0;       // llama3
  double high_freq_factor = 4.0;      // llama3
  int64_t original_max_position = 0;  // llama3: original_max_position_embeddings
};

// Sampling defaults from generation_config.json (absent fields keep these values).
struct GenerationDefaults {
  bool do_sample = false;
  double temperature = 1.0;
  double top_p = 1.0;
  int top_k = 0;  // 0: off
  double min_p = 0.0;
  double repetition_penalty = 1.0;
  int64_t max_new_tokens = 0;  // 0: not given
};

struct ModelSpec {
  std::string architecture;  // HF name, e.g. "LlamaForCausalLM"
  std::string model_type;    // HF model_type, e.g. "llama"
  int64_t vocab_size = 0;
  int64_t hidden_size = 0;
  int64_t num_layers = 0;
  int64_t num_heads = 0;
  int64_t num_kv_heads = 0;
  int64_t head_dim = 0;            // explicit in config (Qwen3) or hidden_size / num_heads
  int64_t intermediate_size = 0;
  int64_t max_position_embeddings = 0;

  NormKind norm = NormKind::RMSNorm;
  double norm_eps = 1e-6;
  MlpKind mlp = MlpKind::GatedSiLU;
  PositionKind position = PositionKind::Rotary;
  double rope_theta = 10000.0;
  RopeScaling rope_scaling;
  int64_t sliding_window = 0;      // 0: full attention

  bool tied_embeddings = false;
  bool qkv_bias = false;           // Qwen2, GPT-2
  bool output_bias = false;        // bias on o_proj / c_proj (GPT-2)
  bool mlp_bias = false;           // GPT-2
  bool qk_norm = false;            // Qwen3: RMSNorm over head_dim on q and k before RoPE

  DType dtype = DType::F32;        // torch_dtype from config.json (the stored dtype may differ)
  std::optional<int64_t> bos_token_id;
  std::vector<int64_t> eos_token_ids;  // config.json and generation_config.json, merged
  std::optional<int64_t> pad_token_id;
  GenerationDefaults generation;

  int64_t q_dim() const { return num_heads * head_dim; }
  int64_t kv_dim() const { return num_kv_heads * head_dim; }
  // Bytes of K and V one token holds in a cache of cache_dtype, over all layers: F32/F16/BF16 elements, or
  // F8E4M3 bytes plus one f32 scale per (layer, K or V, kv head) (KvPool in model/decoder.h).
  size_t kv_bytes_per_token(DType cache_dtype) const {
    const size_t elements = size_t(2 * num_layers * kv_dim());
    if (cache_dtype == DType::F8E4M3) return elements + size_t(2 * num_layers * num_kv_heads) * sizeof(float);
    return elements * dtype_size(cache_dtype);
  }
  // Parameters counted from the shapes (tied embeddings counted once).
  int64_t parameter_count() const;
};

// Architectures ModelSpec can describe, as HF names; used in error messages.
const std::vector<std::string>& supported_architectures();

// Reads DIR/config.json and, when present, DIR/generation_config.json. Throws roofline::Error naming the
// file and the field for a missing or ill-typed field, and listing supported_architectures() for an
// unknown architecture.
ModelSpec load_model_spec(const std::string& model_dir);
// Throws roofline::Error, naming `label`, where a spec is not one this engine can run: sizes not positive or
// beyond any real model (so every derived size fits in 64 bits), heads not a multiple of kv heads, odd rotary
// dims, a non-positive epsilon or rope theta. The parsers call it; so does anything that builds a spec itself.
void check_model_spec(const ModelSpec& spec, const std::string& label);
// The same from JSON text (tests); generation_config may be empty.
ModelSpec parse_model_spec(const std::string& config_json, const std::string& generation_config_json,
                           const std::string& label);

}  // namespace roofline
