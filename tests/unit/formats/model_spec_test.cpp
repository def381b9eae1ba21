// config.json -> ModelSpec, on configs modelled on the real Hugging Face ones (values as published).
#include <gtest/gtest.h>

#include "formats_test_util.h"
#include "roofline/model/model_spec.h"

namespace roofline {
namespace {

using test::error_of;

#define EXPECT_HAS(msg, part) EXPECT_NE((msg).find(part), std::string::npos) << (msg)

// meta-llama/Llama-2-7b-hf
const char* kLlama2Config = R"({
  "_name_or_path": "meta-llama/Llama-2-7b-hf", "architectures": ["LlamaForCausalLM"], "bos_token_id": 1,
  "eos_token_id": 2, "hidden_act": "silu", "hidden_size": 4096, "initializer_range": 0.02,
  "intermediate_size": 11008, "max_position_embeddings": 4096, "model_type": "llama", "num_attention_heads": 32,
  "num_hidden_layers": 32, "num_key_value_heads": 32, "pretraining_tp": 1, "rms_norm_eps": 1e-05,
  "rope_scaling": null, "tie_word_embeddings": false, "torch_dtype": "float16",
  "transformers_version": "4.31.0.dev0", "use_cache": true, "vocab_size": 32000})";
const char* kLlama2Generation = R"({"bos_token_id": 1, "do_sample": true, "eos_token_id": 2, "pad_token_id": 0,
  "temperature": 0.6, "max_length": 4096, "top_p": 0.9, "transformers_version": "4.31.0.dev0"})";

// meta-llama/Llama-3.2-1B (transformers 4.x spelling: rope_theta + rope_scaling)
const char* kLlama32Config = R"({
  "architectures": ["LlamaForCausalLM"], "attention_bias": false, "attention_dropout": 0.0,
  "bos_token_id": 128000, "eos_token_id": 128001, "head_dim": 64, "hidden_act": "silu", "hidden_size": 2048,
  "initializer_range": 0.02, "intermediate_size": 8192, "max_position_embeddings": 131072, "mlp_bias": false,
  "model_type": "llama", "num_attention_heads": 32, "num_hidden_layers": 16, "num_key_value_heads": 8,
  "pretraining_tp": 1, "rms_norm_eps": 1e-05,
  "rope_scaling": {"factor": 32.0, "high_freq_factor": 4.0, "low_freq_factor": 1.0,
                   "original_max_position_embeddings": 8192, "rope_type": "llama3"},
  "rope_theta": 500000.0, "tie_word_embeddings": true, "torch_dtype": "bfloat16",
  "transformers_version": "4.45.0.dev0", "use_cache": true, "vocab_size": 128256})";
// The same model as transformers 5 writes it: rope_parameters and dtype.
const char* kLlama32ConfigV5 = R"({
  "architectures": ["LlamaForCausalLM"], "attention_bias": false, "attention_dropout": 0.0,
  "bos_token_id": 128000, "dtype": "bfloat16", "eos_token_id": 128001, "head_dim": 64, "hidden_act": "silu",
  "hidden_size": 2048, "initializer_range": 0.02, "intermediate_size": 8192, "max_position_embeddings": 131072,
  "mlp_bias": false, "model_type": "llama", "num_attention_heads": 32, "num_hidden_layers": 16,
  "num_key_value_heads": 8, "pretraining_tp": 1, "rms_norm_eps": 1e-05,
  "rope_parameters": {"factor": 32.0, "high_freq_factor": 4.0, "low_freq_factor": 1.0,
                      "original_max_position_embeddings": 8192, "rope_theta": 500000.0, "rope_type": "llama3"},
  "tie_word_embeddings": true, "transformers_version": "5.0.0", "use_cache": true, "vocab_size": 128256})";
const char* kLlama32Generation = R"({"_from_model_config": true, "bos_token_id": 128000, "do_sample": true,
  "eos_token_id": [128001, 128008, 128009], "temperature": 0.6, "top_p": 0.9, "transformers_version": "4.45.0.dev0"})";

