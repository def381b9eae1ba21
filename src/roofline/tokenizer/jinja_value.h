// Values of the chat-template language: Python's object model reduced to what HF chat templates touch.
// transformers renders in Jinja's ImmutableSandboxedEnvironment, so lists and dicts never change once
// built and are shared by pointer; namespace() objects are the one mutable kind, shared by design
// (`{% set ns.x = ... %}` inside a loop must be seen after it).
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "roofline/core/error.h"

namespace roofline::jinja {

// An error raised while rendering, before the renderer knows where: it adds the template line and
// rethrows a plain roofline::Error.
class RenderError : public Error {
 public:
  using Error::Error;
};

template <typename... Args>
[[noreturn]] void render_error(fmt::format_string<Args...> format, Args&&... args) {
  throw RenderError(fmt::format(format, std::forward<Args>(args)...));
}

class Value;
using ValueList = std::vector<Value>;
using ValueDict = std::vector<std::pair<std::string, Value>>;  // insertion order, as a Python dict

struct CallArgs {
  std::vector<Value> positional;
  std::vector<std::pair<std::string, Value>> keyword;
};
using NativeFunction = std::function<Value(CallArgs&)>;

class Value {
 public:
  enum class Kind : uint8_t { Undefined, None, Bool, Int, Float, String, List, Dict, Namespace, Function };

  // Implicit on purpose: builtins return C++ scalars and strings as values everywhere.
  Value() = default;  // undefined
  Value(bool b) : kind_(Kind::Bool) { scalar_.b = b; }
  Value(int64_t i) : kind_(Kind::Int) { scalar_.i = i; }
  Value(int i) : kind_(Kind::Int) { scalar_.i = i; }
  Value(double d) : kind_(Kind::Float) { scalar_.d = d; }
  Value(std::string s) : kind_(Kind::String), text_(std::move(s)) {}
  Value(const char* s) : kind_(Kind::String), text_(s) {}

  // `hint` is the error an operation on this undefined raises, e.g. "'foo' is undefined".
  static Value undefined(std::string hint);
  static Value none();
  static Value list(ValueList items, bool tuple = false);
  static Value dict(ValueDict entries);
  static Value make_namespace(ValueDict attrs);
  static Value function(std::string name, NativeFunction fn);
  template <typename Json>
  static Value from_json(const Json& j);

  Kind kind() const { return kind_; }
  bool is_undefined() const { return kind_ == Kind::Undefined; }
  bool is_none() const { return kind_ == Kind::None; }
  bool is_bool() const { return kind_ == Kind::Bool; }
  bool is_int() const { return kind_ == Kind::Int; }
  bool is_float() const { return kind_ == Kind::Float; }
  bool is_number() const { return is_bool() || is_int() || is_float(); }  // bool is an int in Python
  bool is_string() const { return kind_ == Kind::String; }
  bool is_list() const { return kind_ == Kind::List; }
  bool is_tuple() const { return is_list() && list_data().tuple; }
  bool is_dict() const { return kind_ == Kind::Dict; }
  bool is_namespace() const { return kind_ == Kind::Namespace; }
  bool is_function() const { return kind_ == Kind::Function; }

  bool as_bool() const { return scalar_.b; }
  int64_t as_int() const { return is_bool() ? int64_t(scalar_.b) : scalar_.i; }  // bool or int
  double as_double() const { return is_float() ? scalar_.d : double(as_int()); }  // bool, int or float
  const std::string& as_string() const { return text_; }
  const ValueList& as_list() const { return list_data().items; }
  const ValueDict& as_dict() const { return *static_cast<const ValueDict*>(object_.get()); }
  // Namespaces are created mutable (make_namespace), so casting the constness away is sound.
  ValueDict& namespace_attrs() const { return *const_cast<ValueDict*>(static_cast<const ValueDict*>(object_.get())); }
  const std::string& undefined_hint() const { return text_; }
  const std::string& function_name() const { return function_data().name; }
  Value call(CallArgs& args) const;

  // Raises the undefined's error when this is undefined; used wherever Jinja's Undefined fails.
  const Value& require_defined() const;

