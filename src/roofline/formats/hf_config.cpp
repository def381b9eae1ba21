// Hugging Face config.json -> ModelSpec. Defaults follow the transformers config classes, so a field that a
// real config leaves out means what it means to transformers. Depends only on core (and nlohmann).
#include "roofline/model/model_spec.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <sstream>

#include "roofline/core/error.h"

namespace roofline {
namespace {

using json = nlohmann::json;

// Typed access to one JSON object; every error names the file, the field (with its path) and, for a
// missing one, what needs it. A null value counts as absent, as transformers treats it.
class Fields {
 public:
  Fields(const json& object, std::string label, std::string needed_by, std::string prefix = "")
      : object_(object), label_(std::move(label)), needed_by_(std::move(needed_by)), prefix_(std::move(prefix)) {}

  const json* get(const char* key) const {
    auto it = object_.find(key);
    return it == object_.end() || it->is_null() ? nullptr : &*it;
  }
  const json& require(const char* key) const {
    const json* v = get(key);
    if (!v) {
      bool is_null = object_.contains(key);
      fail("{}: field '{}{}' is {} (required for {})", label_, prefix_, key, is_null ? "null" : "missing", needed_by_);
    }
    return *v;
  }

  std::optional<int64_t> opt_int(const char* key) const {
    const json* v = get(key);
    return v ? std::optional(as_int(key, *v)) : std::nullopt;
  }
  int64_t req_int(const char* key) const { return as_int(key, require(key)); }
  std::optional<double> opt_num(const char* key) const {
    const json* v = get(key);
    return v ? std::optional(as_num(key, *v)) : std::nullopt;
  }
  double req_num(const char* key) const { return as_num(key, require(key)); }
  std::optional<bool> opt_bool(const char* key) const {
    const json* v = get(key);
    if (!v) return std::nullopt;
    if (!v->is_boolean()) wrong_type(key, "a boolean", *v);
    return v->get<bool>();
  }
  std::optional<std::string> opt_str(const char* key) const {
    const json* v = get(key);
    if (!v) return std::nullopt;
    if (!v->is_string()) wrong_type(key, "a string", *v);
    return v->get<std::string>();
  }
  // An int or a list of ints (eos_token_id); absent or null gives an empty list.
  std::vector<int64_t> int_list(const char* key) const {
    const json* v = get(key);
    if (!v) return {};
    if (!v->is_array()) return {as_int(key, *v)};
    std::vector<int64_t> out;
    for (const json& item : *v) out.push_back(as_int(key, item));
    return out;
  }
  const json* opt_object(const char* key) const {
    const json* v = get(key);
    if (v && !v->is_object()) wrong_type(key, "an object", *v);
    return v;
  }

  const std::string& label() const { return label_; }

 private:
  [[noreturn]] void wrong_type(const char* key, const char* expected, const json& v) const {
    std::string shown = v.dump();
    if (shown.size() > 40) shown = shown.substr(0, 40) + "...";
    fail("{}: field '{}{}' must be {}, got {} {}", label_, prefix_, key, expected, v.type_name(), shown);
  }
  int64_t as_int(const char* key, const json& v) const {
    if (v.is_number_integer() && !(v.is_number_unsigned() && v.get<uint64_t>() > uint64_t(INT64_MAX)))
      return v.get<int64_t>();
    // Some exporters write integral values as floats (8192.0); accept those, reject 1.5.
    if (v.is_number_float()) {
      double d = v.get<double>();
      if (std::isfinite(d) && d == std::floor(d) && std::fabs(d) < 9.0e15) return int64_t(d);
    }
    wrong_type(key, "an integer", v);
  }
  double as_num(const char* key, const json& v) const {
    if (!v.is_number()) wrong_type(key, "a number", v);
    return v.get<double>();
  }

