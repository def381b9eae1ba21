// Whole chat templates of other common families: Qwen2.5 (tools), Mistral v0.1 and Nemo (raise_exception
// on role alternation, tool-call ids), GPT-style ChatML. Expected renders come from
// Python Jinja2 configured as transformers configures it (ImmutableSandboxedEnvironment, trim_blocks,
// lstrip_blocks, transformers' tojson / raise_exception / strftime_now).
#include <gtest/gtest.h>

#include <string>

#include "roofline/core/error.h"
#include "roofline/tokenizer/chat_template.h"
#include "jinja_test_util.h"

namespace roofline {
namespace {

using namespace jinja_test;

// Qwen2.5 Instruct: default system prompt, tools as JSON lines, tool calls and grouped tool responses.
const char* const kQwen25 = R"TPL({%- if tools %}
    {{- '<|im_start|>system\n' }}
    {%- if messages[0]['role'] == 'system' %}
        {{- messages[0]['content'] }}
    {%- else %}
        {{- 'You are Qwen, created by Alibaba Cloud. You are a helpful assistant.' }}
    {%- endif %}
    {{- "\n\n# Tools\n\nYou may call one or more functions to assist with the user query.\n\nYou are provided with function signatures within <tools></tools> XML tags:\n<tools>" }}
    {%- for tool in tools %}
        {{- "\n" }}
        {{- tool | tojson }}
    {%- endfor %}
    {{- "\n</tools>\n\nFor each function call, return a json object with function name and arguments within <tool_call></tool_call> XML tags:\n<tool_call>\n{\"name\": <function-name>, \"arguments\": <args-json-object>}\n</tool_call><|im_end|>\n" }}
{%- else %}
    {%- if messages[0]['role'] == 'system' %}
        {{- '<|im_start|>system\n' + messages[0]['content'] + '<|im_end|>\n' }}
    {%- else %}
        {{- '<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n' }}
    {%- endif %}
{%- endif %}
{%- for message in messages %}
    {%- if (message.role == "user") or (message.role == "system" and not loop.first) or (message.role == "assistant" and not message.tool_calls) %}
        {{- '<|im_start|>' + message.role + '\n' + message.content + '<|im_end|>' + '\n' }}
    {%- elif message.role == "assistant" %}
        {{- '<|im_start|>' + message.role }}
        {%- if message.content %}
            {{- '\n' + message.content }}
        {%- endif %}
        {%- for tool_call in message.tool_calls %}
            {%- if tool_call.function is defined %}
                {%- set tool_call = tool_call.function %}
            {%- endif %}
            {{- '\n<tool_call>\n{"name": "' }}
            {{- tool_call.name }}
            {{- '", "arguments": ' }}
            {{- tool_call.arguments | tojson }}
            {{- '}\n</tool_call>' }}
        {%- endfor %}
        {{- '<|im_end|>\n' }}
    {%- elif message.role == "tool" %}
        {%- if (loop.index0 == 0) or (messages[loop.index0 - 1].role != "tool") %}
            {{- '<|im_start|>user' }}
        {%- endif %}
        {{- '\n<tool_response>\n' }}
        {{- message.content }}
        {{- '\n</tool_response>' }}
        {%- if loop.last or (messages[loop.index0 + 1].role != "tool") %}
            {{- '<|im_end|>\n' }}
        {%- endif %}
    {%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}
    {{- '<|im_start|>assistant\n' }}
{%- endif %}
)TPL";

// Mistral 7B Instruct v0.1: raise_exception when roles do not alternate.
const char* const kMistralV01 = R"TPL({{ bos_token }}{% for message in messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}{% if message['role'] == 'user' %}{{ '[INST] ' + message['content'] + ' [/INST]' }}{% elif message['role'] == 'assistant' %}{{ message['content'] + eos_token}}{% else %}{{ raise_exception('Only user and assistant roles are supported!') }}{% endif %}{% endfor %}
)TPL";

// Mistral Nemo Instruct (as published, via llama.cpp's models/templates): tools, tool-call ids, `for ... if`.
const char* const kMistralNemo = R"TPL({%- if messages[0]["role"] == "system" %}
    {%- set system_message = messages[0]["content"] %}
    {%- set loop_messages = messages[1:] %}
{%- else %}
    {%- set loop_messages = messages %}
{%- endif %}
{%- if not tools is defined %}
    {%- set tools = none %}
{%- endif %}
{%- set user_messages = loop_messages | selectattr("role", "equalto", "user") | list %}