 private:
  struct ListData {
    ValueList items;
    bool tuple = false;
  };
  struct FunctionData {
    std::string name;
    NativeFunction fn;
  };
  const ListData& list_data() const { return *static_cast<const ListData*>(object_.get()); }
  const FunctionData& function_data() const { return *static_cast<const FunctionData*>(object_.get()); }

  // A tagged layout rather than std::variant: GCC 12 reports false maybe-uninitialized warnings for
  // variants of shared_ptr, and -Werror is on.
  Kind kind_ = Kind::Undefined;
  union {
    bool b;
    int64_t i;
    double d;
  } scalar_{};
  std::string text_;                    // String: the text; Undefined: the hint
  std::shared_ptr<const void> object_;  // List: ListData; Dict, Namespace: ValueDict; Function: FunctionData

  friend bool same_object(const Value& a, const Value& b);
};

// ---- Python semantics ----------------------------------------------------------------------------

std::string type_name(const Value& v);  // Python's type(v).__name__: "str", "dict", "NoneType", ...
bool truthy(const Value& v);
std::string to_str(const Value& v);  // str(v); undefined is ""
std::string repr(const Value& v);    // repr(v), as lists and dicts print their items
bool equals(const Value& a, const Value& b);
// <0, 0, >0 for a < b, a == b, a > b; raises TypeError-like errors for unorderable types.
int compare(const Value& a, const Value& b);
bool same_object(const Value& a, const Value& b);  // Python `is`, for the sameas test

// Python iteration: list items, dict keys, string code points; undefined iterates as empty.
ValueList iterate(const Value& v);
int64_t length(const Value& v);  // len(v); undefined is 0
bool contains(const Value& container, const Value& item);  // Python `item in container`

const Value* dict_find(const ValueDict& d, std::string_view key);

// Jinja's environment.getattr / getitem (sandboxed): `a.b` prefers the attribute (a str or dict method),
// `a['b']` the item; a miss gives an undefined, but touching an undefined's attribute raises.
Value get_attr(const Value& object, const std::string& name);
Value get_item(const Value& object, const Value& key);
// v[start:stop:step] on a string, list or tuple.
Value slice(const Value& v, std::optional<int64_t> start, std::optional<int64_t> stop, std::optional<int64_t> step);
// Method lookup for str / dict / list (defined in jinja_methods.cpp); undefined when there is none.
Value get_method(const Value& object, const std::string& name);

// json.dumps(v, ensure_ascii, indent, separators, sort_keys), as transformers' tojson filter.
struct JsonStyle {
  bool ensure_ascii = false;
  std::optional<std::string> indent;  // nullopt: one line; else the per-level indent string
  std::optional<std::pair<std::string, std::string>> separators;  // default (", ", ": "), (",", ": ") when indented
  bool sort_keys = false;
};
std::string to_json(const Value& v, const JsonStyle& style);

template <typename Json>
Value Value::from_json(const Json& j) {
  switch (j.type()) {
    case nlohmann::json::value_t::null: return none();
    case nlohmann::json::value_t::boolean: return Value(j.template get<bool>());
    case nlohmann::json::value_t::number_integer: return Value(j.template get<int64_t>());
    case nlohmann::json::value_t::number_unsigned: {
      auto u = j.template get<uint64_t>();
      return u <= uint64_t(INT64_MAX) ? Value(int64_t(u)) : Value(double(u));
    }
    case nlohmann::json::value_t::number_float: return Value(j.template get<double>());
    case nlohmann::json::value_t::string: return Value(j.template get<std::string>());
    case nlohmann::json::value_t::array: {
      ValueList items;
      items.reserve(j.size());
      for (const auto& e : j) items.push_back(from_json(e));
      return list(std::move(items));
    }
    case nlohmann::json::value_t::object: {
      ValueDict entries;
      entries.reserve(j.size());
      for (auto it = j.begin(); it != j.end(); ++it) entries.emplace_back(it.key(), from_json(it.value()));
      return dict(std::move(entries));
    }
    default: return none();  // binary / discarded: not produced by JSON text
  }
}

}  // namespace roofline::jinja
