#include "roofline/tokenizer/jinja_ops.h"

#include <cctype>
#include <cmath>
#include <cstdio>

#include "roofline/tokenizer/jinja_pystr.h"

namespace roofline::jinja {
namespace {

// Python ints are unbounded; ours are 64-bit, so overflow is an error rather than a wrong answer.
template <typename Op>
int64_t checked(Op op, int64_t a, int64_t b) {
  int64_t result = 0;
  if (op(a, b, &result)) render_error("integer overflow");
  return result;
}
bool add_overflow(int64_t a, int64_t b, int64_t* r) { return __builtin_add_overflow(a, b, r); }
bool sub_overflow(int64_t a, int64_t b, int64_t* r) { return __builtin_sub_overflow(a, b, r); }
bool mul_overflow(int64_t a, int64_t b, int64_t* r) { return __builtin_mul_overflow(a, b, r); }

// Bounds `'ab' * n` so that a template cannot ask for gigabytes.
constexpr size_t kMaxRepeatBytes = size_t(1) << 28;

Value repeat(const Value& seq, int64_t n) {
  if (n < 0) n = 0;
  if (seq.is_string()) {
    if (seq.as_string().size() * size_t(n) > kMaxRepeatBytes) render_error("string repetition too large");
    std::string out;
    for (int64_t i = 0; i < n; ++i) out += seq.as_string();
    return Value(std::move(out));
  }
  if (seq.as_list().size() * size_t(n) * sizeof(Value) > kMaxRepeatBytes) render_error("list repetition too large");
  ValueList out;
  for (int64_t i = 0; i < n; ++i) out.insert(out.end(), seq.as_list().begin(), seq.as_list().end());
  return Value::list(std::move(out), seq.is_tuple());
}

[[noreturn]] void unsupported(std::string_view op, const Value& a, const Value& b) {
  render_error("unsupported operand type(s) for {}: '{}' and '{}'", op, type_name(a), type_name(b));
}

int64_t floor_div(int64_t a, int64_t b) {
  if (b == 0) render_error("integer division or modulo by zero");
  if (a == INT64_MIN && b == -1) render_error("integer overflow");
  int64_t q = a / b;
  if ((a % b != 0) && ((a < 0) != (b < 0))) --q;
  return q;
}

int64_t floor_mod(int64_t a, int64_t b) {
  if (b == 0) render_error("integer division or modulo by zero");
  if (b == -1) return 0;
  int64_t r = a % b;
  if (r != 0 && ((r < 0) != (b < 0))) r += b;
  return r;
}

// CPython's float_divmod: the quotient is floored, the remainder takes the divisor's sign.
std::pair<double, double> float_divmod(double x, double y) {
  if (y == 0) render_error("float modulo by zero");
  double mod = std::fmod(x, y);
  double div = (x - mod) / y;
  if (mod != 0) {
    if ((y < 0) != (mod < 0)) {
      mod += y;
      div -= 1.0;
    }
  } else {
    mod = std::copysign(0.0, y);
  }
  double floordiv;
  if (div != 0) {
    floordiv = std::floor(div);
    if (div - floordiv > 0.5) floordiv += 1.0;
  } else {
    floordiv = std::copysign(0.0, x / y);
  }
  return {floordiv, mod};
}

Value power(const Value& a, const Value& b) {
  if (a.is_float() || b.is_float() || b.as_int() < 0) {
    double x = a.as_double(), y = b.as_double();
    if (x == 0 && y < 0) render_error("0.0 cannot be raised to a negative power");
    return Value(std::pow(x, y));
  }
  int64_t base = a.as_int(), exp = b.as_int(), result = 1;
  while (exp > 0) {
    if (exp & 1) result = checked(mul_overflow, result, base);
    exp >>= 1;
    if (exp) base = checked(mul_overflow, base, base);
  }
  return Value(result);
}

}  // namespace

Value negate(const Value& v) {
  if (v.is_float()) return Value(-v.as_double());
  if (v.is_number()) return Value(checked(sub_overflow, 0, v.as_int()));
  v.require_defined();
  render_error("bad operand type for unary -: '{}'", type_name(v));
}

Value binary_op(BinaryOp op, const Value& a, const Value& b) {
  if (op == BinaryOp::Concat) return Value(to_str(a) + to_str(b));  // `~` stringifies; undefined is ""
  a.require_defined();
  b.require_defined();
  bool numeric = a.is_number() && b.is_number();
  bool floating = numeric && (a.is_float() || b.is_float());
  switch (op) {
    case BinaryOp::Add:
      if (floating) return Value(a.as_double() + b.as_double());
      if (numeric) return Value(checked(add_overflow, a.as_int(), b.as_int()));
      if (a.is_string() && b.is_string()) return Value(a.as_string() + b.as_string());
      if (a.is_list() && b.is_list() && a.is_tuple() == b.is_tuple()) {
        ValueList out = a.as_list();
        out.insert(out.end(), b.as_list().begin(), b.as_list().end());
        return Value::list(std::move(out), a.is_tuple());
      }
      if (a.is_string() || a.is_list())
        render_error("can only concatenate {} (not \"{}\") to {}", type_name(a), type_name(b), type_name(a));
      unsupported("+", a, b);
    case BinaryOp::Sub:
      if (floating) return Value(a.as_double() - b.as_double());
      if (numeric) return Value(checked(sub_overflow, a.as_int(), b.as_int()));
      unsupported("-", a, b);
    case BinaryOp::Mul:
      if (floating) return Value(a.as_double() * b.as_double());
      if (numeric) return Value(checked(mul_overflow, a.as_int(), b.as_int()));
      if ((a.is_string() || a.is_list()) && (b.is_int() || b.is_bool())) return repeat(a, b.as_int());
      if ((b.is_string() || b.is_list()) && (a.is_int() || a.is_bool())) return repeat(b, a.as_int());
      unsupported("*", a, b);
    case BinaryOp::Div:
      if (!numeric) unsupported("/", a, b);
      if (b.as_double() == 0) render_error("division by zero");
      return Value(a.as_double() / b.as_double());
    case BinaryOp::FloorDiv:
      if (!numeric) unsupported("//", a, b);
      if (floating) {
        if (b.as_double() == 0) render_error("float floor division by zero");
        return Value(float_divmod(a.as_double(), b.as_double()).first);
      }
      return Value(floor_div(a.as_int(), b.as_int()));
    case BinaryOp::Mod:
      if (a.is_string()) return Value(percent_format(a.as_string(), b));
      if (!numeric) unsupported("%", a, b);
      if (floating) return Value(float_divmod(a.as_double(), b.as_double()).second);
      return Value(floor_mod(a.as_int(), b.as_int()));
    case BinaryOp::Pow:
      if (!numeric) unsupported("** or pow()", a, b);
      return power(a, b);
    default: render_error("internal error: {} is not an arithmetic operator", int(op));
  }
}

// ---- printf-style formatting -------------------------------------------------------------------

namespace {

std::string pad(std::string s, int width, bool left_align, char fill = ' ') {
  int n = int(utf8_length(s));
  if (n >= width) return s;
  std::string padding(size_t(width - n), fill);
  return left_align ? s + padding : padding + s;
}

}  // namespace

std::string percent_format(const std::string& format, const Value& args) {
  ValueList positional;
  const ValueDict* mapping = nullptr;
  if (args.is_tuple()) positional = args.as_list();
  else if (args.is_dict()) mapping = &args.as_dict();
  else positional.push_back(args);
  size_t next_arg = 0;
  auto take = [&]() -> const Value& {
    if (next_arg >= positional.size()) render_error("not enough arguments for format string");
    return positional[next_arg++];
  };

  std::string out;
  for (size_t i = 0; i < format.size(); ++i) {
    if (format[i] != '%') {
      out.push_back(format[i]);
      continue;
    }
    if (++i >= format.size()) render_error("incomplete format");
    const Value* keyed = nullptr;
    if (format[i] == '(') {
      size_t close = format.find(')', i);
      if (close == std::string::npos) render_error("incomplete format key");
      if (!mapping) render_error("format requires a mapping");
      keyed = dict_find(*mapping, format.substr(i + 1, close - i - 1));
      if (!keyed) render_error("KeyError: {}", py_repr(format.substr(i + 1, close - i - 1)));
      i = close + 1;
    }
    std::string flags;
    while (i < format.size() && std::string_view("-+ #0").find(format[i]) != std::string_view::npos)
      flags.push_back(format[i++]);
    int width = 0, precision = -1;
    if (i < format.size() && format[i] == '*') {
      width = int(take().as_int());
      ++i;
    } else {
      while (i < format.size() && std::isdigit(static_cast<unsigned char>(format[i]))) width = width * 10 + (format[i++] - '0');
    }
    if (i < format.size() && format[i] == '.') {
      ++i;
      precision = 0;
      while (i < format.size() && std::isdigit(static_cast<unsigned char>(format[i])))
        precision = precision * 10 + (format[i++] - '0');
    }
    while (i < format.size() && (format[i] == 'h' || format[i] == 'l' || format[i] == 'L')) ++i;
    if (i >= format.size()) render_error("incomplete format");
    char conv = format[i];
    if (conv == '%') {
      out.push_back('%');
      continue;
    }
    const Value& v = keyed ? *keyed : take();
    bool left = flags.find('-') != std::string::npos;
    switch (conv) {
      case 's':
      case 'r':
      case 'a': {
        std::string s = conv == 's' ? to_str(v) : repr(v);
        if (precision >= 0) s = utf8_substr(s, 0, size_t(precision));
        out += pad(std::move(s), width, left);
        break;
      }
      case 'c': {
        std::string s;
        if (v.is_string() && utf8_length(v.as_string()) == 1) s = v.as_string();
        else if (v.is_int()) utf8_append(s, char32_t(v.as_int()));
        else render_error("%c requires int or char");
        out += pad(std::move(s), width, left);
        break;
      }
      case 'd': case 'i': case 'u': case 'x': case 'X': case 'o':
      case 'f': case 'F': case 'e': case 'E': case 'g': case 'G': {
        if (!v.is_number())
          render_error("%{} format: a real number is required, not {}", conv, type_name(v));
        std::string spec = "%" + flags;
        if (width) spec += std::to_string(width);
        if (precision >= 0) spec += fmt::format(".{}", precision);
        char buf[512];
        bool integral = std::string_view("diuxXo").find(conv) != std::string_view::npos;
        if (integral) {
          long long n = v.is_float() ? (long long)std::trunc(v.as_double()) : (long long)v.as_int();
          char c = conv == 'i' || conv == 'u' ? 'd' : conv;
          std::snprintf(buf, sizeof buf, (spec + "ll" + c).c_str(), n);
        } else {
          std::snprintf(buf, sizeof buf, (spec + conv).c_str(), v.as_double());
        }
        out += buf;
        break;
      }
      default: render_error("unsupported format character '{}'", conv);
    }
  }
  if (!mapping && next_arg < positional.size()) render_error("not all arguments converted during string formatting");
  return out;
}

}  // namespace roofline::jinja
