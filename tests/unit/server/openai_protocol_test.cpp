// Request parsing and validation: every bad input is a 400 naming the field, with a message saying what
// was expected; good input fills ParsedRequest; model-dependent checks (context, vocabulary, template).
#include <gtest/gtest.h>

#include "roofline/server/openai_protocol.h"
#include "roofline/server/prompt_builder.h"
#include "server_test_support.h"

namespace roofline::server {
namespace {

struct BadCase {
  const char* body;
  const char* param;    // "" for none
  const char* message;  // a substring of the message
};

ApiError error_of(Endpoint endpoint, const std::string& body) {
  try {
    endpoint == Endpoint::kChat ? parse_chat_request(body) : parse_completion_request(body);
  } catch (const ApiError& e) {
    return e;
  }
  ADD_FAILURE() << "no error for " << body;
  return ApiError(0, "", "");
}

void expect_rejected(Endpoint endpoint, const std::vector<BadCase>& cases) {
  for (const BadCase& c : cases) {
    SCOPED_TRACE(c.body);
    const ApiError e = error_of(endpoint, c.body);
    EXPECT_EQ(e.status, 400);
    EXPECT_EQ(e.type, "invalid_request_error");
    EXPECT_EQ(e.param, c.param);
    EXPECT_NE(std::string(e.what()).find(c.message), std::string::npos) << e.what();
  }
}

TEST(OpenAiProtocol, CompletionErrorsNameTheFieldAndTheRule) {
  expect_rejected(Endpoint::kCompletions, {
      {"{not json", "", "not valid JSON"},
      {R"({"prompt": "x", "temperature": 1e99999})", "", "not valid JSON"},  // number overflow (fuzzer)
      {"[1, 2]", "", "must be a JSON object (got an array)"},
      {"{}", "prompt", "'prompt' is required"},
      {R"({"prompt": 5})", "prompt", "'prompt' must be a string or a list of token ids (got an integer)"},
      {R"({"prompt": ["a", "b"]})", "prompt", "holds 2 prompts"},
      {R"({"prompt": [1, -2]})", "prompt", "non-negative integers"},
      {R"({"prompt": []})", "prompt", "empty list"},
      {R"({"prompt": "x", "max_tokens": 0})", "max_tokens", "'max_tokens' must be in [1, "},
      {R"({"prompt": "x", "max_tokens": "10"})", "max_tokens", "must be an integer (got a string)"},
      {R"({"prompt": "x", "max_tokens": 1.5})", "max_tokens", "must be an integer (got a number)"},
      {R"({"prompt": "x", "temperature": 2.5})", "temperature", "'temperature' must be in [0, 2] (got 2.5)"},
      {R"({"prompt": "x", "temperature": "hot"})", "temperature", "must be a number (got a string)"},
      {R"({"prompt": "x", "temperature": true})", "temperature", "must be a number (got a boolean)"},
      {R"({"prompt": "x", "top_p": 0})", "top_p", "'top_p' must be in (0, 1] (got 0)"},
      {R"({"prompt": "x", "top_k": -2})", "top_k", "'top_k' must be in [-1, "},
      {R"({"prompt": "x", "min_p": 1.5})", "min_p", "'min_p' must be in [0, 1]"},
      {R"({"prompt": "x", "presence_penalty": 3})", "presence_penalty", "in [-2, 2]"},
      {R"({"prompt": "x", "frequency_penalty": -3})", "frequency_penalty", "in [-2, 2]"},
      {R"({"prompt": "x", "n": 0})", "n", "'n' must be in [1, 128]"},
      {R"({"prompt": "x", "n": 129})", "n", "'n' must be in [1, 128]"},
      {R"({"prompt": "x", "seed": "s"})", "seed", "must be an integer"},
      {R"({"prompt": "x", "stop": 3})", "stop", "a string or a list of strings"},
      {R"({"prompt": "x", "stop": ["a", 1]})", "stop", "a string or a list of strings"},
      {R"({"prompt": "x", "stop": [""]})", "stop", "empty string"},
      {R"({"prompt": "x", "stream": "yes"})", "stream", "must be a boolean"},
      {R"({"prompt": "x", "stream_options": {"include_usage": true}})", "stream_options", "only allowed when 'stream' is true"},
      {R"({"prompt": "x", "stream": true, "stream_options": 1})", "stream_options", "must be an object"},
      {R"({"prompt": "x", "logprobs": 21})", "logprobs", "'logprobs' must be in [0, 20]"},
      {R"({"prompt": "x", "logprobs": true})", "logprobs", "must be an integer (got a boolean)"},
      {R"({"prompt": "x", "echo": true})", "echo", "not supported"},
      {R"({"prompt": "x", "logit_bias": {"5": 10}})", "logit_bias", "not supported"},
      {R"({"prompt": "x", "best_of": 3})", "best_of", "not supported"},
      {R"({"prompt": "x", "model": 7})", "model", "must be a string"},
  });
}

TEST(OpenAiProtocol, ChatErrorsNameTheFieldAndTheRule) {
  expect_rejected(Endpoint::kChat, {
      {"{}", "messages", "'messages' is required"},
      {R"({"messages": "hi"})", "messages", "must be a list of messages"},
      {R"({"messages": []})", "messages", "at least one message"},
      {R"({"messages": [3]})", "messages[0]", "must be an object"},
      {R"({"messages": [{"content": "hi"}]})", "messages[0].role", "must be a string"},
      {R"({"messages": [{"role": "user", "content": 5}]})", "messages[0].content", "a string or a list of content parts"},
      {R"({"messages": [{"role": "user", "content": [{"type": "image_url"}]}]})", "messages[0].content", "not supported"},
      {R"({"messages": [{"role": "user", "content": "x"}], "top_logprobs": 2})", "top_logprobs", "needs 'logprobs'"},
      {R"({"messages": [{"role": "user", "content": "x"}], "logprobs": true, "top_logprobs": 21})", "top_logprobs", "[0, 20]"},
      {R"({"messages": [{"role": "user", "content": "x"}], "response_format": {"type": "json_object"}})",
       "response_format", "not supported"},
  });
}

TEST(OpenAiProtocol, ParsesEveryParameter) {
  const ParsedRequest r = parse_completion_request(R"({
      "model": "m", "prompt": ["hello"], "max_tokens": 7, "temperature": 0.5, "top_p": 0.9, "top_k": 40,
      "min_p": 0.1, "presence_penalty": 0.5, "frequency_penalty": -0.5, "seed": -1, "stop": "END", "n": 3,
      "stream": true, "stream_options": {"include_usage": true}, "logprobs": 2, "ignore_eos": true,
      "user": "u", "logit_bias": {}, "best_of": 3})");
  EXPECT_EQ(r.model, "m");
  EXPECT_EQ(r.prompt_text, "hello");
  EXPECT_EQ(r.max_tokens, 7);
  EXPECT_EQ(r.temperature, 0.5);
  EXPECT_EQ(r.top_p, 0.9);
  EXPECT_EQ(r.top_k, 40);
  EXPECT_EQ(r.min_p, 0.1);
  EXPECT_EQ(r.presence_penalty, 0.5);
  EXPECT_EQ(r.frequency_penalty, -0.5);
  EXPECT_EQ(r.seed, ~uint64_t(0));
  EXPECT_EQ(r.stop, std::vector<std::string>{"END"});
  EXPECT_EQ(r.n, 3);
  EXPECT_TRUE(r.stream && r.include_usage && r.ignore_eos);
  EXPECT_EQ(r.logprobs, 2);

