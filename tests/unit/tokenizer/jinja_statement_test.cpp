// Chat-template statements through the public API: set (plain, unpacking, block, namespace attributes),
// if, for with loop.* and filters, loop controls, macros, call blocks, filter/with/generation blocks, and
// Jinja's scoping rules. Every expected string was checked against Python Jinja2 configured as
// transformers configures it.
#include <gtest/gtest.h>

#include <string>

#include "roofline/core/error.h"
#include "roofline/tokenizer/chat_template.h"
#include "jinja_test_util.h"

namespace roofline {
namespace {

using namespace jinja_test;

const char* const kVars = R"J({"items": ["a", "b", "c"], "d": {"b": 1, "a": 2}, "messages": [{"role": "user", "content": "U1"}, {"role": "assistant", "content": "A1"}, {"role": "user", "content": "U2"}]})J";

TEST(JinjaStatement, IfElifElse) {
  EXPECT_EQ(render(R"T({% for n in [1, 5, 9] %}{% if n > 8 %}big{% elif n > 3 %}mid{% else %}small{% endif %} {% endfor %})T", kVars), R"E(small mid big )E");
  EXPECT_EQ(render(R"T({% if items %}nonempty{% endif %}{% if [] %}never{% endif %}{% if not missing %} missing{% endif %})T", kVars), R"E(nonempty missing)E");
}

TEST(JinjaStatement, Set) {
  EXPECT_EQ(render(R"T({% set x = 5 %}{% set y = x * 2 %}{{ x }} {{ y }})T", kVars), R"E(5 10)E");
  EXPECT_EQ(render(R"T({% set a, b = 1, 2 %}{% set c, e = [3, 4] %}{{ a }}{{ b }}{{ c }}{{ e }})T", kVars), R"E(1234)E");
  EXPECT_EQ(render(R"T({% set items = items[1:] %}{{ items }})T", kVars), R"E(['b', 'c'])E");
  EXPECT_EQ(render(R"T({%- set x = "v" -%}
  {{ x }})T", kVars), R"E(v)E");
}

TEST(JinjaStatement, BlockSet) {
  // {% set x %}...{% endset %} captures rendered text, optionally through filters.
  EXPECT_EQ(render(R"T({% set block %}  hello {{ items|length }}  {% endset %}[{{ block }}])T", kVars), R"E([  hello 3  ])E");
  EXPECT_EQ(render(R"T({% set block | trim | upper %}  hello  {% endset %}[{{ block }}])T", kVars), R"E([HELLO])E");
}

TEST(JinjaStatement, LoopAndIterationScopes) {
  // A set inside a loop body lasts one iteration, as in Jinja; an if body has no scope of its own.
  EXPECT_EQ(render(R"T({% set x = 0 %}{% for i in items %}{{ x }}{% set x = x + 1 %}{{ x }} {% endfor %}{{ x }})T", kVars), R"E(01 01 01 0)E");
  EXPECT_EQ(render(R"T({% for i in items %}[{{ prev }}]{% set prev = i %}{% endfor %}[{{ prev }}])T", kVars), R"E([][][][])E");
  EXPECT_EQ(render(R"T({% if true %}{% set z = 3 %}{% endif %}{{ z }})T", kVars), R"E(3)E");
}

TEST(JinjaStatement, NamespaceCarriesStateOutOfLoops) {
  EXPECT_EQ(render(R"T({% set ns = namespace(n=0, s="") %}{% for i in items %}{% set ns.n = ns.n + 1 %}{% set ns.s = ns.s ~ i %}{% endfor %}{{ ns.n }} {{ ns.s }})T", kVars), R"E(3 abc)E");
  EXPECT_EQ(render(R"T({% set ns = namespace() %}{% set ns.index = 0 %}{% for m in messages %}{% if m.role == "user" %}{% set ns.index = loop.index0 %}{% endif %}{% endfor %}{{ ns.index }} [{{ ns.missing }}])T", kVars), R"E(2 [])E");
  EXPECT_EQ(render(R"T({% set ns = namespace(found=false) %}{% for m in messages if m.role == "assistant" %}{% set ns.found = true %}{% endfor %}{{ ns.found }})T", kVars), R"E(True)E");
}

TEST(JinjaStatement, LoopVariables) {
  EXPECT_EQ(render(R"T({% for i in items %}{{ loop.index }}{{ loop.index0 }}{{ loop.revindex }}{{ loop.revindex0 }}{{ loop.length }} {% endfor %})T", kVars), R"E(10323 21213 32103 )E");
  EXPECT_EQ(render(R"T({% for i in items %}{{ loop.first }}/{{ loop.last }} {% endfor %})T", kVars), R"E(True/False False/False False/True )E");
  EXPECT_EQ(render(R"T({% for i in items %}[{{ loop.previtem }}|{{ loop.nextitem }}]{% endfor %})T", kVars), R"E([|b][a|c][b|])E");
  EXPECT_EQ(render(R"T({% for i in items %}{{ loop.cycle("odd", "even") }} {% endfor %})T", kVars), R"E(odd even odd )E");
  EXPECT_EQ(render(R"T({% for i in [1, 1, 2, 1] %}{% if loop.changed(i) %}{{ i }}{% endif %}{% endfor %})T", kVars), R"E(121)E");
  EXPECT_EQ(render(R"T({% for i in items %}{% set outer = loop %}{% for j in [1, 2] %}{{ outer.index }}{{ loop.index }} {% endfor %}{% endfor %})T", kVars), R"E(11 12 21 22 31 32 )E");
}

TEST(JinjaStatement, ForVariants) {
  EXPECT_EQ(render(R"T({% for i in [] %}x{% else %}empty{% endfor %} {% for i in missing %}x{% else %}none{% endfor %})T", kVars), R"E(empty none)E");
  EXPECT_EQ(render(R"T({% for i in items if i != "b" %}{{ i }}{{ loop.index }}{{ loop.last }} {% endfor %})T", kVars), R"E(a1False c2True )E");
  EXPECT_EQ(render(R"T({% for i in items if i == "z" %}{{ i }}{% else %}filtered out{% endfor %})T", kVars), R"E(filtered out)E");
  EXPECT_EQ(render(R"T({% for k, v in d|items %}{{ k }}={{ v }} {% endfor %}{% for k in d %}{{ k }}{% endfor %})T", kVars), R"E(b=1 a=2 ba)E");
  EXPECT_EQ(render(R"T({% for a, b in [[1, 2], [3, 4]] %}{{ a * b }} {% endfor %}{% for c in "xy" %}{{ c }}.{% endfor %})T", kVars), R"E(2 12 x.y.)E");
  EXPECT_EQ(render(R"T({% for m in messages[::-1] %}{{ m.content }} {% endfor %}{% for i in range(2) %}{{ i }}{% endfor %})T", kVars), R"E(U2 A1 U1 01)E");
}

TEST(JinjaStatement, BreakAndContinue) {
  // jinja2.ext.loopcontrols, which transformers enables.
  EXPECT_EQ(render(R"T({% for i in items %}{% if i == "b" %}{% break %}{% endif %}{{ i }}{% endfor %})T", kVars), R"E(a)E");
  EXPECT_EQ(render(R"T({% for i in items %}{% if i == "b" %}{% continue %}{% endif %}{{ i }}{% endfor %})T", kVars), R"E(ac)E");
}

TEST(JinjaStatement, Macros) {
  EXPECT_EQ(render(R"T({% macro greet(name, greeting='Hello') %}{{ greeting }}, {{ name }}!{% endmacro %}{{ greet('Bob') }} {{ greet('Al', greeting='Hi') }} {{ greet(name='Z') }})T", kVars), R"E(Hello, Bob! Hi, Al! Hello, Z!)E");
  EXPECT_EQ(render(R"T({% macro m(a, b=a ~ '!') %}{{ b }}{% endmacro %}{{ m('x') }} [{{ m() }}])T", kVars), R"E(x! [!])E");
  EXPECT_EQ(render(R"T({% macro m() %}{{ varargs }} {{ kwargs }}{% endmacro %}{{ m(1, 2, k=3) }})T", kVars), R"E((1, 2) {'k': 3})E");
  EXPECT_EQ(render(R"T({% macro fact(n) %}{% if n <= 1 %}1{% else %}{{ n * fact(n - 1)|int }}{% endif %}{% endmacro %}{{ fact(5) }})T", kVars), R"E(120)E");
  EXPECT_EQ(render(R"T({% macro show() %}{{ late }}{% endmacro %}{% set late = "seen" %}{{ show() }})T", kVars), R"E(seen)E");
  EXPECT_EQ(render(R"T({%- macro render_list(xs) -%}
  {%- for x in xs %}
    - {{ x }}
  {%- endfor %}
{%- endmacro -%}
{{ render_list(items) }})T", kVars), R"E(    - a    - b    - c)E");
}

TEST(JinjaStatement, CallBlocks) {
  EXPECT_EQ(render(R"T({% macro wrap() %}<{{ caller() }}>{% endmacro %}{% call wrap() %}inside {{ items|length }}{% endcall %})T", kVars), R"E(<inside 3>)E");
  EXPECT_EQ(render(R"T({% macro each(xs) %}{% for x in xs %}{{ caller(x) }}{% endfor %}{% endmacro %}{% call(it) each([1, 2]) %}({{ it }}){% endcall %})T", kVars), R"E((1)(2))E");
}

TEST(JinjaStatement, FilterWithAndGenerationBlocks) {
  EXPECT_EQ(render(R"T({% filter upper %}hello {{ items[0] }}{% endfilter %})T", kVars), R"E(HELLO A)E");
  EXPECT_EQ(render(R"T({% with a = 1, b = 2 %}{{ a + b }}{% endwith %}[{{ a }}])T", kVars), R"E(3[])E");
  EXPECT_EQ(render(R"T({% generation %}answer {{ items[0] }}{% endgeneration %})T", kVars), R"E(answer a)E");
  EXPECT_EQ(render(R"T({%- for m in messages %}
  {%- if m.role == "assistant" %}
    {% generation %}{{ m.content }}{% endgeneration %}
  {%- endif %}
{%- endfor %})T", kVars), R"E(A1)E");
}

TEST(JinjaStatement, RaiseExceptionThrowsTheTemplatesMessage) {
  const char* source = "{% for m in messages %}{% if m.role == 'tool' %}{{ raise_exception('Tool role is not supported: ' ~ loop.index) }}{% endif %}{% endfor %}";
  EXPECT_EQ(error_of(source, R"({"messages": [{"role": "user"}, {"role": "tool"}]})"), "Tool role is not supported: 2");
  EXPECT_EQ(error_of(source, R"({"messages": [{"role": "user"}]})"), "<no error>");
}

TEST(JinjaStatement, AssignmentErrors) {
  EXPECT_TRUE(contains(error_of("{% set x = 1 %}{% set x.y = 2 %}"), "cannot assign attribute on non-namespace object"));
  EXPECT_TRUE(contains(error_of("{% set a, b = [1, 2, 3] %}"), "too many values to unpack (expected 2)"));
  EXPECT_TRUE(contains(error_of("{% for a, b in [[1]] %}{% endfor %}"), "not enough values to unpack (expected 2, got 1)"));
  EXPECT_TRUE(contains(error_of("{% for i in none %}{% endfor %}"), "'NoneType' object is not iterable"));
}

TEST(JinjaStatement, MacroErrors) {
  EXPECT_TRUE(contains(error_of("{{ m() }}{% macro m() %}x{% endmacro %}"), "'m' is undefined"));
  EXPECT_TRUE(contains(error_of("{% macro m(a) %}{% endmacro %}{{ m(1, a=2) }}"), "multiple values for argument 'a'"));
  EXPECT_TRUE(contains(error_of("{% macro loop_forever(n) %}{{ loop_forever(n + 1) }}{% endmacro %}{{ loop_forever(0) }}"),
                       "maximum macro recursion depth"));
}

// A namespace holding itself is a reference cycle; the renderer breaks it (the sanitizer build checks
// for leaks).
TEST(JinjaStatement, SelfReferencingNamespaceRenders) {
  EXPECT_EQ(render("{% set ns = namespace(n=1) %}{% set ns.me = ns %}{{ ns.me.me.n }}"), "1");
}

TEST(JinjaStatement, ParseOnceRenderManyKeepsNoStateBetweenRenders) {
  ChatTemplate tmpl("{% set ns = namespace(n=0) %}{% for i in items %}{% set ns.n = ns.n + 1 %}{% endfor %}{{ ns.n }}");
  EXPECT_EQ(tmpl.render(nlohmann::ordered_json::parse(R"({"items": [1, 2]})")), "2");
  EXPECT_EQ(tmpl.render(nlohmann::ordered_json::parse(R"({"items": [1, 2, 3]})")), "3");
  EXPECT_EQ(tmpl.render(nlohmann::ordered_json::parse(R"({"items": []})")), "0");
}

}  // namespace
}  // namespace roofline
