// Python methods templates call on values (`s.startswith(...)`, `d.items()`, ...) and the global
// functions of the environment. Methods that would mutate a list or dict are refused, as in
// transformers' ImmutableSandboxedEnvironment.
#include <algorithm>
#include <charconv>
#include <ctime>
#include <memory>
#include <unordered_map>

#include "roofline/tokenizer/jinja_builtins.h"
#include "roofline/tokenizer/jinja_pystr.h"

namespace roofline::jinja {
namespace {

constexpr int64_t kMaxRange = 100000;  // jinja2.sandbox.MAX_RANGE
constexpr int64_t kMaxFormatWidth = int64_t(1) << 20;  // str.format field widths

using Method = Value (*)(const Value& self, CallArgs& args);

// s[start:end] for the optional start/end arguments of find/count/startswith; returns the window and
// the code-point offset it starts at.
std::pair<std::string, int64_t> window(const std::string& s, const std::optional<Value>& start,
                                       const std::optional<Value>& end) {
  if ((!start || start->is_none()) && (!end || end->is_none())) return {s, 0};
  int64_t n = int64_t(utf8_length(s));
  auto clamp = [n](int64_t i) { return i < 0 ? std::max<int64_t>(0, i + n) : std::min(i, n); };
  int64_t b = clamp(int_arg(start, 0, "start")), e = clamp(int_arg(end, n, "end"));
  if (e < b) return {"", -1};  // nothing can match
  return {utf8_substr(s, size_t(b), size_t(e)), b};
}

std::vector<std::string> affixes(const Value& v, std::string_view method) {
  if (v.is_string()) return {v.as_string()};
  if (v.is_tuple()) {
    std::vector<std::string> out;
    for (const Value& e : v.as_list()) {
      if (!e.is_string()) render_error("tuple for {} must only contain str, not {}", method, type_name(e));
      out.push_back(e.as_string());
    }
    return out;
  }
  render_error("{} first arg must be str or a tuple of str, not {}", method, type_name(v));
}

Value affix_test(const Value& self, CallArgs& args, bool prefix) {
  const char* name = prefix ? "startswith" : "endswith";
  auto a = bind_args(name, args, {prefix ? "prefix" : "suffix", "start", "end"});
  if (!a[0]) render_error("{}() takes at least 1 argument (0 given)", name);
  auto [s, offset] = window(self.as_string(), a[1], a[2]);
  if (offset < 0) return Value(false);
  for (const std::string& x : affixes(*a[0], name)) {
    if (x.size() > s.size()) continue;
    if (prefix ? s.compare(0, x.size(), x) == 0 : s.compare(s.size() - x.size(), x.size(), x) == 0) return Value(true);
  }
  return Value(false);
}

Value str_startswith(const Value& self, CallArgs& args) { return affix_test(self, args, true); }
Value str_endswith(const Value& self, CallArgs& args) { return affix_test(self, args, false); }

Value split_impl(const Value& self, CallArgs& args, bool from_right) {
  auto a = bind_args(from_right ? "rsplit" : "split", args, {"sep", "maxsplit"});
  auto sep = string_arg(a[0], "sep");
  if (sep && sep->empty()) render_error("empty separator");
  auto pieces = from_right ? py_rsplit(self.as_string(), sep, int_arg(a[1], -1, "maxsplit"))
                           : py_split(self.as_string(), sep, int_arg(a[1], -1, "maxsplit"));
  ValueList out(pieces.begin(), pieces.end());
  return Value::list(std::move(out));
}
Value str_split(const Value& self, CallArgs& args) { return split_impl(self, args, false); }
Value str_rsplit(const Value& self, CallArgs& args) { return split_impl(self, args, true); }

Value strip_impl(const Value& self, CallArgs& args, bool left, bool right) {
  auto a = bind_args("strip", args, {"chars"});
  return Value(py_strip(self.as_string(), string_arg(a[0], "chars"), left, right));
}
Value str_strip(const Value& self, CallArgs& args) { return strip_impl(self, args, true, true); }
Value str_lstrip(const Value& self, CallArgs& args) { return strip_impl(self, args, true, false); }
Value str_rstrip(const Value& self, CallArgs& args) { return strip_impl(self, args, false, true); }

template <std::string (*Map)(std::string_view)>
Value case_method(const Value& self, CallArgs& args) {
  bind_args("str method", args, {});
  return Value(Map(self.as_string()));
}

Value str_replace(const Value& self, CallArgs& args) {
  auto a = bind_args("replace", args, {"old", "new", "count"});
  auto old_s = string_arg(a[0], "old"), new_s = string_arg(a[1], "new");
  if (!old_s || !new_s) render_error("replace() takes at least 2 arguments");
  return Value(py_replace(self.as_string(), *old_s, *new_s, int_arg(a[2], -1, "count")));
}

Value find_impl(const Value& self, CallArgs& args, bool from_right, bool raise) {
  auto a = bind_args(from_right ? "rfind" : "find", args, {"sub", "start", "end"});
  auto sub = string_arg(a[0], "sub");
  if (!sub) render_error("find() takes at least 1 argument (0 given)");
  auto [s, offset] = window(self.as_string(), a[1], a[2]);
  int64_t at = offset < 0 ? -1 : py_find(s, *sub, from_right);
  if (at < 0) {
    if (raise) render_error("substring not found");
    return Value(int64_t(-1));
  }
  return Value(at + offset);
}
Value str_find(const Value& self, CallArgs& args) { return find_impl(self, args, false, false); }
Value str_rfind(const Value& self, CallArgs& args) { return find_impl(self, args, true, false); }
Value str_index(const Value& self, CallArgs& args) { return find_impl(self, args, false, true); }
Value str_rindex(const Value& self, CallArgs& args) { return find_impl(self, args, true, true); }

Value str_count(const Value& self, CallArgs& args) {
  auto a = bind_args("count", args, {"sub", "start", "end"});
  auto sub = string_arg(a[0], "sub");
  if (!sub) render_error("count() takes at least 1 argument (0 given)");
  auto [s, offset] = window(self.as_string(), a[1], a[2]);
  return Value(offset < 0 ? int64_t(0) : py_count(s, *sub));
}

Value str_join(const Value& self, CallArgs& args) {
  auto a = bind_args("join", args, {"iterable"});
  if (!a[0]) render_error("join() takes exactly one argument (0 given)");
  std::string out;
  ValueList items = iterate(*a[0]);
  for (size_t i = 0; i < items.size(); ++i) {
    if (!items[i].is_string())
      render_error("sequence item {}: expected str instance, {} found", i, type_name(items[i]));
    if (i) out += self.as_string();
    out += items[i].as_string();
  }
  return Value(std::move(out));
}

Value str_splitlines(const Value& self, CallArgs& args) {
  auto a = bind_args("splitlines", args, {"keepends"});
  auto lines = py_splitlines(self.as_string(), a[0] && truthy(*a[0]));
  return Value::list(ValueList(lines.begin(), lines.end()));
}

template <bool (*Pred)(char32_t)>
Value char_class(const Value& self, CallArgs& args) {
  bind_args("str method", args, {});
  std::u32string cps = utf8_decode(self.as_string());
  return Value(!cps.empty() && std::all_of(cps.begin(), cps.end(), Pred));
}

Value str_islower(const Value& self, CallArgs& args) {
  bind_args("islower", args, {});
  const std::string& s = self.as_string();
  return Value(py_lower(s) == s && py_upper(s) != s);
}
Value str_isupper(const Value& self, CallArgs& args) {
  bind_args("isupper", args, {});
  const std::string& s = self.as_string();
  return Value(py_upper(s) == s && py_lower(s) != s);
}

Value justify(const Value& self, CallArgs& args, char how) {
  auto a = bind_args("justify", args, {"width", "fillchar"});
  std::string fill = string_arg(a[1], "fillchar").value_or(" ");
  if (utf8_length(fill) != 1) render_error("The fill character must be exactly one character long");
  const std::string& s = self.as_string();
  int64_t n = int64_t(utf8_length(s)), width = int_arg(a[0], 0, "width");
  if (width <= n) return self;
  int64_t margin = width - n;
  int64_t left = how == 'l' ? 0 : how == 'r' ? margin : margin / 2 + (margin & width & 1);
  auto repeat = [&](int64_t k) {
    std::string out;
    for (int64_t i = 0; i < k; ++i) out += fill;
    return out;
  };
  return Value(repeat(left) + s + repeat(margin - left));
}
Value str_ljust(const Value& self, CallArgs& args) { return justify(self, args, 'l'); }
Value str_rjust(const Value& self, CallArgs& args) { return justify(self, args, 'r'); }
Value str_center(const Value& self, CallArgs& args) { return justify(self, args, 'c'); }

Value str_zfill(const Value& self, CallArgs& args) {
  auto a = bind_args("zfill", args, {"width"});
  std::string s = self.as_string();
  int64_t n = int64_t(utf8_length(s)), width = int_arg(a[0], 0, "width");
  if (width <= n) return self;
  size_t sign = !s.empty() && (s[0] == '+' || s[0] == '-') ? 1 : 0;
  return Value(s.substr(0, sign) + std::string(size_t(width - n), '0') + s.substr(sign));
}

Value partition_impl(const Value& self, CallArgs& args, bool from_right) {
  auto a = bind_args("partition", args, {"sep"});
  auto sep = string_arg(a[0], "sep");
  if (!sep || sep->empty()) render_error("empty separator");
  const std::string& s = self.as_string();
  size_t at = from_right ? s.rfind(*sep) : s.find(*sep);
  if (at == std::string::npos)
    return from_right ? Value::list({Value(""), Value(""), self}, true) : Value::list({self, Value(""), Value("")}, true);
  return Value::list({Value(s.substr(0, at)), Value(*sep), Value(s.substr(at + sep->size()))}, true);
}
Value str_partition(const Value& self, CallArgs& args) { return partition_impl(self, args, false); }
Value str_rpartition(const Value& self, CallArgs& args) { return partition_impl(self, args, true); }

Value str_removeprefix(const Value& self, CallArgs& args) {
  auto a = bind_args("removeprefix", args, {"prefix"});
  std::string p = string_arg(a[0], "prefix").value_or("");
  const std::string& s = self.as_string();
  return s.compare(0, p.size(), p) == 0 ? Value(s.substr(p.size())) : self;
}
Value str_removesuffix(const Value& self, CallArgs& args) {
  auto a = bind_args("removesuffix", args, {"suffix"});
  std::string p = string_arg(a[0], "suffix").value_or("");
  const std::string& s = self.as_string();
  bool match = !p.empty() && s.size() >= p.size() && s.compare(s.size() - p.size(), p.size(), p) == 0;
  return match ? Value(s.substr(0, s.size() - p.size())) : self;
}

// str.format with positional ({} / {0}) and keyword ({name}) fields and !r / !s conversions; format
// specs are limited to fill, alignment and width.
Value str_format(const Value& self, CallArgs& args) {
  const std::string& f = self.as_string();
  std::string out;
  size_t auto_index = 0;
  for (size_t i = 0; i < f.size(); ++i) {
    char c = f[i];
    if (c == '}' ) {
      if (i + 1 < f.size() && f[i + 1] == '}') ++i;
      else render_error("Single '}}' encountered in format string");
      out.push_back('}');
      continue;
    }
    if (c != '{') {
      out.push_back(c);
      continue;
    }
    if (i + 1 < f.size() && f[i + 1] == '{') {
      out.push_back('{');
      ++i;
      continue;
    }
    size_t close = f.find('}', i);
    if (close == std::string::npos) render_error("Single '{{' encountered in format string");
    std::string field = f.substr(i + 1, close - i - 1), spec;
    i = close;
    char conversion = 0;
    if (size_t colon = field.find(':'); colon != std::string::npos) {
      spec = field.substr(colon + 1);
      field.resize(colon);
    }
    if (size_t bang = field.find('!'); bang != std::string::npos) {
      conversion = bang + 1 < field.size() ? field[bang + 1] : 0;
      field.resize(bang);
    }
    const Value* v = nullptr;
    if (field.empty() || std::all_of(field.begin(), field.end(), ::isdigit)) {
      size_t index = auto_index;
      if (field.empty()) ++auto_index;
      else if (std::from_chars(field.data(), field.data() + field.size(), index).ec != std::errc())
        render_error("Replacement index {} out of range for positional args tuple", field);
      if (index >= args.positional.size()) render_error("Replacement index {} out of range for positional args tuple", index);
      v = &args.positional[index];
    } else {
      for (const auto& [k, val] : args.keyword)
        if (k == field) v = &val;
      if (!v) render_error("KeyError: {}", py_repr(field));
    }
    std::string text = conversion == 'r' ? repr(*v) : to_str(*v);
    if (!spec.empty()) {  // [[fill]align][width]
      char fill = ' ', align = v->is_number() ? '>' : '<';
      size_t p = 0;
      if (spec.size() >= 2 && std::string_view("<>^").find(spec[1]) != std::string_view::npos) {
        fill = spec[0];
        align = spec[1];
        p = 2;
      } else if (std::string_view("<>^").find(spec[0]) != std::string_view::npos) {
        align = spec[0];
        p = 1;
      }
      if (spec.find_first_not_of("0123456789", p) != std::string::npos) render_error("unsupported format spec '{}'", spec);
      // A width past kMaxFormatWidth is refused: a template must not be able to ask for gigabytes.
      int64_t width = 0, n = int64_t(utf8_length(text));
      if (p < spec.size() && (std::from_chars(spec.data() + p, spec.data() + spec.size(), width).ec != std::errc() ||
                              width > kMaxFormatWidth))
        render_error("format width '{}' is larger than {}", spec.substr(p), kMaxFormatWidth);
      if (width > n) {
        int64_t margin = width - n, left = align == '<' ? 0 : align == '>' ? margin : margin / 2;
        text = std::string(size_t(left), fill) + text + std::string(size_t(margin - left), fill);
      }
    }
    out += text;
  }
  return Value(std::move(out));
}

// ---- dict and list -----------------------------------------------------------------------------

Value dict_items(const Value& self, CallArgs& args) {
  bind_args("items", args, {});
  ValueList out;
  for (const auto& [k, v] : self.as_dict()) out.push_back(Value::list({Value(k), v}, true));
  return Value::list(std::move(out));
}
Value dict_keys(const Value& self, CallArgs& args) {
  bind_args("keys", args, {});
  return Value::list(iterate(self));
}
Value dict_values(const Value& self, CallArgs& args) {
  bind_args("values", args, {});
  ValueList out;
  for (const auto& [k, v] : self.as_dict()) out.push_back(v);
  return Value::list(std::move(out));
}
Value dict_get(const Value& self, CallArgs& args) {
  auto a = bind_args("get", args, {"key", "default"});
  if (!a[0]) render_error("get expected at least 1 argument, got 0");
  if (a[0]->is_string())
    if (const Value* v = dict_find(self.as_dict(), a[0]->as_string())) return *v;
  return a[1].value_or(Value::none());
}
Value same_copy(const Value& self, CallArgs& args) {
  bind_args("copy", args, {});
  return self;  // values are immutable, so a copy may share
}

Value list_index(const Value& self, CallArgs& args) {
  auto a = bind_args("index", args, {"value"});
  const ValueList& items = self.as_list();
  for (size_t i = 0; i < items.size(); ++i)
    if (a[0] && equals(items[i], *a[0])) return Value(int64_t(i));
  render_error("{} is not in list", a[0] ? repr(*a[0]) : "None");
}
Value list_count(const Value& self, CallArgs& args) {
  auto a = bind_args("count", args, {"value"});
  int64_t n = 0;
  for (const Value& item : self.as_list()) n += a[0] && equals(item, *a[0]);
  return Value(n);
}

const std::unordered_map<std::string, Method>& string_methods() {
  static const std::unordered_map<std::string, Method> table = {
      {"startswith", str_startswith},   {"endswith", str_endswith},     {"split", str_split},
      {"rsplit", str_rsplit},           {"strip", str_strip},           {"lstrip", str_lstrip},
      {"rstrip", str_rstrip},           {"upper", case_method<py_upper>}, {"lower", case_method<py_lower>},
      {"casefold", case_method<py_lower>}, {"title", case_method<py_title>},
      {"capitalize", case_method<py_capitalize>}, {"swapcase", case_method<py_swapcase>},
      {"replace", str_replace},         {"find", str_find},             {"rfind", str_rfind},
      {"index", str_index},             {"rindex", str_rindex},         {"count", str_count},
      {"join", str_join},               {"format", str_format},         {"splitlines", str_splitlines},
      {"isdigit", char_class<py_isdigit>}, {"isdecimal", char_class<py_isdigit>},
      {"isnumeric", char_class<py_isdigit>}, {"isalpha", char_class<py_isalpha>},
      {"isalnum", char_class<py_isalnum>}, {"isspace", char_class<py_isspace>},
      {"islower", str_islower},         {"isupper", str_isupper},       {"ljust", str_ljust},
      {"rjust", str_rjust},             {"center", str_center},         {"zfill", str_zfill},
      {"partition", str_partition},     {"rpartition", str_rpartition}, {"removeprefix", str_removeprefix},
      {"removesuffix", str_removesuffix},
  };
  return table;
}

const std::unordered_map<std::string, Method>& dict_methods() {
  static const std::unordered_map<std::string, Method> table = {
      {"items", dict_items}, {"keys", dict_keys}, {"values", dict_values}, {"get", dict_get}, {"copy", same_copy},
  };
  return table;
}

const std::unordered_map<std::string, Method>& list_methods() {
  static const std::unordered_map<std::string, Method> table = {
      {"index", list_index}, {"count", list_count}, {"copy", same_copy},
  };
  return table;
}

bool is_mutating(const Value& object, const std::string& name) {
  static const char* const dict_mutators[] = {"pop", "popitem", "setdefault", "update", "clear"};
  static const char* const list_mutators[] = {"append", "extend", "insert", "pop", "remove", "reverse", "sort", "clear"};
  if (object.is_dict()) return std::find(std::begin(dict_mutators), std::end(dict_mutators), name) != std::end(dict_mutators);
  if (object.is_list()) return std::find(std::begin(list_mutators), std::end(list_mutators), name) != std::end(list_mutators);
  return false;
}

}  // namespace

Value get_method(const Value& object, const std::string& name) {
  const std::unordered_map<std::string, Method>* table = nullptr;
  if (object.is_string()) table = &string_methods();
  else if (object.is_dict()) table = &dict_methods();
  else if (object.is_list()) table = &list_methods();
  else return Value::undefined("");
  if (auto it = table->find(name); it != table->end()) {
    Method m = it->second;
    return Value::function(name, [object, m](CallArgs& args) { return m(object, args); });
  }
  if (is_mutating(object, name)) {
    std::string type = type_name(object);
    return Value::function(name, [name, type](CallArgs&) -> Value {
      render_error("access to attribute '{}' of '{}' object is unsafe.", name, type);
    });
  }
  return Value::undefined("");
}

// ---- global functions --------------------------------------------------------------------------

namespace {

Value fn_range(CallArgs& args) {
  if (!args.keyword.empty()) render_error("range() takes no keyword arguments");
  auto& p = args.positional;
  if (p.empty() || p.size() > 3) render_error("range expected 1 to 3 arguments, got {}", p.size());
  auto arg = [&](size_t i) { return int_arg(p[i], 0, "range() argument"); };
  int64_t start = p.size() == 1 ? 0 : arg(0), stop = p.size() == 1 ? arg(0) : arg(1), step = p.size() == 3 ? arg(2) : 1;
  if (step == 0) render_error("range() arg 3 must not be zero");
  ValueList out;
  for (int64_t i = start; step > 0 ? i < stop : i > stop; i += step) {
    if (int64_t(out.size()) >= kMaxRange)
      render_error("Range too big. The sandbox blocks ranges larger than MAX_RANGE ({}).", kMaxRange);
    out.emplace_back(i);
  }
  return Value::list(std::move(out));
}

// dict(mapping_or_pairs, **kwargs), as Python's dict(); namespace() takes the same arguments.
ValueDict dict_from_args(CallArgs& args, std::string_view function) {
  ValueDict out;
  auto put = [&](const std::string& k, Value v) {
    for (auto& [key, val] : out)
      if (key == k) return void(val = std::move(v));
    out.emplace_back(k, std::move(v));
  };
  if (args.positional.size() > 1) render_error("{} expected at most 1 argument, got {}", function, args.positional.size());
  if (!args.positional.empty()) {
    const Value& src = args.positional[0];
    if (src.is_dict()) {
      for (const auto& [k, v] : src.as_dict()) put(k, v);
    } else {
      for (const Value& pair : iterate(src)) {
        ValueList kv = iterate(pair);
        if (kv.size() != 2 || !kv[0].is_string()) render_error("{}: expected (str, value) pairs", function);
        put(kv[0].as_string(), kv[1]);
      }
    }
  }
  for (auto& [k, v] : args.keyword) put(k, v);
  return out;
}

Value fn_joiner(CallArgs& args) {
  auto a = bind_args("joiner", args, {"sep"});
  std::string sep = a[0] ? to_str(*a[0]) : ", ";
  auto used = std::make_shared<bool>(false);
  return Value::function("joiner", [sep, used](CallArgs&) {
    if (!*used) {
      *used = true;
      return Value("");
    }
    return Value(sep);
  });
}

// transformers' raise_exception: the template's own message, without our location prefix.
Value fn_raise_exception(CallArgs& args) {
  auto a = bind_args("raise_exception", args, {"message"});
  throw Error(a[0] ? to_str(*a[0]) : "raise_exception() called");
}

// transformers' strftime_now: datetime.now().strftime(format), in local time.
Value fn_strftime_now(CallArgs& args) {
  auto a = bind_args("strftime_now", args, {"format"});
  std::string format = a[0] ? to_str(*a[0]) : "";
  std::time_t now = std::time(nullptr);
  std::tm local{};
  localtime_r(&now, &local);
  std::string out(256, '\0');
  size_t n = format.empty() ? 0 : std::strftime(out.data(), out.size(), format.c_str(), &local);
  if (n == 0 && !format.empty()) render_error("strftime_now: format too long or empty result");
  out.resize(n);
  return Value(std::move(out));
}

}  // namespace

ValueDict global_functions() {
  return {
      {"range", Value::function("range", fn_range)},
      {"dict", Value::function("dict", [](CallArgs& a) { return Value::dict(dict_from_args(a, "dict")); })},
      {"namespace",
       Value::function("namespace", [](CallArgs& a) { return Value::make_namespace(dict_from_args(a, "namespace")); })},
      {"joiner", Value::function("joiner", fn_joiner)},
      {"raise_exception", Value::function("raise_exception", fn_raise_exception)},
      {"strftime_now", Value::function("strftime_now", fn_strftime_now)},
  };
}

}  // namespace roofline::jinja
