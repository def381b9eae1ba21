// Recursive-descent parser for Jinja's grammar, following jinja2/parser.py so that precedence matches:
// filters and tests bind tighter than arithmetic (`a + b | trim` is `a + (b | trim)`), `**` is
// left-associative, and `x if c` without `else` yields undefined.
#pragma once
#include <string_view>

#include "roofline/tokenizer/jinja_ast.h"

namespace roofline::jinja {

// Throws roofline::Error "chat template syntax error at LINE:COL: ..." on malformed input.
Body parse_template(std::string_view source);

}  // namespace roofline::jinja
