// OpenAI API requests: JSON bodies of /v1/completions and /v1/chat/completions parsed and validated into
// ParsedRequest, and the error shape every failure answers with:
//   {"error": {"message": "...", "type": "invalid_request_error", "param": "temperature", "code": null}}
// Parsing checks types and ranges only; what needs the model (tokens, context length, chat template)
// is checked by build_generation_request (prompt_builder.h).
#pragma once
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

namespace roofline::server {

// An error the client sees: HTTP status plus OpenAI's error object.
class ApiError : public std::runtime_error {
 public:
  ApiError(int status, std::string message, std::string type, std::string param = {}, std::string code = {})
      : std::runtime_error(message),
        status(status),
        type(std::move(type)),
        param(std::move(param)),
        code(std::move(code)) {}
  int status;
  std::string type;   // invalid_request_error, authentication_error, rate_limit_error, ...
  std::string param;  // the offending field; empty -> null
  std::string code;   // a stable machine-readable code; empty -> null

  nlohmann::ordered_json to_json() const;  // {"error": {...}}
};

// 400 invalid_request_error naming `param`.
ApiError invalid_request(std::string message, std::string param = {}, std::string code = {});

enum class Endpoint { kCompletions, kChat };

struct ParsedRequest {
  Endpoint endpoint = Endpoint::kCompletions;
  std::string model;  // empty when not given

  // /v1/completions: a text prompt or token ids (exactly one is set).
  std::optional<std::string> prompt_text;
  std::vector<int32_t> prompt_ids;
  // /v1/chat/completions: messages with content normalised to a string, and optional tools, both passed
  // to the chat template as given (key order kept).
  nlohmann::ordered_json messages, tools;

  std::optional<int> max_tokens;  // max_tokens or max_completion_tokens
  std::optional<double> temperature, top_p, min_p, repetition_penalty;
  std::optional<int> top_k;  // 0 or -1: off
  double presence_penalty = 0, frequency_penalty = 0;
  std::optional<uint64_t> seed;
  std::vector<std::string> stop;
  int n = 1;
  bool stream = false;
  bool include_usage = false;  // stream_options.include_usage
  int logprobs = -1;           // -1: none; k >= 0: sampled token plus top k (chat: top_logprobs)
  bool ignore_eos = false;     // extension (as vLLM): keep going after EOS
};

// Limits that do not come from the model.
inline constexpr int kMaxChoices = 128;  // n
inline constexpr int kMaxLogprobs = 20;  // logprobs / top_logprobs
inline constexpr int kMaxStopStrings = 16;

// Throw ApiError (400) naming the field for malformed JSON, wrong types and out-of-range values.
ParsedRequest parse_completion_request(std::string_view body);
ParsedRequest parse_chat_request(std::string_view body);

}  // namespace roofline::server
