#include "roofline/engine/generator.h"

#include <algorithm>
#include <chrono>
#include <optional>

#include "roofline/core/error.h"
#include "roofline/engine/stop_text_stream.h"

namespace roofline {

namespace {
double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
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
  std::string text;  // generated text handed out so far (special tokens skipped, cut at a stop string)
  std::unique_ptr<StopTextStream> stream;
  if (tokenizer) stream = std::make_unique<StopTextStream>(*tokenizer, options.stop_strings);
  auto emit = [&](const std::string& piece) {
    if (piece.empty()) return;
    text += piece;
    if (on_text) on_text(piece);
  };

  // On a device backend, tokens are chosen there and only the id comes back, unless a penalty (which needs
  // the token history) asks for the host sampler.
  Backend& backend = decoder.backend();
  const SamplingParams& sp = options.sampling;
  const bool device_sampling = backend.device() != Device::CPU && !sp.uses_history();
  Tensor device_id, host_id;
  if (device_sampling) {
    device_id = backend.alloc(DType::I32, {1});
    host_id = Tensor::empty(DType::I32, {1});
  }
  auto run = [&](std::span<const int32_t> tokens) {
    return device_sampling ? &decoder.forward_on_device(tokens, cache, false) : &decoder.forward(tokens, cache, false);
  };
  auto choose = [&](const Tensor& logits, std::vector<float>& row, int64_t step) {
    if (!device_sampling) {
      std::copy_n(logits.ptr<float>(), row.size(), row.begin());
      return sampler.sample(row, context, prompt.size());
    }
    backend.sample(device_id, logits, sp.on_device(uint64_t(step)));  // greedy settings take the argmax
    backend.download(device_id, host_id);
    return host_id.ptr<int32_t>()[0];
  };

  // The profile's phase (PhaseScope): choosing a token belongs to the step whose logits it reads.
  std::optional<PhaseScope> phase;
  phase.emplace("prefill");
  auto t0 = std::chrono::steady_clock::now();
  const Tensor* logits = run(prompt);
  if (device_sampling) backend.synchronize();
  result.prefill_seconds = seconds_since(t0);
  auto t_decode = std::chrono::steady_clock::now();
  std::vector<float> row(device_sampling ? 0 : size_t(spec.vocab_size));
  result.finish_reason = "length";
  for (int64_t step = 0; step < options.max_new_tokens; ++step) {
    int32_t id = choose(*logits, row, step);
    result.ids.push_back(id);
    context.push_back(id);
    if (stream) emit(stream->push(id));
    if (std::find(options.eos_ids.begin(), options.eos_ids.end(), id) != options.eos_ids.end()) {
      result.finish_reason = "eos";
      break;
    }
    if (stream && stream->stopped()) {
      result.finish_reason = "stop";
      break;
    }
    if (step + 1 == options.max_new_tokens) break;
    if (cache.length >= cache.capacity) break;  // context full
    phase.emplace("decode");  // ends the previous step's scope first
    logits = run(std::span<const int32_t>(&id, 1));
  }
  if (stream && !stream->stopped()) emit(stream->finish());
  result.decode_seconds = seconds_since(t_decode);
  result.text = std::move(text);
  return result;
}

}  // namespace roofline