  const json& object_;
  std::string label_, needed_by_, prefix_;
};

// The rotary decoder family differs only by these switches.
enum class BiasRule { AttentionBiasField, QkvAlways, None };  // field: attention_bias on q, k, v and o
enum class WindowRule { None, Direct, Switched };             // Switched: only when use_sliding_window
struct RotaryArch {
  const char* name;
  const char* model_type;
  BiasRule bias;
  bool mlp_bias_field;
  WindowRule window;
  bool qk_norm;
  int64_t default_head_dim;  // 0: hidden_size / num_attention_heads
};
constexpr RotaryArch kRotaryArchs[] = {
    {"LlamaForCausalLM", "llama", BiasRule::AttentionBiasField, true, WindowRule::None, false, 0},
    {"MistralForCausalLM", "mistral", BiasRule::None, false, WindowRule::Direct, false, 0},
    {"Qwen2ForCausalLM", "qwen2", BiasRule::QkvAlways, false, WindowRule::Switched, false, 0},
    {"Qwen3ForCausalLM", "qwen3", BiasRule::AttentionBiasField, false, WindowRule::Switched, true, 128},
};
constexpr const char* kGpt2 = "GPT2LMHeadModel";

std::string supported_list() {
  std::string out;
  for (const std::string& name : supported_architectures()) out += (out.empty() ? "" : ", ") + name;
  return out;
}

void parse_rope_scaling(const json& object, const std::string& label, const std::string& prefix, ModelSpec& spec) {
  Fields any(object, label, "rope scaling", prefix);
  std::string type = any.opt_str("rope_type").value_or(any.opt_str("type").value_or("default"));
  Fields s(object, label, "rope_type '" + type + "'", prefix);
  RopeScaling& r = spec.rope_scaling;
  if (type == "default") {
    r = RopeScaling{};
  } else if (type == "linear") {
    r.kind = RopeScalingKind::Linear;
    r.factor = s.req_num("factor");
  } else if (type == "llama3") {
    r.kind = RopeScalingKind::Llama3;
    r.factor = s.req_num("factor");
    r.low_freq_factor = s.req_num("low_freq_factor");
    r.high_freq_factor = s.req_num("high_freq_factor");
    r.original_max_position = s.req_int("original_max_position_embeddings");
  } else {
    fail("{}: field '{}rope_type' is '{}', which roofline does not support (supported: default, linear, llama3)",
         label, prefix, type);
  }
}

// transformers 5 writes rope_parameters {rope_type, rope_theta, factor, ...}; older versions write rope_theta
// and rope_scaling {rope_type | type, factor, ...} at the top level.
void parse_rope(const Fields& f, ModelSpec& spec) {
  double top_theta = f.opt_num("rope_theta").value_or(10000.0);
  if (const json* params = f.opt_object("rope_parameters")) {
    spec.rope_theta = Fields(*params, f.label(), "rope", "rope_parameters.").opt_num("rope_theta").value_or(top_theta);
    parse_rope_scaling(*params, f.label(), "rope_parameters.", spec);
  } else {
    spec.rope_theta = top_theta;
    if (const json* scaling = f.opt_object("rope_scaling")) parse_rope_scaling(*scaling, f.label(), "rope_scaling.", spec);
  }
}

// Qwen's window applies to layers >= max_window_layers (transformers' layer_types); ModelSpec has one window
// for all layers, so a mix of full and sliding layers is refused rather than run wrongly.
int64_t switched_window(const Fields& f, const ModelSpec& spec) {
  int64_t sliding_layers = 0;
  if (const json* types = f.get("layer_types")) {
    if (!types->is_array()) fail("{}: field 'layer_types' must be a list of strings", f.label());
    for (const json& t : *types) {
      if (!t.is_string()) fail("{}: field 'layer_types' must be a list of strings", f.label());
      if (t == "sliding_attention") ++sliding_layers;
      else if (t != "full_attention") fail("{}: field 'layer_types' holds unknown type {}", f.label(), t.dump());
    }
  } else {
    if (!f.opt_bool("use_sliding_window").value_or(false) || !f.get("sliding_window")) return 0;
    int64_t first = std::clamp<int64_t>(f.opt_int("max_window_layers").value_or(28), 0, spec.num_layers);
    sliding_layers = spec.num_layers - first;
  }
  if (sliding_layers == 0) return 0;
  if (sliding_layers != spec.num_layers)
    fail("{}: {} of {} layers use sliding-window attention; roofline supports all or none", f.label(),
         sliding_layers, spec.num_layers);
  return f.req_int("sliding_window");
}

void parse_rotary(const Fields& f, const RotaryArch& arch, ModelSpec& spec) {
  spec.vocab_size = f.req_int("vocab_size");
  spec.hidden_size = f.req_int("hidden_size");
  spec.num_layers = f.req_int("num_hidden_layers");
  spec.num_heads = f.req_int("num_attention_heads");
  spec.num_kv_heads = f.opt_int("num_key_value_heads").value_or(spec.num_heads);
  spec.intermediate_size = f.req_int("intermediate_size");
  spec.max_position_embeddings = f.req_int("max_position_embeddings");
  if (auto head_dim = f.opt_int("head_dim")) {
    spec.head_dim = *head_dim;
  } else if (arch.default_head_dim) {
    spec.head_dim = arch.default_head_dim;
  } else {
    if (spec.num_heads <= 0 || spec.hidden_size % spec.num_heads != 0)
      fail("{}: hidden_size ({}) is not a multiple of num_attention_heads ({})", f.label(), spec.hidden_size,
           spec.num_heads);
    spec.head_dim = spec.hidden_size / spec.num_heads;
  }

  std::string act = f.opt_str("hidden_act").value_or("silu");
  if (act != "silu" && act != "swish")
    fail("{}: field 'hidden_act' is '{}'; {} is supported only with 'silu'", f.label(), act, arch.name);
  spec.norm = NormKind::RMSNorm;
  spec.norm_eps = f.opt_num("rms_norm_eps").value_or(1e-6);
  spec.mlp = MlpKind::GatedSiLU;
  spec.position = PositionKind::Rotary;
  parse_rope(f, spec);

  spec.tied_embeddings = f.opt_bool("tie_word_embeddings").value_or(false);
  if (arch.bias == BiasRule::AttentionBiasField) {
    spec.qkv_bias = spec.output_bias = f.opt_bool("attention_bias").value_or(false);
  } else if (arch.bias == BiasRule::QkvAlways) {
    spec.qkv_bias = true;
  }
  if (arch.mlp_bias_field) spec.mlp_bias = f.opt_bool("mlp_bias").value_or(false);
  spec.qk_norm = arch.qk_norm;
  if (arch.window == WindowRule::Direct) spec.sliding_window = f.opt_int("sliding_window").value_or(0);
  if (arch.window == WindowRule::Switched) spec.sliding_window = switched_window(f, spec);
}

void parse_gpt2(const Fields& f, ModelSpec& spec) {
  spec.vocab_size = f.req_int("vocab_size");
  spec.hidden_size = f.req_int("n_embd");
  spec.num_layers = f.req_int("n_layer");
  spec.num_heads = f.req_int("n_head");
  spec.num_kv_heads = spec.num_heads;
  if (spec.num_heads <= 0 || spec.hidden_size % spec.num_heads != 0)
    fail("{}: n_embd ({}) is not a multiple of n_head ({})", f.label(), spec.hidden_size, spec.num_heads);
  spec.head_dim = spec.hidden_size / spec.num_heads;
  spec.intermediate_size = f.opt_int("n_inner").value_or(4 * spec.hidden_size);
  spec.max_position_embeddings = f.req_int("n_positions");

  std::string act = f.opt_str("activation_function").value_or("gelu_new");
  if (act != "gelu_new" && act != "gelu_pytorch_tanh")
    fail("{}: field 'activation_function' is '{}'; {} is supported with 'gelu_new' or 'gelu_pytorch_tanh'",
         f.label(), act, kGpt2);
  // These switches change the attention math; the released GPT-2 checkpoints leave them at their defaults.
  if (!f.opt_bool("scale_attn_weights").value_or(true) || f.opt_bool("scale_attn_by_inverse_layer_idx").value_or(false) ||
      f.opt_bool("reorder_and_upcast_attn").value_or(false))
    fail("{}: non-default GPT-2 attention scaling (scale_attn_weights / scale_attn_by_inverse_layer_idx / "
         "reorder_and_upcast_attn) is not supported", f.label());
  spec.norm = NormKind::LayerNorm;
  spec.norm_eps = f.opt_num("layer_norm_epsilon").value_or(1e-5);
  spec.mlp = MlpKind::GeluTanh;
  spec.position = PositionKind::Learned;
  spec.tied_embeddings = true;
  spec.qkv_bias = spec.output_bias = spec.mlp_bias = true;
}

void merge_ids(std::vector<int64_t>& into, const std::vector<int64_t>& more) {
  for (int64_t id : more)
    if (std::find(into.begin(), into.end(), id) == into.end()) into.push_back(id);
}

void parse_generation(const json& gen, const std::string& label, ModelSpec& spec) {
  if (!gen.is_object()) fail("{}: must be a JSON object", label);
  Fields g(gen, label, "generation");
  GenerationDefaults& d = spec.generation;
  d.do_sample = g.opt_bool("do_sample").value_or(d.do_sample);
  d.temperature = g.opt_num("temperature").value_or(d.temperature);
  d.top_p = g.opt_num("top_p").value_or(d.top_p);
  int64_t top_k = g.opt_int("top_k").value_or(d.top_k);
  if (top_k < 0 || top_k > std::numeric_limits<int>::max()) fail("{}: top_k must be in [0, 2^31), got {}", label, top_k);
  d.top_k = int(top_k);
  d.min_p = g.opt_num("min_p").value_or(d.min_p);
  d.repetition_penalty = g.opt_num("repetition_penalty").value_or(d.repetition_penalty);
  d.max_new_tokens = g.opt_int("max_new_tokens").value_or(d.max_new_tokens);
  merge_ids(spec.eos_token_ids, g.int_list("eos_token_id"));
  if (!spec.bos_token_id) spec.bos_token_id = g.opt_int("bos_token_id");
  if (!spec.pad_token_id) spec.pad_token_id = g.opt_int("pad_token_id");

  if (d.temperature < 0) fail("{}: temperature must be >= 0, got {}", label, d.temperature);
  if (!(d.top_p > 0 && d.top_p <= 1)) fail("{}: top_p must be in (0, 1], got {}", label, d.top_p);
  if (!(d.min_p >= 0 && d.min_p <= 1)) fail("{}: min_p must be in [0, 1], got {}", label, d.min_p);
  if (!(d.repetition_penalty > 0)) fail("{}: repetition_penalty must be > 0, got {}", label, d.repetition_penalty);
  if (d.max_new_tokens < 0) fail("{}: max_new_tokens must be >= 0, got {}", label, d.max_new_tokens);
}

void check_positive(const std::string& label, const char* what, int64_t value) {
  if (value <= 0) fail("{}: {} must be positive, got {}", label, what, value);
}

// Positive, and at most `most`: far above any real model's value, low enough that every size derived from
// the spec (widths, parameter count, cache bytes per token) fits in 64 bits and positions in 32.
void check_size(const std::string& label, const char* what, int64_t value, int64_t most) {
  check_positive(label, what, value);
  if (value > most) fail("{}: {} is {}, larger than any model this engine runs (at most {})", label, what, value, most);
}

}  // namespace

void check_model_spec(const ModelSpec& s, const std::string& label) {
  check_size(label, "vocab_size", s.vocab_size, int64_t(1) << 24);  // token ids stay below 2^24 (tokenizer)
  check_size(label, "hidden_size", s.hidden_size, int64_t(1) << 20);
  check_size(label, "num_layers", s.num_layers, int64_t(1) << 12);
  check_size(label, "num_heads", s.num_heads, int64_t(1) << 12);
  check_size(label, "num_kv_heads", s.num_kv_heads, int64_t(1) << 12);
  check_size(label, "head_dim", s.head_dim, int64_t(1) << 12);
  check_size(label, "num_heads x head_dim", s.q_dim(), int64_t(1) << 20);
  check_size(label, "intermediate_size", s.intermediate_size, int64_t(1) << 22);
  check_size(label, "max_position_embeddings", s.max_position_embeddings, int64_t(1) << 30);
  if (s.num_heads % s.num_kv_heads != 0)
    fail("{}: num_attention_heads ({}) is not a multiple of num_key_value_heads ({})", label, s.num_heads,
         s.num_kv_heads);
  if (!(s.norm_eps > 0)) fail("{}: norm epsilon must be positive, got {}", label, s.norm_eps);
  if (s.sliding_window < 0) fail("{}: sliding_window must be >= 0, got {}", label, s.sliding_window);
  if (s.position == PositionKind::Rotary) {
    if (s.head_dim % 2 != 0) fail("{}: head_dim ({}) must be even for rotary embeddings", label, s.head_dim);
    if (!(s.rope_theta > 0)) fail("{}: rope_theta must be positive, got {}", label, s.rope_theta);
    const RopeScaling& r = s.rope_scaling;
    if (!(r.factor > 0)) fail("{}: rope scaling factor must be positive, got {}", label, r.factor);
    if (r.kind == RopeScalingKind::Llama3) {
      check_positive(label, "original_max_position_embeddings", r.original_max_position);
      if (!(r.low_freq_factor > 0 && r.high_freq_factor > r.low_freq_factor))
        fail("{}: llama3 rope scaling needs 0 < low_freq_factor < high_freq_factor, got {} and {}", label,
             r.low_freq_factor, r.high_freq_factor);
    }
  }
  for (int64_t id : s.eos_token_ids)
    if (id < 0) fail("{}: eos_token_id {} is negative", label, id);
}

namespace {

json parse_json_text(const std::string& text, const std::string& label) {
  try {
    return json::parse(text);
  } catch (const json::exception& e) {
    fail("{}: not valid JSON: {}", label, e.what());
  }
}

ModelSpec parse_impl(const std::string& config_text, const std::string& config_label, const std::string& gen_text,
                     const std::string& gen_label) {
  json config = parse_json_text(config_text, config_label);
  if (!config.is_object()) fail("{}: must be a JSON object", config_label);

  ModelSpec spec;
  auto archs = config.find("architectures");
  if (archs == config.end() || !archs->is_array() || archs->empty() || !(*archs)[0].is_string())
    fail("{}: field 'architectures' is missing or not a list of names; cannot tell the model (supported: {})",
         config_label, supported_list());
  spec.architecture = (*archs)[0].get<std::string>();

  Fields f(config, config_label, spec.architecture);
  auto rotary = std::find_if(std::begin(kRotaryArchs), std::end(kRotaryArchs),
                             [&](const RotaryArch& a) { return spec.architecture == a.name; });
  if (rotary != std::end(kRotaryArchs)) {
    spec.model_type = f.opt_str("model_type").value_or(rotary->model_type);
    parse_rotary(f, *rotary, spec);
  } else if (spec.architecture == kGpt2) {
    spec.model_type = f.opt_str("model_type").value_or("gpt2");
    parse_gpt2(f, spec);
  } else {
    fail("{}: architecture '{}' is not supported (supported: {})", config_label, spec.architecture, supported_list());
  }

  // transformers 5 renamed torch_dtype to dtype.
  const char* dtype_key = f.get("dtype") ? "dtype" : "torch_dtype";
  if (auto dtype = f.opt_str(dtype_key)) {
    if (!parse_dtype_loose(*dtype, &spec.dtype)) fail("{}: field '{}' is '{}', an unknown dtype", config_label, dtype_key, *dtype);
  }
  spec.bos_token_id = f.opt_int("bos_token_id");
  spec.pad_token_id = f.opt_int("pad_token_id");
  spec.eos_token_ids = f.int_list("eos_token_id");
  if (!gen_text.empty()) parse_generation(parse_json_text(gen_text, gen_label), gen_label, spec);

  check_model_spec(spec, config_label);
  return spec;
}

std::string read_text(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail("{}: cannot read", path.string());
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

}  // namespace

const std::vector<std::string>& supported_architectures() {
  static const std::vector<std::string> names = [] {
    std::vector<std::string> out;
    for (const RotaryArch& a : kRotaryArchs) out.emplace_back(a.name);
    out.emplace_back(kGpt2);
    return out;
  }();
  return names;
}

int64_t ModelSpec::parameter_count() const {
  const int64_t h = hidden_size;
  const int64_t norm_params = norm == NormKind::LayerNorm ? 2 * h : h;  // LayerNorm has a bias
  int64_t attention = h * q_dim() + 2 * h * kv_dim() + q_dim() * h;
  if (qkv_bias) attention += q_dim() + 2 * kv_dim();
  if (output_bias) attention += h;
  if (qk_norm) attention += 2 * head_dim;
  const bool gated = mlp == MlpKind::GatedSiLU;
  int64_t mlp_params = (gated ? 3 : 2) * h * intermediate_size;
  if (mlp_bias) mlp_params += (gated ? 2 : 1) * intermediate_size + h;
  int64_t total = vocab_size * h + num_layers * (attention + mlp_params + 2 * norm_params) + norm_params;
  if (position == PositionKind::Learned) total += max_position_embeddings * h;
  if (!tied_embeddings) total += vocab_size * h;
  return total;
}

ModelSpec parse_model_spec(const std::string& config_json, const std::string& generation_config_json,
                           const std::string& label) {
  // The generation config is named after the config's label: "dir/config.json" -> "dir/generation_config.json".
  std::string gen_label = label;
  const std::string suffix = "config.json";
  if (gen_label.size() >= suffix.size() && gen_label.ends_with(suffix))
    gen_label.replace(gen_label.size() - suffix.size(), suffix.size(), "generation_config.json");
  else
    gen_label += " (generation_config.json)";
  return parse_impl(config_json, label, generation_config_json, gen_label);
}

ModelSpec load_model_spec(const std::string& model_dir) {
  std::filesystem::path dir(model_dir);
  std::filesystem::path config = dir / "config.json", gen = dir / "generation_config.json";
  std::error_code ec;
  if (!std::filesystem::is_regular_file(config, ec)) fail("{}: no config.json in the model directory", model_dir);
  std::string gen_text = std::filesystem::is_regular_file(gen, ec) ? read_text(gen) : std::string();
  return parse_impl(read_text(config), config.string(), gen_text, gen.string());
}

}  // namespace roofline