// mistralai/Mistral-7B-v0.1
const char* kMistralConfig = R"({
  "architectures": ["MistralForCausalLM"], "bos_token_id": 1, "eos_token_id": 2, "hidden_act": "silu",
  "hidden_size": 4096, "initializer_range": 0.02, "intermediate_size": 14336, "max_position_embeddings": 32768,
  "model_type": "mistral", "num_attention_heads": 32, "num_hidden_layers": 32, "num_key_value_heads": 8,
  "rms_norm_eps": 1e-05, "rope_theta": 10000.0, "sliding_window": 4096, "tie_word_embeddings": false,
  "torch_dtype": "bfloat16", "transformers_version": "4.34.0.dev0", "use_cache": true, "vocab_size": 32000})";

// Qwen/Qwen2.5-0.5B
const char* kQwen25Config = R"({
  "architectures": ["Qwen2ForCausalLM"], "attention_dropout": 0.0, "bos_token_id": 151643,
  "eos_token_id": 151643, "hidden_act": "silu", "hidden_size": 896, "initializer_range": 0.02,
  "intermediate_size": 4864, "max_position_embeddings": 32768, "max_window_layers": 24, "model_type": "qwen2",
  "num_attention_heads": 14, "num_hidden_layers": 24, "num_key_value_heads": 2, "rms_norm_eps": 1e-06,
  "rope_theta": 1000000.0, "sliding_window": 32768, "tie_word_embeddings": true, "torch_dtype": "bfloat16",
  "transformers_version": "4.40.1", "use_cache": true, "use_mrope": false, "use_sliding_window": false,
  "vocab_size": 151936})";
const char* kQwen25Generation = R"({"bos_token_id": 151643, "do_sample": false, "eos_token_id": 151643,
  "max_new_tokens": 2048, "transformers_version": "4.37.0"})";

// Qwen/Qwen3-0.6B: head_dim 128 although hidden_size / heads = 64.
const char* kQwen3Config = R"({
  "architectures": ["Qwen3ForCausalLM"], "attention_bias": false, "attention_dropout": 0.0,
  "bos_token_id": 151643, "eos_token_id": 151645, "head_dim": 128, "hidden_act": "silu", "hidden_size": 1024,
  "initializer_range": 0.02, "intermediate_size": 3072, "max_position_embeddings": 40960,
  "max_window_layers": 28, "model_type": "qwen3", "num_attention_heads": 16, "num_hidden_layers": 28,
  "num_key_value_heads": 8, "rms_norm_eps": 1e-06, "rope_scaling": null, "rope_theta": 1000000,
  "sliding_window": null, "tie_word_embeddings": true, "torch_dtype": "bfloat16",
  "transformers_version": "4.51.0", "use_cache": true, "use_sliding_window": false, "vocab_size": 151936})";
const char* kQwen3Generation = R"({"bos_token_id": 151643, "do_sample": true, "eos_token_id": [151645, 151643],
  "pad_token_id": 151643, "temperature": 0.6, "top_k": 20, "top_p": 0.95, "transformers_version": "4.51.0"})";

// openai-community/gpt2
const char* kGpt2Config = R"({
  "activation_function": "gelu_new", "architectures": ["GPT2LMHeadModel"], "attn_pdrop": 0.1,
  "bos_token_id": 50256, "embd_pdrop": 0.1, "eos_token_id": 50256, "initializer_range": 0.02,
  "layer_norm_epsilon": 1e-05, "model_type": "gpt2", "n_ctx": 1024, "n_embd": 768, "n_head": 12,
  "n_layer": 12, "n_positions": 1024, "resid_pdrop": 0.1, "summary_activation": null,
  "summary_first_dropout": 0.1, "summary_proj_to_labels": true, "summary_type": "cls_index",
  "summary_use_proj": true, "task_specific_params": {"text-generation": {"do_sample": true, "max_length": 50}},
  "vocab_size": 50257})";
const char* kGpt2Generation = R"({"_from_model_config": true, "bos_token_id": 50256, "eos_token_id": 50256,
  "transformers_version": "4.26.0.dev0"})";

// Replaces the first occurrence of `from` (which must exist) in a config text.
std::string edit(std::string text, const std::string& from, const std::string& to) {
  size_t at = text.find(from);
  EXPECT_NE(at, std::string::npos) << from;
  if (at != std::string::npos) text.replace(at, from.size(), to);
  return text;
}

