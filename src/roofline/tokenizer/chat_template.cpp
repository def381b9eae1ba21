// ChatTemplate: parse once with the Jinja engine (jinja_*.h), render per request.
#include "roofline/tokenizer/chat_template.h"

#include "roofline/core/error.h"
#include "roofline/tokenizer/jinja_parser.h"
#include "roofline/tokenizer/jinja_render.h"

namespace roofline {

struct ChatTemplate::Impl {
  jinja::Body body;
};

namespace {

template <typename Json>
jinja::ValueDict top_level_variables(const Json& variables) {
  if (variables.is_null()) return {};
  if (!variables.is_object()) fail("chat template variables must be a JSON object, got {}", variables.type_name());
  jinja::ValueDict out;
  out.reserve(variables.size());
  for (auto it = variables.begin(); it != variables.end(); ++it)
    out.emplace_back(it.key(), jinja::Value::from_json(it.value()));
  return out;
}

}  // namespace

ChatTemplate::ChatTemplate(const std::string& source)
    : impl_(std::make_unique<Impl>(Impl{jinja::parse_template(source)})) {}
ChatTemplate::ChatTemplate(ChatTemplate&&) noexcept = default;
ChatTemplate& ChatTemplate::operator=(ChatTemplate&&) noexcept = default;
ChatTemplate::~ChatTemplate() = default;

std::string ChatTemplate::render(const nlohmann::json& variables) const {
  return jinja::render(impl_->body, top_level_variables(variables));
}

std::string ChatTemplate::render_ordered(const nlohmann::ordered_json& variables) const {
  return jinja::render(impl_->body, top_level_variables(variables));
}

}  // namespace roofline
