// Jinja's built-in filters (jinja2/filters.py), with transformers' tojson. Generators in Jinja
// (map, select, reverse, items, ...) are lists here: templates iterate, join or `| list` them.
#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <unordered_map>

#include "roofline/tokenizer/jinja_builtins.h"
#include "roofline/tokenizer/jinja_ops.h"
#include "roofline/tokenizer/jinja_pystr.h"

namespace roofline::jinja {

std::vector<std::optional<Value>> bind_args(std::string_view function, CallArgs& args,
                                            std::initializer_list<std::string_view> params) {
  std::vector<std::optional<Value>> out(params.size());
  if (args.positional.size() > params.size())
    render_error("{}() takes at most {} argument(s) ({} given)", function, params.size(), args.positional.size());
  for (size_t i = 0; i < args.positional.size(); ++i) out[i] = std::move(args.positional[i]);
  for (auto& [key, value] : args.keyword) {
    auto it = std::find(params.begin(), params.end(), key);
    if (it == params.end()) render_error("{}() got an unexpected keyword argument '{}'", function, key);
    auto& slot = out[size_t(it - params.begin())];
    if (slot) render_error("{}() got multiple values for argument '{}'", function, key);
    slot = std::move(value);
  }
  return out;
}

int64_t int_arg(const std::optional<Value>& v, int64_t fallback, std::string_view what) {
  if (!v || v->is_none()) return fallback;
  if (!v->is_int() && !v->is_bool()) render_error("{} must be an integer, not {}", what, type_name(*v));
  return v->as_int();
}

std::optional<std::string> string_arg(const std::optional<Value>& v, std::string_view what) {
  if (!v || v->is_none()) return std::nullopt;
  if (!v->is_string()) render_error("{} must be a string, not {}", what, type_name(*v));
  return v->as_string();
}

namespace {

bool bool_arg(const std::optional<Value>& v, bool fallback) { return v ? truthy(*v) : fallback; }

using Filter = Value (*)(const Value&, CallArgs&);

// ---- helpers -----------------------------------------------------------------------------------

// Jinja's make_attrgetter: "a.b.0" looks up a, then b, then item 0.
Value lookup_path(const Value& v, const std::string& path) {
  Value cur = v;
  size_t pos = 0;
  while (true) {
    size_t dot = path.find('.', pos);
    std::string part = path.substr(pos, dot == std::string::npos ? std::string::npos : dot - pos);
    bool numeric = !part.empty() && std::all_of(part.begin(), part.end(), [](char c) { return c >= '0' && c <= '9'; });
    int64_t index = 0;
    if (numeric && std::from_chars(part.data(), part.data() + part.size(), index).ec != std::errc())
      render_error("attribute path '{}': index {} out of range", path, part);
    cur = get_item(cur, numeric ? Value(index) : Value(part));
    if (dot == std::string::npos) return cur;
    pos = dot + 1;
  }
}

// Sort/unique/min/max compare strings case-insensitively unless case_sensitive is set.
Value sort_key(const Value& v, const std::optional<std::string>& attribute, bool case_sensitive) {
  Value key = attribute ? lookup_path(v, *attribute) : v;
  if (!case_sensitive && key.is_string()) return Value(py_lower(key.as_string()));
  return key;
}

std::optional<int64_t> parse_py_int(std::string_view s, int base) {
  std::string t = py_strip(s, std::nullopt, true, true);
  size_t i = 0;
  bool negative = false;
  if (i < t.size() && (t[i] == '+' || t[i] == '-')) negative = t[i++] == '-';
  auto has_prefix = [&](char p) {
    return i + 1 < t.size() && t[i] == '0' && (t[i + 1] == p || t[i + 1] == char(p - 32));
  };
  if ((base == 16 || base == 0) && has_prefix('x')) base = 16, i += 2;
  else if ((base == 8 || base == 0) && has_prefix('o')) base = 8, i += 2;
  else if ((base == 2 || base == 0) && has_prefix('b')) base = 2, i += 2;
  else if (base == 0) base = 10;
  if (i < t.size() && t[i] == '_' && i >= 2) ++i;  // "0x_1f" is valid
  int64_t value = 0;
  bool any = false, last_underscore = false;
  for (; i < t.size(); ++i) {
    char c = t[i];
    if (c == '_') {
      if (!any || last_underscore) return std::nullopt;
      last_underscore = true;
      continue;
    }
    int d = (c >= '0' && c <= '9') ? c - '0' : (c >= 'a' && c <= 'z') ? c - 'a' + 10 : (c >= 'A' && c <= 'Z') ? c - 'A' + 10 : 99;
    if (d >= base) return std::nullopt;
    if (__builtin_mul_overflow(value, base, &value) || __builtin_add_overflow(value, d, &value)) return std::nullopt;
    any = true;
    last_underscore = false;
  }
  if (!any || last_underscore) return std::nullopt;
  return negative ? -value : value;
}

std::optional<double> parse_py_float(std::string_view s) {
  std::string t = py_strip(s, std::nullopt, true, true);
  std::string clean;
  for (size_t i = 0; i < t.size(); ++i) {  // underscores only between digits
    if (t[i] == '_') {
      if (i == 0 || i + 1 >= t.size() || !std::isdigit(static_cast<unsigned char>(t[i - 1])) ||
          !std::isdigit(static_cast<unsigned char>(t[i + 1])))
        return std::nullopt;
      continue;
    }
    clean.push_back(t[i]);
  }
  std::string lower = py_lower(clean);
  std::string_view body = lower;
  if (!body.empty() && (body[0] == '+' || body[0] == '-')) body.remove_prefix(1);
  if (body == "inf" || body == "infinity" || body == "nan") return std::strtod(lower.c_str(), nullptr);
  if (clean.empty() || clean.find_first_not_of("0123456789.eE+-") != std::string::npos) return std::nullopt;
  char* end = nullptr;
  double d = std::strtod(clean.c_str(), &end);
  if (end != clean.c_str() + clean.size()) return std::nullopt;
  return d;
}

std::string html_escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&#34;"; break;
      case '\'': out += "&#39;"; break;
      default: out.push_back(c);
    }
  }
  return out;
}