TEST(ModelSpec, Llama2_7b) {
  ModelSpec s = parse_model_spec(kLlama2Config, kLlama2Generation, "config.json");
  EXPECT_EQ(s.architecture, "LlamaForCausalLM");
  EXPECT_EQ(s.model_type, "llama");
  EXPECT_EQ(s.vocab_size, 32000);
  EXPECT_EQ(s.hidden_size, 4096);
  EXPECT_EQ(s.num_layers, 32);
  EXPECT_EQ(s.num_heads, 32);
  EXPECT_EQ(s.num_kv_heads, 32);
  EXPECT_EQ(s.head_dim, 128);
  EXPECT_EQ(s.intermediate_size, 11008);
  EXPECT_EQ(s.max_position_embeddings, 4096);
  EXPECT_EQ(s.norm, NormKind::RMSNorm);
  EXPECT_DOUBLE_EQ(s.norm_eps, 1e-5);
  EXPECT_EQ(s.mlp, MlpKind::GatedSiLU);
  EXPECT_EQ(s.position, PositionKind::Rotary);
  EXPECT_DOUBLE_EQ(s.rope_theta, 10000.0);
  EXPECT_EQ(s.rope_scaling.kind, RopeScalingKind::None);
  EXPECT_EQ(s.sliding_window, 0);
  EXPECT_FALSE(s.tied_embeddings);
  EXPECT_FALSE(s.qkv_bias);
  EXPECT_FALSE(s.output_bias);
  EXPECT_FALSE(s.mlp_bias);
  EXPECT_FALSE(s.qk_norm);
  EXPECT_EQ(s.dtype, DType::F16);
  EXPECT_EQ(s.bos_token_id, 1);
  EXPECT_EQ(s.eos_token_ids, (std::vector<int64_t>{2}));
  EXPECT_EQ(s.pad_token_id, 0);  // only in generation_config.json
  EXPECT_TRUE(s.generation.do_sample);
  EXPECT_DOUBLE_EQ(s.generation.temperature, 0.6);
  EXPECT_DOUBLE_EQ(s.generation.top_p, 0.9);
  EXPECT_EQ(s.generation.top_k, 0);
  EXPECT_DOUBLE_EQ(s.generation.min_p, 0.0);
  EXPECT_DOUBLE_EQ(s.generation.repetition_penalty, 1.0);
  EXPECT_EQ(s.generation.max_new_tokens, 0);
  EXPECT_EQ(s.q_dim(), 4096);
  EXPECT_EQ(s.kv_dim(), 4096);
  EXPECT_EQ(s.parameter_count(), 6'738'415'616);
}

void expect_llama32(const ModelSpec& s) {
  EXPECT_EQ(s.architecture, "LlamaForCausalLM");
  EXPECT_EQ(s.model_type, "llama");
  EXPECT_EQ(s.vocab_size, 128256);
  EXPECT_EQ(s.hidden_size, 2048);
  EXPECT_EQ(s.num_layers, 16);
  EXPECT_EQ(s.num_heads, 32);
  EXPECT_EQ(s.num_kv_heads, 8);
  EXPECT_EQ(s.head_dim, 64);
  EXPECT_EQ(s.intermediate_size, 8192);
  EXPECT_EQ(s.max_position_embeddings, 131072);
  EXPECT_EQ(s.norm, NormKind::RMSNorm);
  EXPECT_DOUBLE_EQ(s.norm_eps, 1e-5);
  EXPECT_EQ(s.mlp, MlpKind::GatedSiLU);
  EXPECT_EQ(s.position, PositionKind::Rotary);
  EXPECT_DOUBLE_EQ(s.rope_theta, 500000.0);
  EXPECT_EQ(s.rope_scaling.kind, RopeScalingKind::Llama3);
  EXPECT_DOUBLE_EQ(s.rope_scaling.factor, 32.0);
  EXPECT_DOUBLE_EQ(s.rope_scaling.low_freq_factor, 1.0);
  EXPECT_DOUBLE_EQ(s.rope_scaling.high_freq_factor, 4.0);
  EXPECT_EQ(s.rope_scaling.original_max_position, 8192);
  EXPECT_EQ(s.sliding_window, 0);
  EXPECT_TRUE(s.tied_embeddings);
  EXPECT_FALSE(s.qkv_bias);
  EXPECT_FALSE(s.output_bias);
  EXPECT_FALSE(s.mlp_bias);
  EXPECT_FALSE(s.qk_norm);
  EXPECT_EQ(s.dtype, DType::BF16);
  EXPECT_EQ(s.bos_token_id, 128000);
  EXPECT_EQ(s.eos_token_ids, (std::vector<int64_t>{128001, 128008, 128009}));
  EXPECT_EQ(s.pad_token_id, std::nullopt);
  EXPECT_TRUE(s.generation.do_sample);
  EXPECT_DOUBLE_EQ(s.generation.temperature, 0.6);
  EXPECT_DOUBLE_EQ(s.generation.top_p, 0.9);
  EXPECT_EQ(s.q_dim(), 2048);
  EXPECT_EQ(s.kv_dim(), 512);
  EXPECT_EQ(s.parameter_count(), 1'235'814'400);
}

TEST(ModelSpec, Llama32_1bWithRopeScaling) {
  expect_llama32(parse_model_spec(kLlama32Config, kLlama32Generation, "config.json"));
}

TEST(ModelSpec, Llama32_1bWithTransformers5RopeParameters) {
  expect_llama32(parse_model_spec(kLlama32ConfigV5, kLlama32Generation, "config.json"));
}

TEST(ModelSpec, RopeScalingKindUnderLegacyTypeKeyAndLinear) {
  ModelSpec s = parse_model_spec(
      edit(kLlama2Config, R"("rope_scaling": null)", R"("rope_scaling": {"type": "linear", "factor": 4.0})"), "",
      "config.json");
  EXPECT_EQ(s.rope_scaling.kind, RopeScalingKind::Linear);
  EXPECT_DOUBLE_EQ(s.rope_scaling.factor, 4.0);
  s = parse_model_spec(
      edit(kLlama2Config, R"("rope_scaling": null)",
           R"("rope_parameters": {"rope_type": "default", "rope_theta": 250000.0})"),
      "", "config.json");
  EXPECT_EQ(s.rope_scaling.kind, RopeScalingKind::None);
  EXPECT_DOUBLE_EQ(s.rope_theta, 250000.0);
}

TEST(ModelSpec, UnsupportedOrIncompleteRopeScalingIsNamed) {
  std::string msg = error_of([] {
    parse_model_spec(edit(kLlama2Config, R"("rope_scaling": null)", R"("rope_scaling": {"rope_type": "yarn", "factor": 4.0})"),
                     "", "config.json");
  });
  EXPECT_HAS(msg, "config.json: field 'rope_scaling.rope_type' is 'yarn'");
  msg = error_of([] { parse_model_spec(edit(kLlama32ConfigV5, R"("low_freq_factor": 1.0,)", ""), "", "config.json"); });
  EXPECT_EQ(msg, "config.json: field 'rope_parameters.low_freq_factor' is missing (required for rope_type 'llama3')");
}

TEST(ModelSpec, Mistral7b) {
  ModelSpec s = parse_model_spec(kMistralConfig, "", "config.json");
  EXPECT_EQ(s.architecture, "MistralForCausalLM");
  EXPECT_EQ(s.model_type, "mistral");
  EXPECT_EQ(s.vocab_size, 32000);
  EXPECT_EQ(s.hidden_size, 4096);
  EXPECT_EQ(s.num_layers, 32);
  EXPECT_EQ(s.num_heads, 32);
  EXPECT_EQ(s.num_kv_heads, 8);
  EXPECT_EQ(s.head_dim, 128);
  EXPECT_EQ(s.intermediate_size, 14336);
  EXPECT_EQ(s.max_position_embeddings, 32768);
  EXPECT_EQ(s.norm, NormKind::RMSNorm);
  EXPECT_DOUBLE_EQ(s.norm_eps, 1e-5);
  EXPECT_EQ(s.mlp, MlpKind::GatedSiLU);
  EXPECT_EQ(s.position, PositionKind::Rotary);
  EXPECT_DOUBLE_EQ(s.rope_theta, 10000.0);
  EXPECT_EQ(s.rope_scaling.kind, RopeScalingKind::None);
  EXPECT_EQ(s.sliding_window, 4096);
  EXPECT_FALSE(s.tied_embeddings);
  EXPECT_FALSE(s.qkv_bias);
  EXPECT_FALSE(s.output_bias);
  EXPECT_FALSE(s.mlp_bias);
  EXPECT_FALSE(s.qk_norm);
  EXPECT_EQ(s.dtype, DType::BF16);
  EXPECT_EQ(s.bos_token_id, 1);
  EXPECT_EQ(s.eos_token_ids, (std::vector<int64_t>{2}));
  EXPECT_EQ(s.pad_token_id, std::nullopt);
  EXPECT_FALSE(s.generation.do_sample);
  EXPECT_EQ(s.parameter_count(), 7'241'732'096);
  // Mistral 7B v0.2 and later drop the window: null.
  EXPECT_EQ(parse_model_spec(edit(kMistralConfig, "\"sliding_window\": 4096", "\"sliding_window\": null"), "",
                             "config.json")
                .sliding_window,
            0);
}

TEST(ModelSpec, Qwen25_05b) {
  ModelSpec s = parse_model_spec(kQwen25Config, kQwen25Generation, "config.json");
  EXPECT_EQ(s.architecture, "Qwen2ForCausalLM");
  EXPECT_EQ(s.model_type, "qwen2");
  EXPECT_EQ(s.vocab_size, 151936);
  EXPECT_EQ(s.hidden_size, 896);
  EXPECT_EQ(s.num_layers, 24);
  EXPECT_EQ(s.num_heads, 14);
  EXPECT_EQ(s.num_kv_heads, 2);
  EXPECT_EQ(s.head_dim, 64);
  EXPECT_EQ(s.intermediate_size, 4864);
  EXPECT_EQ(s.max_position_embeddings, 32768);
  EXPECT_EQ(s.norm, NormKind::RMSNorm);
  EXPECT_DOUBLE_EQ(s.norm_eps, 1e-6);
  EXPECT_EQ(s.mlp, MlpKind::GatedSiLU);
  EXPECT_EQ(s.position, PositionKind::Rotary);
  EXPECT_DOUBLE_EQ(s.rope_theta, 1e6);
  EXPECT_EQ(s.rope_scaling.kind, RopeScalingKind::None);
  EXPECT_EQ(s.sliding_window, 0);  // use_sliding_window is false
  EXPECT_TRUE(s.tied_embeddings);
  EXPECT_TRUE(s.qkv_bias);
  EXPECT_FALSE(s.output_bias);
  EXPECT_FALSE(s.mlp_bias);
  EXPECT_FALSE(s.qk_norm);
  EXPECT_EQ(s.dtype, DType::BF16);
  EXPECT_EQ(s.bos_token_id, 151643);
  EXPECT_EQ(s.eos_token_ids, (std::vector<int64_t>{151643}));
  EXPECT_EQ(s.pad_token_id, std::nullopt);
  EXPECT_FALSE(s.generation.do_sample);
  EXPECT_EQ(s.generation.max_new_tokens, 2048);
  EXPECT_EQ(s.parameter_count(), 494'032'768);
}

TEST(ModelSpec, QwenSlidingWindowOnlyWhenSwitchedOnForAllLayers) {
  std::string on = edit(kQwen25Config, "\"use_sliding_window\": false", "\"use_sliding_window\": true");
  EXPECT_EQ(parse_model_spec(edit(on, "\"max_window_layers\": 24", "\"max_window_layers\": 0"), "", "c/config.json")
                .sliding_window,
            32768);
  // Layers below max_window_layers attend fully: with max_window_layers = num layers, none slide.
  EXPECT_EQ(parse_model_spec(on, "", "config.json").sliding_window, 0);
  std::string msg = error_of([&] {
    parse_model_spec(edit(on, "\"max_window_layers\": 24", "\"max_window_layers\": 12"), "", "config.json");
  });
  EXPECT_HAS(msg, "config.json: 12 of 24 layers use sliding-window attention");
}

TEST(ModelSpec, Qwen3_06b) {
  ModelSpec s = parse_model_spec(kQwen3Config, kQwen3Generation, "config.json");
  EXPECT_EQ(s.architecture, "Qwen3ForCausalLM");
  EXPECT_EQ(s.model_type, "qwen3");
  EXPECT_EQ(s.vocab_size, 151936);
  EXPECT_EQ(s.hidden_size, 1024);
  EXPECT_EQ(s.num_layers, 28);
  EXPECT_EQ(s.num_heads, 16);
  EXPECT_EQ(s.num_kv_heads, 8);
  EXPECT_EQ(s.head_dim, 128);
  EXPECT_EQ(s.intermediate_size, 3072);
  EXPECT_EQ(s.max_position_embeddings, 40960);
  EXPECT_EQ(s.norm, NormKind::RMSNorm);
  EXPECT_DOUBLE_EQ(s.norm_eps, 1e-6);
  EXPECT_EQ(s.mlp, MlpKind::GatedSiLU);
  EXPECT_EQ(s.position, PositionKind::Rotary);
  EXPECT_DOUBLE_EQ(s.rope_theta, 1e6);
  EXPECT_EQ(s.rope_scaling.kind, RopeScalingKind::None);
  EXPECT_EQ(s.sliding_window, 0);
  EXPECT_TRUE(s.tied_embeddings);
  EXPECT_FALSE(s.qkv_bias);
  EXPECT_FALSE(s.output_bias);
  EXPECT_FALSE(s.mlp_bias);
  EXPECT_TRUE(s.qk_norm);
  EXPECT_EQ(s.dtype, DType::BF16);
  EXPECT_EQ(s.bos_token_id, 151643);
  EXPECT_EQ(s.eos_token_ids, (std::vector<int64_t>{151645, 151643}));
  EXPECT_EQ(s.pad_token_id, 151643);
  EXPECT_TRUE(s.generation.do_sample);
  EXPECT_DOUBLE_EQ(s.generation.temperature, 0.6);
  EXPECT_DOUBLE_EQ(s.generation.top_p, 0.95);
  EXPECT_EQ(s.generation.top_k, 20);
  EXPECT_EQ(s.q_dim(), 2048);
  EXPECT_EQ(s.kv_dim(), 1024);
  EXPECT_EQ(s.parameter_count(), 596'049'920);
  // attention_bias switches on q, k, v and o biases together.
  ModelSpec biased = parse_model_spec(edit(kQwen3Config, "\"attention_bias\": false", "\"attention_bias\": true"), "",
                                      "config.json");
  EXPECT_TRUE(biased.qkv_bias);
  EXPECT_TRUE(biased.output_bias);
}

TEST(ModelSpec, Gpt2) {
  ModelSpec s = parse_model_spec(kGpt2Config, kGpt2Generation, "config.json");
  EXPECT_EQ(s.architecture, "GPT2LMHeadModel");
  EXPECT_EQ(s.model_type, "gpt2");
  EXPECT_EQ(s.vocab_size, 50257);
  EXPECT_EQ(s.hidden_size, 768);
  EXPECT_EQ(s.num_layers, 12);
  EXPECT_EQ(s.num_heads, 12);
  EXPECT_EQ(s.num_kv_heads, 12);
  EXPECT_EQ(s.head_dim, 64);
  EXPECT_EQ(s.intermediate_size, 3072);  // n_inner absent: 4 * n_embd
  EXPECT_EQ(s.max_position_embeddings, 1024);
  EXPECT_EQ(s.norm, NormKind::LayerNorm);
  EXPECT_DOUBLE_EQ(s.norm_eps, 1e-5);
  EXPECT_EQ(s.mlp, MlpKind::GeluTanh);
  EXPECT_EQ(s.position, PositionKind::Learned);
  EXPECT_EQ(s.rope_scaling.kind, RopeScalingKind::None);
  EXPECT_EQ(s.sliding_window, 0);
  EXPECT_TRUE(s.tied_embeddings);
  EXPECT_TRUE(s.qkv_bias);
  EXPECT_TRUE(s.output_bias);
  EXPECT_TRUE(s.mlp_bias);
  EXPECT_FALSE(s.qk_norm);
  EXPECT_EQ(s.dtype, DType::F32);  // no torch_dtype: transformers' default
  EXPECT_EQ(s.bos_token_id, 50256);
  EXPECT_EQ(s.eos_token_ids, (std::vector<int64_t>{50256}));
  EXPECT_EQ(s.pad_token_id, std::nullopt);
  EXPECT_EQ(s.parameter_count(), 124'439'808);

  EXPECT_EQ(parse_model_spec(edit(kGpt2Config, "\"n_ctx\"", "\"n_inner\": null, \"n_ctx\""), "", "config.json")
                .intermediate_size,
            3072);
  EXPECT_EQ(parse_model_spec(edit(kGpt2Config, "\"gelu_new\"", "\"gelu_pytorch_tanh\""), "", "config.json").mlp,
            MlpKind::GeluTanh);
  std::string msg = error_of([] { parse_model_spec(edit(kGpt2Config, "\"gelu_new\"", "\"relu\""), "", "config.json"); });
  EXPECT_HAS(msg, "config.json: field 'activation_function' is 'relu'");
}

TEST(ModelSpec, GenerationConfigMergesEosAndFillsNulls) {
  ModelSpec s = parse_model_spec(
      edit(kQwen3Config, "\"eos_token_id\": 151645", "\"eos_token_id\": [151645, 7]"),
      R"({"eos_token_id": [151643, 151645, 7, 9], "max_new_tokens": null, "min_p": 0.05,
          "repetition_penalty": 1.1, "top_k": 40, "temperature": 0.7, "do_sample": true})",
      "config.json");
  EXPECT_EQ(s.eos_token_ids, (std::vector<int64_t>{151645, 7, 151643, 9}));
  EXPECT_EQ(s.generation.max_new_tokens, 0);
  EXPECT_DOUBLE_EQ(s.generation.min_p, 0.05);
  EXPECT_DOUBLE_EQ(s.generation.repetition_penalty, 1.1);
  EXPECT_EQ(s.generation.top_k, 40);
  EXPECT_DOUBLE_EQ(s.generation.temperature, 0.7);
  EXPECT_TRUE(s.generation.do_sample);
  // config.json's bos wins; the generation config only fills what config.json lacks.
  EXPECT_EQ(s.bos_token_id, 151643);

  std::string msg = error_of([] { parse_model_spec(kQwen3Config, R"({"top_k": "many"})", "m/config.json"); });
  EXPECT_EQ(msg, "m/generation_config.json: field 'top_k' must be an integer, got string \"many\"");
}

TEST(ModelSpec, LoadsFromDirectory) {
  test::TempDir dir;
  test::write_file(dir.file("config.json"), kQwen3Config);
  EXPECT_EQ(load_model_spec(dir.str()).eos_token_ids, (std::vector<int64_t>{151645}));
  test::write_file(dir.file("generation_config.json"), kQwen3Generation);
  EXPECT_EQ(load_model_spec(dir.str()).eos_token_ids, (std::vector<int64_t>{151645, 151643}));
  test::write_file(dir.file("generation_config.json"), "{oops");
  EXPECT_HAS(error_of([&] { load_model_spec(dir.str()); }), dir.file("generation_config.json") + ": not valid JSON");
  test::TempDir empty;
  EXPECT_HAS(error_of([&] { load_model_spec(empty.str()); }), empty.str() + ": no config.json");
}

TEST(ModelSpec, UnknownArchitectureListsSupported) {
  std::string msg = error_of([] {
    parse_model_spec(edit(kLlama2Config, "LlamaForCausalLM", "GemmaForCausalLM"), "", "config.json");
  });
  EXPECT_HAS(msg, "config.json: architecture 'GemmaForCausalLM' is not supported");
  for (const std::string& name : supported_architectures()) EXPECT_HAS(msg, name);
  EXPECT_EQ(supported_architectures().size(), 5u);

  msg = error_of([] { parse_model_spec(edit(kLlama2Config, "\"architectures\"", "\"archs\""), "", "config.json"); });
  EXPECT_HAS(msg, "config.json: field 'architectures' is missing");
  EXPECT_HAS(msg, "GPT2LMHeadModel");
}

TEST(ModelSpec, MissingFieldIsNamed) {
  std::string msg = error_of([] { parse_model_spec(edit(kLlama2Config, "\"hidden_size\": 4096,", ""), "", "config.json"); });
  EXPECT_EQ(msg, "config.json: field 'hidden_size' is missing (required for LlamaForCausalLM)");
  msg = error_of([] { parse_model_spec(edit(kGpt2Config, "\"n_head\": 12,", ""), "", "config.json"); });
  EXPECT_EQ(msg, "config.json: field 'n_head' is missing (required for GPT2LMHeadModel)");
  msg = error_of([] {
    parse_model_spec(edit(kMistralConfig, "\"vocab_size\": 32000", "\"vocab_size\": null"), "", "config.json");
  });
  EXPECT_EQ(msg, "config.json: field 'vocab_size' is null (required for MistralForCausalLM)");
}

TEST(ModelSpec, WrongTypeIsNamed) {
  std::string msg = error_of([] {
    parse_model_spec(edit(kLlama2Config, "\"num_hidden_layers\": 32", "\"num_hidden_layers\": \"32\""), "", "config.json");
  });
  EXPECT_EQ(msg, "config.json: field 'num_hidden_layers' must be an integer, got string \"32\"");
  msg = error_of([] {
    parse_model_spec(edit(kLlama2Config, "\"tie_word_embeddings\": false", "\"tie_word_embeddings\": 0"), "",
                     "config.json");
  });
  EXPECT_EQ(msg, "config.json: field 'tie_word_embeddings' must be a boolean, got number 0");
  msg = error_of([] {
    parse_model_spec(edit(kLlama2Config, "\"intermediate_size\": 11008", "\"intermediate_size\": 11008.5"), "",
                     "config.json");
  });
  EXPECT_HAS(msg, "field 'intermediate_size' must be an integer");
  msg = error_of([] { parse_model_spec(edit(kLlama2Config, "\"float16\"", "\"float12\""), "", "config.json"); });
  EXPECT_HAS(msg, "config.json: field 'torch_dtype' is 'float12'");
  EXPECT_HAS(error_of([] { parse_model_spec("[1]", "", "config.json"); }), "config.json: must be a JSON object");
  EXPECT_HAS(error_of([] { parse_model_spec("{", "", "config.json"); }), "config.json: not valid JSON");
}

TEST(ModelSpec, SanityChecks) {
  auto error_with = [](const std::string& from, const std::string& to) {
    return error_of([&] { parse_model_spec(edit(kMistralConfig, from, to), "", "config.json"); });
  };
  EXPECT_HAS(error_with("\"num_key_value_heads\": 8", "\"num_key_value_heads\": 5"),
             "num_attention_heads (32) is not a multiple of num_key_value_heads (5)");
  EXPECT_HAS(error_with("\"num_attention_heads\": 32", "\"num_attention_heads\": 30"),
             "hidden_size (4096) is not a multiple of num_attention_heads (30)");
  EXPECT_HAS(error_with("\"vocab_size\": 32000", "\"vocab_size\": 0"), "vocab_size must be positive, got 0");
  EXPECT_HAS(error_with("\"num_hidden_layers\": 32", "\"num_hidden_layers\": -1"), "num_layers must be positive");
  EXPECT_HAS(error_with("\"rms_norm_eps\": 1e-05", "\"rms_norm_eps\": 0"), "norm epsilon must be positive");
  EXPECT_HAS(error_with("\"hidden_act\": \"silu\"", "\"hidden_act\": \"gelu\""), "field 'hidden_act' is 'gelu'");
  // Sizes beyond any model: refused before anything multiplies them (found by the config fuzzer, as signed
  // overflow in the parameter count).
  EXPECT_HAS(error_with("\"num_hidden_layers\": 32", "\"num_hidden_layers\": 100000"),
             "num_layers is 100000, larger than any model this engine runs (at most 4096)");
  EXPECT_HAS(error_with("\"vocab_size\": 32000", "\"vocab_size\": 1099511627776"),
             "vocab_size is 1099511627776, larger than any model this engine runs (at most 16777216)");
  EXPECT_HAS(error_with("\"intermediate_size\": 14336", "\"intermediate_size\": 4611686018427387904"),
             "intermediate_size is 4611686018427387904");
  EXPECT_HAS(error_with("\"max_position_embeddings\": 32768", "\"max_position_embeddings\": 4294967296"),
             "max_position_embeddings is 4294967296");
}

TEST(ModelSpec, ParameterCountsCountBiasesAndTiedEmbeddingsOnce) {
  ModelSpec qwen3 = parse_model_spec(kQwen3Config, "", "config.json");
  ModelSpec untied = parse_model_spec(edit(kQwen3Config, "\"tie_word_embeddings\": true", "\"tie_word_embeddings\": false"),
                                      "", "config.json");
  EXPECT_EQ(untied.parameter_count() - qwen3.parameter_count(), 151936 * 1024);
  ModelSpec biased = parse_model_spec(edit(kLlama2Config, "\"pretraining_tp\": 1",
                                           "\"attention_bias\": true, \"mlp_bias\": true"),
                                      "", "config.json");
  ModelSpec plain = parse_model_spec(kLlama2Config, "", "config.json");
  // Per layer: q, k, v, o biases (4 * 4096) and gate, up (2 * 11008), down (4096).
  EXPECT_EQ(biased.parameter_count() - plain.parameter_count(), 32 * (4 * 4096 + 2 * 11008 + 4096));
}

}  // namespace
}  // namespace roofline
