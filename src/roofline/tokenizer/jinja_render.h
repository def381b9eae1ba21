// Renders a parsed template: scopes, statements, expressions and Python's operator semantics.
#pragma once
#include <string>

#include "roofline/tokenizer/jinja_ast.h"

namespace roofline::jinja {

// Renders `body` with these top-level variables (which shadow the global functions).
// Runtime errors throw roofline::Error "chat template error at line N: ..."; raise_exception(msg)
// throws roofline::Error(msg) unchanged.
std::string render(const Body& body, const ValueDict& variables);

}  // namespace roofline::jinja
