#include "roofline/server/prompt_builder.h"

#include <random>

#include <fmt/format.h>

#include "roofline/core/error.h"

namespace roofline::server {
namespace {

std::vector<int32_t> prompt_tokens(const ParsedRequest& r, const ServedModel& m) {
  if (r.endpoint == Endpoint::kCompletions) {
    if (!r.prompt_text) {
      for (int32_t id : r.prompt_ids)
        if (id >= m.vocab_size)
          throw invalid_request(
              fmt::format("'prompt' holds token id {}, outside the vocabulary of {} tokens", id, m.vocab_size),
              "prompt");
      return r.prompt_ids;
    }
    return m.tokenizer->encode(*r.prompt_text, /*add_special_tokens=*/true);
  }
  if (!m.chat_template)
    throw invalid_request(fmt::format("the model '{}' has no chat template (tokenizer_config.json chat_template); "
                                      "use /v1/completions", m.name), "messages");
  nlohmann::ordered_json variables = {{"messages", r.messages},
                                      {"add_generation_prompt", true},
                                      {"bos_token", m.tokenizer->config().bos_token},
                                      {"eos_token", m.tokenizer->config().eos_token}};
  if (!r.tools.is_null()) variables["tools"] = r.tools;
  std::string text;
  try {
    text = m.chat_template->render(variables);
  } catch (const Error& e) {  // raise_exception() in the template, or a message it cannot render
    throw invalid_request(fmt::format("the chat template rejected the messages: {}", e.what()), "messages");
  }
  return m.tokenizer->encode(text, /*add_special_tokens=*/false);
}

SamplingParams sampling_params(const ParsedRequest& r, const GenerationDefaults& g) {
  // The model's generation_config replaces OpenAI's defaults only when it asks for sampling.
  const bool model_samples = g.do_sample;
  SamplingParams p;
  p.temperature = r.temperature.value_or(model_samples ? g.temperature : 1.0);
  p.top_p = r.top_p.value_or(model_samples ? g.top_p : 1.0);
  p.top_k = r.top_k.value_or(model_samples ? g.top_k : 0);
  p.min_p = r.min_p.value_or(model_samples ? g.min_p : 0.0);
  p.repetition_penalty = r.repetition_penalty.value_or(g.repetition_penalty);
  p.presence_penalty = r.presence_penalty;
  p.frequency_penalty = r.frequency_penalty;
  if (r.seed) {
    p.seed = *r.seed;
  } else {
    std::random_device device;
    p.seed = uint64_t(device()) << 32 | device();
  }
  return p;
}

}  // namespace

GenerationRequest build_generation_request(const ParsedRequest& r, const ServedModel& m) {
  ROOFLINE_CHECK(m.tokenizer, "build_generation_request: the served model has no tokenizer");
  const char* prompt_param = r.endpoint == Endpoint::kChat ? "messages" : "prompt";
  GenerationRequest g;
  g.prompt = prompt_tokens(r, m);
  if (g.prompt.empty()) throw invalid_request("the prompt encodes to no tokens", prompt_param);
  const int64_t prompt = int64_t(g.prompt.size());
  const int64_t context = m.context_length;
  if (context > 0 && prompt >= context)
    throw invalid_request(fmt::format("This model's maximum context length is {} tokens. However, your prompt has {} "
                                      "tokens, which leaves no room for a completion. Please shorten the prompt.",
                                      context, prompt), prompt_param, "context_length_exceeded");
  const int64_t default_max = r.endpoint == Endpoint::kChat && context > 0 ? context - prompt : 16;
  const int64_t max_tokens = r.max_tokens ? *r.max_tokens : default_max;
  if (context > 0 && prompt + max_tokens > context)
    throw invalid_request(fmt::format("This model's maximum context length is {} tokens. However, you requested {} "
                                      "tokens ({} in the prompt, {} for the completion). Please reduce the prompt or "
                                      "max_tokens.", context, prompt + max_tokens, prompt, max_tokens),
                          r.max_tokens ? "max_tokens" : prompt_param, "context_length_exceeded");
  g.max_tokens = int(max_tokens);
  g.n = r.n;
  g.sampling = sampling_params(r, m.generation);
  g.stop = r.stop;
  g.ignore_eos = r.ignore_eos;
  g.logprobs = r.logprobs;
  return g;
}

}  // namespace roofline::server
