#include "roofline/train/params.h"

#include <cmath>
#include <cstring>
#include <nlohmann/json.hpp>
#include <random>

#include "roofline/core/error.h"

namespace roofline::train {

ParamLayout ParamLayout::build(const ModelSpec& s) {
  ParamLayout L;
  auto add = [&](const std::string& name, Shape shape, ParamKind kind) {
    ParamInfo p{name, shape, L.total, shape_numel(shape), kind};
    L.total += p.numel;
    L.params.push_back(p);
    return p.offset;
  };
  const int64_t H = s.hidden_size, F = s.intermediate_size, D = s.head_dim;
  const bool layernorm = s.norm == NormKind::LayerNorm, gated = s.mlp == MlpKind::GatedSiLU;
  L.wte = add("model.embed_tokens.weight", {s.vocab_size, H}, ParamKind::Embedding);
  if (s.position == PositionKind::Learned)
    L.wpe = add("model.embed_positions.weight", {s.max_position_embeddings, H}, ParamKind::Embedding);
  for (int64_t i = 0; i < s.num_layers; ++i) {
    const std::string p = "model.layers." + std::to_string(i) + ".";
    LayerSlots l;
    l.attn_norm_w = add(p + "input_layernorm.weight", {H}, ParamKind::Norm);
    if (layernorm) l.attn_norm_b = add(p + "input_layernorm.bias", {H}, ParamKind::Norm);
    l.q_w = add(p + "self_attn.q_proj.weight", {s.q_dim(), H}, ParamKind::Matrix);
    l.k_w = add(p + "self_attn.k_proj.weight", {s.kv_dim(), H}, ParamKind::Matrix);
    l.v_w = add(p + "self_attn.v_proj.weight", {s.kv_dim(), H}, ParamKind::Matrix);
    if (s.qkv_bias) {
      l.q_b = add(p + "self_attn.q_proj.bias", {s.q_dim()}, ParamKind::Bias);
      l.k_b = add(p + "self_attn.k_proj.bias", {s.kv_dim()}, ParamKind::Bias);
      l.v_b = add(p + "self_attn.v_proj.bias", {s.kv_dim()}, ParamKind::Bias);
    }
    l.o_w = add(p + "self_attn.o_proj.weight", {H, s.q_dim()}, ParamKind::Matrix);
    if (s.output_bias) l.o_b = add(p + "self_attn.o_proj.bias", {H}, ParamKind::Bias);
    if (s.qk_norm) {
      l.q_norm = add(p + "self_attn.q_norm.weight", {D}, ParamKind::Norm);
      l.k_norm = add(p + "self_attn.k_norm.weight", {D}, ParamKind::Norm);
    }
    l.mlp_norm_w = add(p + "post_attention_layernorm.weight", {H}, ParamKind::Norm);
    if (layernorm) l.mlp_norm_b = add(p + "post_attention_layernorm.bias", {H}, ParamKind::Norm);
    if (gated) l.gate_w = add(p + "mlp.gate_proj.weight", {F, H}, ParamKind::Matrix);
    l.up_w = add(p + "mlp.up_proj.weight", {F, H}, ParamKind::Matrix);
    l.down_w = add(p + "mlp.down_proj.weight", {H, F}, ParamKind::Matrix);
    if (s.mlp_bias) {
      if (gated) l.gate_b = add(p + "mlp.gate_proj.bias", {F}, ParamKind::Bias);
      l.up_b = add(p + "mlp.up_proj.bias", {F}, ParamKind::Bias);
      l.down_b = add(p + "mlp.down_proj.bias", {H}, ParamKind::Bias);
    }
    L.layers.push_back(l);
  }
  L.final_norm_w = add("model.norm.weight", {H}, ParamKind::Norm);
  if (layernorm) L.final_norm_b = add("model.norm.bias", {H}, ParamKind::Norm);
  L.lm_head = s.tied_embeddings ? L.wte : add("lm_head.weight", {s.vocab_size, H}, ParamKind::Matrix);
  return L;
}

const ParamInfo* ParamLayout::find(const std::string& name) const {
  for (const ParamInfo& p : params)
    if (p.name == name) return &p;
  return nullptr;
}

void init_params(const ModelSpec& spec, const ParamLayout& layout, float* data, uint64_t seed) {
  std::mt19937_64 rng(seed);
  // Box-Muller on the raw generator output, so the values do not depend on the standard library's
  // normal_distribution.
  auto normal = [&]() {
    const double u1 = (double(rng() >> 11) + 0.5) * 0x1.0p-53, u2 = double(rng() >> 11) * 0x1.0p-53;
    return std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * 3.14159265358979323846 * u2);
  };
  const double residual_std = 0.02 / std::sqrt(2.0 * double(std::max<int64_t>(spec.num_layers, 1)));
  for (const ParamInfo& p : layout.params) {
    float* w = data + p.offset;
    const bool residual = p.name.ends_with("o_proj.weight") || p.name.ends_with("down_proj.weight");
    switch (p.kind) {
      case ParamKind::Norm:
        for (int64_t i = 0; i < p.numel; ++i) w[i] = p.name.ends_with(".bias") ? 0.0f : 1.0f;
        break;
      case ParamKind::Bias:
        std::fill(w, w + p.numel, 0.0f);
        break;
      default: {
        const double stddev = residual ? residual_std : 0.02;
        for (int64_t i = 0; i < p.numel; ++i) w[i] = float(normal() * stddev);
      }
    }
  }
}

