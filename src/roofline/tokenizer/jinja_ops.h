// Python's operators on template values: int/float arithmetic with Python's floor division and modulo,
// str and list concatenation and repetition, printf-style `%` formatting.
#pragma once
#include <string>

#include "roofline/tokenizer/jinja_ast.h"

namespace roofline::jinja {

// a OP b for + - * / // % ** ~ (And/Or short-circuit in the renderer and never get here).
Value binary_op(BinaryOp op, const Value& a, const Value& b);
Value negate(const Value& v);

// format % args, Python's printf-style formatting (%s %r %d %i %f %e %g %x %o %c %%, flags, width,
// precision, %(name)s with a dict).
std::string percent_format(const std::string& format, const Value& args);

}  // namespace roofline::jinja