  const ParsedRequest ids =
      parse_completion_request(R"({"prompt": [[5, 6, 7]], "max_completion_tokens": 4, "max_tokens": 9, "top_k": -1})");
  EXPECT_EQ(ids.prompt_ids, (std::vector<int32_t>{5, 6, 7}));
  EXPECT_EQ(ids.max_tokens, 4);  // max_completion_tokens wins
  EXPECT_EQ(ids.top_k, 0);       // -1 means off
  EXPECT_EQ(ids.logprobs, -1);
  EXPECT_FALSE(ids.temperature.has_value());
  EXPECT_EQ(parse_completion_request(R"({"prompt": "x", "max_tokens": 5.0, "temperature": null})").max_tokens, 5);
}

TEST(OpenAiProtocol, ChatNormalisesContentAndKeepsOtherKeys) {
  const ParsedRequest r = parse_chat_request(R"({"messages": [
      {"role": "system", "content": "be brief"},
      {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}], "name": "bob"},
      {"role": "assistant", "content": null}],
      "logprobs": true, "top_logprobs": 3, "stop": ["x", "y"]})");
  ASSERT_EQ(r.messages.size(), 3u);
  EXPECT_EQ(r.messages[1]["content"], "ab");
  EXPECT_EQ(r.messages[1]["name"], "bob");
  EXPECT_EQ(r.messages[2]["content"], "");
  EXPECT_EQ(r.logprobs, 3);
  EXPECT_EQ(parse_chat_request(R"({"messages": [{"role": "user", "content": "x"}], "logprobs": true})").logprobs, 0);
}