namespace {

void copy_in(const Tensor& t, const ParamInfo& p, float* data) {
  ROOFLINE_CHECK(t.defined(), "import: weight for {} is missing", p.name);
  ROOFLINE_CHECK(t.numel() == p.numel, "import: {} has {} elements, expected {}", p.name, t.numel(), p.numel);
  convert_to_f32(t.dtype(), t.data(), data + p.offset, size_t(p.numel));
}

}  // namespace

void import_params(const ModelSpec& spec, const ParamLayout& layout, const ModelWeights& w, float* data) {
  auto put = [&](int64_t offset, const Tensor& t) {
    if (offset < 0) return;
    for (const ParamInfo& p : layout.params)
      if (p.offset == offset) return copy_in(t, p, data);
  };
  put(layout.wte, w.token_embedding);
  put(layout.wpe, w.position_embedding);
  for (int64_t i = 0; i < spec.num_layers; ++i) {
    const LayerSlots& l = layout.layers[size_t(i)];
    const LayerWeights& lw = w.layers[size_t(i)];
    put(l.attn_norm_w, lw.attn_norm.weight);
    put(l.attn_norm_b, lw.attn_norm.bias);
    put(l.q_w, lw.q.weight);
    put(l.k_w, lw.k.weight);
    put(l.v_w, lw.v.weight);
    put(l.o_w, lw.o.weight);
    put(l.q_b, lw.q.bias);
    put(l.k_b, lw.k.bias);
    put(l.v_b, lw.v.bias);
    put(l.o_b, lw.o.bias);
    put(l.q_norm, lw.q_norm.weight);
    put(l.k_norm, lw.k_norm.weight);
    put(l.mlp_norm_w, lw.mlp_norm.weight);
    put(l.mlp_norm_b, lw.mlp_norm.bias);
    put(l.gate_w, lw.gate.weight);
    put(l.up_w, lw.up.weight);
    put(l.down_w, lw.down.weight);
    put(l.gate_b, lw.gate.bias);
    put(l.up_b, lw.up.bias);
    put(l.down_b, lw.down.bias);
  }
  put(layout.final_norm_w, w.final_norm.weight);
  put(layout.final_norm_b, w.final_norm.bias);
  if (!spec.tied_embeddings) put(layout.lm_head, w.lm_head.weight);
}

namespace {

Tensor view(const float* data, int64_t offset, Shape shape) {
  return Tensor(DType::F32, std::move(shape), const_cast<float*>(data + offset));
}

// rows x cols blocks of [out, in] matrices, stacked along out, written as one [in, sum(out)] Conv1D matrix.
Tensor to_conv1d(const float* data, const std::vector<int64_t>& offsets, int64_t rows_each, int64_t in) {
  const int64_t out = rows_each * int64_t(offsets.size());
  Tensor t = Tensor::empty(DType::F32, {in, out});
  float* dst = t.ptr<float>();
  for (size_t m = 0; m < offsets.size(); ++m) {
    const float* src = data + offsets[m];
    for (int64_t r = 0; r < rows_each; ++r)
      for (int64_t c = 0; c < in; ++c) dst[c * out + int64_t(m) * rows_each + r] = src[r * in + c];
  }
  return t;
}

Tensor concat(const float* data, const std::vector<int64_t>& offsets, int64_t each) {
  Tensor t = Tensor::empty(DType::F32, {each * int64_t(offsets.size())});
  for (size_t m = 0; m < offsets.size(); ++m)
    std::memcpy(t.ptr<float>() + int64_t(m) * each, data + offsets[m], size_t(each) * sizeof(float));
  return t;
}

bool is_gpt2(const ModelSpec& s) { return s.mlp == MlpKind::GeluTanh && s.position == PositionKind::Learned; }

}  // namespace

