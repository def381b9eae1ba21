#include "roofline/server/openai_protocol.h"

#include <cmath>
#include <limits>

#include <fmt/format.h>

namespace roofline::server {

using Json = nlohmann::ordered_json;

Json ApiError::to_json() const {
  auto or_null = [](const std::string& s) { return s.empty() ? Json(nullptr) : Json(s); };
  Json error = Json::object();
  error["message"] = what();
  error["type"] = type;
  error["param"] = or_null(param);
  error["code"] = or_null(code);
  return Json{{"error", error}};
}

ApiError invalid_request(std::string message, std::string param, std::string code) {
  return ApiError(400, std::move(message), "invalid_request_error", std::move(param), std::move(code));
}

namespace {

// JSON's type names, for "must be X (got Y)".
std::string type_name(const Json& v) {
  if (v.is_number_integer()) return "an integer";
  if (v.is_number()) return "a number";
  if (v.is_boolean()) return "a boolean";
  if (v.is_string()) return "a string";
  if (v.is_array()) return "an array";
  if (v.is_object()) return "an object";
  return "null";
}

[[noreturn]] void wrong_type(const std::string& name, const char* expected, const Json& v) {
  throw invalid_request(fmt::format("'{}' must be {} (got {})", name, expected, type_name(v)), name);
}

// The field, or nullptr when absent or null (OpenAI treats an explicit null as "not given").
const Json* field(const Json& body, const std::string& name) {
  const auto it = body.find(name);
  return it == body.end() || it->is_null() ? nullptr : &*it;
}

std::optional<double> number(const Json& body, const std::string& name, double lo, double hi, bool lo_open = false) {
  const Json* v = field(body, name);
  if (!v) return std::nullopt;
  if (!v->is_number()) wrong_type(name, "a number", *v);
  const double x = v->get<double>();
  if (!std::isfinite(x) || x > hi || (lo_open ? x <= lo : x < lo))
    throw invalid_request(fmt::format("'{}' must be in {}{}, {}] (got {})", name, lo_open ? "(" : "[", lo, hi, x),
                          name);
  return x;
}

// An integer; 3.0 counts as 3 (some clients serialise every number as a float).
std::optional<int64_t> integer(const Json& body, const std::string& name, int64_t lo, int64_t hi) {
  const Json* v = field(body, name);
  if (!v) return std::nullopt;
  int64_t x = 0;
  if (v->is_number_integer()) {
    if (v->is_number_unsigned() && v->get<uint64_t>() > uint64_t(std::numeric_limits<int64_t>::max()))
      throw invalid_request(fmt::format("'{}' is out of range", name), name);
    x = v->get<int64_t>();
  } else if (v->is_number_float() && std::nearbyint(v->get<double>()) == v->get<double>() &&
             std::abs(v->get<double>()) < 9e18) {
    x = int64_t(v->get<double>());
  } else {
    wrong_type(name, "an integer", *v);
  }
  if (x < lo || x > hi) throw invalid_request(fmt::format("'{}' must be in [{}, {}] (got {})", name, lo, hi, x), name);
  return x;
}

std::optional<bool> boolean(const Json& body, const std::string& name) {
  const Json* v = field(body, name);
  if (!v) return std::nullopt;
  if (!v->is_boolean()) wrong_type(name, "a boolean", *v);
  return v->get<bool>();
}

std::optional<std::string> string(const Json& body, const std::string& name) {
  const Json* v = field(body, name);
  if (!v) return std::nullopt;
  if (!v->is_string()) wrong_type(name, "a string", *v);
  return v->get<std::string>();
}

[[noreturn]] void unsupported(const std::string& name, const std::string& what) {
  throw invalid_request(fmt::format("'{}': {} is not supported by this server", name, what), name);
}

Json parse_body(std::string_view body) {
  Json j;
  try {
    j = Json::parse(body);
  } catch (const nlohmann::json::exception& e) {  // parse_error, and out_of_range for a number like 1e99999
    throw invalid_request(fmt::format("the request body is not valid JSON: {}", e.what()), {}, "invalid_json");
  }
  if (!j.is_object())
    throw invalid_request(fmt::format("the request body must be a JSON object (got {})", type_name(j)));
  return j;
}

std::vector<int32_t> token_ids(const Json& list, const std::string& name) {
  std::vector<int32_t> ids;
  for (const Json& v : list) {
    if (!v.is_number_integer() || v.get<int64_t>() < 0 || v.get<int64_t>() > std::numeric_limits<int32_t>::max())
      throw invalid_request(fmt::format("'{}' must be a string or a list of token ids (non-negative integers)", name),
                            name);
    ids.push_back(int32_t(v.get<int64_t>()));
  }
  return ids;
}

void parse_common(const Json& body, ParsedRequest& r) {
  r.model = string(body, "model").value_or("");
  const std::optional<int64_t> max_tokens = integer(body, "max_tokens", 1, std::numeric_limits<int32_t>::max());
  const std::optional<int64_t> max_completion =
      integer(body, "max_completion_tokens", 1, std::numeric_limits<int32_t>::max());
  if (max_completion)
    r.max_tokens = int(*max_completion);  // the newer name wins, as OpenAI's docs say
  else if (max_tokens)
    r.max_tokens = int(*max_tokens);
  r.temperature = number(body, "temperature", 0, 2);
  r.top_p = number(body, "top_p", 0, 1, /*lo_open=*/true);
  r.min_p = number(body, "min_p", 0, 1);
  r.repetition_penalty = number(body, "repetition_penalty", 0, 10, /*lo_open=*/true);
  if (auto k = integer(body, "top_k", -1, std::numeric_limits<int32_t>::max())) r.top_k = int(*k < 0 ? 0 : *k);
  r.presence_penalty = number(body, "presence_penalty", -2, 2).value_or(0);
  r.frequency_penalty = number(body, "frequency_penalty", -2, 2).value_or(0);
  if (auto seed = integer(body, "seed", std::numeric_limits<int64_t>::min(), std::numeric_limits<int64_t>::max()))
    r.seed = uint64_t(*seed);
  r.n = int(integer(body, "n", 1, kMaxChoices).value_or(1));
  r.stream = boolean(body, "stream").value_or(false);
  r.ignore_eos = boolean(body, "ignore_eos").value_or(false);

  if (const Json* stop = field(body, "stop")) {
    if (stop->is_string()) {
      r.stop.push_back(stop->get<std::string>());
    } else if (stop->is_array()) {
      for (const Json& s : *stop) {
        if (!s.is_string()) throw invalid_request("'stop' must be a string or a list of strings", "stop");
        r.stop.push_back(s.get<std::string>());
      }
    } else {
      wrong_type("stop", "a string or a list of strings", *stop);
    }
    if (r.stop.size() > size_t(kMaxStopStrings))
      throw invalid_request(
          fmt::format("'stop' has {} strings; at most {} are allowed", r.stop.size(), kMaxStopStrings), "stop");
    for (const std::string& s : r.stop)
      if (s.empty()) throw invalid_request("'stop' must not contain an empty string", "stop");
  }
  if (const Json* options = field(body, "stream_options")) {
    if (!options->is_object()) wrong_type("stream_options", "an object", *options);
    if (!r.stream) throw invalid_request("'stream_options' is only allowed when 'stream' is true", "stream_options");
    r.include_usage = boolean(*options, "include_usage").value_or(false);
  }
  if (const Json* bias = field(body, "logit_bias"); bias && !(bias->is_object() && bias->empty()))
    unsupported("logit_bias", "a non-empty logit_bias");
  if (const Json* format = field(body, "response_format")) {
    if (!format->is_object() || format->value("type", "") != "text")
      unsupported("response_format", "a response_format other than {\"type\": \"text\"}");
  }
  (void)string(body, "user");  // accepted and ignored, but it must be a string
}

// A chat message's content as one string: a string, null, or a list of text parts.
std::string message_content(const Json& content, size_t index) {
  const std::string param = fmt::format("messages[{}].content", index);
  if (content.is_null()) return {};
  if (content.is_string()) return content.get<std::string>();
  if (!content.is_array()) wrong_type(param, "a string or a list of content parts", content);
  std::string text;
  for (const Json& part : content) {
    if (!part.is_object() || !part.contains("type"))
      throw invalid_request(fmt::format("'{}' has a part that is not an object with a 'type'", param), param);
    if (part["type"] != "text") unsupported(param, fmt::format("a content part of type {}", part["type"].dump()));
    if (!part.contains("text") || !part["text"].is_string())
      throw invalid_request(fmt::format("'{}' has a text part without a string 'text'", param), param);
    text += part["text"].get<std::string>();
  }
  return text;
}

}  // namespace

ParsedRequest parse_completion_request(std::string_view text) {
  const Json body = parse_body(text);
  ParsedRequest r;
  r.endpoint = Endpoint::kCompletions;
  parse_common(body, r);
  const Json* prompt = field(body, "prompt");
  if (!prompt) throw invalid_request("'prompt' is required", "prompt");
  // One prompt per request: a string, token ids, or a list holding exactly one of those.
  const Json* one = prompt;
  if (prompt->is_array() && !prompt->empty() && (prompt->front().is_string() || prompt->front().is_array())) {
    if (prompt->size() != 1)
      throw invalid_request(
          fmt::format("'prompt' holds {} prompts; this server takes one prompt per request", prompt->size()), "prompt");
    one = &prompt->front();
  }
  if (one->is_string()) {
    r.prompt_text = one->get<std::string>();
  } else if (one->is_array()) {
    r.prompt_ids = token_ids(*one, "prompt");
    if (r.prompt_ids.empty()) throw invalid_request("'prompt' is an empty list of token ids", "prompt");
  } else {
    wrong_type("prompt", "a string or a list of token ids", *one);
  }
  if (const Json* logprobs = field(body, "logprobs")) {
    if (logprobs->is_boolean()) wrong_type("logprobs", "an integer", *logprobs);
    r.logprobs = int(*integer(body, "logprobs", 0, kMaxLogprobs));
  }
  if (boolean(body, "echo").value_or(false)) unsupported("echo", "echo: true");
  if (field(body, "suffix")) unsupported("suffix", "suffix");
  if (auto best_of = integer(body, "best_of", 1, kMaxChoices); best_of && *best_of != r.n)
    unsupported("best_of", "best_of other than n");
  return r;
}

ParsedRequest parse_chat_request(std::string_view text) {
  const Json body = parse_body(text);
  ParsedRequest r;
  r.endpoint = Endpoint::kChat;
  parse_common(body, r);
  const Json* messages = field(body, "messages");
  if (!messages) throw invalid_request("'messages' is required", "messages");
  if (!messages->is_array()) wrong_type("messages", "a list of messages", *messages);
  if (messages->empty()) throw invalid_request("'messages' must hold at least one message", "messages");
  r.messages = Json::array();
  for (size_t i = 0; i < messages->size(); ++i) {
    const Json& m = (*messages)[i];
    const std::string param = fmt::format("messages[{}]", i);
    if (!m.is_object()) wrong_type(param, "an object", m);
    if (!m.contains("role") || !m["role"].is_string())
      throw invalid_request(fmt::format("'{}.role' must be a string", param), param + ".role");
    Json message = m;  // other keys (name, tool_calls, ...) reach the template untouched
    message["content"] = message_content(m.value("content", Json()), i);
    r.messages.push_back(std::move(message));
  }
  if (const Json* tools = field(body, "tools")) {
    if (!tools->is_array()) wrong_type("tools", "a list", *tools);
    r.tools = *tools;
  }
  const bool logprobs = boolean(body, "logprobs").value_or(false);
  const std::optional<int64_t> top = integer(body, "top_logprobs", 0, kMaxLogprobs);
  if (top && !logprobs) throw invalid_request("'top_logprobs' needs 'logprobs' to be true", "top_logprobs");
  if (logprobs) r.logprobs = int(top.value_or(0));
  return r;
}

}  // namespace roofline::server
