// Chat templates: the Jinja subset that HF chat templates use (statements: set, if/elif/else, for with
// loop.*, macro; expressions: literals, lists, dicts, attribute/item access, slices, filters, tests,
// method calls such as .startswith/.split/.strip; namespace()). Rendering is checked against
// transformers' apply_chat_template.
#pragma once
#include <memory>
#include <string>

#include <nlohmann/json.hpp>

namespace roofline {

class ChatTemplate {
 public:
  // Parses once; throws roofline::Error with line/column for a syntax error.
  explicit ChatTemplate(const std::string& source);
  ChatTemplate(ChatTemplate&&) noexcept;
  ~ChatTemplate();

  // Renders with these variables (e.g. messages, add_generation_prompt, bos_token, eos_token, tools,
  // enable_thinking). raise_exception(...) in a template throws roofline::Error with its message.
  std::string render(const nlohmann::json& variables) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace roofline
