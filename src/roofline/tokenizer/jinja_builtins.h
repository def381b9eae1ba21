// The built-in filters, tests and global functions of Jinja's environment as transformers configures it
// (tojson overridden with json.dumps semantics; raise_exception and strftime_now added).
#pragma once
#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "roofline/tokenizer/jinja_value.h"

namespace roofline::jinja {

// `value | name(args)`. Throws for an unknown filter.
Value apply_filter(const std::string& name, const Value& value, CallArgs& args);
// `value is name(args)`. Throws for an unknown test.
bool apply_test(const std::string& name, const Value& value, CallArgs& args);
bool has_test(const std::string& name);
bool has_filter(const std::string& name);

// range, dict, namespace, joiner, raise_exception, strftime_now.
ValueDict global_functions();

// Binds call arguments to a Python-style parameter list; missing ones are nullopt.
// Raises a TypeError-like error for too many or unknown arguments.
std::vector<std::optional<Value>> bind_args(std::string_view function, CallArgs& args,
                                            std::initializer_list<std::string_view> params);

// An optional int / str argument: `fallback` or nullopt when absent or none; an error names `what`
// when it has another type.
int64_t int_arg(const std::optional<Value>& v, int64_t fallback, std::string_view what);
std::optional<std::string> string_arg(const std::optional<Value>& v, std::string_view what);

}  // namespace roofline::jinja