std::vector<std::pair<std::string, Tensor>> export_hf_tensors(const ModelSpec& s, const ParamLayout& L,
                                                             const float* data) {
  std::vector<std::pair<std::string, Tensor>> out;
  const int64_t H = s.hidden_size, F = s.intermediate_size;
  if (is_gpt2(s)) {
    const std::string t = "transformer.";
    out.emplace_back(t + "wte.weight", view(data, L.wte, {s.vocab_size, H}));
    out.emplace_back(t + "wpe.weight", view(data, L.wpe, {s.max_position_embeddings, H}));
    for (int64_t i = 0; i < s.num_layers; ++i) {
      const LayerSlots& l = L.layers[size_t(i)];
      const std::string p = t + "h." + std::to_string(i) + ".";
      out.emplace_back(p + "ln_1.weight", view(data, l.attn_norm_w, {H}));
      out.emplace_back(p + "ln_1.bias", view(data, l.attn_norm_b, {H}));
      out.emplace_back(p + "attn.c_attn.weight", to_conv1d(data, {l.q_w, l.k_w, l.v_w}, H, H));
      out.emplace_back(p + "attn.c_attn.bias", concat(data, {l.q_b, l.k_b, l.v_b}, H));
      out.emplace_back(p + "attn.c_proj.weight", to_conv1d(data, {l.o_w}, H, H));
      out.emplace_back(p + "attn.c_proj.bias", view(data, l.o_b, {H}));
      out.emplace_back(p + "ln_2.weight", view(data, l.mlp_norm_w, {H}));
      out.emplace_back(p + "ln_2.bias", view(data, l.mlp_norm_b, {H}));
      out.emplace_back(p + "mlp.c_fc.weight", to_conv1d(data, {l.up_w}, F, H));
      out.emplace_back(p + "mlp.c_fc.bias", view(data, l.up_b, {F}));
      out.emplace_back(p + "mlp.c_proj.weight", to_conv1d(data, {l.down_w}, H, F));
      out.emplace_back(p + "mlp.c_proj.bias", view(data, l.down_b, {H}));
    }
    out.emplace_back(t + "ln_f.weight", view(data, L.final_norm_w, {H}));
    out.emplace_back(t + "ln_f.bias", view(data, L.final_norm_b, {H}));
    return out;
  }
  // The Llama family: the internal names are the HF names.
  for (const ParamInfo& p : L.params) out.emplace_back(p.name, view(data, p.offset, p.shape));
  return out;
}

std::string hf_config_json(const ModelSpec& s) {
  using json = nlohmann::ordered_json;
  json c;
  c["architectures"] = json::array({s.architecture});
  c["model_type"] = s.model_type;
  if (is_gpt2(s)) {
    c["vocab_size"] = s.vocab_size;
    c["n_embd"] = s.hidden_size;
    c["n_layer"] = s.num_layers;
    c["n_head"] = s.num_heads;
    c["n_inner"] = s.intermediate_size;
    c["n_positions"] = s.max_position_embeddings;
    c["n_ctx"] = s.max_position_embeddings;
    c["activation_function"] = "gelu_new";
    c["layer_norm_epsilon"] = s.norm_eps;
    c["tie_word_embeddings"] = true;
    c["attn_pdrop"] = 0.0;
    c["embd_pdrop"] = 0.0;
    c["resid_pdrop"] = 0.0;
  } else {
    c["vocab_size"] = s.vocab_size;
    c["hidden_size"] = s.hidden_size;
    c["intermediate_size"] = s.intermediate_size;
    c["num_hidden_layers"] = s.num_layers;
    c["num_attention_heads"] = s.num_heads;
    c["num_key_value_heads"] = s.num_kv_heads;
    c["head_dim"] = s.head_dim;
    c["hidden_act"] = "silu";
    c["max_position_embeddings"] = s.max_position_embeddings;
    c["rms_norm_eps"] = s.norm_eps;
    c["rope_theta"] = s.rope_theta;
    const RopeScaling& r = s.rope_scaling;
    if (r.kind == RopeScalingKind::Linear) {
      c["rope_scaling"] = {{"rope_type", "linear"}, {"factor", r.factor}};
    } else if (r.kind == RopeScalingKind::Llama3) {
      c["rope_scaling"] = {{"rope_type", "llama3"},
                           {"factor", r.factor},
                           {"low_freq_factor", r.low_freq_factor},
                           {"high_freq_factor", r.high_freq_factor},
                           {"original_max_position_embeddings", r.original_max_position}};
    }
    c["tie_word_embeddings"] = s.tied_embeddings;
    if (s.model_type == "llama") {
      c["attention_bias"] = s.qkv_bias;
      c["mlp_bias"] = s.mlp_bias;
    } else if (s.model_type == "qwen3") {
      c["attention_bias"] = s.qkv_bias;
    }
    if (s.model_type == "qwen2" || s.model_type == "qwen3") {
      c["use_sliding_window"] = s.sliding_window > 0;
      c["sliding_window"] = s.sliding_window > 0 ? json(s.sliding_window) : json(nullptr);
      if (s.sliding_window > 0) c["max_window_layers"] = 0;
    } else if (s.model_type == "mistral") {
      c["sliding_window"] = s.sliding_window > 0 ? json(s.sliding_window) : json(nullptr);
    }
    c["attention_dropout"] = 0.0;
  }
  if (s.bos_token_id) c["bos_token_id"] = *s.bos_token_id;
  if (s.eos_token_ids.size() == 1) c["eos_token_id"] = s.eos_token_ids[0];
  else if (!s.eos_token_ids.empty()) c["eos_token_id"] = s.eos_token_ids;
  if (s.pad_token_id) c["pad_token_id"] = *s.pad_token_id;
  c["torch_dtype"] = "float32";
  c["use_cache"] = true;
  return c.dump(2) + "\n";
}

}  // namespace roofline::train
