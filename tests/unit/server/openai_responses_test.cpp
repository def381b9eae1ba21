// Response shapes as OpenAI sends them, SSE framing, and the Prometheus text format.
#include <gtest/gtest.h>

#include "roofline/server/metrics.h"
#include "roofline/server/openai_responses.h"
#include "server_test_support.h"

namespace roofline::server {
namespace {

class OpenAiResponses : public ::testing::Test {
 protected:
  OpenAiResponses() : tokenizer(Tokenizer::from_path(test::fixture_model())) {}
  ResponseMeta meta(Endpoint endpoint, bool logprobs = false, bool include_usage = false) const {
    return {.id = "id-1", .created = 1700000000, .model = "m", .endpoint = endpoint, .logprobs = logprobs,
            .include_usage = include_usage};
  }
  Tokenizer tokenizer;
};

TEST_F(OpenAiResponses, SseFramesOneLinePerEvent) {
  const std::string e = sse_event(Json{{"text", "a\nb"}});
  EXPECT_EQ(e, "data: {\"text\":\"a\\nb\"}\n\n");  // the newline is escaped: one data line per event
  EXPECT_EQ(kSseDone, "data: [DONE]\n\n");
  // Invalid UTF-8 (a lone byte token) is replaced, never thrown on.
  EXPECT_EQ(sse_event(Json("\xff")), "data: \"\xef\xbf\xbd\"\n\n");
}

TEST_F(OpenAiResponses, ChatBodyAndChunks) {
  const ResponseMeta m = meta(Endpoint::kChat);
  LogprobFormatter lp(tokenizer, Endpoint::kChat, 1);
  const Json body = response_body(m, {{.text = "hi", .logprobs = {}, .finish = FinishReason::kStop}}, {5, 2}, lp);
  EXPECT_EQ(dump(body),
            R"({"id":"id-1","object":"chat.completion","created":1700000000,"model":"m","system_fingerprint":null,)"
            R"("choices":[{"index":0,"message":{"role":"assistant","content":"hi","refusal":null},"logprobs":null,)"
            R"("finish_reason":"stop"}],"usage":{"prompt_tokens":5,"completion_tokens":2,"total_tokens":7}})");
  EXPECT_EQ(dump(role_chunk(m, 1)),
            R"({"id":"id-1","object":"chat.completion.chunk","created":1700000000,"model":"m","system_fingerprint":null,)"
            R"("choices":[{"index":1,"delta":{"role":"assistant","content":""},"logprobs":null,"finish_reason":null}]})");
  SequenceEvent e;
  e.index = 0;
  e.text = "yo";
  EXPECT_EQ(dump(delta_chunk(m, e, nullptr)["choices"]),
            R"([{"index":0,"delta":{"content":"yo"},"logprobs":null,"finish_reason":null}])");
  EXPECT_EQ(dump(finish_chunk(m, 0, FinishReason::kLength)["choices"]),
            R"([{"index":0,"delta":{},"logprobs":null,"finish_reason":"length"}])");
}

TEST_F(OpenAiResponses, CompletionBodyAndChunksWithUsage) {
  const ResponseMeta m = meta(Endpoint::kCompletions, false, /*include_usage=*/true);
  LogprobFormatter lp(tokenizer, Endpoint::kCompletions, 2);
  const Json body = response_body(m, {{.text = "a", .logprobs = {}, .finish = FinishReason::kLength},
                                      {.text = "b", .logprobs = {}, .finish = FinishReason::kStop}}, {3, 4}, lp);
  EXPECT_EQ(body["object"], "text_completion");
  EXPECT_EQ(dump(body["choices"]), R"([{"text":"a","index":0,"logprobs":null,"finish_reason":"length"},)"
                                   R"({"text":"b","index":1,"logprobs":null,"finish_reason":"stop"}])");
  SequenceEvent e;
  e.index = 1;
  e.text = "b";
  const Json chunk = delta_chunk(m, e, nullptr);
  EXPECT_EQ(chunk["object"], "text_completion");
  EXPECT_TRUE(chunk.contains("usage") && chunk["usage"].is_null());  // include_usage: null until the last chunk
  EXPECT_EQ(dump(chunk["choices"]), R"([{"text":"b","index":1,"logprobs":null,"finish_reason":null}])");
  const Json last = usage_chunk(m, {3, 4});
  EXPECT_EQ(dump(last["choices"]), "[]");
  EXPECT_EQ(dump(last["usage"]), R"({"prompt_tokens":3,"completion_tokens":4,"total_tokens":7})");
}

TEST_F(OpenAiResponses, LogprobShapes) {
  const int32_t a = tokenizer.encode("a", false).at(0), b = tokenizer.encode("b", false).at(0);
  const std::vector<TokenLogprob> lps = {{.id = a, .logprob = -0.5f, .top = {{a, -0.5f}, {b, -1.5f}}},
                                         {.id = b, .logprob = -0.25f, .top = {{b, -0.25f}, {a, -2.0f}}}};
  LogprobFormatter chat(tokenizer, Endpoint::kChat, 1);
  const Json c = chat.format(0, lps);
  EXPECT_EQ(dump(c["content"][0]), R"({"token":"a","logprob":-0.5,"bytes":[97],"top_logprobs":[)"
                                   R"({"token":"a","logprob":-0.5,"bytes":[97]},{"token":"b","logprob":-1.5,"bytes":[98]}]})");
  LogprobFormatter legacy(tokenizer, Endpoint::kCompletions, 1);
  EXPECT_EQ(dump(legacy.format(0, lps)), R"({"tokens":["a","b"],"token_logprobs":[-0.5,-0.25],)"
                                         R"("top_logprobs":[{"a":-0.5,"b":-1.5},{"b":-0.25,"a":-2.0}],"text_offset":[0,1]})");
  // Offsets continue across chunks of one choice.
  EXPECT_EQ(dump(legacy.format(0, {lps[0]})["text_offset"]), "[2]");
}

TEST_F(OpenAiResponses, ResponseIdsAreUniqueAndPrefixed) {
  const std::string a = new_response_id(Endpoint::kChat), b = new_response_id(Endpoint::kChat);
  EXPECT_NE(a, b);
  EXPECT_EQ(a.rfind("chatcmpl-", 0), 0u);
  EXPECT_EQ(new_response_id(Endpoint::kCompletions).rfind("cmpl-", 0), 0u);
}

TEST(ServerMetrics, PrometheusTextFormat) {
  Metrics m;
  m.count_request(RequestOutcome::kCompleted);
  m.count_request(RequestOutcome::kCompleted);
  m.count_request(RequestOutcome::kCancelled);
  m.add_generated_tokens(42);
  m.observe_ttft(0.003);
  m.observe_ttft(0.2);
  m.observe_ttft(100);
  const std::string text = m.render({.running = 2, .waiting = 3, .kv_blocks_used = 7, .kv_blocks_total = 64,
                                     .kv_slots_held = 112, .kv_slots_wasted = 28, .prefix_cache_hit_ratio = 0.25,
                                     .preemptions = 1, .steps = 9, .schedule_s = 0.5, .model_s = 2, .output_s = 0.25});
  for (const char* line : {
           "# TYPE roofline_requests_total counter\n",
           "roofline_requests_total{status=\"completed\"} 2\n",
           "roofline_requests_total{status=\"cancelled\"} 1\n",
           "roofline_requests_total{status=\"timeout\"} 0\n",
           "# TYPE roofline_requests_running gauge\nroofline_requests_running 2\n",
           "roofline_requests_waiting 3\n",
           "roofline_kv_blocks_used 7\n",
           "roofline_kv_blocks_total 64\n",
           "roofline_prefix_cache_hit_ratio 0.25\n",
           "roofline_kv_slots_held 112\n",
           "roofline_kv_slots_wasted 28\n",
           "roofline_kv_waste_ratio 0.25\n",
           "roofline_engine_steps_total 9\n",
           "roofline_engine_seconds_total{phase=\"schedule\"} 0.5\n",
           "roofline_engine_seconds_total{phase=\"model\"} 2\n",
           "roofline_engine_seconds_total{phase=\"output\"} 0.25\n",
           "roofline_generated_tokens_total 42\n",
           "# TYPE roofline_ttft_seconds histogram\n",
           "roofline_ttft_seconds_bucket{le=\"0.001\"} 0\n",
           "roofline_ttft_seconds_bucket{le=\"0.005\"} 1\n",  // cumulative
           "roofline_ttft_seconds_bucket{le=\"0.25\"} 2\n",
           "roofline_ttft_seconds_bucket{le=\"60\"} 2\n",
           "roofline_ttft_seconds_bucket{le=\"+Inf\"} 3\n",
           "roofline_ttft_seconds_sum 100.203\n",
           "roofline_ttft_seconds_count 3\n",
           "# TYPE roofline_tpot_seconds histogram\n",
           "roofline_e2e_seconds_count 0\n",
       })
    EXPECT_NE(text.find(line), std::string::npos) << line << "\nin:\n" << text;
  // Every line is a comment or `name{labels} value`, and each # TYPE precedes its samples once.
  size_t types = 0;
  for (size_t at = 0; at < text.size();) {
    const size_t eol = text.find('\n', at);
    ASSERT_NE(eol, std::string::npos) << "the text must end with a newline";
    const std::string line = text.substr(at, eol - at);
    if (line.rfind("# TYPE ", 0) == 0) {
      types++;
    } else if (line[0] != '#') {
      EXPECT_EQ(line.rfind("roofline_", 0), 0u) << line;
    }
    at = eol + 1;
  }
  EXPECT_EQ(types, 19u);
}

}  // namespace
}  // namespace roofline::server
