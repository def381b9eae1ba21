// The HTTP layer over a real socket: status codes and JSON error bodies, API key, body limit, SSE framing,
// a client that hangs up mid-stream (its blocks are freed), drain.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "roofline/server/http_server.h"
#include "server_test_support.h"

namespace roofline::server {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;
using test::fetch;

class HttpServerTest : public ::testing::Test {
 protected:
  void start(HttpServerConfig config = {}, std::chrono::microseconds step_delay = {}) {
    harness = std::make_unique<test::EngineHarness>(test::EngineHarness::default_config(), step_delay);
    chat = std::make_unique<ChatTemplate>(harness->tokenizer.config().chat_template);
    ServedModel model{.name = "qwen3-f32", .tokenizer = &harness->tokenizer, .chat_template = chat.get(),
                      .context_length = 256, .vocab_size = 384, .generation = {}};
    config.port = 0;
    server = std::make_unique<HttpServer>(harness->engine, model, harness->metrics, config);
    port = server->bind();
    harness->engine.start();
    listener = std::thread([this] { server->run(); });
    ASSERT_TRUE(test::eventually([&] { return fetch(port, "GET", "/health").status == 200; }));
  }
  void TearDown() override {
    if (server) server->stop();
    if (listener.joinable()) listener.join();
  }
  // Expects an OpenAI error body with this status, type and code.
  void expect_error(const test::HttpReply& r, int status, const std::string& code) {
    EXPECT_EQ(r.status, status) << r.body;
    EXPECT_EQ(r.headers.at("content-type"), "application/json");
    const json e = json::parse(r.body).at("error");
    EXPECT_TRUE(e.at("message").is_string() && !e.at("message").get<std::string>().empty());
    EXPECT_TRUE(e.at("type").is_string());
    EXPECT_TRUE(e.contains("param"));
    EXPECT_EQ(e.at("code").is_null() ? "" : e.at("code").get<std::string>(), code) << r.body;
  }
  int blocks_used() const { return harness->engine.gauges().kv_blocks_used; }

  std::unique_ptr<test::EngineHarness> harness;
  std::unique_ptr<ChatTemplate> chat;
  std::unique_ptr<HttpServer> server;
  std::thread listener;
  int port = 0;
};

const std::string kPrompt = R"({"prompt": "Hello", "max_tokens": 5, "temperature": 0})";

TEST_F(HttpServerTest, RoutesAndErrors) {
  HttpServerConfig config;
  config.max_body_bytes = 4096;
  start(config);
  const auto ok = fetch(port, "POST", "/v1/completions", kPrompt);
  ASSERT_EQ(ok.status, 200) << ok.body;
  const json body = json::parse(ok.body);
  EXPECT_EQ(body["object"], "text_completion");
  EXPECT_EQ(body["usage"]["completion_tokens"], 5);
  EXPECT_EQ(body["usage"]["total_tokens"], body["usage"]["prompt_tokens"].get<int>() + 5);

  expect_error(fetch(port, "POST", "/v1/completions", "{oops"), 400, "invalid_json");
  expect_error(fetch(port, "POST", "/v1/completions", R"({"prompt": "x", "temperature": -1})"), 400, "");
  expect_error(fetch(port, "POST", "/v1/completions", R"({"prompt": "x", "model": "gpt-4"})"), 404, "model_not_found");
  expect_error(fetch(port, "POST", "/v1/completions", R"({"prompt": "x", "max_tokens": 1000})"), 400,
               "context_length_exceeded");
  expect_error(fetch(port, "GET", "/v1/nothing"), 404, "not_found");
  const auto wrong_method = fetch(port, "GET", "/v1/chat/completions");
  expect_error(wrong_method, 405, "method_not_allowed");
  EXPECT_EQ(wrong_method.headers.at("allow"), "POST");
  expect_error(fetch(port, "POST", "/health", "{}"), 405, "method_not_allowed");
  expect_error(fetch(port, "POST", "/v1/completions", std::string(5000, ' ')), 413, "request_too_large");

  const json models = json::parse(fetch(port, "GET", "/v1/models").body);
  EXPECT_EQ(models["data"][0]["id"], "qwen3-f32");
  EXPECT_EQ(fetch(port, "GET", "/v1/models/qwen3-f32").status, 200);
  expect_error(fetch(port, "GET", "/v1/models/other"), 404, "model_not_found");
  const auto metrics = fetch(port, "GET", "/metrics");
  EXPECT_EQ(metrics.status, 200);
  EXPECT_NE(metrics.body.find("roofline_requests_total{status=\"invalid\"} 4"), std::string::npos) << metrics.body;
}

TEST_F(HttpServerTest, ApiKey) {
  HttpServerConfig config;
  config.api_key = "sekrit";
  start(config);
  expect_error(fetch(port, "POST", "/v1/completions", kPrompt), 401, "invalid_api_key");
  expect_error(fetch(port, "GET", "/v1/models", "", {{"Authorization", "Bearer wrong"}}), 401, "invalid_api_key");
  EXPECT_EQ(fetch(port, "POST", "/v1/completions", kPrompt, {{"Authorization", "Bearer sekrit"}}).status, 200);
  EXPECT_EQ(fetch(port, "GET", "/health").status, 200);  // health and metrics stay open for probes
}

TEST_F(HttpServerTest, ChatStreamIsFramedServerSentEvents) {
  start();
  const auto r = fetch(port, "POST", "/v1/chat/completions",
                       R"({"messages": [{"role": "user", "content": "hi"}], "max_tokens": 4, "n": 2, "stream": true,
                           "stream_options": {"include_usage": true}, "seed": 1})");
  ASSERT_EQ(r.status, 200);
  EXPECT_EQ(r.headers.at("content-type"), "text/event-stream");
  std::vector<json> events;
  size_t at = 0;
  bool done = false;
  while (at < r.body.size()) {
    const size_t end = r.body.find("\n\n", at);
    ASSERT_NE(end, std::string::npos) << "every event ends with a blank line";
    const std::string event = r.body.substr(at, end - at);
    ASSERT_EQ(event.rfind("data: ", 0), 0u) << event;
    ASSERT_EQ(event.find('\n'), std::string::npos) << "one data line per event";
    if (event == "data: [DONE]") done = true;
    else events.push_back(json::parse(event.substr(6)));
    at = end + 2;
  }
  EXPECT_TRUE(done);
  ASSERT_GE(events.size(), 5u);
  EXPECT_EQ(events[0]["choices"][0]["delta"]["role"], "assistant");
  EXPECT_EQ(events[1]["choices"][0]["index"], 1);
  int finishes = 0;
  for (const json& e : events) {
    EXPECT_EQ(e["object"], "chat.completion.chunk");
    if (!e["choices"].empty() && !e["choices"][0]["finish_reason"].is_null()) finishes++;
  }
  EXPECT_EQ(finishes, 2);
  const json& last = events.back();
  EXPECT_TRUE(last["choices"].empty());
  EXPECT_EQ(last["usage"]["completion_tokens"], 8);
}

