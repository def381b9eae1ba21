// OpenAI API responses in their exact shapes: whole bodies (text_completion, chat.completion), streamed
// chunks (text_completion, chat.completion.chunk) framed as server-sent events, usage and logprobs
// (legacy shape for completions, {"content": [...]} for chat).
//
// SSE framing: each event is one `data: <json>\n\n` (the JSON is dumped on one line, so it never holds a
// raw newline); the stream ends with `data: [DONE]\n\n`.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "roofline/server/openai_protocol.h"
#include "roofline/server/request_stream.h"
#include "roofline/tokenizer/tokenizer.h"

namespace roofline::server {

using Json = nlohmann::ordered_json;

// What every body and chunk of one response repeats.
struct ResponseMeta {
  std::string id;       // "cmpl-..." or "chatcmpl-..."
  int64_t created = 0;  // unix seconds
  std::string model;
  Endpoint endpoint = Endpoint::kCompletions;
  bool logprobs = false;       // the client asked for logprobs ("logprobs": null otherwise)
  bool include_usage = false;  // streaming: every chunk carries "usage": null, the last one the counts
};

struct Usage {
  int64_t prompt_tokens = 0, completion_tokens = 0;
};

// One choice of a finished non-streaming response.
struct ChoiceResult {
  std::string text;
  std::vector<TokenLogprob> logprobs;
  FinishReason finish = FinishReason::kNone;
};

// Formats logprobs; keeps each choice's text offset for the legacy shape's text_offset.
class LogprobFormatter {
 public:
  LogprobFormatter(const Tokenizer& tokenizer, Endpoint endpoint, int num_choices, size_t prompt_chars = 0)
      : tokenizer_(tokenizer), endpoint_(endpoint), offsets_(size_t(num_choices), prompt_chars) {}
  // Completions: {"tokens", "token_logprobs", "top_logprobs", "text_offset"}; chat: {"content": [...]}.
  Json format(int choice, const std::vector<TokenLogprob>& logprobs);

 private:
  Json chat_entry(int32_t id, float logprob) const;
  const Tokenizer& tokenizer_;
  Endpoint endpoint_;
  std::vector<size_t> offsets_;
};

std::string new_response_id(Endpoint endpoint);            // unique per process, unpredictable across restarts
std::string_view finish_reason_name(FinishReason reason);  // "stop", "length"; "" for kNone

Json usage_json(const Usage& usage);
Json response_body(const ResponseMeta& meta, const std::vector<ChoiceResult>& choices, const Usage& usage,
                   LogprobFormatter& logprobs);

// Streaming chunks. A chat stream opens each choice with a role chunk; every stream closes each choice with
// a finish chunk (empty delta or text, and finish_reason); include_usage adds a last chunk with no choices.
Json role_chunk(const ResponseMeta& meta, int index);
Json delta_chunk(const ResponseMeta& meta, const SequenceEvent& event, LogprobFormatter* logprobs);
Json finish_chunk(const ResponseMeta& meta, int index, FinishReason reason);
Json usage_chunk(const ResponseMeta& meta, const Usage& usage);

std::string sse_event(const Json& data);  // "data: {...}\n\n"
inline constexpr std::string_view kSseDone = "data: [DONE]\n\n";

// Dumps with invalid UTF-8 replaced by U+FFFD (byte tokens alone are not valid UTF-8).
std::string dump(const Json& j);

}  // namespace roofline::server