// Python's round(x, ndigits) on a float: correctly rounded, ties to even. printf rounds the exact
// binary value the same way, so print and read back.
double round_half_even(double x, int64_t digits) {
  if (!std::isfinite(x)) return x;
  if (digits >= 0) {
    char buf[512];
    std::snprintf(buf, sizeof buf, "%.*f", int(std::min<int64_t>(digits, 300)), x);
    return std::strtod(buf, nullptr);
  }
  double scale = std::pow(10.0, double(-digits));
  return std::nearbyint(x / scale) * scale;
}

// select / reject / selectattr / rejectattr share Jinja's select_or_reject.
Value select_or_reject(const Value& v, CallArgs& args, bool with_attribute, bool keep_when) {
  std::optional<std::string> attribute;
  size_t first = 0;
  if (with_attribute) {
    if (args.positional.empty()) render_error("missing parameter for attribute name");
    attribute = to_str(args.positional[0]);
    first = 1;
  }
  std::string test;
  if (args.positional.size() > first) test = to_str(args.positional[first]);
  CallArgs test_args;
  for (size_t i = first + 1; i < args.positional.size(); ++i) test_args.positional.push_back(args.positional[i]);
  test_args.keyword = args.keyword;
  ValueList out;
  for (const Value& item : iterate(v)) {
    Value probe = attribute ? lookup_path(item, *attribute) : item;
    CallArgs a = test_args;
    bool passed = test.empty() ? truthy(probe) : apply_test(test, probe, a);
    if (passed == keep_when) out.push_back(item);
  }
  return Value::list(std::move(out));
}

Value min_max(const Value& v, CallArgs& args, bool want_max) {
  auto a = bind_args(want_max ? "max" : "min", args, {"case_sensitive", "attribute"});
  auto attribute = string_arg(a[1], "attribute");
  bool case_sensitive = bool_arg(a[0], false);
  ValueList items = iterate(v);
  if (items.empty()) return Value::undefined("No aggregated item, sequence was empty.");
  size_t best = 0;
  Value best_key = sort_key(items[0], attribute, case_sensitive);
  for (size_t i = 1; i < items.size(); ++i) {
    Value key = sort_key(items[i], attribute, case_sensitive);
    int c = compare(key, best_key);
    if (want_max ? c > 0 : c < 0) {
      best = i;
      best_key = std::move(key);
    }
  }
  return items[best];
}

// ---- the filters -------------------------------------------------------------------------------

Value f_abs(const Value& v, CallArgs& args) {
  bind_args("abs", args, {});
  if (v.is_float()) return Value(std::fabs(v.as_double()));
  if (v.is_number()) return Value(v.as_int() < 0 ? -v.as_int() : v.as_int());
  render_error("bad operand type for abs(): '{}'", type_name(v));
}

