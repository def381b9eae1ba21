// Chat-template lexing and whitespace control, through the public ChatTemplate API. transformers compiles
// templates with trim_blocks and lstrip_blocks on, which is where most real-template bugs hide.
// Expected strings were checked against Python Jinja2 configured as transformers configures it.
#include <gtest/gtest.h>

#include <string>

#include "roofline/core/error.h"
#include "roofline/tokenizer/chat_template.h"
#include "jinja_test_util.h"

namespace roofline {
namespace {

using namespace jinja_test;

TEST(JinjaSyntax, PlainTextPassesThrough) {
  EXPECT_EQ(render("hello { world } %"), "hello { world } %");
  EXPECT_EQ(render(""), "");
}

TEST(JinjaSyntax, TrimBlocksRemovesTheNewlineAfterABlockTag) {
  EXPECT_EQ(render("a\n{% if true %}\nyes\n{% endif %}\nb"), "a\nyes\nb");
  // Only block and comment tags trim; a print tag keeps its newline.
  EXPECT_EQ(render("{{ 'x' }}\ny"), "x\ny");
  EXPECT_EQ(render("{# note #}\ny"), "y");
}

TEST(JinjaSyntax, LstripBlocksRemovesIndentationBeforeABlockTag) {
  EXPECT_EQ(render("a\n  {% if true %}\n  yes\n  {% endif %}\nb"), "a\n  yes\nb");
  EXPECT_EQ(render("a\n \t {% if true %}b{% endif %}"), "a\nb");
  // Not when other text precedes the tag on its line, and never before `{{`.
  EXPECT_EQ(render("a\t{% if true %}b{% endif %}"), "a\tb");
  EXPECT_EQ(render("a\n  {{ 'x' }}\n  b"), "a\n  x\n  b");
  EXPECT_EQ(render("  {# c #}\nx"), "x");
}

TEST(JinjaSyntax, PlusMarkersDisableTrimAndLstrip) {
  // `{%+` keeps the indentation before it; `+%}` keeps the newline after it.
  EXPECT_EQ(render("a\n  {%+ if true %}\n  yes\n  {% endif +%}\nb"), "a\n    yes\n\nb");
}

TEST(JinjaSyntax, MinusMarkersStripAllWhitespace) {
  EXPECT_EQ(render("a  {%- if true -%}  yes  {%- endif -%}  b"), "ayesb");
  EXPECT_EQ(render("a \n {{- 'x' -}} \n b"), "axb");
  EXPECT_EQ(render("a {#- c -#} b"), "ab");
  EXPECT_EQ(render("{%- for i in [1, 2] %}\n    {{- i }}\n{%- endfor %}"), "12");
}

TEST(JinjaSyntax, IndentedTemplateLikeQwen) {
  const char* source =
      "{%- if true %}\n"
      "    {{- 'a' }}\n"
      "    {%- for x in [1, 2] %}\n"
      "        {{- x }}\n"
      "    {%- endfor %}\n"
      "{%- endif %}\n";
  EXPECT_EQ(render(source), "a12");
}

TEST(JinjaSyntax, NewlinesAreNormalizedAndOneTrailingNewlineDropped) {
  EXPECT_EQ(render("x\r\ny\r{% if true %}\r\nz{% endif %}"), "x\ny\nz");
  EXPECT_EQ(render("line\n"), "line");
  EXPECT_EQ(render("line\n\n"), "line\n");
  EXPECT_EQ(render("{% for i in [1] %}\n  {{ i }}\n{% endfor %}\n"), "  1\n");
}

TEST(JinjaSyntax, CommentsRenderNothing) {
  EXPECT_EQ(render("a{# {{ not rendered }} {% if %} #}b"), "ab");
  EXPECT_EQ(render("a\n    {# comment #}\nb"), "a\nb");
}

TEST(JinjaSyntax, RawBlocksAreNotParsed) {
  EXPECT_EQ(render("{% raw %}{{ not parsed }}{% endraw %}"), "{{ not parsed }}");
  EXPECT_EQ(render("{%- raw -%}  {% if %}  {%- endraw %}"), "{% if %}");
}

TEST(JinjaSyntax, BracesInsideATagDoNotCloseIt) {
  EXPECT_EQ(render("{{ {'a': {'b': 1}}['a']['b'] }}"), "1");
  EXPECT_EQ(render("{{ {'a': {'b': 1}} }}"), "{'a': {'b': 1}}");
}

TEST(JinjaSyntax, StringLiteralEscapes) {
  EXPECT_EQ(render(R"({{ 'a\nb\t\\\'' }})"), "a\nb\t\\'");
  EXPECT_EQ(render(R"({{ "\u00e9\x41\U0001F600" }})"), "\xC3\xA9" "A" "\xF0\x9F\x98\x80");
  EXPECT_EQ(render(R"({{ "unknown \d escape" }})"), "unknown \\d escape");
  EXPECT_EQ(render("{{ 'adjacent' \"literals\" }}"), "adjacentliterals");
  EXPECT_EQ(render("{{ 'multi\nline' }}"), "multi\nline");
}

TEST(JinjaSyntax, NumberLiterals) {
  EXPECT_EQ(render("{{ 42 }} {{ 1_000 }} {{ 2.5 }} {{ 1e3 }} {{ 1.5e-5 }}"), "42 1000 2.5 1000.0 1.5e-05");
  EXPECT_EQ(render("{{ [[1, 2], [3, 4]].1.0 }}"), "3");  // `.1.0` is two item lookups, not a float
}

TEST(JinjaSyntax, SyntaxErrorsCarryLineAndColumn) {
  EXPECT_TRUE(contains(error_of("line one\n{% if %}"), "syntax error at 2:7"));
  EXPECT_TRUE(contains(error_of("{{ 1 + }}"), "syntax error at 1:8"));
  EXPECT_TRUE(contains(error_of("ok\n  {% foo %}"), "2:6: unknown tag 'foo'"));
  EXPECT_TRUE(contains(error_of("{{ 'abc }}"), "1:4: unterminated string"));
  EXPECT_TRUE(contains(error_of("{{ x ) }}"), "unexpected ')'"));
  EXPECT_TRUE(contains(error_of("{{ [1, 2 }}"), "unexpected '}', expected ']'"));
  EXPECT_TRUE(contains(error_of("{{ }}"), "expected an expression"));
  EXPECT_TRUE(contains(error_of("{{ x"), "unclosed '{{'"));
  EXPECT_TRUE(contains(error_of("{# never closed"), "missing end of comment tag"));
  EXPECT_TRUE(contains(error_of("{{ a ? b }}"), "unexpected char '?'"));
}

TEST(JinjaSyntax, UnbalancedBlocksAreSyntaxErrors) {
  EXPECT_TRUE(contains(error_of("{% if true %}x"), "unexpected end of template: looking for 'elif' or 'else' or 'endif'"));
  EXPECT_TRUE(contains(error_of("{% for i in x %}{% endif %}"), "unexpected 'endif': looking for 'endfor' or 'else'"));
  EXPECT_TRUE(contains(error_of("{% endfor %}"), "unknown tag 'endfor'"));
  EXPECT_TRUE(contains(error_of("{% break %}"), "'break' outside of a loop"));
  EXPECT_TRUE(contains(error_of("{% set true = 1 %}"), "cannot assign to 'true'"));
  EXPECT_TRUE(contains(error_of("{% macro m(a=1, b) %}{% endmacro %}"), "non-default argument follows default"));
}

TEST(JinjaSyntax, SyntaxErrorsAreReportedAtParseTimeNotRender) {
  EXPECT_THROW(ChatTemplate("{% if x %}never closed"), Error);
  EXPECT_NO_THROW(ChatTemplate("{{ undefined_variable.attribute }}"));  // a runtime error, not a syntax one
}

TEST(JinjaSyntax, DeepNestingIsRejectedNotACrash) {
  std::string source = "{{ " + std::string(5000, '(') + "1" + std::string(5000, ')') + " }}";
  EXPECT_TRUE(contains(error_of(source), "nested too deeply"));
}

// Found by tests/fuzz/fuzz_chat_template.cpp: a template comes from a model file, so numbers it spells out of
// range and format widths that would allocate gigabytes are errors of the template, never crashes.
TEST(JinjaSyntax, OutOfRangeNumbersAndHugeWidthsAreTemplateErrors) {
  EXPECT_TRUE(contains(error_of("{{ messages.99999999999999999999 }}", R"({"messages": []})"), "out of range"));
  EXPECT_TRUE(contains(error_of("{{ [{'a': 1}] | map(attribute='99999999999999999999') | list }}"), "out of range"));
  EXPECT_TRUE(contains(error_of("{{ '{99999999999999999999}'.format(1) }}"), "out of range"));
  EXPECT_TRUE(contains(error_of("{{ '{:>99999999999}'.format(1) }}"), "larger than"));
  EXPECT_EQ(render("{{ '{:>5}'.format(1) }}"), "    1");
  // Nested loops that would run for hours (100,000^2 statements) stop at the statement budget.
  EXPECT_TRUE(contains(error_of("{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}"),
                       "more than 1000000 statements"));
}

}  // namespace
}  // namespace roofline
