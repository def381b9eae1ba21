// Chat-template filters and tests through the public API. Every expected string was checked against
// Python Jinja2 configured as transformers configures it, including transformers' own tojson
// (json.dumps with ensure_ascii=False, key order kept).
#include <gtest/gtest.h>

#include <string>

#include "roofline/core/error.h"
#include "roofline/tokenizer/chat_template.h"
#include "jinja_test_util.h"

namespace roofline {
namespace {

using namespace jinja_test;

const char* const kVars = R"J({"x": 3, "s": "Hello World", "l": [3, 1, 2], "words": ["b", "A", "a", "B"], "d": {"b": 1, "a": 2}, "messages": [{"role": "system", "content": "S"}, {"role": "user", "content": "U1"}, {"role": "assistant", "content": "A1"}, {"role": "user", "content": "U2", "name": "bob"}], "tools": [{"type": "function", "function": {"name": "get_weather", "description": "Weather é", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}]})J";

TEST(JinjaFilter, StringFilters) {
  EXPECT_EQ(render(R"T([{{ "  a b \n"|trim }}] [{{ "xxaxx"|trim("x") }}] {{ s|upper }} {{ s|lower }} {{ "hELLO wORLD"|capitalize }})T", kVars), R"E([a b] [a] HELLO WORLD hello world Hello world)E");
  EXPECT_EQ(render(R"T({{ "hello big-world (x) [y]"|title }} {{ "aXbXc"|replace("X", "-") }} {{ "aXbXc"|replace("X", "-", 1) }})T", kVars), R"E(Hello Big-World (X) [Y] a-b-c a-bXc)E");
  EXPECT_EQ(render(R"T({{ "a\nb\n\nc"|indent(2) }}|{{ "a\nb"|indent(2, true) }}|{{ "a\n\nb"|indent(width=1, blank=true) }}|{{ "a\nb"|indent("> ") }})T", kVars), R"E(a
  b

  c|  a
  b|a
 
 b|a
> b)E");
  EXPECT_EQ(render(R"T([{{ "abc"|center(9) }}] [{{ "abcd"|center(9) }}] {{ "hello world foo"|wordcount }} {{ "<a href='x'>&\""|escape }} {{ "<b>"|e }} {{ "<b>"|safe }})T", kVars), R"E([   abc   ] [   abcd  ] 3 &lt;a href=&#39;x&#39;&gt;&amp;&#34; &lt;b&gt; <b>)E");
  EXPECT_EQ(render(R"T({{ "hello world foo bar"|truncate(12) }} {{ "hello world foo bar"|truncate(12, true) }} {{ "%s=%d"|format("a", 1) }})T", kVars), R"E(hello... hello wor... a=1)E");
  EXPECT_EQ(render(R"T({{ 5|string }}{{ none|string }}{{ l|string }} {{ "abc"|reverse }} {{ "abc"|list }})T", kVars), R"E(5None[3, 1, 2] cba ['a', 'b', 'c'])E");
}

TEST(JinjaFilter, SequenceFilters) {
  EXPECT_EQ(render(R"T({{ l|length }} {{ l|count }} {{ s|length }} {{ d|length }} {{ l|first }} {{ l|last }} {{ "abc"|first }} {{ d|first }})T", kVars), R"E(3 3 11 2 3 2 a b)E");
  EXPECT_EQ(render(R"T({{ l|join }} {{ l|join(", ") }} {{ messages|join("|", attribute="role") }} {{ l|list }} {{ d|list }})T", kVars), R"E(312 3, 1, 2 system|user|assistant|user [3, 1, 2] ['b', 'a'])E");
  EXPECT_EQ(render(R"T({{ l|sort }} {{ l|sort(reverse=true) }} {{ words|sort }} {{ words|sort(case_sensitive=true) }} {{ l|reverse|list }})T", kVars), R"E([1, 2, 3] [3, 2, 1] ['A', 'a', 'b', 'B'] ['A', 'B', 'a', 'b'] [2, 1, 3])E");
  EXPECT_EQ(render(R"T({{ words|unique|list }} {{ words|unique(case_sensitive=true)|list }} {{ l|min }} {{ l|max }} {{ words|max }} {{ l|sum }})T", kVars), R"E(['b', 'A'] ['b', 'A', 'a', 'B'] 1 3 b 6)E");
  EXPECT_EQ(render(R"T({{ messages|sort(attribute="role")|map(attribute="content")|join(",") }} {{ [1, 2, 3, 4, 5]|batch(2)|list }} {{ [1, 2, 3]|batch(2, 0)|list }})T", kVars), R"E(A1,S,U1,U2 [[1, 2], [3, 4], [5]] [[1, 2], [3, 0]])E");
  EXPECT_EQ(render(R"T({{ d|items|list }} {{ d|dictsort }} {{ d|dictsort(by="value", reverse=true) }})T", kVars), R"E([('b', 1), ('a', 2)] [('a', 2), ('b', 1)] [('a', 2), ('b', 1)])E");
}

TEST(JinjaFilter, MapSelectReject) {
  EXPECT_EQ(render(R"T({{ messages|map(attribute="role")|list }} {{ messages|map(attribute="name", default="anon")|list }})T", kVars), R"E(['system', 'user', 'assistant', 'user'] ['anon', 'anon', 'anon', 'bob'])E");
  EXPECT_EQ(render(R"T({{ ["a", "b"]|map("upper")|list }} {{ ["ab", "cb"]|map("replace", "b", "x")|list }} {{ tools|map(attribute="function.name")|list }})T", kVars), R"E(['A', 'B'] ['ax', 'cx'] ['get_weather'])E");
  EXPECT_EQ(render(R"T({{ messages|selectattr("role", "equalto", "user")|map(attribute="content")|list }} {{ messages|rejectattr("role", "eq", "user")|list|length }})T", kVars), R"E(['U1', 'U2'] 2)E");
  EXPECT_EQ(render(R"T({{ messages|selectattr("name")|list|length }} {{ messages|selectattr("name", "defined")|list|length }} {{ messages|rejectattr("name", "undefined")|list|length }})T", kVars), R"E(1 1 1)E");
  EXPECT_EQ(render(R"T({{ [1, 2, 3, 4]|select("odd")|list }} {{ [1, 2, 3, 4]|reject("odd")|list }} {{ [1, 2, 3, 4]|select("divisibleby", 2)|list }} {{ [1, 0, none, ""]|select|list }})T", kVars), R"E([1, 3] [2, 4] [2, 4] [1])E");
  EXPECT_EQ(render(R"T({{ ["a", "b", "c"]|reject("in", ["b"])|list }} {{ [1, 5, 9]|select(">", 4)|list }})T", kVars), R"E(['a', 'c'] [5, 9])E");
}

TEST(JinjaFilter, NumberFilters) {
  EXPECT_EQ(render(R"T({{ -3|abs }} {{ -3.5|abs }} {{ 3.7|int }} {{ "42"|int }} {{ "4.9"|int }} {{ "x"|int }} {{ "x"|int(5) }} {{ "0x1A"|int(base=16) }} {{ true|int }})T", kVars), R"E(3 3.5 3 42 4 0 5 26 1)E");
  EXPECT_EQ(render(R"T({{ "3"|float }} {{ 3|float }} {{ "1e3"|float }} {{ "x"|float }})T", kVars), R"E(3.0 3.0 1000.0 0.0)E");
  EXPECT_EQ(render(R"T({{ 2.5|round }} {{ 3.5|round }} {{ 2.675|round(2) }} {{ 2.567|round(2) }} {{ 7|round }} {{ 25|round(-1) }})T", kVars), R"E(2.0 4.0 2.67 2.57 7 20)E");
  EXPECT_EQ(render(R"T({{ 2.5|round(method="floor") }} {{ 2.1|round(method="ceil") }} {{ 2.25|round(1, "floor") }})T", kVars), R"E(2.0 3.0 2.2)E");
}

TEST(JinjaFilter, DefaultFilter) {
  EXPECT_EQ(render(R"T({{ missing|default("d") }} {{ missing|d("d") }} {{ none|default("d") }} {{ none|default("d", true) }} {{ ""|default("e", boolean=true) }} {{ x|default(0) }})T", kVars), R"E(d d None d e 3)E");
}

TEST(JinjaFilter, TojsonFollowsTransformers) {
  // transformers overrides tojson with json.dumps(ensure_ascii=False, sort_keys=False).
  EXPECT_EQ(render(R"T({{ tools[0]|tojson }})T", kVars), R"E({"type": "function", "function": {"name": "get_weather", "description": "Weather é", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}})E");
  EXPECT_EQ(render(R"T({{ d|tojson(indent=2) }}|{{ l|tojson(indent=4) }}|{{ [[], {}]|tojson(indent=2) }})T", kVars), R"E({
  "b": 1,
  "a": 2
}|[
    3,
    1,
    2
]|[
  [],
  {}
])E");
  EXPECT_EQ(render(R"T({{ d|tojson(sort_keys=true) }} {{ d|tojson(separators=(",", ":")) }} {{ "é"|tojson(ensure_ascii=true) }})T", kVars), R"E({"a": 2, "b": 1} {"b":1,"a":2} "\u00e9")E");
  EXPECT_EQ(render(R"T({{ "q\"b\\n\n\t<&>"|tojson }} {{ none|tojson }} {{ true|tojson }} {{ 1.0|tojson }} {{ 1e20|tojson }} {{ (1, "a")|tojson }})T", kVars), R"E("q\"b\\n\n\t<&>" null true 1.0 1e+20 [1, "a"])E");
}

