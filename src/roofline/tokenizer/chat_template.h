// Chat templates: the Jinja subset that HF chat templates use (statements: set, if/elif/else, for with
// loop.*, macro; expressions: literals, lists, dicts, attribute/item access, slices, filters, tests,
// method calls such as .startswith/.split/.strip; namespace()). Rendering is checked against
// transformers' apply_chat_template.
#pragma once
#include <concepts>
#include <memory>
#include <string>

#include <nlohmann/json.hpp>

namespace roofline {

class ChatTemplate {
 public:
  // Parses once; throws roofline::Error with line/column for a syntax error.
  explicit ChatTemplate(const std::string& source);
  ChatTemplate(ChatTemplate&&) noexcept;
  ChatTemplate& operator=(ChatTemplate&&) noexcept;
  ~ChatTemplate();

  // Renders with these variables (e.g. messages, add_generation_prompt, bos_token, eos_token, tools,
  // enable_thinking). raise_exception(...) in a template throws roofline::Error with its message.
  std::string render(const nlohmann::json& variables) const;

  // The same, keeping the caller's key order: nlohmann::json sorts object keys, while the Python dicts
  // transformers renders keep insertion order, which `tojson` shows (tool schemas, tool-call
  // arguments). A template only so that `render({...})` with a braced list stays unambiguous.
  template <typename Json>
    requires std::same_as<Json, nlohmann::ordered_json>
  std::string render(const Json& variables) const {
    return render_ordered(variables);
  }

 private:
  struct Impl;
  std::string render_ordered(const nlohmann::ordered_json& variables) const;
  std::unique_ptr<Impl> impl_;
};

}  // namespace roofline
