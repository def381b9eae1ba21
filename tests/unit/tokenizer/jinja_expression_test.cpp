// Chat-template expressions through the public API: Python operator semantics, rendering, attribute and
// item access, undefined values, slices, str/dict methods and globals. Every expected string was checked
// against Python Jinja2 configured as transformers configures it (ImmutableSandboxedEnvironment,
// trim_blocks, lstrip_blocks).
#include <gtest/gtest.h>

#include <ctime>
#include <string>

#include "roofline/core/error.h"
#include "roofline/tokenizer/chat_template.h"
#include "jinja_test_util.h"

namespace roofline {
namespace {

using namespace jinja_test;

const char* const kVars = R"J({"x": 3, "s": "Hello World", "l": [3, 1, 2], "d": {"b": 1, "a": [1, 2], "c": {"z": null}}, "message": {"role": "user", "content": "Hi"}, "messages": [{"role": "system", "content": " Be brief. "}, {"role": "user", "content": "Hi"}]})J";

TEST(JinjaExpression, IntegerAndFloatArithmetic) {
  // Python semantics: / is true division, // and % floor, ** is left-associative in Jinja.
  EXPECT_EQ(render(R"T({{ 1 + 2 }} {{ 7 - 10 }} {{ 6 * 7 }})T", kVars), R"E(3 -3 42)E");
  EXPECT_EQ(render(R"T({{ 7 / 2 }} {{ 10 / 5 }})T", kVars), R"E(3.5 2.0)E");
  EXPECT_EQ(render(R"T({{ 7 // 2 }} {{ -7 // 2 }} {{ -7 % 3 }} {{ 7 % -3 }})T", kVars), R"E(3 -4 2 -2)E");
  EXPECT_EQ(render(R"T({{ 7.5 // 2 }} {{ -7.5 % 2 }})T", kVars), R"E(3.0 0.5)E");
  EXPECT_EQ(render(R"T({{ 2 ** 10 }} {{ 2 ** -1 }} {{ 2 ** 3 ** 2 }})T", kVars), R"E(1024 0.5 64)E");
  EXPECT_EQ(render(R"T({{ 1.5 + 1 }} {{ 0.1 + 0.2 }})T", kVars), R"E(2.5 0.30000000000000004)E");
  EXPECT_EQ(render(R"T({{ true + 1 }} {{ -x }} {{ +x }} {{ 2 * -x }})T", kVars), R"E(2 -3 3 -6)E");
}

TEST(JinjaExpression, StringAndListOperators) {
  EXPECT_EQ(render(R"T({{ "ab" * 3 }}|{{ 2 * "ab" }}|{{ "ab" * 0 }})T", kVars), R"E(ababab|abab|)E");
  EXPECT_EQ(render(R"T({{ "a" + "b" }} {{ [1, 2] + [3] }} {{ [0] * 3 }})T", kVars), R"E(ab [1, 2, 3] [0, 0, 0])E");
  EXPECT_EQ(render(R"T({{ "a" ~ 1 ~ none ~ true ~ missing ~ 2.0 }})T", kVars), R"E(a1NoneTrue2.0)E");
}

TEST(JinjaExpression, Precedence) {
  // Filters and tests bind tighter than any binary operator.
  EXPECT_EQ(render(R"T({{ 1 + 2 * 3 }} {{ (1 + 2) * 3 }} {{ 2 * 3 ** 2 }})T", kVars), R"E(7 9 18)E");
  EXPECT_EQ(render(R"T({{ '<' + ' a '|trim + '>' }})T", kVars), R"E(<a>)E");
  EXPECT_EQ(render(R"T({{ -1|abs }} {{ [1, 2, 3]|sum + 1 }} {{ l|length * 2 }})T", kVars), R"E(1 7 6)E");
  EXPECT_EQ(render(R"T({{ not 1 == 2 }} {{ not x is none }} {{ x is number and x > 2 }})T", kVars), R"E(True True True)E");
  EXPECT_EQ(render(R"T({{ "%d items" % l|length }})T", kVars), R"E(3 items)E");
}

TEST(JinjaExpression, Comparisons) {
  // Chained like Python; int, float and bool compare by value.
  EXPECT_EQ(render(R"T({{ 1 < 2 < 3 }} {{ 3 > 2 > 2 }} {{ 1 <= 1 >= 0 }})T", kVars), R"E(True False True)E");
  EXPECT_EQ(render(R"T({{ 1 == 1.0 }} {{ true == 1 }} {{ "a" == "a" }} {{ none == none }} {{ 1 != 2 }})T", kVars), R"E(True True True True True)E");
  EXPECT_EQ(render(R"T({{ [1, 2] == [1, 2] }} {{ {"a": 1} == {"a": 1} }} {{ "1" == 1 }})T", kVars), R"E(True True False)E");
  EXPECT_EQ(render(R"T({{ "b" > "a" }} {{ "B" < "a" }} {{ [1, 2] < [1, 3] }})T", kVars), R"E(True True True)E");
}

TEST(JinjaExpression, Membership) {
  EXPECT_EQ(render(R"T({{ "a" in "cat" }} {{ "z" not in "cat" }} {{ 2 in [1, 2] }} {{ 5 not in l }})T", kVars), R"E(True True True True)E");
  EXPECT_EQ(render(R"T({{ "a" in {"a": 1} }} {{ "role" in message }} {{ "tool_calls" in message }} {{ "a" in missing }})T", kVars), R"E(True True False False)E");
}

TEST(JinjaExpression, LogicOperatorsReturnOperands) {
  // and / or return an operand, as in Python.
  EXPECT_EQ(render(R"T({{ 0 or "x" }} {{ "" or none }} {{ 1 and 2 }} {{ 0 and 1 }} {{ not 0 and 1 }} {{ not "" }})T", kVars), R"E(x None 2 0 1 True)E");
}

TEST(JinjaExpression, ConditionalExpression) {
  // Without an else branch a false condition gives undefined, which prints as nothing.
  EXPECT_EQ(render(R"T({{ "big" if x > 2 else "small" }} {{ "a" if none else "b" }} [{{ "y" if false }}])T", kVars), R"E(big b [])E");
  EXPECT_EQ(render(R"T({{ "a" if x > 5 else "b" if x > 2 else "c" }})T", kVars), R"E(b)E");
}

TEST(JinjaExpression, PythonRendering) {
  // Values print as Python str() does.
  EXPECT_EQ(render(R"T({{ true }} {{ false }} {{ none }} {{ None }} {{ True }} {{ 42 }} {{ -3 }})T", kVars), R"E(True False None None True 42 -3)E");
  EXPECT_EQ(render(R"T({{ 1.0 }} {{ 2.50 }} {{ 1e16 }} {{ 1e15 }} {{ 1e-5 }} {{ 0.0001 }} {{ 123456789012345.6 }})T", kVars), R"E(1.0 2.5 1e+16 1000000000000000.0 1e-05 0.0001 123456789012345.6)E");
  EXPECT_EQ(render(R"T({{ [1, 'a', none, true, 1.5] }} {{ {'k': 'v', 'n': [1]} }} {{ (1,) }} {{ (1, 'b') }} {{ [] }} {{ {} }})T", kVars), R"E([1, 'a', None, True, 1.5] {'k': 'v', 'n': [1]} (1,) (1, 'b') [] {})E");
  EXPECT_EQ(render(R"T({{ ["it's", 'say "hi"', "both ' \""] }})T", kVars), R"E(["it's", 'say "hi"', 'both \' "'])E");
  EXPECT_EQ(render(R"T({{ ["tab\there", "new\nline", "back\\slash", "é"] }})T", kVars), R"E(['tab\there', 'new\nline', 'back\\slash', 'é'])E");
  EXPECT_EQ(render(R"T({{ d }})T", kVars), R"E({'b': 1, 'a': [1, 2], 'c': {'z': None}})E");
}

