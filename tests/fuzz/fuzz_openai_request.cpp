// libFuzzer target for the OpenAI request parsers (the bodies of /v1/completions and /v1/chat/completions,
// straight from the network): any body must either parse or be refused with an ApiError of status 4xx —
// any other exception would reach the client as a 500. The first byte picks the endpoint.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "roofline/server/openai_protocol.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const std::string_view body(reinterpret_cast<const char*>(data) + 1, size - 1);
  try {
    const roofline::server::ParsedRequest r =
        data[0] & 1 ? roofline::server::parse_chat_request(body) : roofline::server::parse_completion_request(body);
    if (r.n < 1 || r.n > roofline::server::kMaxChoices) std::abort();
    if (r.logprobs > roofline::server::kMaxLogprobs) std::abort();
    if (r.stop.size() > size_t(roofline::server::kMaxStopStrings)) std::abort();
    if (r.max_tokens && *r.max_tokens < 0) std::abort();
  } catch (const roofline::server::ApiError& e) {
    if (e.status < 400 || e.status >= 500) std::abort();
  }
  return 0;
}
