// Single-sequence generation on top of Decoder: prefill the prompt, then sample token by token until an
// EOS id, a stop string or the token limit. Streaming callers get text pieces as they become final.
#pragma once
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "roofline/engine/sampler.h"
#include "roofline/model/decoder.h"
#include "roofline/tokenizer/tokenizer.h"

namespace roofline {

struct GenerateOptions {
  int64_t max_new_tokens = 128;
  SamplingParams sampling;
  std::vector<std::string> stop_strings;  // generation ends before the first occurrence; text excludes it
  std::vector<int32_t> eos_ids;           // generation ends after any of these (the id is kept in ids)
  int64_t context_length = 0;             // KV capacity; 0: prompt + max_new_tokens
};

struct GenerateResult {
  std::vector<int32_t> ids;  // generated ids only
  std::string text;          // decoded generated text (special tokens skipped), cut at a stop string
  std::string finish_reason; // "eos", "stop" (stop string) or "length"
  int64_t prompt_tokens = 0;
  double prefill_seconds = 0, decode_seconds = 0;  // decode: from the first to the last generated token
};

// on_text (optional) receives the text as it becomes final; it never includes a stop string or text
// that could still turn out to begin one.
GenerateResult generate(Decoder& decoder, const Tokenizer* tokenizer, const std::vector<int32_t>& prompt,
                        const GenerateOptions& options,
                        const std::function<void(std::string_view)>& on_text = nullptr);

}  // namespace roofline
