// Jinja's built-in tests (jinja2/tests.py), what `x is name` calls: `x is defined`, `n is divisibleby 3`, ...
#include <unordered_map>

#include "roofline/tokenizer/jinja_builtins.h"
#include "roofline/tokenizer/jinja_pystr.h"

namespace roofline::jinja {
namespace {

using UnaryTest = bool (*)(const Value&);
using BinaryTest = bool (*)(const Value&, const Value&);

int64_t integer(const Value& v) {
  v.require_defined();
  if (!v.is_int() && !v.is_bool()) render_error("this test needs an integer, got {}", type_name(v));
  return v.as_int();
}

// str.islower / str.isupper: at least one cased character and none of the other case.
bool is_lower(const std::string& s) { return py_lower(s) == s && py_upper(s) != s; }
bool is_upper(const std::string& s) { return py_upper(s) == s && py_lower(s) != s; }

// Jinja's Undefined iterates (as empty), has a length and (failing) item access, and is callable, so
// the iterable / sequence / callable tests accept it.
const std::unordered_map<std::string, UnaryTest>& unary_tests() {
  static const std::unordered_map<std::string, UnaryTest> table = {
      {"defined", [](const Value& v) { return !v.is_undefined(); }},
      {"undefined", [](const Value& v) { return v.is_undefined(); }},
      {"none", [](const Value& v) { return v.is_none(); }},
      {"boolean", [](const Value& v) { return v.is_bool(); }},
      {"true", [](const Value& v) { return v.is_bool() && v.as_bool(); }},
      {"false", [](const Value& v) { return v.is_bool() && !v.as_bool(); }},
      {"integer", [](const Value& v) { return v.is_int(); }},  // bool is not, unlike for `number`
      {"float", [](const Value& v) { return v.is_float(); }},
      {"number", [](const Value& v) { return v.is_number(); }},
      {"string", [](const Value& v) { return v.is_string(); }},
      {"mapping", [](const Value& v) { return v.is_dict(); }},
      {"iterable", [](const Value& v) { return v.is_undefined() || v.is_string() || v.is_list() || v.is_dict(); }},
      {"sequence", [](const Value& v) { return v.is_undefined() || v.is_string() || v.is_list() || v.is_dict(); }},
      {"callable", [](const Value& v) { return v.is_function() || v.is_undefined(); }},
      {"escaped", [](const Value&) { return false; }},  // no Markup values: autoescape is off in transformers
      {"odd", [](const Value& v) { return integer(v) % 2 != 0; }},
      {"even", [](const Value& v) { return integer(v) % 2 == 0; }},
      {"lower", [](const Value& v) { return is_lower(to_str(v)); }},
      {"upper", [](const Value& v) { return is_upper(to_str(v)); }},
      {"filter", [](const Value& v) { return v.is_string() && has_filter(v.as_string()); }},
      {"test", [](const Value& v) { return v.is_string() && has_test(v.as_string()); }},
  };
  return table;
}

const std::unordered_map<std::string, BinaryTest>& binary_tests() {
  static const std::unordered_map<std::string, BinaryTest> table = {
      {"eq", [](const Value& a, const Value& b) { return equals(a, b); }},
      {"equalto", [](const Value& a, const Value& b) { return equals(a, b); }},
      {"==", [](const Value& a, const Value& b) { return equals(a, b); }},
      {"ne", [](const Value& a, const Value& b) { return !equals(a, b); }},
      {"!=", [](const Value& a, const Value& b) { return !equals(a, b); }},
      {"lt", [](const Value& a, const Value& b) { return compare(a, b) < 0; }},
      {"lessthan", [](const Value& a, const Value& b) { return compare(a, b) < 0; }},
      {"<", [](const Value& a, const Value& b) { return compare(a, b) < 0; }},
      {"le", [](const Value& a, const Value& b) { return compare(a, b) <= 0; }},
      {"<=", [](const Value& a, const Value& b) { return compare(a, b) <= 0; }},
      {"gt", [](const Value& a, const Value& b) { return compare(a, b) > 0; }},
      {"greaterthan", [](const Value& a, const Value& b) { return compare(a, b) > 0; }},
      {">", [](const Value& a, const Value& b) { return compare(a, b) > 0; }},
      {"ge", [](const Value& a, const Value& b) { return compare(a, b) >= 0; }},
      {">=", [](const Value& a, const Value& b) { return compare(a, b) >= 0; }},
      {"in", [](const Value& a, const Value& b) { return contains(b, a); }},
      {"sameas", [](const Value& a, const Value& b) { return same_object(a, b); }},
      {"divisibleby",
       [](const Value& a, const Value& b) {
         int64_t d = integer(b);
         if (d == 0) render_error("integer division or modulo by zero");
         return integer(a) % d == 0;
       }},
  };
  return table;
}

}  // namespace

bool has_test(const std::string& name) { return unary_tests().count(name) || binary_tests().count(name); }

bool apply_test(const std::string& name, const Value& value, CallArgs& args) {
  size_t given = args.positional.size() + args.keyword.size();
  if (auto it = unary_tests().find(name); it != unary_tests().end()) {
    if (given != 0) render_error("test '{}' takes no arguments", name);
    return it->second(value);
  }
  if (auto it = binary_tests().find(name); it != binary_tests().end()) {
    if (given != 1) render_error("test '{}' takes exactly one argument, {} given", name, given);
    return it->second(value, args.positional.empty() ? args.keyword[0].second : args.positional[0]);
  }
  render_error("no test named '{}'", name);
}

}  // namespace roofline::jinja
