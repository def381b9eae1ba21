// Whole Llama 3.1 / 3.2 chat templates (tool calling, builtin tools, date_string, strftime_now,
// `messages[0]['content']|trim`, `{%- set %}` with whitespace control). Expected renders come from
// Python Jinja2 configured as transformers configures it (ImmutableSandboxedEnvironment, trim_blocks,
// lstrip_blocks, transformers' tojson / raise_exception / strftime_now).
#include <gtest/gtest.h>

#include <ctime>
#include <string>

#include "roofline/core/error.h"
#include "roofline/tokenizer/chat_template.h"
#include "jinja_test_util.h"

namespace roofline {
namespace {

using namespace jinja_test;

// Llama 3.1 Instruct: tools in the first user message by default, builtin_tools (ipython), date_string.
const char* const kLlama31 = R"TPL({{- bos_token }}
{%- if custom_tools is defined %}
    {%- set tools = custom_tools %}
{%- endif %}
{%- if not tools_in_user_message is defined %}
    {%- set tools_in_user_message = true %}
{%- endif %}
{%- if not date_string is defined %}
    {%- set date_string = "26 Jul 2024" %}
{%- endif %}
{%- if not tools is defined %}
    {%- set tools = none %}
{%- endif %}

{#- This block extracts the system message, so we can slot it into the right place. #}
{%- if messages[0]['role'] == 'system' %}
    {%- set system_message = messages[0]['content']|trim %}
    {%- set messages = messages[1:] %}
{%- else %}
    {%- set system_message = "" %}
{%- endif %}

{#- System message + builtin tools #}
{{- "<|start_header_id|>system<|end_header_id|>\n\n" }}
{%- if builtin_tools is defined or tools is not none %}
    {{- "Environment: ipython\n" }}
{%- endif %}
{%- if builtin_tools is defined %}
    {{- "Tools: " + builtin_tools | reject('equalto', 'code_interpreter') | join(", ") + "\n\n"}}
{%- endif %}
{{- "Cutting Knowledge Date: December 2023\n" }}
{{- "Today Date: " + date_string + "\n\n" }}
{%- if tools is not none and not tools_in_user_message %}
    {{- "You have access to the following functions. To call a function, please respond with JSON for a function call." }}
    {{- 'Respond in the format {"name": function name, "parameters": dictionary of argument name and its value}.' }}
    {{- "Do not use variables.\n\n" }}
    {%- for t in tools %}
        {{- t | tojson(indent=4) }}
        {{- "\n\n" }}
    {%- endfor %}
{%- endif %}
{{- system_message }}
{{- "<|eot_id|>" }}

{#- Custom tools are passed in a user message with some extra guidance #}
{%- if tools_in_user_message and not tools is none %}
    {#- Extract the first user message so we can plug it in here #}
    {%- if messages | length != 0 %}
        {%- set first_user_message = messages[0]['content']|trim %}
        {%- set messages = messages[1:] %}
    {%- else %}
        {{- raise_exception("Cannot put tools in the first user message when there's no first user message!") }}
{%- endif %}
    {{- '<|start_header_id|>user<|end_header_id|>\n\n' -}}
    {{- "Given the following functions, please respond with a JSON for a function call " }}
    {{- "with its proper arguments that best answers the given prompt.\n\n" }}
    {{- 'Respond in the format {"name": function name, "parameters": dictionary of argument name and its value}.' }}
    {{- "Do not use variables.\n\n" }}
    {%- for t in tools %}
        {{- t | tojson(indent=4) }}
        {{- "\n\n" }}
    {%- endfor %}
    {{- first_user_message + "<|eot_id|>"}}
{%- endif %}

{%- for message in messages %}
    {%- if not (message.role == 'ipython' or message.role == 'tool' or 'tool_calls' in message) %}
        {{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'+ message['content'] | trim + '<|eot_id|>' }}
    {%- elif 'tool_calls' in message %}
        {%- if not message.tool_calls|length == 1 %}
            {{- raise_exception("This model only supports single tool-calls at once!") }}
        {%- endif %}
        {%- set tool_call = message.tool_calls[0].function %}
        {%- if builtin_tools is defined and tool_call.name in builtin_tools %}
            {{- '<|start_header_id|>assistant<|end_header_id|>\n\n' -}}
            {{- "<|python_tag|>" + tool_call.name + ".call(" }}
            {%- for arg_name, arg_val in tool_call.arguments | items %}
                {{- arg_name + '="' + arg_val + '"' }}
                {%- if not loop.last %}
                    {{- ", " }}
                {%- endif %}
                {%- endfor %}
            {{- ")" }}
        {%- else  %}
            {{- '<|start_header_id|>assistant<|end_header_id|>\n\n' -}}
            {{- '{"name": "' + tool_call.name + '", ' }}
            {{- '"parameters": ' }}
            {{- tool_call.arguments | tojson }}
            {{- "}" }}
        {%- endif %}
        {%- if builtin_tools is defined %}
            {#- This means we're in ipython mode #}
            {{- "<|eom_id|>" }}
        {%- else %}
            {{- "<|eot_id|>" }}
        {%- endif %}
    {%- elif message.role == "tool" or message.role == "ipython" %}
        {{- "<|start_header_id|>ipython<|end_header_id|>\n\n" }}
        {%- if message.content is mapping or message.content is iterable %}
            {{- message.content | tojson }}
        {%- else %}
            {{- message.content }}
        {%- endif %}
        {{- "<|eot_id|>" }}
    {%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}
    {{- '<|start_header_id|>assistant<|end_header_id|>\n\n' }}
{%- endif %}
)TPL";

// Llama 3.2 Instruct (as published, via llama.cpp's models/templates): adds strftime_now for the date.
const char* const kLlama32 = R"TPL({{- bos_token }}
{%- if custom_tools is defined %}
    {%- set tools = custom_tools %}
{%- endif %}
{%- if not tools_in_user_message is defined %}
    {%- set tools_in_user_message = true %}
{%- endif %}
{%- if not date_string is defined %}
    {%- if strftime_now is defined %}
        {%- set date_string = strftime_now("%d %b %Y") %}
    {%- else %}
        {%- set date_string = "26 Jul 2024" %}
    {%- endif %}
{%- endif %}
{%- if not tools is defined %}
    {%- set tools = none %}
{%- endif %}

{#- This block extracts the system message, so we can slot it into the right place. #}
{%- if messages[0]['role'] == 'system' %}
    {%- set system_message = messages[0]['content']|trim %}
    {%- set messages = messages[1:] %}
{%- else %}
    {%- set system_message = "" %}
{%- endif %}

{#- System message #}
{{- "<|start_header_id|>system<|end_header_id|>\n\n" }}
{%- if tools is not none %}
    {{- "Environment: ipython\n" }}
{%- endif %}
{{- "Cutting Knowledge Date: December 2023\n" }}
{{- "Today Date: " + date_string + "\n\n" }}
{%- if tools is not none and not tools_in_user_message %}
    {{- "You have access to the following functions. To call a function, please respond with JSON for a function call." }}
    {{- 'Respond in the format {"name": function name, "parameters": dictionary of argument name and its value}.' }}
    {{- "Do not use variables.\n\n" }}
    {%- for t in tools %}
        {{- t | tojson(indent=4) }}
        {{- "\n\n" }}
    {%- endfor %}
{%- endif %}
{{- system_message }}
{{- "<|eot_id|>" }}

{#- Custom tools are passed in a user message with some extra guidance #}
{%- if tools_in_user_message and not tools is none %}
    {#- Extract the first user message so we can plug it in here #}
    {%- if messages | length != 0 %}
        {%- set first_user_message = messages[0]['content']|trim %}
        {%- set messages = messages[1:] %}
    {%- else %}
        {{- raise_exception("Cannot put tools in the first user message when there's no first user message!") }}
{%- endif %}
    {{- '<|start_header_id|>user<|end_header_id|>\n\n' -}}
    {{- "Given the following functions, please respond with a JSON for a function call " }}
    {{- "with its proper arguments that best answers the given prompt.\n\n" }}
    {{- 'Respond in the format {"name": function name, "parameters": dictionary of argument name and its value}.' }}
    {{- "Do not use variables.\n\n" }}
    {%- for t in tools %}
        {{- t | tojson(indent=4) }}
        {{- "\n\n" }}
    {%- endfor %}
    {{- first_user_message + "<|eot_id|>"}}
{%- endif %}

{%- for message in messages %}
    {%- if not (message.role == 'ipython' or message.role == 'tool' or 'tool_calls' in message) %}
        {{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'+ message['content'] | trim + '<|eot_id|>' }}
    {%- elif 'tool_calls' in message %}
        {%- if not message.tool_calls|length == 1 %}
            {{- raise_exception("This model only supports single tool-calls at once!") }}
        {%- endif %}
        {%- set tool_call = message.tool_calls[0].function %}
        {{- '<|start_header_id|>assistant<|end_header_id|>\n\n' -}}
        {{- '{"name": "' + tool_call.name + '", ' }}
        {{- '"parameters": ' }}
        {{- tool_call.arguments | tojson }}
        {{- "}" }}
        {{- "<|eot_id|>" }}
    {%- elif message.role == "tool" or message.role == "ipython" %}
        {{- "<|start_header_id|>ipython<|end_header_id|>\n\n" }}
        {%- if message.content is mapping or message.content is iterable %}
            {{- message.content | tojson }}
        {%- else %}
            {{- message.content }}
        {%- endif %}
        {{- "<|eot_id|>" }}
    {%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}
    {{- '<|start_header_id|>assistant<|end_header_id|>\n\n' }}
{%- endif %}
)TPL";

TEST(LlamaChatTemplates, Llama31SystemAndUser) {
  // Without date_string the template falls back to its built-in date.
  EXPECT_EQ(render(kLlama31, R"J({"bos_token": "<|begin_of_text|>", "eos_token": "<|eot_id|>", "messages": [{"role": "system", "content": "  You are a helpful assistant.\n"}, {"role": "user", "content": "What's the weather in Paris? "}], "add_generation_prompt": true})J"),
            R"E(<|begin_of_text|><|start_header_id|>system<|end_header_id|>

Cutting Knowledge Date: December 2023
Today Date: 26 Jul 2024

You are a helpful assistant.<|eot_id|><|start_header_id|>user<|end_header_id|>

What's the weather in Paris?<|eot_id|><|start_header_id|>assistant<|end_header_id|>

)E");
  EXPECT_EQ(render(kLlama31, R"J({"bos_token": "<|begin_of_text|>", "eos_token": "<|eot_id|>", "messages": [{"role": "user", "content": "What's the weather in Paris? "}, {"role": "assistant", "content": " Sunny. "}], "add_generation_prompt": false})J"),
            R"E(<|begin_of_text|><|start_header_id|>system<|end_header_id|>

Cutting Knowledge Date: December 2023
Today Date: 26 Jul 2024

<|eot_id|><|start_header_id|>user<|end_header_id|>

What's the weather in Paris?<|eot_id|><|start_header_id|>assistant<|end_header_id|>

Sunny.<|eot_id|>)E");
}

TEST(LlamaChatTemplates, Llama31ToolsInFirstUserMessage) {
  EXPECT_EQ(render(kLlama31, R"J({"bos_token": "<|begin_of_text|>", "eos_token": "<|eot_id|>", "messages": [{"role": "system", "content": "  You are a helpful assistant.\n"}, {"role": "user", "content": "What's the weather in Paris? "}, {"role": "assistant", "tool_calls": [{"type": "function", "function": {"name": "get_weather", "arguments": {"city": "Paris"}}}]}, {"role": "tool", "content": "22 degrees"}], "tools": [{"type": "function", "function": {"name": "get_weather", "description": "Current weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}], "date_string": "01 Jan 2025", "add_generation_prompt": true})J"),
            R"E(<|begin_of_text|><|start_header_id|>system<|end_header_id|>

Environment: ipython
Cutting Knowledge Date: December 2023
Today Date: 01 Jan 2025

You are a helpful assistant.<|eot_id|><|start_header_id|>user<|end_header_id|>

Given the following functions, please respond with a JSON for a function call with its proper arguments that best answers the given prompt.

Respond in the format {"name": function name, "parameters": dictionary of argument name and its value}.Do not use variables.

{
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {
                    "type": "string"
                }
            },
            "required": [
                "city"
            ]
        }
    }
}

What's the weather in Paris?<|eot_id|><|start_header_id|>assistant<|end_header_id|>

{"name": "get_weather", "parameters": {"city": "Paris"}}<|eot_id|><|start_header_id|>ipython<|end_header_id|>

"22 degrees"<|eot_id|><|start_header_id|>assistant<|end_header_id|>

)E");
}

TEST(LlamaChatTemplates, Llama31ToolsInSystemMessage) {
  EXPECT_EQ(render(kLlama31, R"J({"bos_token": "<|begin_of_text|>", "eos_token": "<|eot_id|>", "messages": [{"role": "user", "content": "What's the weather in Paris? "}], "tools": [{"type": "function", "function": {"name": "get_weather", "description": "Current weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}], "tools_in_user_message": false, "date_string": "01 Jan 2025", "add_generation_prompt": true})J"),
            R"E(<|begin_of_text|><|start_header_id|>system<|end_header_id|>

Environment: ipython
Cutting Knowledge Date: December 2023
Today Date: 01 Jan 2025

You have access to the following functions. To call a function, please respond with JSON for a function call.Respond in the format {"name": function name, "parameters": dictionary of argument name and its value}.Do not use variables.

{
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {
                    "type": "string"
                }
            },
            "required": [
                "city"
            ]
        }
    }
}

<|eot_id|><|start_header_id|>user<|end_header_id|>

What's the weather in Paris?<|eot_id|><|start_header_id|>assistant<|end_header_id|>

)E");
}

TEST(LlamaChatTemplates, Llama31BuiltinTools) {
  // A builtin tool call renders as <|python_tag|>name.call(arg="value") and ends with <|eom_id|>.
  EXPECT_EQ(render(kLlama31, R"J({"bos_token": "<|begin_of_text|>", "eos_token": "<|eot_id|>", "messages": [{"role": "user", "content": "What's the weather in Paris? "}, {"role": "assistant", "tool_calls": [{"function": {"name": "brave_search", "arguments": {"query": "Paris weather", "count": "3"}}}]}, {"role": "ipython", "content": "sunny"}], "builtin_tools": ["brave_search", "wolfram_alpha", "code_interpreter"], "add_generation_prompt": true})J"),
            R"E(<|begin_of_text|><|start_header_id|>system<|end_header_id|>

Environment: ipython
Tools: brave_search, wolfram_alpha

Cutting Knowledge Date: December 2023
Today Date: 26 Jul 2024

<|eot_id|><|start_header_id|>user<|end_header_id|>

What's the weather in Paris?<|eot_id|><|start_header_id|>assistant<|end_header_id|>

<|python_tag|>brave_search.call(query="Paris weather", count="3")<|eom_id|><|start_header_id|>ipython<|end_header_id|>

"sunny"<|eot_id|><|start_header_id|>assistant<|end_header_id|>

)E");
}

TEST(LlamaChatTemplates, Llama31RejectsParallelToolCalls) {
  EXPECT_TRUE(contains(error_of(kLlama31, R"J({"bos_token": "<|begin_of_text|>", "eos_token": "<|eot_id|>", "messages": [{"role": "user", "content": "What's the weather in Paris? "}, {"role": "assistant", "tool_calls": [{"type": "function", "function": {"name": "get_weather", "arguments": {"city": "Paris"}}}, {"type": "function", "function": {"name": "get_weather", "arguments": {"city": "Paris"}}}]}], "add_generation_prompt": false})J"),
                       R"E(This model only supports single tool-calls at once!)E"));
}

TEST(LlamaChatTemplates, Llama32WithDateString) {
  EXPECT_EQ(render(kLlama32, R"J({"bos_token": "<|begin_of_text|>", "eos_token": "<|eot_id|>", "messages": [{"role": "system", "content": "  You are a helpful assistant.\n"}, {"role": "user", "content": "What's the weather in Paris? "}], "date_string": "01 Jan 2025", "add_generation_prompt": true})J"),
            R"E(<|begin_of_text|><|start_header_id|>system<|end_header_id|>

Cutting Knowledge Date: December 2023
Today Date: 01 Jan 2025

You are a helpful assistant.<|eot_id|><|start_header_id|>user<|end_header_id|>

What's the weather in Paris?<|eot_id|><|start_header_id|>assistant<|end_header_id|>

)E");
  EXPECT_EQ(render(kLlama32, R"J({"bos_token": "<|begin_of_text|>", "eos_token": "<|eot_id|>", "messages": [{"role": "system", "content": "  You are a helpful assistant.\n"}, {"role": "user", "content": "What's the weather in Paris? "}, {"role": "assistant", "tool_calls": [{"type": "function", "function": {"name": "get_weather", "arguments": {"city": "Paris"}}}]}, {"role": "tool", "content": {"temp": 22, "unit": "C"}}], "tools": [{"type": "function", "function": {"name": "get_weather", "description": "Current weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}], "date_string": "01 Jan 2025", "add_generation_prompt": true})J"),
            R"E(<|begin_of_text|><|start_header_id|>system<|end_header_id|>

Environment: ipython
Cutting Knowledge Date: December 2023
Today Date: 01 Jan 2025

You are a helpful assistant.<|eot_id|><|start_header_id|>user<|end_header_id|>

Given the following functions, please respond with a JSON for a function call with its proper arguments that best answers the given prompt.

Respond in the format {"name": function name, "parameters": dictionary of argument name and its value}.Do not use variables.

{
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {
                    "type": "string"
                }
            },
            "required": [
                "city"
            ]
        }
    }
}

What's the weather in Paris?<|eot_id|><|start_header_id|>assistant<|end_header_id|>

{"name": "get_weather", "parameters": {"city": "Paris"}}<|eot_id|><|start_header_id|>ipython<|end_header_id|>

{"temp": 22, "unit": "C"}<|eot_id|><|start_header_id|>assistant<|end_header_id|>

)E");
}

TEST(LlamaChatTemplates, Llama32Errors) {
  // Tools go into the first user message, so there must be one; an empty conversation fails on messages[0].
  EXPECT_TRUE(contains(error_of(kLlama32, R"J({"bos_token": "<|begin_of_text|>", "eos_token": "<|eot_id|>", "messages": [{"role": "system", "content": "  You are a helpful assistant.\n"}], "tools": [{"type": "function", "function": {"name": "get_weather", "description": "Current weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}], "date_string": "01 Jan 2025", "add_generation_prompt": true})J"),
                       R"E(Cannot put tools in the first user message when there's no first user message!)E"));
  EXPECT_TRUE(contains(error_of(kLlama32, R"J({"bos_token": "<|begin_of_text|>", "eos_token": "<|eot_id|>", "messages": [], "date_string": "01 Jan 2025", "add_generation_prompt": true})J"),
                       R"E(list object has no element 0)E"));
}

// Without date_string, Llama 3.2 asks strftime_now("%d %b %Y") for today's date.
TEST(LlamaChatTemplates, Llama32DatesFromStrftimeNow) {
  auto today = [] {
    std::time_t now = std::time(nullptr);
    std::tm local{};
    localtime_r(&now, &local);
    char buf[32];
    std::strftime(buf, sizeof buf, "%d %b %Y", &local);
    return std::string(buf);
  };
  std::string before = today();
  std::string rendered = render(kLlama32, R"({"bos_token": "<s>", "messages": [{"role": "user", "content": "Hi"}], "add_generation_prompt": true})");
  std::string after = today();
  auto expected = [](const std::string& date) {
    return "<s><|start_header_id|>system<|end_header_id|>\n\nCutting Knowledge Date: December 2023\nToday Date: " + date +
           "\n\n<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n";
  };
  EXPECT_TRUE(rendered == expected(before) || rendered == expected(after)) << rendered;
}

}  // namespace
}  // namespace roofline