TEST(JinjaExpression, AttributeAndItemAccessAreInterchangeable) {
  EXPECT_EQ(render(R"T({{ message.role }} {{ message["role"] }} {{ messages[1].content }} {{ messages[-1]["role"] }})T", kVars), R"E(user user Hi user)E");
  EXPECT_EQ(render(R"T({{ d.a[0] }} {{ d["a"][-1] }} {{ d.c.z }} {{ d.a.1 }})T", kVars), R"E(1 2 None 2)E");
}

TEST(JinjaExpression, MissingValuesAreUndefined) {
  // A missing key, index or variable is undefined: it prints as nothing and is falsy.
  EXPECT_EQ(render(R"T([{{ message.missing }}] {{ message.missing is defined }} {{ message["missing"] is undefined }})T", kVars), R"E([] False True)E");
  EXPECT_EQ(render(R"T({{ message.missing|default("fallback") }} {{ missing|default("fallback") }} {{ none|default("x") }})T", kVars), R"E(fallback fallback None)E");
  EXPECT_EQ(render(R"T({{ messages[5] is defined }} {{ l[10] is defined }} {{ none.attribute is defined }} {{ "abc"[7] is defined }})T", kVars), R"E(False False False False)E");
  EXPECT_EQ(render(R"T({% if missing %}t{% else %}f{% endif %} {{ missing is none }} {{ not missing }})T", kVars), R"E(f False True)E");
  EXPECT_EQ(render(R"T([{{ missing }}] {{ missing|length }} {{ missing|list }} {{ missing ~ "x" }} {{ missing == missing }} {{ missing == none }})T", kVars), R"E([] 0 [] x True False)E");
  EXPECT_EQ(render(R"T({% for m in missing %}item{% else %}empty{% endfor %})T", kVars), R"E(empty)E");
}

