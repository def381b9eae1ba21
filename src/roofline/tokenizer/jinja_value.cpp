#include "roofline/tokenizer/jinja_value.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "roofline/tokenizer/jinja_pystr.h"

namespace roofline::jinja {

// ---- construction ------------------------------------------------------------------------------

Value Value::undefined(std::string hint) {
  Value v;
  v.text_ = std::move(hint);
  return v;
}

Value Value::none() {
  Value v;
  v.kind_ = Kind::None;
  return v;
}

Value Value::list(ValueList items, bool tuple) {
  Value v;
  v.kind_ = Kind::List;
  v.object_ = std::make_shared<const ListData>(ListData{std::move(items), tuple});
  return v;
}

Value Value::dict(ValueDict entries) {
  Value v;
  v.kind_ = Kind::Dict;
  v.object_ = std::make_shared<const ValueDict>(std::move(entries));
  return v;
}

Value Value::make_namespace(ValueDict attrs) {
  Value v;
  v.kind_ = Kind::Namespace;
  v.object_ = std::make_shared<ValueDict>(std::move(attrs));
  return v;
}

Value Value::function(std::string name, NativeFunction fn) {
  Value v;
  v.kind_ = Kind::Function;
  v.object_ = std::make_shared<const FunctionData>(FunctionData{std::move(name), std::move(fn)});
  return v;
}

Value Value::call(CallArgs& args) const {
  if (is_function()) return function_data().fn(args);
  require_defined();
  render_error("'{}' object is not callable", type_name(*this));
}

const Value& Value::require_defined() const {
  if (is_undefined()) throw RenderError(undefined_hint());
  return *this;
}

bool same_object(const Value& a, const Value& b) {
  if (a.kind() != b.kind()) return false;
  switch (a.kind()) {
    case Value::Kind::Undefined:
    case Value::Kind::None: return true;
    case Value::Kind::Bool: return a.as_bool() == b.as_bool();
    case Value::Kind::Int: return a.as_int() == b.as_int();  // CPython caches small ints; close enough
    case Value::Kind::List:
    case Value::Kind::Dict:
    case Value::Kind::Namespace:
    case Value::Kind::Function: return a.object_ == b.object_;
    default: return false;  // floats and strings are distinct objects unless interned: Python is vague
  }
}

// ---- Python semantics --------------------------------------------------------------------------

std::string type_name(const Value& v) {
  switch (v.kind()) {
    case Value::Kind::Undefined: return "Undefined";
    case Value::Kind::None: return "NoneType";
    case Value::Kind::Bool: return "bool";
    case Value::Kind::Int: return "int";
    case Value::Kind::Float: return "float";
    case Value::Kind::String: return "str";
    case Value::Kind::List: return v.is_tuple() ? "tuple" : "list";
    case Value::Kind::Dict: return "dict";
    case Value::Kind::Namespace: return "Namespace";
    case Value::Kind::Function: return "function";
  }
  return "object";
}

bool truthy(const Value& v) {
  switch (v.kind()) {
    case Value::Kind::Undefined:
    case Value::Kind::None: return false;
    case Value::Kind::Bool: return v.as_bool();
    case Value::Kind::Int: return v.as_int() != 0;
    case Value::Kind::Float: return v.as_double() != 0.0;
    case Value::Kind::String: return !v.as_string().empty();
    case Value::Kind::List: return !v.as_list().empty();
    case Value::Kind::Dict: return !v.as_dict().empty();
    default: return true;
  }
}

static std::string repr_dict(const ValueDict& d) {
  std::string out = "{";
  for (size_t i = 0; i < d.size(); ++i) {
    if (i) out += ", ";
    out += py_repr(d[i].first) + ": " + repr(d[i].second);
  }
  return out + "}";
}

std::string to_str(const Value& v) {
  switch (v.kind()) {
    case Value::Kind::Undefined: return "";
    case Value::Kind::String: return v.as_string();
    case Value::Kind::Namespace: return fmt::format("<Namespace {}>", repr_dict(v.namespace_attrs()));
    case Value::Kind::Function: return "<function " + v.function_name() + ">";
    default: return repr(v);
  }
}

std::string repr(const Value& v) {
  switch (v.kind()) {
    case Value::Kind::Undefined: return "Undefined";
    case Value::Kind::None: return "None";
    case Value::Kind::Bool: return v.as_bool() ? "True" : "False";
    case Value::Kind::Int: return std::to_string(v.as_int());
    case Value::Kind::Float: return py_float_repr(v.as_double());
    case Value::Kind::String: return py_repr(v.as_string());
    case Value::Kind::List: {
      const ValueList& items = v.as_list();
      std::string out = v.is_tuple() ? "(" : "[";
      for (size_t i = 0; i < items.size(); ++i) {
        if (i) out += ", ";
        out += repr(items[i]);
      }
      if (v.is_tuple() && items.size() == 1) out += ",";
      return out + (v.is_tuple() ? ")" : "]");
    }
    case Value::Kind::Dict: return repr_dict(v.as_dict());
    default: return to_str(v);
  }
}

const Value* dict_find(const ValueDict& d, std::string_view key) {
  for (const auto& [k, val] : d)
    if (k == key) return &val;
  return nullptr;
}

bool equals(const Value& a, const Value& b) {
  if (a.is_number() && b.is_number()) {
    if (a.is_float() || b.is_float()) return a.as_double() == b.as_double();
    return a.as_int() == b.as_int();
  }
  if (a.kind() != b.kind()) return false;
  switch (a.kind()) {
    case Value::Kind::Undefined:
    case Value::Kind::None: return true;
    case Value::Kind::String: return a.as_string() == b.as_string();
    case Value::Kind::List: {
      const ValueList &x = a.as_list(), &y = b.as_list();
      if (a.is_tuple() != b.is_tuple() || x.size() != y.size()) return false;
      for (size_t i = 0; i < x.size(); ++i)
        if (!equals(x[i], y[i])) return false;
      return true;
    }
    case Value::Kind::Dict: {
      const ValueDict &x = a.as_dict(), &y = b.as_dict();
      if (x.size() != y.size()) return false;
      for (const auto& [k, val] : x) {
        const Value* other = dict_find(y, k);
        if (!other || !equals(val, *other)) return false;
      }
      return true;
    }
    default: return same_object(a, b);
  }
}

int compare(const Value& a, const Value& b) {
  if (a.is_number() && b.is_number()) {
    if (a.is_float() || b.is_float()) {
      double x = a.as_double(), y = b.as_double();
      return x < y ? -1 : x > y ? 1 : 0;
    }
    int64_t x = a.as_int(), y = b.as_int();
    return x < y ? -1 : x > y ? 1 : 0;
  }
  a.require_defined();
  b.require_defined();
  if (a.is_string() && b.is_string()) {
    int c = a.as_string().compare(b.as_string());  // UTF-8 byte order is code-point order
    return c < 0 ? -1 : c > 0 ? 1 : 0;
  }
  if (a.is_list() && b.is_list()) {
    const ValueList &x = a.as_list(), &y = b.as_list();
    for (size_t i = 0; i < x.size() && i < y.size(); ++i) {
      if (equals(x[i], y[i])) continue;
      return compare(x[i], y[i]);
    }
    return x.size() < y.size() ? -1 : x.size() > y.size() ? 1 : 0;
  }
  render_error("'<' not supported between instances of '{}' and '{}'", type_name(a), type_name(b));
}

static ValueList string_chars(const std::string& s) {
  ValueList out;
  out.reserve(s.size());
  for (char32_t c : utf8_decode(s)) {
    std::string one;
    utf8_append(one, c);
    out.emplace_back(std::move(one));
  }
  return out;
}

ValueList iterate(const Value& v) {
  switch (v.kind()) {
    case Value::Kind::Undefined: return {};
    case Value::Kind::List: return v.as_list();
    case Value::Kind::Dict: {
      ValueList keys;
      for (const auto& [k, val] : v.as_dict()) keys.emplace_back(k);
      return keys;
    }
    case Value::Kind::String: return string_chars(v.as_string());
    default: render_error("'{}' object is not iterable", type_name(v));
  }
}

int64_t length(const Value& v) {
  switch (v.kind()) {
    case Value::Kind::Undefined: return 0;
    case Value::Kind::String: return int64_t(utf8_length(v.as_string()));
    case Value::Kind::List: return int64_t(v.as_list().size());
    case Value::Kind::Dict: return int64_t(v.as_dict().size());
    default: render_error("object of type '{}' has no len()", type_name(v));
  }
}

bool contains(const Value& container, const Value& item) {
  switch (container.kind()) {
    case Value::Kind::Undefined: return false;  // Jinja's Undefined iterates as empty
    case Value::Kind::String:
      if (!item.is_string())
        render_error("'in <string>' requires string as left operand, not {}", type_name(item));
      return container.as_string().find(item.as_string()) != std::string::npos;
    case Value::Kind::List:
      return std::any_of(container.as_list().begin(), container.as_list().end(),
                         [&](const Value& e) { return equals(e, item); });
    case Value::Kind::Dict: return item.is_string() && dict_find(container.as_dict(), item.as_string());
    default: render_error("argument of type '{}' is not iterable", type_name(container));
  }
}

// ---- attribute and item access -----------------------------------------------------------------

// Jinja's object_type_repr, for "has no attribute" messages.
static std::string object_type_repr(const Value& v) {
  return v.is_none() ? "None" : type_name(v) + " object";
}

Value get_attr(const Value& object, const std::string& name) {
  object.require_defined();
  if (object.is_namespace()) {
    if (const Value* v = dict_find(object.namespace_attrs(), name)) return *v;
  } else {
    Value method = get_method(object, name);
    if (!method.is_undefined()) return method;
    if (object.is_dict())
      if (const Value* v = dict_find(object.as_dict(), name)) return *v;
  }
  return Value::undefined(fmt::format("{} has no attribute {}", py_repr(object_type_repr(object)), py_repr(name)));
}

Value get_item(const Value& object, const Value& key) {
  object.require_defined();
  if (object.is_dict() && key.is_string()) {
    if (const Value* v = dict_find(object.as_dict(), key.as_string())) return *v;
  } else if ((object.is_list() || object.is_string()) && (key.is_int() || key.is_bool())) {
    int64_t n = length(object), i = key.as_int();
    if (i < 0) i += n;
    if (i >= 0 && i < n) {
      if (object.is_list()) return object.as_list()[size_t(i)];
      return Value(utf8_substr(object.as_string(), size_t(i), size_t(i) + 1));
    }
  }
  // obj[name] falls back to getattr(obj, name), as in Jinja's sandbox.
  if (key.is_string()) return get_attr(object, key.as_string());
  return Value::undefined(fmt::format("{} has no element {}", object_type_repr(object), repr(key)));
}

Value slice(const Value& v, std::optional<int64_t> start, std::optional<int64_t> stop,
            std::optional<int64_t> step) {
  v.require_defined();
  int64_t s = step.value_or(1);
  if (s == 0) render_error("slice step cannot be zero");
  if (v.is_list()) {
    ValueList out;
    for (int64_t i : slice_indices(int64_t(v.as_list().size()), start, stop, s))
      out.push_back(v.as_list()[size_t(i)]);
    return Value::list(std::move(out), v.is_tuple());
  }
  if (v.is_string()) {
    std::u32string cps = utf8_decode(v.as_string());
    std::u32string out;
    for (int64_t i : slice_indices(int64_t(cps.size()), start, stop, s)) out.push_back(cps[size_t(i)]);
    return Value(utf8_encode(out));
  }
  render_error("'{}' object is not subscriptable", type_name(v));
}

// ---- json.dumps --------------------------------------------------------------------------------

static void json_string(std::string& out, const std::string& s, bool ensure_ascii) {
  out.push_back('"');
  for (char32_t c : utf8_decode(s)) {
    switch (c) {
      case '"': out += "\\\""; continue;
      case '\\': out += "\\\\"; continue;
      case '\n': out += "\\n"; continue;
      case '\r': out += "\\r"; continue;
      case '\t': out += "\\t"; continue;
      case '\b': out += "\\b"; continue;
      case '\f': out += "\\f"; continue;
      default: break;
    }
    char buf[16];
    if (c < 0x20 || (ensure_ascii && c > 0x7E)) {
      if (c > 0xFFFF) {  // a surrogate pair, as Python writes astral code points
        char32_t u = c - 0x10000;
        std::snprintf(buf, sizeof buf, "\\u%04x\\u%04x", unsigned(0xD800 + (u >> 10)),
                      unsigned(0xDC00 + (u & 0x3FF)));
      } else {
        std::snprintf(buf, sizeof buf, "\\u%04x", unsigned(c));
      }
      out += buf;
    } else {
      utf8_append(out, c);
    }
  }
  out.push_back('"');
}

namespace {
struct JsonWriter {
  const JsonStyle& style;
  std::string item_separator, key_separator;
  std::string out;