TEST(OpenAiProtocol, ErrorJsonHasOpenAisShape) {
  const nlohmann::ordered_json j = invalid_request("bad", "temperature").to_json();
  EXPECT_EQ(j.dump(), R"({"error":{"message":"bad","type":"invalid_request_error","param":"temperature","code":null}})");
}

class PromptBuilderTest : public ::testing::Test {
 protected:
  PromptBuilderTest()
      : tokenizer(Tokenizer::from_path(test::fixture_model())), chat(tokenizer.config().chat_template) {
    model = {.name = "qwen3-f32", .tokenizer = &tokenizer, .chat_template = &chat, .context_length = 256,
             .vocab_size = 384, .generation = {}};
  }
  Tokenizer tokenizer;
  ChatTemplate chat;
  ServedModel model;
};

TEST_F(PromptBuilderTest, TextPromptGetsSpecialTokensAndDefaults) {
  const GenerationRequest g = build_generation_request(parse_completion_request(R"({"prompt": "Hello world"})"), model);
  EXPECT_EQ(g.prompt, tokenizer.encode("Hello world", true));
  EXPECT_EQ(g.max_tokens, 16);  // OpenAI's default for completions
  EXPECT_EQ(g.sampling.temperature, 1.0);
  EXPECT_EQ(g.sampling.top_p, 1.0);
}

TEST_F(PromptBuilderTest, ChatGoesThroughTheTemplate) {
  const GenerationRequest g =
      build_generation_request(parse_chat_request(R"({"messages": [{"role": "user", "content": "hi"}], "seed": 4})"), model);
  EXPECT_EQ(g.prompt, tokenizer.encode("<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n", false));
  EXPECT_EQ(g.max_tokens, 256 - int(g.prompt.size()));  // chat: the rest of the context
  EXPECT_EQ(g.sampling.seed, 4u);
}

TEST_F(PromptBuilderTest, ContextErrorsGiveBothCounts) {
  try {
    build_generation_request(parse_completion_request(R"({"prompt": [1, 2, 3, 4], "max_tokens": 253})"), model);
    FAIL();
  } catch (const ApiError& e) {
    EXPECT_EQ(e.status, 400);
    EXPECT_EQ(e.code, "context_length_exceeded");
    EXPECT_EQ(e.param, "max_tokens");
    EXPECT_NE(std::string(e.what()).find("maximum context length is 256 tokens. However, you requested 257 tokens "
                                         "(4 in the prompt, 253 for the completion)"), std::string::npos) << e.what();
  }
  std::string long_prompt = R"({"prompt": [)";
  for (int i = 0; i < 300; ++i) long_prompt += (i ? "," : "") + std::to_string(i % 300);
  try {
    build_generation_request(parse_completion_request(long_prompt + "]}"), model);
    FAIL();
  } catch (const ApiError& e) {
    EXPECT_EQ(e.param, "prompt");
    EXPECT_NE(std::string(e.what()).find("maximum context length is 256 tokens. However, your prompt has 300 tokens"),
              std::string::npos) << e.what();
  }
  EXPECT_THROW(build_generation_request(parse_completion_request(R"({"prompt": [384]})"), model), ApiError);
}

TEST_F(PromptBuilderTest, ChatWithoutTemplateIsA400) {
  model.chat_template = nullptr;
  try {
    build_generation_request(parse_chat_request(R"({"messages": [{"role": "user", "content": "hi"}]})"), model);
    FAIL();
  } catch (const ApiError& e) {
    EXPECT_EQ(e.status, 400);
    EXPECT_NE(std::string(e.what()).find("no chat template"), std::string::npos);
  }
}

}  // namespace
}  // namespace roofline::server