Value f_attr(const Value& v, CallArgs& args) {
  auto a = bind_args("attr", args, {"name"});
  return get_attr(v, to_str(a[0].value_or(Value(""))));
}

Value f_batch(const Value& v, CallArgs& args) {
  auto a = bind_args("batch", args, {"linecount", "fill_with"});
  int64_t n = int_arg(a[0], 0, "linecount");
  if (n <= 0) render_error("batch linecount must be positive");
  ValueList out, row;
  for (Value& item : iterate(v)) {
    row.push_back(std::move(item));
    if (int64_t(row.size()) == n) out.push_back(Value::list(std::exchange(row, {})));
  }
  if (!row.empty()) {
    if (a[1] && !a[1]->is_none())
      while (int64_t(row.size()) < n) row.push_back(*a[1]);
    out.push_back(Value::list(std::move(row)));
  }
  return Value::list(std::move(out));
}

Value f_capitalize(const Value& v, CallArgs& args) {
  bind_args("capitalize", args, {});
  return Value(py_capitalize(to_str(v)));
}

Value f_center(const Value& v, CallArgs& args) {
  auto a = bind_args("center", args, {"width"});
  std::string s = to_str(v);
  int64_t width = int_arg(a[0], 80, "width"), n = int64_t(utf8_length(s));
  if (width <= n) return Value(s);
  int64_t margin = width - n, left = margin / 2 + (margin & width & 1);  // CPython's str.center
  return Value(std::string(size_t(left), ' ') + s + std::string(size_t(margin - left), ' '));
}

Value f_count(const Value& v, CallArgs& args) {
  bind_args("length", args, {});
  return Value(length(v));
}

Value f_default(const Value& v, CallArgs& args) {
  auto a = bind_args("default", args, {"default_value", "boolean"});
  if (v.is_undefined() || (bool_arg(a[1], false) && !truthy(v))) return a[0].value_or(Value(""));
  return v;
}

Value f_dictsort(const Value& v, CallArgs& args) {
  auto a = bind_args("dictsort", args, {"case_sensitive", "by", "reverse"});
  v.require_defined();
  if (!v.is_dict()) render_error("dictsort requires a mapping, got {}", type_name(v));
  std::string by = string_arg(a[1], "by").value_or("key");
  if (by != "key" && by != "value") render_error("You can only sort by either 'key' or 'value'");
  bool case_sensitive = bool_arg(a[0], false), reverse = bool_arg(a[2], false);
  ValueList pairs;
  for (const auto& [k, val] : v.as_dict()) pairs.push_back(Value::list({Value(k), val}, true));
  std::stable_sort(pairs.begin(), pairs.end(), [&](const Value& x, const Value& y) {
    size_t i = by == "key" ? 0 : 1;
    int c = compare(sort_key(x.as_list()[i], std::nullopt, case_sensitive),
                    sort_key(y.as_list()[i], std::nullopt, case_sensitive));
    return reverse ? c > 0 : c < 0;
  });
  return Value::list(std::move(pairs));
}

Value f_escape(const Value& v, CallArgs& args) {
  bind_args("escape", args, {});
  return Value(html_escape(to_str(v)));
}

Value f_first(const Value& v, CallArgs& args) {
  bind_args("first", args, {});
  if (v.is_undefined()) return Value::undefined("No first item, sequence was empty.");
  ValueList items = iterate(v);
  if (items.empty()) return Value::undefined("No first item, sequence was empty.");
  return items.front();
}

Value f_last(const Value& v, CallArgs& args) {
  bind_args("last", args, {});
  if (v.is_undefined()) return Value::undefined("No last item, sequence was empty.");
  ValueList items = iterate(v);
  if (items.empty()) return Value::undefined("No last item, sequence was empty.");
  return items.back();
}

Value f_float(const Value& v, CallArgs& args) {
  auto a = bind_args("float", args, {"default"});
  Value fallback = a[0].value_or(Value(0.0));
  v.require_defined();
  if (v.is_number()) return Value(v.as_double());
  if (v.is_string())
    if (auto d = parse_py_float(v.as_string())) return Value(*d);
  return fallback;
}

Value f_format(const Value& v, CallArgs& args) {
  if (!args.keyword.empty() && !args.positional.empty())
    render_error("can't handle positional and keyword arguments at the same time");
  Value format_args = args.keyword.empty() ? Value::list(args.positional, true)
                                           : Value::dict(ValueDict(args.keyword.begin(), args.keyword.end()));
  return Value(percent_format(to_str(v), format_args));
}