TEST_F(HttpServerTest, ClientHangingUpMidStreamCancelsAndFreesBlocks) {
  start({}, 2ms);
  test::RawConnection c(port);
  ASSERT_TRUE(c.send_all(test::http_request("POST", "/v1/completions",
                                            R"({"prompt": "Hello", "max_tokens": 240, "stream": true, "ignore_eos": true})")));
  // Wait for a few tokens, then hang up.
  c.read_until([](const std::string& data) { return data.find("text_completion") != std::string::npos; });
  EXPECT_TRUE(test::eventually([&] { return blocks_used() > 0; }));
  c.close_now();
  EXPECT_TRUE(test::eventually([&] { return blocks_used() == 0 && harness->engine.idle(); }, 3s));
  EXPECT_NE(harness->metrics.render(harness->engine.gauges()).find("roofline_requests_total{status=\"cancelled\"} 1"),
            std::string::npos);
}

TEST_F(HttpServerTest, TimeoutAnswers408OrAnErrorEvent) {
  HttpServerConfig config;
  config.request_timeout = 50ms;
  start(config, 2ms);
  const std::string slow = R"({"prompt": "Hello", "max_tokens": 200, "ignore_eos": true)";
  expect_error(fetch(port, "POST", "/v1/completions", slow + "}"), 408, "request_timeout");
  const auto streamed = fetch(port, "POST", "/v1/completions", slow + R"(, "stream": true})");
  EXPECT_EQ(streamed.status, 200);
  EXPECT_NE(streamed.body.find(R"(data: {"error":{)"), std::string::npos);
  EXPECT_NE(streamed.body.find("\"code\":\"request_timeout\""), std::string::npos);
  EXPECT_EQ(streamed.body.substr(streamed.body.size() - 14), "data: [DONE]\n\n");
  EXPECT_TRUE(test::eventually([&] { return blocks_used() == 0; }));
}

TEST_F(HttpServerTest, DrainRefusesNewWorkAndFinishesAccepted) {
  start({}, 1ms);
  std::thread client([&] {
    const auto r = fetch(port, "POST", "/v1/completions", R"({"prompt": "Hi", "max_tokens": 100, "ignore_eos": true})");
    EXPECT_EQ(r.status, 200);
    EXPECT_EQ(json::parse(r.body)["usage"]["completion_tokens"], 100);
  });
  ASSERT_TRUE(test::eventually([&] { return !harness->engine.idle(); }));
  server->begin_drain();
  EXPECT_FALSE(server->drained());
  expect_error(fetch(port, "POST", "/v1/completions", kPrompt), 503, "shutting_down");
  EXPECT_EQ(fetch(port, "GET", "/health").status, 503);
  client.join();
  EXPECT_TRUE(test::eventually([&] { return server->drained(); }));
}

}  // namespace
}  // namespace roofline::server
