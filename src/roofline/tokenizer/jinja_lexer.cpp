#include "roofline/tokenizer/jinja_lexer.h"

#include <utf8proc.h>

#include <algorithm>
#include <array>

#include "roofline/core/error.h"
#include "roofline/tokenizer/jinja_pystr.h"

namespace roofline::jinja {
namespace {

// Jinja's operators; longer spellings first so that `//` wins over `/`.
constexpr std::array<std::string_view, 26> kOperators = {
    "//", "**", "==", "!=", ">=", "<=", "+", "-", "/", "*", "%", "~", "[",
    "]",  "(",  ")",  "{",  "}",  ">",  "<", "=", ".", ":", "|", ",", ";"};

bool is_name_start(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'; }
bool is_name_char(char c) { return is_name_start(c) || (c >= '0' && c <= '9'); }
bool is_digit(char c) { return c >= '0' && c <= '9'; }

// Jinja normalises \r\n and \r to \n and, without keep_trailing_newline, drops one final newline.
std::string normalize_newlines(std::string_view source) {
  std::string out;
  out.reserve(source.size());
  for (size_t i = 0; i < source.size(); ++i) {
    if (source[i] == '\r') {
      out.push_back('\n');
      if (i + 1 < source.size() && source[i + 1] == '\n') ++i;
    } else {
      out.push_back(source[i]);
    }
  }
  if (!out.empty() && out.back() == '\n') out.pop_back();
  return out;
}

class Lexer {
 public:
  explicit Lexer(std::string_view source) : src_(normalize_newlines(source)) {
    line_starts_.push_back(0);
    for (size_t i = 0; i < src_.size(); ++i)
      if (src_[i] == '\n') line_starts_.push_back(i + 1);
  }

  std::vector<Token> run() {
    while (pos_ < src_.size()) {
      size_t tag = find_tag(pos_);
      if (tag == std::string::npos) {
        emit(Token::Type::Text, src_.substr(pos_), pos_);
        break;
      }
      char kind = src_[tag + 1];  // '{', '%' or '#'
      char sign = tag + 2 < src_.size() && (src_[tag + 2] == '-' || src_[tag + 2] == '+') ? src_[tag + 2] : 0;
      std::string text = strip_before_tag(src_.substr(pos_, tag - pos_), sign, kind != '{');
      emit(Token::Type::Text, std::move(text), pos_);
      pos_ = tag + 2 + (sign ? 1 : 0);
      if (kind == '#') {
        lex_comment(tag);
      } else if (kind == '%' && lex_raw(tag)) {
        // raw block emitted as text
      } else {
        lex_tag(kind == '{', tag);
      }
    }
    emit(Token::Type::End, "", src_.size());
    return std::move(tokens_);
  }

 private:
  std::string src_;
  size_t pos_ = 0;
  std::vector<size_t> line_starts_;
  std::vector<Token> tokens_;
  // Whether the last tag ended with a newline (trim_blocks ate it): lstrip_blocks then applies to the
  // next line even though the text before the next tag holds no newline.
  bool line_starting_ = true;

  [[noreturn]] void error(size_t offset, const std::string& message) const {
    auto [line, column] = location(offset);
    fail("chat template syntax error at {}:{}: {}", line, column, message);
  }

  std::pair<int, int> location(size_t offset) const {
    size_t line = size_t(std::upper_bound(line_starts_.begin(), line_starts_.end(), offset) - line_starts_.begin());
    return {int(line), int(offset - line_starts_[line - 1] + 1)};
  }

  void emit(Token::Type type, std::string text, size_t offset) {
    if (type == Token::Type::Text && text.empty()) return;
    auto [line, column] = location(offset);
    tokens_.push_back(Token{type, std::move(text), line, column});
  }

  size_t find_tag(size_t from) const {
    for (size_t i = src_.find('{', from); i != std::string::npos; i = src_.find('{', i + 1)) {
      if (i + 1 < src_.size() && (src_[i + 1] == '{' || src_[i + 1] == '%' || src_[i + 1] == '#')) return i;
    }
    return std::string::npos;
  }

  // Python's `\s*`: skips Unicode whitespace from `at`.
  size_t skip_space(size_t at) const {
    while (at < src_.size()) {
      utf8proc_int32_t cp = 0;
      auto n = utf8proc_iterate(reinterpret_cast<const utf8proc_uint8_t*>(src_.data() + at),
                                utf8proc_ssize_t(src_.size() - at), &cp);
      if (n <= 0 || !py_isspace(char32_t(cp))) break;
      at += size_t(n);
    }
    return at;
  }

  // `{%-` strips all whitespace before the tag; otherwise lstrip_blocks removes the spaces and tabs
  // that open the tag's line (block and comment tags only, never `{{`), unless `{%+` forbids it.
  std::string strip_before_tag(std::string text, char sign, bool lstrip_applies) const {
    if (sign == '-') return py_strip(text, std::nullopt, false, true);
    if (sign == '+' || !lstrip_applies) return text;
    size_t line_begin = text.rfind('\n');
    line_begin = line_begin == std::string::npos ? 0 : line_begin + 1;
    if (line_begin == 0 && !line_starting_) return text;
    if (text.find_first_not_of(" \t", line_begin) != std::string::npos) return text;
    text.resize(line_begin);
    return text;
  }

  // After `-%}` all whitespace goes; after `%}` one newline (trim_blocks); after `+%}` nothing.
  void finish_tag(size_t end_begin, size_t end_size, char sign, bool trims_newline) {
    size_t after = end_begin + end_size;
    if (sign == '-') after = skip_space(after);
    else if (sign != '+' && trims_newline && after < src_.size() && src_[after] == '\n') ++after;
    line_starting_ = after > 0 && src_[after - 1] == '\n';
    pos_ = after;
  }

  void lex_comment(size_t tag) {
    size_t end = src_.find("#}", pos_);
    if (end == std::string::npos) error(tag, "missing end of comment tag");
    char sign = end > pos_ && (src_[end - 1] == '-' || src_[end - 1] == '+') ? src_[end - 1] : 0;
    finish_tag(end, 2, sign, true);
  }

  // {% raw %}...{% endraw %}: the body is text, never lexed.
  bool lex_raw(size_t tag) {
    size_t p = skip_space(pos_);
    if (src_.compare(p, 3, "raw") != 0 || (p + 3 < src_.size() && is_name_char(src_[p + 3]))) return false;
    p = skip_space(p + 3);
    size_t body;
    if (src_.compare(p, 3, "-%}") == 0) body = skip_space(p + 3);
    else if (src_.compare(p, 2, "%}") == 0) body = p + 2;
    else error(p, "expected end of raw tag");
    line_starting_ = body > 0 && src_[body - 1] == '\n';
    for (size_t end = find_tag(body); end != std::string::npos; end = find_tag(end + 1)) {
      if (src_[end + 1] != '%') continue;
      size_t q = end + 2;
      char sign = q < src_.size() && (src_[q] == '-' || src_[q] == '+') ? src_[q++] : 0;
      q = skip_space(q);
      if (src_.compare(q, 6, "endraw") != 0) continue;
      q = skip_space(q + 6);
      char end_sign = q < src_.size() && (src_[q] == '-' || src_[q] == '+') ? src_[q] : 0;
      if (src_.compare(q + (end_sign ? 1 : 0), 2, "%}") != 0) continue;
      emit(Token::Type::Text, strip_before_tag(src_.substr(body, end - body), sign, true), body);
      finish_tag(q, end_sign ? 3 : 2, end_sign, true);
      return true;
    }
    error(tag, "missing endraw for raw block");
  }

  void lex_tag(bool is_variable, size_t tag) {
    emit(is_variable ? Token::Type::VarBegin : Token::Type::BlockBegin, is_variable ? "{{" : "{%", tag);
    std::vector<char> open_brackets;  // Jinja only ends a tag when brackets balance
    while (true) {
      pos_ = skip_space(pos_);
      if (pos_ >= src_.size()) error(tag, is_variable ? "unclosed '{{'" : "unclosed '{%'");
      if (open_brackets.empty() && lex_tag_end(is_variable)) return;
      size_t start = pos_;
      char c = src_[pos_];
      if (c == '\'' || c == '"') {
        emit(Token::Type::String, lex_string(), start);
      } else if (is_digit(c)) {
        lex_number();
      } else if (is_name_start(c)) {
        while (pos_ < src_.size() && is_name_char(src_[pos_])) ++pos_;
        emit(Token::Type::Name, src_.substr(start, pos_ - start), start);
      } else {
        auto op = std::find_if(kOperators.begin(), kOperators.end(),
                               [&](std::string_view o) { return src_.compare(pos_, o.size(), o) == 0; });
        if (op == kOperators.end()) error(pos_, "unexpected char '" + std::string(1, c) + "'");
        track_bracket(open_brackets, (*op)[0]);
        pos_ += op->size();
        emit(Token::Type::Operator, std::string(*op), start);
      }
    }
  }

  bool lex_tag_end(bool is_variable) {
    char sign = src_[pos_] == '-' || src_[pos_] == '+' ? src_[pos_] : 0;
    if (is_variable && sign == '+') sign = 0;  // `+}}` is not a marker, only `-}}` is
    std::string_view close = is_variable ? "}}" : "%}";
    if (src_.compare(pos_ + (sign ? 1 : 0), 2, close) != 0) return false;
    emit(is_variable ? Token::Type::VarEnd : Token::Type::BlockEnd, std::string(close), pos_);
    finish_tag(pos_, sign ? 3 : 2, sign, !is_variable);
    return true;
  }

  void track_bracket(std::vector<char>& open, char c) {
    if (c == '(' || c == '[' || c == '{') {
      open.push_back(c == '(' ? ')' : c == '[' ? ']' : '}');
    } else if (c == ')' || c == ']' || c == '}') {
      if (open.empty()) error(pos_, std::string("unexpected '") + c + "'");
      if (open.back() != c) error(pos_, std::string("unexpected '") + c + "', expected '" + open.back() + "'");
      open.pop_back();
    }
  }

  // Digits with `_` separators; a fraction only when not right after a `.` (so `x.0.1` is two lookups).
  void lex_number() {
    size_t start = pos_;
    auto digits = [&] {
      std::string d;
      while (pos_ < src_.size() && (is_digit(src_[pos_]) || (src_[pos_] == '_' && pos_ + 1 < src_.size() &&
                                                              is_digit(src_[pos_ + 1]))))
        if (src_[pos_++] != '_') d.push_back(src_[pos_ - 1]);
      return d;
    };
    std::string text = digits();
    bool is_float = false;
    bool after_dot = start > 0 && src_[start - 1] == '.';
    if (!after_dot && pos_ + 1 < src_.size() && src_[pos_] == '.' && is_digit(src_[pos_ + 1])) {
      ++pos_;
      text.push_back('.');
      text += digits();
      is_float = true;
    }
    if (!after_dot && pos_ < src_.size() && (src_[pos_] == 'e' || src_[pos_] == 'E')) {
      size_t q = pos_ + 1;
      if (q < src_.size() && (src_[q] == '+' || src_[q] == '-')) ++q;
      if (q < src_.size() && is_digit(src_[q])) {
        text.push_back('e');
        text.append(src_, pos_ + 1, q - pos_ - 1);
        pos_ = q;
        text += digits();
        is_float = true;
      }
    }
    emit(is_float ? Token::Type::Float : Token::Type::Integer, text, start);
  }

  // A quoted string; escapes decode as Python's unicode-escape codec (what Jinja applies).
  std::string lex_string() {
    size_t start = pos_;
    char quote = src_[pos_++];
    std::string out;
    while (true) {
      if (pos_ >= src_.size()) error(start, "unterminated string");
      char c = src_[pos_++];
      if (c == quote) return out;
      if (c != '\\') {
        out.push_back(c);
        continue;
      }
      if (pos_ >= src_.size()) error(start, "unterminated string");
      char e = src_[pos_++];
      switch (e) {
        case '\n': break;  // line continuation
        case '\\': out.push_back('\\'); break;
        case '\'': out.push_back('\''); break;
        case '"': out.push_back('"'); break;
        case 'a': out.push_back('\a'); break;
        case 'b': out.push_back('\b'); break;
        case 'f': out.push_back('\f'); break;
        case 'n': out.push_back('\n'); break;
        case 'r': out.push_back('\r'); break;
        case 't': out.push_back('\t'); break;
        case 'v': out.push_back('\v'); break;
        case 'x': utf8_append(out, hex_escape(2, start)); break;
        case 'u': utf8_append(out, hex_escape(4, start)); break;
        case 'U': utf8_append(out, hex_escape(8, start)); break;
        default:
          if (e >= '0' && e <= '7') {
            unsigned value = unsigned(e - '0');
            for (int i = 0; i < 2 && pos_ < src_.size() && src_[pos_] >= '0' && src_[pos_] <= '7'; ++i)
              value = value * 8 + unsigned(src_[pos_++] - '0');
            utf8_append(out, char32_t(value));
          } else {  // unknown escapes stay as written
            out.push_back('\\');
            out.push_back(e);
          }
      }
    }
  }

  char32_t hex_escape(int digits, size_t string_start) {
    uint32_t value = 0;
    for (int i = 0; i < digits; ++i) {
      char h = pos_ < src_.size() ? src_[pos_] : 0;
      int d = is_digit(h) ? h - '0' : (h >= 'a' && h <= 'f') ? h - 'a' + 10 : (h >= 'A' && h <= 'F') ? h - 'A' + 10 : -1;
      if (d < 0) error(string_start, "truncated \\x/\\u escape in string");
      value = value * 16 + uint32_t(d);
      ++pos_;
    }
    if (value > 0x10FFFF) error(string_start, "illegal Unicode character in string");
    return char32_t(value);
  }
};

}  // namespace

std::vector<Token> tokenize(std::string_view source) { return Lexer(source).run(); }

std::string describe(const Token& token) {
  switch (token.type) {
    case Token::Type::Text: return "template text";
    case Token::Type::VarBegin: return "begin of print statement";
    case Token::Type::VarEnd: return "end of print statement";
    case Token::Type::BlockBegin: return "begin of statement block";
    case Token::Type::BlockEnd: return "end of statement block";
    case Token::Type::String: return "string";
    case Token::Type::Integer: return "integer";
    case Token::Type::Float: return "float";
    case Token::Type::End: return "end of template";
    default: return "'" + token.text + "'";
  }
}

}  // namespace roofline::jinja