{#- This block checks for alternating user/assistant messages, skipping tool calling messages #}
{%- set ns = namespace() %}
{%- set ns.index = 0 %}
{%- for message in loop_messages %}
    {%- if not (message.role == "tool" or message.role == "tool_results" or (message.tool_calls is defined and message.tool_calls is not none)) %}
        {%- if (message["role"] == "user") != (ns.index % 2 == 0) %}
            {{- raise_exception("After the optional system message, conversation roles must alternate user/assistant/user/assistant/...") }}
        {%- endif %}
        {%- set ns.index = ns.index + 1 %}
    {%- endif %}
{%- endfor %}

{{- bos_token }}
{%- for message in loop_messages %}
    {%- if message["role"] == "user" %}
        {%- if tools is not none and (message == user_messages[-1]) %}
            {{- "[AVAILABLE_TOOLS][" }}
            {%- for tool in tools %}
                {%- set tool = tool.function %}
                {{- '{"type": "function", "function": {' }}
                {%- for key, val in tool.items() if key != "return" %}
                    {%- if val is string %}
                        {{- '"' + key + '": "' + val + '"' }}
                    {%- else %}
                        {{- '"' + key + '": ' + val|tojson }}
                    {%- endif %}
                    {%- if not loop.last %}
                        {{- ", " }}
                    {%- endif %}
                {%- endfor %}
                {{- "}}" }}
                {%- if not loop.last %}
                    {{- ", " }}
                {%- else %}
                    {{- "]" }}
                {%- endif %}
            {%- endfor %}
            {{- "[/AVAILABLE_TOOLS]" }}
            {%- endif %}
        {%- if loop.last and system_message is defined %}
            {{- "[INST]" + system_message + "\n\n" + message["content"] + "[/INST]" }}
        {%- else %}
            {{- "[INST]" + message["content"] + "[/INST]" }}
        {%- endif %}
    {%- elif (message.tool_calls is defined and message.tool_calls is not none) %}
        {{- "[TOOL_CALLS][" }}
        {%- for tool_call in message.tool_calls %}
            {%- set out = tool_call.function|tojson %}
            {{- out[:-1] }}
            {%- if not tool_call.id is defined or tool_call.id|length != 9 %}
                {{- raise_exception("Tool call IDs should be alphanumeric strings with length 9!") }}
            {%- endif %}
            {{- ', "id": "' + tool_call.id + '"}' }}
            {%- if not loop.last %}
                {{- ", " }}
            {%- else %}
                {{- "]" + eos_token }}
            {%- endif %}
        {%- endfor %}
    {%- elif message["role"] == "assistant" %}
        {{- message["content"] + eos_token}}
    {%- elif message["role"] == "tool_results" or message["role"] == "tool" %}
        {%- if message.content is defined and message.content.content is defined %}
            {%- set content = message.content.content %}
        {%- else %}
            {%- set content = message.content %}
        {%- endif %}
        {{- '[TOOL_RESULTS]{"content": ' + content|string + ", " }}
        {%- if not message.tool_call_id is defined or message.tool_call_id|length != 9 %}
            {{- raise_exception("Tool call IDs should be alphanumeric strings with length 9!") }}
        {%- endif %}
        {{- '"call_id": "' + message.tool_call_id + '"}[/TOOL_RESULTS]' }}
    {%- else %}
        {{- raise_exception("Only user and assistant roles are supported, with the exception of an initial optional system message!") }}
    {%- endif %}
{%- endfor %}
)TPL";

// GPT-style ChatML, transformers' historical default template.
const char* const kChatML = R"TPL({% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}
)TPL";

TEST(CommonChatTemplates, Qwen25) {
  EXPECT_EQ(render(kQwen25, R"J({"messages": [{"role": "user", "content": "What's the weather in Paris?"}], "add_generation_prompt": true})J"),
            R"E(<|im_start|>system
You are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>
<|im_start|>user
What's the weather in Paris?<|im_end|>
<|im_start|>assistant
)E");
  EXPECT_EQ(render(kQwen25, R"J({"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "What's the weather in Paris?"}, {"role": "assistant", "content": "Sunny."}, {"role": "user", "content": "Tomorrow?"}], "add_generation_prompt": false})J"),
            R"E(<|im_start|>system
