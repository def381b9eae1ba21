#include "roofline/server/openai_responses.h"

#include <atomic>
#include <random>

#include <fmt/format.h>

namespace roofline::server {

std::string dump(const Json& j) { return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace); }

std::string sse_event(const Json& data) { return "data: " + dump(data) + "\n\n"; }

std::string new_response_id(Endpoint endpoint) {
  // A random per-process prefix and a counter: unique here, not guessable across restarts.
  static const uint64_t process_prefix = [] {
    std::random_device device;
    return uint64_t(device()) << 32 | device();
  }();
  static std::atomic<uint64_t> counter{0};
  return fmt::format("{}-{:016x}{:08x}", endpoint == Endpoint::kChat ? "chatcmpl" : "cmpl", process_prefix,
                     counter.fetch_add(1) & 0xffffffffu);
}

std::string_view finish_reason_name(FinishReason reason) {
  switch (reason) {
    case FinishReason::kStop: return "stop";
    case FinishReason::kLength: return "length";
    case FinishReason::kNone: return "";
  }
  return "";
}

namespace {
Json finish_json(FinishReason reason) {
  return reason == FinishReason::kNone ? Json(nullptr) : Json(std::string(finish_reason_name(reason)));
}

Json envelope(const ResponseMeta& meta, bool chunk) {
  const bool chat = meta.endpoint == Endpoint::kChat;
  Json j = Json::object();
  j["id"] = meta.id;
  j["object"] = chat ? (chunk ? "chat.completion.chunk" : "chat.completion") : "text_completion";
  j["created"] = meta.created;
  j["model"] = meta.model;
  j["system_fingerprint"] = nullptr;
  j["choices"] = Json::array();
  if (chunk && meta.include_usage) j["usage"] = nullptr;
  return j;
}

Json bytes_of(const std::string& s) {
  Json bytes = Json::array();
  for (unsigned char c : s) bytes.push_back(int(c));
  return bytes;
}

// One streamed choice: {"index", "delta"} for chat, {"text", "index"} for completions.
Json stream_choice(const ResponseMeta& meta, int index, Json delta_or_text, Json logprobs, FinishReason reason) {
  Json c = Json::object();
  if (meta.endpoint == Endpoint::kChat) {
    c["index"] = index;
    c["delta"] = std::move(delta_or_text);
  } else {
    c["text"] = std::move(delta_or_text);
    c["index"] = index;
  }
  c["logprobs"] = std::move(logprobs);
  c["finish_reason"] = finish_json(reason);
  return c;
}
}  // namespace

Json LogprobFormatter::chat_entry(int32_t id, float logprob) const {
  const std::string token = tokenizer_.decode({id}, /*skip_special_tokens=*/false);
  Json e = Json::object();
  e["token"] = token;
  e["logprob"] = logprob;
  e["bytes"] = bytes_of(token);
  return e;
}

Json LogprobFormatter::format(int choice, const std::vector<TokenLogprob>& logprobs) {
  if (endpoint_ == Endpoint::kChat) {
    Json content = Json::array();
    for (const TokenLogprob& t : logprobs) {
      Json e = chat_entry(t.id, t.logprob);
      e["top_logprobs"] = Json::array();
      for (const TopLogprob& top : t.top) e["top_logprobs"].push_back(chat_entry(top.id, top.logprob));
      content.push_back(std::move(e));
    }
    return Json{{"content", std::move(content)}, {"refusal", nullptr}};
  }
  Json tokens = Json::array(), token_logprobs = Json::array(), top_logprobs = Json::array(), offsets = Json::array();
  size_t& offset = offsets_.at(size_t(choice));
  for (const TokenLogprob& t : logprobs) {
    const std::string token = tokenizer_.decode({t.id}, /*skip_special_tokens=*/false);
    tokens.push_back(token);
    token_logprobs.push_back(t.logprob);
    Json top = Json::object();
    // Keyed by text, so tokens that decode alike (byte tokens all show U+FFFD) share a key: keep the
    // first, most likely one.
    for (const TopLogprob& alt : t.top) top.emplace(tokenizer_.decode({alt.id}, false), alt.logprob);
    top_logprobs.push_back(std::move(top));
    offsets.push_back(offset);
    offset += token.size();
  }
  return Json{{"tokens", std::move(tokens)},
              {"token_logprobs", std::move(token_logprobs)},
              {"top_logprobs", std::move(top_logprobs)},
              {"text_offset", std::move(offsets)}};
}

Json usage_json(const Usage& u) {
  return Json{{"prompt_tokens", u.prompt_tokens},
              {"completion_tokens", u.completion_tokens},
              {"total_tokens", u.prompt_tokens + u.completion_tokens}};
}

Json response_body(const ResponseMeta& meta, const std::vector<ChoiceResult>& choices, const Usage& usage,
                   LogprobFormatter& logprobs) {
  Json j = envelope(meta, /*chunk=*/false);
  for (size_t i = 0; i < choices.size(); ++i) {
    const ChoiceResult& r = choices[i];
    Json c = Json::object();
    if (meta.endpoint == Endpoint::kChat) {
      c["index"] = i;
      c["message"] = Json{{"role", "assistant"}, {"content", r.text}, {"refusal", nullptr}};
    } else {
      c["text"] = r.text;
      c["index"] = i;
    }
    c["logprobs"] = meta.logprobs ? logprobs.format(int(i), r.logprobs) : Json(nullptr);
    c["finish_reason"] = finish_json(r.finish);
    j["choices"].push_back(std::move(c));
  }
  j["usage"] = usage_json(usage);
  return j;
}

Json role_chunk(const ResponseMeta& meta, int index) {
  Json j = envelope(meta, /*chunk=*/true);
  j["choices"].push_back(
      stream_choice(meta, index, Json{{"role", "assistant"}, {"content", ""}}, nullptr, FinishReason::kNone));
  return j;
}

Json delta_chunk(const ResponseMeta& meta, const SequenceEvent& event, LogprobFormatter* logprobs) {
  Json j = envelope(meta, /*chunk=*/true);
  Json content = meta.endpoint == Endpoint::kChat ? Json{{"content", event.text}} : Json(event.text);
  Json lp = meta.logprobs && logprobs ? logprobs->format(event.index, event.logprobs) : Json(nullptr);
  j["choices"].push_back(stream_choice(meta, event.index, std::move(content), std::move(lp), FinishReason::kNone));
  return j;
}

Json finish_chunk(const ResponseMeta& meta, int index, FinishReason reason) {
  Json j = envelope(meta, /*chunk=*/true);
  Json empty = meta.endpoint == Endpoint::kChat ? Json::object() : Json("");
  j["choices"].push_back(stream_choice(meta, index, std::move(empty), nullptr, reason));
  return j;
}

Json usage_chunk(const ResponseMeta& meta, const Usage& usage) {
  Json j = envelope(meta, /*chunk=*/true);
  j["usage"] = usage_json(usage);
  return j;
}

}  // namespace roofline::server
