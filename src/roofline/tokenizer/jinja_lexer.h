// Jinja's lexer with the settings transformers compiles chat templates with: trim_blocks and
// lstrip_blocks on, keep_trailing_newline off. All whitespace control (`-`/`+` markers, trim/lstrip)
// happens here, so the parser receives text exactly as it will be printed.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace roofline::jinja {

struct Token {
  enum class Type : uint8_t {
    Text,        // template text between tags
    VarBegin,    // {{
    VarEnd,      // }}
    BlockBegin,  // {%
    BlockEnd,    // %}
    Name,
    String,      // text holds the decoded value (escapes resolved)
    Integer,     // text holds the digits, underscores removed
    Float,
    Operator,
    End,         // end of the template
  };
  Type type;
  std::string text;
  int line = 1, column = 1;  // 1-based; column counts bytes
};

// Throws roofline::Error "chat template syntax error at LINE:COL: ..." on malformed input.
std::vector<Token> tokenize(std::string_view source);

// "end of print statement", "'foo'", ... for error messages.
std::string describe(const Token& token);

}  // namespace roofline::jinja