TEST(JinjaExpression, Slices) {
  // Python slices and negative indexes, by code point for strings.
  EXPECT_EQ(render(R"T({{ l[1:] }} {{ l[::-1] }} {{ l[:-1] }} {{ l[::2] }} {{ l[-1] }} {{ l[5:] }} {{ l[-100:1] }})T", kVars), R"E([1, 2] [2, 1, 3] [3, 1] [3, 2] 2 [] [3])E");
  EXPECT_EQ(render(R"T({{ s[0] }} {{ s[-1] }} {{ s[1:3] }} {{ s[::-1] }} {{ s[:none] }})T", kVars), R"E(H d el dlroW olleH Hello World)E");
  EXPECT_EQ(render(R"T({{ "héllo"[1] }} {{ "héllo"[::-1] }} {{ "héllo"|length }} {{ "日本語"[1:] }})T", kVars), R"E(é olléh 5 本語)E");
  EXPECT_EQ(render(R"T({{ (1, 2, 3)[1:] }})T", kVars), R"E((2, 3))E");
}

TEST(JinjaExpression, StringMethods) {
  // Python str methods, as templates call them.
  EXPECT_EQ(render(R"T({{ s.startswith("He") }} {{ s.startswith(("x", "Hell")) }} {{ s.endswith("ld") }} {{ s.startswith("World", 6) }})T", kVars), R"E(True True True True)E");
  EXPECT_EQ(render(R"T({{ s.split() }} {{ s.split("o") }} {{ s.split("o", 1) }} {{ s.rsplit("o", 1) }} {{ " a  b ".split() }} {{ "a,,b".split(",") }})T", kVars), R"E(['Hello', 'World'] ['Hell', ' W', 'rld'] ['Hell', ' World'] ['Hello W', 'rld'] ['a', 'b'] ['a', '', 'b'])E");
  EXPECT_EQ(render(R"T([{{ "  x \n".strip() }}] [{{ "xxaxx".strip("x") }}] [{{ "xxaxx".lstrip("x") }}] [{{ "xxaxx".rstrip("x") }}] [{{ "\n\nx".lstrip("\n") }}])T", kVars), R"E([x] [a] [axx] [xxa] [x])E");
  EXPECT_EQ(render(R"T({{ s.upper() }} {{ s.lower() }} {{ "hello wORLD-x".title() }} {{ "hELLO".capitalize() }} {{ "aB".swapcase() }})T", kVars), R"E(HELLO WORLD hello world Hello World-X Hello Ab)E");
  EXPECT_EQ(render(R"T({{ s.replace("o", "0") }} {{ s.replace("o", "0", 1) }} {{ s.find("o") }} {{ s.rfind("o") }} {{ s.find("z") }} {{ s.count("o") }})T", kVars), R"E(Hell0 W0rld Hell0 World 4 7 -1 2)E");
  EXPECT_EQ(render(R"T({{ "-".join(["a", "b", "c"]) }} {{ ", ".join(l|map("string")) }})T", kVars), R"E(a-b-c 3, 1, 2)E");
  EXPECT_EQ(render(R"T({{ "{} and {}".format(1, "b") }} {{ "{0}{0} {name}".format("x", name="n") }} {{ "{{literal}}".format() }})T", kVars), R"E(1 and b xx n {literal})E");
  EXPECT_EQ(render(R"T({{ "a\nb\r\nc".splitlines() }} {{ "123".isdigit() }} {{ "ab".isalpha() }} {{ " ".isspace() }} {{ "abc".islower() }} {{ "ABC".isupper() }})T", kVars), R"E(['a', 'b', 'c'] True True True True True)E");
  EXPECT_EQ(render(R"T({{ "ab".center(6, "*") }} {{ "ab".ljust(4, ".") }} {{ "ab".rjust(4) }} {{ "5".zfill(3) }} {{ "a=b=c".partition("=") }} {{ "pre_x".removeprefix("pre_") }})T", kVars), R"E(**ab** ab..   ab 005 ('a', '=', 'b=c') x)E");
}