Value f_indent(const Value& v, CallArgs& args) {
  auto a = bind_args("indent", args, {"width", "first", "blank"});
  v.require_defined();
  std::string indention = a[0] && a[0]->is_string() ? a[0]->as_string()
                                                      : std::string(size_t(std::max<int64_t>(0, int_arg(a[0], 4, "width"))), ' ');
  bool first = bool_arg(a[1], false), blank = bool_arg(a[2], false);
  std::vector<std::string> lines = py_splitlines(to_str(v) + "\n");  // Jinja's trailing-newline quirk
  std::string out;
  for (size_t i = 0; i < lines.size(); ++i) {
    if (i) out += "\n";
    bool indent = i == 0 ? first : (blank || !lines[i].empty());
    if (indent) out += indention;
    out += lines[i];
  }
  return Value(std::move(out));
}

Value f_int(const Value& v, CallArgs& args) {
  auto a = bind_args("int", args, {"default", "base"});
  Value fallback = a[0].value_or(Value(0));
  int base = int(int_arg(a[1], 10, "base"));
  v.require_defined();
  if (v.is_float()) {
    double d = v.as_double();
    if (!std::isfinite(d)) return fallback;
    return Value(int64_t(std::trunc(d)));
  }
  if (v.is_number()) return Value(v.as_int());
  if (v.is_string()) {
    if (auto i = parse_py_int(v.as_string(), base)) return Value(*i);
    if (auto d = parse_py_float(v.as_string()); d && std::isfinite(*d)) return Value(int64_t(std::trunc(*d)));
  }
  return fallback;
}

Value f_items(const Value& v, CallArgs& args) {
  bind_args("items", args, {});
  if (v.is_undefined()) return Value::list({});
  if (!v.is_dict()) render_error("Can only get item pairs from a mapping.");
  ValueList pairs;
  for (const auto& [k, val] : v.as_dict()) pairs.push_back(Value::list({Value(k), val}, true));
  return Value::list(std::move(pairs));
}

Value f_join(const Value& v, CallArgs& args) {
  auto a = bind_args("join", args, {"d", "attribute"});
  std::string sep = a[0] ? to_str(*a[0]) : "";
  auto attribute = a[1] ? std::optional<std::string>(to_str(*a[1])) : std::nullopt;
  std::string out;
  bool first = true;
  for (const Value& item : iterate(v)) {
    if (!first) out += sep;
    first = false;
    out += to_str(attribute ? lookup_path(item, *attribute) : item);
  }
  return Value(std::move(out));
}

Value f_list(const Value& v, CallArgs& args) {
  bind_args("list", args, {});
  return Value::list(iterate(v));
}

Value f_lower(const Value& v, CallArgs& args) {
  bind_args("lower", args, {});
  return Value(py_lower(to_str(v)));
}

Value f_map(const Value& v, CallArgs& args) {
  ValueList out;
  const Value* attribute = nullptr;
  const Value* fallback = nullptr;
  for (const auto& [k, val] : args.keyword) {
    if (k == "attribute") attribute = &val;
    else if (k == "default") fallback = &val;
  }
  if (attribute) {
    for (const Value& item : iterate(v)) {
      Value r = lookup_path(item, to_str(*attribute));
      out.push_back(r.is_undefined() && fallback ? *fallback : r);
    }
    return Value::list(std::move(out));
  }
  if (args.positional.empty()) render_error("map requires a filter argument");
  std::string filter = to_str(args.positional[0]);
  for (const Value& item : iterate(v)) {
    CallArgs rest;
    rest.positional.assign(args.positional.begin() + 1, args.positional.end());
    rest.keyword = args.keyword;
    out.push_back(apply_filter(filter, item, rest));
  }
  return Value::list(std::move(out));
}

Value f_max(const Value& v, CallArgs& args) { return min_max(v, args, true); }
Value f_min(const Value& v, CallArgs& args) { return min_max(v, args, false); }

Value f_reject(const Value& v, CallArgs& args) { return select_or_reject(v, args, false, false); }
Value f_rejectattr(const Value& v, CallArgs& args) { return select_or_reject(v, args, true, false); }
Value f_select(const Value& v, CallArgs& args) { return select_or_reject(v, args, false, true); }
Value f_selectattr(const Value& v, CallArgs& args) { return select_or_reject(v, args, true, true); }

