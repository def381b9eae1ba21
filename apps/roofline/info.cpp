// roofline info: what a model directory holds, and what it costs to run.
#include <cstdio>
#include <iostream>

#include <nlohmann/json.hpp>

#include "commands.h"
#include "common.h"

namespace roofline::app {

namespace {
const char* norm_name(NormKind k) { return k == NormKind::RMSNorm ? "RMSNorm" : "LayerNorm"; }
const char* mlp_name(MlpKind k) { return k == MlpKind::GatedSiLU ? "SwiGLU" : "GELU (tanh)"; }
const char* rope_name(const ModelSpec& s) {
  if (s.position == PositionKind::Learned) return "learned positions";
  switch (s.rope_scaling.kind) {
    case RopeScalingKind::None: return "RoPE";
    case RopeScalingKind::Linear: return "RoPE (linear scaling)";
    case RopeScalingKind::Llama3: return "RoPE (llama3 scaling)";
  }
  return "RoPE";
}
}  // namespace

Run add_info(CLI::App& root) {
  struct Options {
    std::string model;
    bool json = false;
  };
  auto o = std::make_shared<Options>();
  CLI::App* cmd = root.add_subcommand("info", "Describe a model: architecture, parameters, dtype, memory");
  cmd->add_option("-m,--model", o->model, "Model directory")->required();
  cmd->add_flag("--json", o->json, "Print JSON");
  return [o]() {
    auto model = Model::load(o->model);
    const ModelSpec& s = model->spec;
    auto tokenizer = try_load_tokenizer(o->model);
    const size_t weight_bytes = model->checkpoint->total_bytes();
    const size_t kv_per_token = s.kv_bytes_per_token(DType::F32);
    nlohmann::json j = {
        {"architecture", s.architecture}, {"model_type", s.model_type}, {"parameters", s.parameter_count()},
        {"dtype", std::string(dtype_name(model->weights.stored_dtype()))}, {"layers", s.num_layers},
        {"hidden_size", s.hidden_size}, {"heads", s.num_heads}, {"kv_heads", s.num_kv_heads}, {"head_dim", s.head_dim},
        {"intermediate_size", s.intermediate_size}, {"vocab_size", s.vocab_size},
        {"context_length", s.max_position_embeddings}, {"norm", norm_name(s.norm)}, {"mlp", mlp_name(s.mlp)},
        {"positions", rope_name(s)}, {"tied_embeddings", s.tied_embeddings}, {"sliding_window", s.sliding_window},
        {"weight_bytes", weight_bytes}, {"kv_cache_bytes_per_token", kv_per_token},
        {"decode_bytes_per_token", model->weights.decode_bytes()},
        {"tokenizer_vocab", tokenizer ? tokenizer->vocab_size() : 0},
        {"chat_template", tokenizer && !tokenizer->config().chat_template.empty()}};
    if (o->json) {
      std::cout << j.dump(1) << "\n";
      return 0;
    }
    auto mib = [](size_t b) { return double(b) / (1024.0 * 1024.0); };
    std::printf("model          %s\n", o->model.c_str());
    std::printf("architecture   %s (%s)\n", s.architecture.c_str(), s.model_type.c_str());
    std::printf("parameters     %.3f M\n", double(s.parameter_count()) / 1e6);
    std::printf("dtype          %s\n", std::string(dtype_name(model->weights.stored_dtype())).c_str());
    std::printf("shape          %lld layers, hidden %lld, %lld heads (%lld KV) x %lld, MLP %lld, vocab %lld\n",
                (long long)s.num_layers, (long long)s.hidden_size, (long long)s.num_heads, (long long)s.num_kv_heads,
                (long long)s.head_dim, (long long)s.intermediate_size, (long long)s.vocab_size);
    std::printf("blocks         %s, %s, %s%s\n", norm_name(s.norm), mlp_name(s.mlp), rope_name(s),
                s.tied_embeddings ? ", tied embeddings" : "");
    std::printf("context        %lld tokens%s\n", (long long)s.max_position_embeddings,
                s.sliding_window ? (", sliding window " + std::to_string(s.sliding_window)).c_str() : "");
    std::printf("memory         weights %.1f MiB; KV cache %.1f KiB per token (f32); %.1f MiB read per decoded token\n",
                mib(weight_bytes), double(kv_per_token) / 1024.0, mib(model->weights.decode_bytes()));
    if (tokenizer)
      std::printf("tokenizer      %lld tokens%s\n", (long long)tokenizer->vocab_size(),
                  tokenizer->config().chat_template.empty() ? "" : ", chat template");
    else
      std::printf("tokenizer      none\n");
    return 0;
  };
}

}  // namespace roofline::app
