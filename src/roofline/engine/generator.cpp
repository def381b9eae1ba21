#include "roofline/engine/generator.h"

#include <algorithm>
#include <chrono>

#include "roofline/core/error.h"

namespace roofline {

namespace {
double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// Length of the longest suffix of `text` that is a proper prefix of some stop string: that much text
// must be held back, since the next token may complete a stop string.
size_t held_back(const std::string& text, const std::vector<std::string>& stops) {
  size_t hold = 0;
  for (const std::string& s : stops)
    for (size_t len = std::min(s.size() - 1, text.size()); len > hold; --len)
      if (text.compare(text.size() - len, len, s, 0, len) == 0) {
        hold = len;
        break;
      }
  return hold;
}
}  // namespace

GenerateResult generate(Decoder& decoder, const Tokenizer* tokenizer, const std::vector<int32_t>& prompt,
                        const GenerateOptions& options, const std::function<void(std::string_view)>& on_text) {
  ROOFLINE_CHECK(!prompt.empty(), "the prompt is empty: give at least one token");
  ROOFLINE_CHECK(options.max_new_tokens >= 0, "max new tokens must be >= 0 (got {})", options.max_new_tokens);
  ROOFLINE_CHECK(options.stop_strings.empty() || tokenizer, "stop strings need a tokenizer");
  for (const std::string& s : options.stop_strings) ROOFLINE_CHECK(!s.empty(), "a stop string is empty");
  const ModelSpec& spec = decoder.spec();
  int64_t capacity = options.context_length > 0 ? options.context_length
                                                : int64_t(prompt.size()) + std::max<int64_t>(options.max_new_tokens, 1);
  if (spec.max_position_embeddings > 0 && int64_t(prompt.size()) > spec.max_position_embeddings)
    fail("the prompt has {} tokens but the model's context is {} tokens", prompt.size(), spec.max_position_embeddings);
  if (spec.max_position_embeddings > 0) capacity = std::min(capacity, spec.max_position_embeddings);
  KvCache cache = decoder.new_cache(capacity);
  Sampler sampler(options.sampling);

  GenerateResult result;
  result.prompt_tokens = int64_t(prompt.size());
  std::vector<int32_t> context = prompt;
  std::string text;       // decoded generated text so far
  size_t emitted = 0;     // bytes of text handed to on_text
  std::unique_ptr<DecodeStream> stream;
  if (tokenizer) stream = std::make_unique<DecodeStream>(*tokenizer, /*skip_special_tokens=*/true);

  auto t0 = std::chrono::steady_clock::now();
  const Tensor* logits = &decoder.forward(prompt, cache, /*all_logits=*/false);
  result.prefill_seconds = seconds_since(t0);
  auto t_decode = std::chrono::steady_clock::now();
  std::vector<float> row(size_t(spec.vocab_size));
  result.finish_reason = "length";
  for (int64_t step = 0; step < options.max_new_tokens; ++step) {
    std::copy_n(logits->ptr<float>(), row.size(), row.begin());
    int32_t id = sampler.sample(row, context, prompt.size());
    result.ids.push_back(id);
    context.push_back(id);
    if (stream) text += stream->push(id);
    if (std::find(options.eos_ids.begin(), options.eos_ids.end(), id) != options.eos_ids.end()) {
      result.finish_reason = "eos";
      break;
    }
    bool stopped = false;
    for (const std::string& s : options.stop_strings) {
      size_t at = text.find(s, emitted > s.size() ? emitted - s.size() : 0);
      if (at != std::string::npos) {
        text.resize(at);
        stopped = true;
      }
    }
    if (stopped) {
      result.finish_reason = "stop";
      break;
    }
    if (on_text) {
      size_t safe = text.size() - held_back(text, options.stop_strings);
      if (safe > emitted) {
        on_text(std::string_view(text).substr(emitted, safe - emitted));
        emitted = safe;
      }
    }
    if (step + 1 == options.max_new_tokens) break;
    if (cache.length >= cache.capacity) break;  // context full
    logits = &decoder.forward(std::span<const int32_t>(&id, 1), cache, false);
  }
  if (stream && result.finish_reason != "stop") text += stream->flush();
  result.decode_seconds = seconds_since(t_decode);
  if (on_text && text.size() > emitted) on_text(std::string_view(text).substr(emitted));
  result.text = std::move(text);
  return result;
}

}  // namespace roofline