Value f_replace(const Value& v, CallArgs& args) {
  auto a = bind_args("replace", args, {"old", "new", "count"});
  if (!a[0] || !a[1]) render_error("replace() missing required arguments 'old' and 'new'");
  return Value(py_replace(to_str(v), to_str(*a[0]), to_str(*a[1]), int_arg(a[2], -1, "count")));
}

Value f_reverse(const Value& v, CallArgs& args) {
  bind_args("reverse", args, {});
  if (v.is_string()) {
    std::u32string cps = utf8_decode(v.as_string());
    std::reverse(cps.begin(), cps.end());
    return Value(utf8_encode(cps));
  }
  ValueList items = iterate(v);
  std::reverse(items.begin(), items.end());
  return Value::list(std::move(items));
}

Value f_round(const Value& v, CallArgs& args) {
  auto a = bind_args("round", args, {"precision", "method"});
  int64_t precision = int_arg(a[0], 0, "precision");
  std::string method = string_arg(a[1], "method").value_or("common");
  v.require_defined();
  if (!v.is_number()) render_error("type {} doesn't define __round__ method", type_name(v));
  if (method == "common") {
    if (!v.is_float()) {
      if (precision >= 0) return Value(v.as_int());
      return Value(int64_t(round_half_even(double(v.as_int()), precision)));
    }
    return Value(round_half_even(v.as_double(), precision));
  }
  if (method != "ceil" && method != "floor") render_error("method must be common, ceil or floor");
  double scale = std::pow(10.0, double(precision));
  double x = v.as_double() * scale;
  return Value((method == "ceil" ? std::ceil(x) : std::floor(x)) / scale);
}

Value f_safe(const Value& v, CallArgs& args) {
  bind_args("safe", args, {});
  return Value(to_str(v));
}

Value f_sort(const Value& v, CallArgs& args) {
  auto a = bind_args("sort", args, {"reverse", "case_sensitive", "attribute"});
  bool reverse = bool_arg(a[0], false), case_sensitive = bool_arg(a[1], false);
  auto attribute = a[2] ? std::optional<std::string>(to_str(*a[2])) : std::nullopt;
  ValueList items = iterate(v);
  std::vector<std::pair<Value, size_t>> keyed;
  for (size_t i = 0; i < items.size(); ++i) keyed.emplace_back(sort_key(items[i], attribute, case_sensitive), i);
  std::stable_sort(keyed.begin(), keyed.end(), [&](const auto& x, const auto& y) {
    int c = compare(x.first, y.first);
    return reverse ? c > 0 : c < 0;
  });
  ValueList out;
  for (const auto& [key, i] : keyed) out.push_back(items[i]);
  return Value::list(std::move(out));
}

Value f_string(const Value& v, CallArgs& args) {
  bind_args("string", args, {});
  return Value(to_str(v));
}

Value f_sum(const Value& v, CallArgs& args) {
  auto a = bind_args("sum", args, {"attribute", "start"});
  Value total = a[1].value_or(Value(0));
  for (const Value& item : iterate(v))
    total = binary_op(BinaryOp::Add, total, a[0] ? lookup_path(item, to_str(*a[0])) : item);
  return total;
}

Value f_title(const Value& v, CallArgs& args) {
  bind_args("title", args, {});
  // Jinja's own title (not str.title): words start after '-', whitespace, '(', '{', '[' or '<'.
  std::string out;
  bool at_word_start = true;
  for (char32_t c : utf8_decode(to_str(v))) {
    bool delimiter = py_isspace(c) || c == '-' || c == '(' || c == '{' || c == '[' || c == '<';
    if (delimiter) {
      out += utf8_encode(std::u32string(1, c));
      at_word_start = true;
    } else {
      std::string one = utf8_encode(std::u32string(1, c));
      out += at_word_start ? py_upper(one) : py_lower(one);
      at_word_start = false;
    }
  }
  return Value(std::move(out));
}

// transformers replaces Jinja's tojson (which HTML-escapes) with json.dumps(x, ensure_ascii=False,
// indent=indent, separators=separators, sort_keys=sort_keys).
Value f_tojson(const Value& v, CallArgs& args) {
  auto a = bind_args("tojson", args, {"ensure_ascii", "indent", "separators", "sort_keys"});
  JsonStyle style;
  style.ensure_ascii = bool_arg(a[0], false);
  if (a[1] && !a[1]->is_none()) {
    if (a[1]->is_string()) style.indent = a[1]->as_string();
    else style.indent = std::string(size_t(std::max<int64_t>(0, int_arg(a[1], 0, "indent"))), ' ');
  }
  if (a[2] && !a[2]->is_none()) {
    ValueList seps = iterate(*a[2]);
    if (seps.size() != 2 || !seps[0].is_string() || !seps[1].is_string())
      render_error("tojson separators must be a pair of strings");
    style.separators = std::make_pair(seps[0].as_string(), seps[1].as_string());
  }
  style.sort_keys = bool_arg(a[3], false);
  return Value(to_json(v, style));
}