TEST(JinjaExpression, DictAndListMethods) {
  EXPECT_EQ(render(R"T({{ d.items() | list }} {{ d.keys() | list }} {{ d.values() | list }})T", kVars), R"E([('b', 1), ('a', [1, 2]), ('c', {'z': None})] ['b', 'a', 'c'] [1, [1, 2], {'z': None}])E");
  EXPECT_EQ(render(R"T({{ d.get("b") }} {{ d.get("q") }} {{ d.get("q", 5) }} {{ l.index(1) }} {{ l.count(3) }})T", kVars), R"E(1 None 5 1 1)E");
  EXPECT_EQ(render(R"T({% for k, v in d.items() %}{{ k }}={{ v }};{% endfor %})T", kVars), R"E(b=1;a=[1, 2];c={'z': None};)E");
}

TEST(JinjaExpression, GlobalFunctions) {
  EXPECT_EQ(render(R"T({{ range(3)|list }} {{ range(1, 7, 2)|list }} {{ range(5, 0, -2)|list }})T", kVars), R"E([0, 1, 2] [1, 3, 5] [5, 3, 1])E");
  EXPECT_EQ(render(R"T({{ namespace(a=1).a }} {{ dict(a=1, b='x') }} {{ dict({'a': 1}, b=2) }})T", kVars), R"E(1 {'a': 1, 'b': 'x'} {'a': 1, 'b': 2})E");
  EXPECT_EQ(render(R"T({% set sep = joiner(", ") %}{% for i in l %}{{ sep() }}{{ i }}{% endfor %})T", kVars), R"E(3, 1, 2)E");
}

TEST(JinjaExpression, UnicodeCaseMappingFollowsPython) {
  EXPECT_EQ(render(R"T({{ "héllo wörld"|upper }} {{ "ÀÉÎ"|lower }} {{ "straße"|upper }} {{ "ΣΑΣ"|lower }} {{ "élan vital"|title }})T"), R"E(HÉLLO WÖRLD àéî STRASSE σας Élan Vital)E");
  EXPECT_EQ(render(R"T([{{ "\u3000 x \u00a0"|trim }}] {{ "a\u2003b".split() }})T"), R"E([x] ['a', 'b'])E");
}

