// libFuzzer target for the chat-template engine (the Jinja subset of tokenizer_config.json): a template
// comes from a model file, so any text must either parse and render, or be rejected with roofline::Error —
// never crash, overflow the stack, run away in time or memory, or read out of bounds. Each input is a
// template rendered with a small conversation.
#include <cstddef>
#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

#include "roofline/core/error.h"
#include "roofline/tokenizer/chat_template.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const nlohmann::json variables = {
      {"messages",
       {{{"role", "system"}, {"content", "Be brief."}},
        {{"role", "user"}, {"content", "Hello"}},
        {{"role", "assistant"}, {"content", "Hi there"}},
        {{"role", "user"}, {"content", {{{"type", "text"}, {"text", "and you?"}}}}}}},
      {"add_generation_prompt", true},
      {"bos_token", "<s>"},
      {"eos_token", "</s>"},
      {"tools", nlohmann::json::array({{{"type", "function"}, {"function", {{"name", "f"}}}}})}};
  try {
    const roofline::ChatTemplate tmpl(std::string(reinterpret_cast<const char*>(data), size));
    const std::string out = tmpl.render(variables);
    volatile size_t sink = out.size();
    (void)sink;
  } catch (const roofline::Error&) {
  }
  return 0;
}