Value f_trim(const Value& v, CallArgs& args) {
  auto a = bind_args("trim", args, {"chars"});
  return Value(py_strip(to_str(v), string_arg(a[0], "chars"), true, true));
}

Value f_truncate(const Value& v, CallArgs& args) {
  auto a = bind_args("truncate", args, {"length", "killwords", "end", "leeway"});
  std::string s = to_str(v), end = a[2] ? to_str(*a[2]) : "...";
  int64_t limit = int_arg(a[0], 255, "length"), leeway = int_arg(a[3], 5, "leeway");
  int64_t n = int64_t(utf8_length(s)), end_n = int64_t(utf8_length(end));
  if (limit < end_n) render_error("expected length >= {}, got {}", end_n, limit);
  if (n <= limit + leeway) return Value(s);
  std::string head = utf8_substr(s, 0, size_t(limit - end_n));
  if (bool_arg(a[1], false)) return Value(head + end);
  return Value(py_rsplit(head, std::string(" "), 1)[0] + end);
}

Value f_unique(const Value& v, CallArgs& args) {
  auto a = bind_args("unique", args, {"case_sensitive", "attribute"});
  bool case_sensitive = bool_arg(a[0], false);
  auto attribute = a[1] ? std::optional<std::string>(to_str(*a[1])) : std::nullopt;
  ValueList out, seen;
  for (const Value& item : iterate(v)) {
    Value key = sort_key(item, attribute, case_sensitive);
    if (std::any_of(seen.begin(), seen.end(), [&](const Value& s) { return equals(s, key); })) continue;
    seen.push_back(std::move(key));
    out.push_back(item);
  }
  return Value::list(std::move(out));
}

Value f_upper(const Value& v, CallArgs& args) {
  bind_args("upper", args, {});
  return Value(py_upper(to_str(v)));
}

Value f_wordcount(const Value& v, CallArgs& args) {
  bind_args("wordcount", args, {});
  int64_t words = 0;
  bool in_word = false;
  for (char32_t c : utf8_decode(to_str(v))) {  // len(re.findall(r"\w+", s))
    bool word_char = c == '_' || py_isalnum(c);
    if (word_char && !in_word) ++words;
    in_word = word_char;
  }
  return Value(words);
}

const std::unordered_map<std::string, Filter>& filters() {
  static const std::unordered_map<std::string, Filter> table = {
      {"abs", f_abs},         {"attr", f_attr},         {"batch", f_batch},
      {"capitalize", f_capitalize}, {"center", f_center}, {"count", f_count},
      {"d", f_default},       {"default", f_default},   {"dictsort", f_dictsort},
      {"e", f_escape},        {"escape", f_escape},     {"first", f_first},
      {"float", f_float},     {"forceescape", f_escape}, {"format", f_format},
      {"indent", f_indent},   {"int", f_int},           {"items", f_items},
      {"join", f_join},       {"last", f_last},         {"length", f_count},
      {"list", f_list},       {"lower", f_lower},       {"map", f_map},
      {"max", f_max},         {"min", f_min},           {"reject", f_reject},
      {"rejectattr", f_rejectattr}, {"replace", f_replace}, {"reverse", f_reverse},
      {"round", f_round},     {"safe", f_safe},         {"select", f_select},
      {"selectattr", f_selectattr}, {"sort", f_sort},   {"string", f_string},
      {"sum", f_sum},         {"title", f_title},       {"tojson", f_tojson},
      {"trim", f_trim},       {"truncate", f_truncate}, {"unique", f_unique},
      {"upper", f_upper},     {"wordcount", f_wordcount},
  };
  return table;
}

}  // namespace

bool has_filter(const std::string& name) { return filters().count(name) != 0; }

Value apply_filter(const std::string& name, const Value& value, CallArgs& args) {
  auto it = filters().find(name);
  if (it == filters().end()) render_error("no filter named '{}'", name);
  return it->second(value, args);
}

}  // namespace roofline::jinja