  void newline(int level) {
    out.push_back('\n');
    for (int i = 0; i < level; ++i) out += *style.indent;
  }

  void write(const Value& v, int level) {
    switch (v.kind()) {
      case Value::Kind::None: out += "null"; return;
      case Value::Kind::Bool: out += v.as_bool() ? "true" : "false"; return;
      case Value::Kind::Int: out += std::to_string(v.as_int()); return;
      case Value::Kind::Float: {
        double d = v.as_double();
        out += std::isnan(d) ? "NaN" : std::isinf(d) ? (d > 0 ? "Infinity" : "-Infinity") : py_float_repr(d);
        return;
      }
      case Value::Kind::String: json_string(out, v.as_string(), style.ensure_ascii); return;
      case Value::Kind::List: {
        const ValueList& items = v.as_list();
        if (items.empty()) {
          out += "[]";
          return;
        }
        out.push_back('[');
        for (size_t i = 0; i < items.size(); ++i) {
          if (i) out += item_separator;
          if (style.indent) newline(level + 1);
          write(items[i], level + 1);
        }
        if (style.indent) newline(level);
        out.push_back(']');
        return;
      }
      case Value::Kind::Dict: {
        std::vector<const std::pair<std::string, Value>*> entries;
        for (const auto& e : v.as_dict()) entries.push_back(&e);
        if (style.sort_keys)
          std::stable_sort(entries.begin(), entries.end(), [](auto* a, auto* b) { return a->first < b->first; });
        if (entries.empty()) {
          out += "{}";
          return;
        }
        out.push_back('{');
        for (size_t i = 0; i < entries.size(); ++i) {
          if (i) out += item_separator;
          if (style.indent) newline(level + 1);
          json_string(out, entries[i]->first, style.ensure_ascii);
          out += key_separator;
          write(entries[i]->second, level + 1);
        }
        if (style.indent) newline(level);
        out.push_back('}');
        return;
      }
      default: render_error("Object of type {} is not JSON serializable", type_name(v));
    }
  }
};
}  // namespace

std::string to_json(const Value& v, const JsonStyle& style) {
  JsonWriter w{style, style.indent ? "," : ", ", ": ", {}};
  if (style.separators) std::tie(w.item_separator, w.key_separator) = *style.separators;
  w.write(v, 0);
  return std::move(w.out);
}

}  // namespace roofline::jinja
