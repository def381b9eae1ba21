// From a parsed OpenAI request to what the engine runs: prompt tokens, max_tokens and sampling settings,
// checked against the model (vocabulary, context length, chat template).
#pragma once
#include <cstdint>
#include <string>

#include "roofline/model/model_spec.h"
#include "roofline/server/engine.h"
#include "roofline/server/openai_protocol.h"
#include "roofline/tokenizer/chat_template.h"
#include "roofline/tokenizer/tokenizer.h"

namespace roofline::server {

// What the HTTP layer knows about the model it serves.
struct ServedModel {
  std::string name;                             // the id clients pass as "model"
  const Tokenizer* tokenizer = nullptr;         // required
  const ChatTemplate* chat_template = nullptr;  // null: /v1/chat/completions answers 400
  int64_t context_length = 0;                   // max_position_embeddings; 0: unknown
  int64_t vocab_size = 0;
  GenerationDefaults generation;  // generation_config.json
};

// Throws ApiError (400) for a prompt that is empty, has ids outside the vocabulary or is longer than the
// context, for prompt + max_tokens past the context (both counts in the message), and for a chat request
// to a model without a chat template or whose template fails.
//  - completions: a text prompt is encoded with the tokenizer's special tokens (BOS), as HF does; ids are
//    used as given. max_tokens defaults to 16 (OpenAI's default).
//  - chat: messages go through the chat template (add_generation_prompt) and are encoded without adding
//    special tokens (the template holds them). max_tokens defaults to the rest of the context.
//  - unset sampling fields take OpenAI's defaults (temperature 1, top_p 1), or the model's
//    generation_config when it sets do_sample; no seed draws a random one.
GenerationRequest build_generation_request(const ParsedRequest& request, const ServedModel& model);

}  // namespace roofline::server