// As in Jinja's default Undefined (what transformers uses): an undefined value prints as nothing, but
// reading an attribute or item of it, calling it or doing arithmetic with it is an error.
TEST(JinjaExpression, UsingAnUndefinedValueIsAnError) {
  EXPECT_TRUE(contains(error_of("{{ missing.attr }}"), "'missing' is undefined"));
  EXPECT_TRUE(contains(error_of("{{ missing['key'] }}"), "'missing' is undefined"));
  EXPECT_TRUE(contains(error_of("{{ message.nope.x }}", kVars), "'dict object' has no attribute 'nope'"));
  EXPECT_TRUE(contains(error_of("{{ messages[5].role }}", kVars), "list object has no element 5"));
  EXPECT_TRUE(contains(error_of("{{ missing + 1 }}"), "'missing' is undefined"));
  EXPECT_TRUE(contains(error_of("{{ missing() }}"), "'missing' is undefined"));
  EXPECT_TRUE(contains(error_of("{{ missing < 1 }}"), "'missing' is undefined"));
  EXPECT_TRUE(contains(error_of("{{ missing|tojson }}"), "not JSON serializable"));
}

TEST(JinjaExpression, TypeErrorsAreReported) {
  EXPECT_TRUE(contains(error_of("{{ 1 + 'a' }}"), "unsupported operand type(s) for +: 'int' and 'str'"));
  EXPECT_TRUE(contains(error_of("{{ 'a' + 1 }}"), "can only concatenate str (not \"int\") to str"));
  EXPECT_TRUE(contains(error_of("{{ 1 / 0 }}"), "division by zero"));
  EXPECT_TRUE(contains(error_of("{{ 1 // 0 }}"), "integer division or modulo by zero"));
  EXPECT_TRUE(contains(error_of("{{ 'a' < 1 }}"), "'<' not supported between instances of 'str' and 'int'"));
  EXPECT_TRUE(contains(error_of("{{ 1 in 'abc' }}"), "requires string as left operand"));
  EXPECT_TRUE(contains(error_of("{{ 'x' in none }}"), "argument of type 'NoneType' is not iterable"));
  EXPECT_TRUE(contains(error_of("{{ x() }}", kVars), "'int' object is not callable"));
  // Python ints are unbounded; ours are 64-bit and overflow is an error, never a wrong number.
  EXPECT_TRUE(contains(error_of("{{ 9223372036854775807 + 1 }}"), "integer overflow"));
  EXPECT_TRUE(contains(error_of("{{ range(1000000)|length }}"), "Range too big"));
}

// transformers renders in an ImmutableSandboxedEnvironment: methods that mutate lists and dicts are refused.
TEST(JinjaExpression, MutatingMethodsAreRefusedAsInTheSandbox) {
  EXPECT_TRUE(contains(error_of("{{ messages.append(1) }}", kVars), "access to attribute 'append' of 'list' object is unsafe"));
  EXPECT_TRUE(contains(error_of("{{ d.pop('a') }}", kVars), "access to attribute 'pop' of 'dict' object is unsafe"));
  EXPECT_TRUE(contains(error_of("{{ d.update({}) }}", kVars), "unsafe"));
}

TEST(JinjaExpression, RuntimeErrorsCarryTheTemplateLine) {
  EXPECT_TRUE(contains(error_of("line 1\n{% if true %}\n  {{ 1 + 'a' }}\n{% endif %}"), "chat template error at line 3:"));
  EXPECT_TRUE(contains(error_of("{% for m in messages %}\n{{ m.role.x.y }}{% endfor %}", kVars), "at line 2:"));
}

TEST(JinjaExpression, StrftimeNowFormatsTheCurrentLocalTime) {
  std::time_t now = std::time(nullptr);
  std::tm local{};
  localtime_r(&now, &local);
  char year[8];
  std::strftime(year, sizeof year, "%Y", &local);
  std::string rendered = render("{{ strftime_now('%Y') }}|{{ strftime_now('%d %b %Y')|length }}");
  // Around midnight on New Year's Eve the year may tick over between the two clocks; accept either.
  EXPECT_TRUE(rendered == std::string(year) + "|11" || rendered.substr(4) == "|11") << rendered;
}

}  // namespace
}  // namespace roofline