Be brief.<|im_end|>
<|im_start|>user
What's the weather in Paris?<|im_end|>
<|im_start|>assistant
Sunny.<|im_end|>
<|im_start|>user
Tomorrow?<|im_end|>
)E");
  EXPECT_EQ(render(kQwen25, R"J({"messages": [{"role": "user", "content": "What's the weather in Paris?"}, {"role": "assistant", "content": "Checking.", "tool_calls": [{"id": "call12345", "type": "function", "function": {"name": "get_weather", "arguments": {"city": "Paris"}}}]}, {"role": "tool", "tool_call_id": "call12345", "content": "22 degrees"}, {"role": "tool", "tool_call_id": "call12345", "content": "{\"humidity\": 40}"}], "tools": [{"type": "function", "function": {"name": "get_weather", "description": "Current weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}], "add_generation_prompt": true})J"),
            R"E(<|im_start|>system
You are Qwen, created by Alibaba Cloud. You are a helpful assistant.

# Tools

You may call one or more functions to assist with the user query.

You are provided with function signatures within <tools></tools> XML tags:
<tools>
{"type": "function", "function": {"name": "get_weather", "description": "Current weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}
</tools>

For each function call, return a json object with function name and arguments within <tool_call></tool_call> XML tags:
<tool_call>
{"name": <function-name>, "arguments": <args-json-object>}
</tool_call><|im_end|>
<|im_start|>user
What's the weather in Paris?<|im_end|>
<|im_start|>assistant
Checking.
<tool_call>
{"name": "get_weather", "arguments": {"city": "Paris"}}
</tool_call><|im_end|>
<|im_start|>user
<tool_response>
22 degrees
</tool_response>
<tool_response>
{"humidity": 40}
</tool_response><|im_end|>
<|im_start|>assistant
)E");
}

TEST(CommonChatTemplates, MistralV01) {
  EXPECT_EQ(render(kMistralV01, R"J({"bos_token": "<s>", "eos_token": "</s>", "messages": [{"role": "user", "content": "What's the weather in Paris?"}, {"role": "assistant", "content": "Sunny."}, {"role": "user", "content": "Tomorrow?"}]})J"),
            R"E(<s>[INST] What's the weather in Paris? [/INST]Sunny.</s>[INST] Tomorrow? [/INST])E");
  EXPECT_TRUE(contains(error_of(kMistralV01, R"J({"bos_token": "<s>", "eos_token": "</s>", "messages": [{"role": "user", "content": "What's the weather in Paris?"}, {"role": "user", "content": "Hello?"}]})J"),
                       R"E(Conversation roles must alternate user/assistant/user/assistant/...)E"));
  EXPECT_TRUE(contains(error_of(kMistralV01, R"J({"bos_token": "<s>", "eos_token": "</s>", "messages": [{"role": "system", "content": "x"}]})J"),
                       R"E(Conversation roles must alternate user/assistant/user/assistant/...)E"));
}

TEST(CommonChatTemplates, MistralNemo) {
  EXPECT_EQ(render(kMistralNemo, R"J({"bos_token": "<s>", "eos_token": "</s>", "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "What's the weather in Paris?"}, {"role": "assistant", "content": "Sunny."}, {"role": "user", "content": "Tomorrow?"}]})J"),
            R"E(<s>[INST]What's the weather in Paris?[/INST]Sunny.</s>[INST]Be brief.

Tomorrow?[/INST])E");
  EXPECT_EQ(render(kMistralNemo, R"J({"bos_token": "<s>", "eos_token": "</s>", "messages": [{"role": "user", "content": "What's the weather in Paris?"}, {"role": "assistant", "content": null, "tool_calls": [{"id": "call12345", "type": "function", "function": {"name": "get_weather", "arguments": {"city": "Paris"}}}]}, {"role": "tool", "tool_call_id": "call12345", "content": "22 degrees"}, {"role": "assistant", "content": "Sunny."}, {"role": "user", "content": "Thanks"}], "tools": [{"type": "function", "function": {"name": "get_weather", "description": "Current weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}]})J"),
            R"E(<s>[INST]What's the weather in Paris?[/INST][TOOL_CALLS][{"name": "get_weather", "arguments": {"city": "Paris"}, "id": "call12345"}]</s>[TOOL_RESULTS]{"content": 22 degrees, "call_id": "call12345"}[/TOOL_RESULTS]Sunny.</s>[AVAILABLE_TOOLS][{"type": "function", "function": {"name": "get_weather", "description": "Current weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}][/AVAILABLE_TOOLS][INST]Thanks[/INST])E");
  EXPECT_TRUE(contains(error_of(kMistralNemo, R"J({"bos_token": "<s>", "eos_token": "</s>", "messages": [{"role": "user", "content": "What's the weather in Paris?"}, {"role": "assistant", "content": null, "tool_calls": [{"id": "short", "type": "function", "function": {"name": "get_weather", "arguments": {"city": "Paris"}}}]}]})J"),
                       R"E(Tool call IDs should be alphanumeric strings with length 9!)E"));
  EXPECT_TRUE(contains(error_of(kMistralNemo, R"J({"bos_token": "<s>", "eos_token": "</s>", "messages": [{"role": "user", "content": "What's the weather in Paris?"}, {"role": "user", "content": "What's the weather in Paris?"}]})J"),
                       R"E(After the optional system message, conversation roles must alternate user/assistant/user/assistant/...)E"));
}

TEST(CommonChatTemplates, ChatML) {
  EXPECT_EQ(render(kChatML, R"J({"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "What's the weather in Paris?"}, {"role": "assistant", "content": "Sunny."}], "add_generation_prompt": false})J"),
            R"E(<|im_start|>system
Be brief.<|im_end|>
<|im_start|>user
What's the weather in Paris?<|im_end|>
<|im_start|>assistant
Sunny.<|im_end|>
)E");
  EXPECT_EQ(render(kChatML, R"J({"messages": [{"role": "user", "content": "What's the weather in Paris?"}], "add_generation_prompt": true})J"),
            R"E(<|im_start|>user
What's the weather in Paris?<|im_end|>
<|im_start|>assistant
)E");
}

}  // namespace
}  // namespace roofline