TEST(JinjaFilter, Tests) {
  // `is` tests, with and without arguments.
  EXPECT_EQ(render(R"T({{ x is defined }} {{ missing is undefined }} {{ none is none }} {{ x is not none }} {{ s is string }} {{ x is string }})T", kVars), R"E(True True True True True False)E");
  EXPECT_EQ(render(R"T({{ x is number }} {{ 1.5 is number }} {{ true is number }} {{ x is integer }} {{ true is integer }} {{ 1.5 is float }} {{ true is boolean }} {{ 1 is boolean }})T", kVars), R"E(True True True True False True True False)E");
  EXPECT_EQ(render(R"T({{ true is true }} {{ 1 is true }} {{ false is false }} {{ d is mapping }} {{ l is mapping }} {{ l is iterable }} {{ s is iterable }} {{ x is iterable }} {{ l is sequence }})T", kVars), R"E(True False True True False True True False True)E");
  EXPECT_EQ(render(R"T({{ x is odd }} {{ x is even }} {{ x is divisibleby 3 }} {{ x is divisibleby(2) }} {{ x is eq 3 }} {{ x is equalto 3 }} {{ x is ne 3 }})T", kVars), R"E(True False True False True True False)E");
  EXPECT_EQ(render(R"T({{ x is gt 2 }} {{ x is lt 2 }} {{ x is ge 3 }} {{ x is le 2 }} {{ x is in [1, 3] }} {{ x is sameas 3 }} {{ none is sameas none }})T", kVars), R"E(True False True False True True True)E");
  EXPECT_EQ(render(R"T({{ "abc" is lower }} {{ "ABC" is upper }} {{ s is lower }} {{ range is callable }} {{ "upper" is filter }} {{ "odd" is test }})T", kVars), R"E(True True False True True True)E");
}

TEST(JinjaFilter, BadFilterUseIsAnError) {
  EXPECT_TRUE(contains(error_of("{{ x|no_such_filter }}", kVars), "no filter named 'no_such_filter'"));
  EXPECT_TRUE(contains(error_of("{{ x is no_such_test }}", kVars), "no test named 'no_such_test'"));
  EXPECT_TRUE(contains(error_of("{{ none|length }}"), "object of type 'NoneType' has no len()"));
  EXPECT_TRUE(contains(error_of("{{ none|join }}"), "'NoneType' object is not iterable"));
  EXPECT_TRUE(contains(error_of("{{ x|items }}", kVars), "Can only get item pairs from a mapping"));
  EXPECT_TRUE(contains(error_of("{{ 'a'|abs }}"), "bad operand type for abs()"));
  EXPECT_TRUE(contains(error_of("{{ l|join(', ', bogus=1) }}", kVars), "unexpected keyword argument 'bogus'"));
  EXPECT_TRUE(contains(error_of("{{ missing|int }}"), "'missing' is undefined"));
}

}  // namespace
}  // namespace roofline
