// Helpers shared by the chat-template tests: render a template with JSON variables (key order kept, as
// Python dicts keep it), catch the error a render throws, and check that a text contains a part.
#pragma once
#include <gtest/gtest.h>

#include <string>

#include "roofline/core/error.h"
#include "roofline/tokenizer/chat_template.h"

namespace roofline::jinja_test {

inline std::string render(const std::string& source, const std::string& variables = "{}") {
  return ChatTemplate(source).render(nlohmann::ordered_json::parse(variables));
}

// The message of the roofline::Error that rendering throws, or "<no error>".
inline std::string error_of(const std::string& source, const std::string& variables = "{}") {
  try {
    render(source, variables);
  } catch (const Error& e) {
    return e.what();
  }
  return "<no error>";
}

inline testing::AssertionResult contains(const std::string& text, const std::string& part) {
  if (text.find(part) != std::string::npos) return testing::AssertionSuccess();
  return testing::AssertionFailure() << "'" << text << "' does not contain '" << part << "'";
}

}  // namespace roofline::jinja_test
