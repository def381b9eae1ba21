// The engine loop on a fixture model: outputs match generate() however requests are batched, chunked or
// preempted; n > 1; stop strings; logprobs; cancellation and timeouts free KV blocks; admission limits;
// many concurrent clients.
#include <gtest/gtest.h>

#include <random>

#include "roofline/engine/generator.h"
#include "server_test_support.h"

namespace roofline::server {
namespace {

using namespace std::chrono_literals;
using test::collect;
using test::EngineHarness;
using test::eventually;

GenerationRequest greedy(std::vector<int32_t> prompt, int max_tokens) {
  GenerationRequest r;
  r.prompt = std::move(prompt);
  r.max_tokens = max_tokens;
  r.sampling.temperature = 0;
  r.ignore_eos = true;
  return r;
}

// What generate() makes of the same request, on a decoder and backend of its own (the engine thread may
// still be using the harness's: a backend is not reentrant).
GenerateResult reference(EngineHarness& h, const GenerationRequest& r) {
  auto backend = make_cpu_backend(1);
  Decoder decoder(h.model->spec, h.model->weights, *backend);
  GenerateOptions options;
  options.max_new_tokens = r.max_tokens;
  options.sampling = r.sampling;
  options.stop_strings = r.stop;
  if (!r.ignore_eos) options.eos_ids = h.engine.config().eos_ids;
  return generate(decoder, &h.tokenizer, r.prompt, options);
}

std::vector<int32_t> prompt_of(int length, int salt) {
  std::vector<int32_t> p;
  for (int i = 0; i < length; ++i) p.push_back(int32_t((i * 7 + salt * 13) % 380 + 2));
  return p;
}

TEST(ServerEngine, SingleRequestMatchesGenerate) {
  EngineHarness h;
  h.engine.start();
  // 150 tokens: the runner's cache grows twice on the way (64 -> 128 -> 256 positions).
  const GenerationRequest r = greedy(h.tokenizer.encode("Hello there", true), 150);
  const auto c = collect(*h.engine.submit(r));
  const GenerateResult expected = reference(h, r);
  EXPECT_EQ(c.end, StreamEnd::kFinished);
  EXPECT_EQ(c.ids[0], expected.ids);
  EXPECT_EQ(c.text[0], expected.text);
  EXPECT_EQ(c.finish[0], FinishReason::kLength);
}

TEST(ServerEngine, ChunkedPrefillAndPreemptionKeepEveryOutputExact) {
  // 12 blocks of 4 tokens for 6 requests of 20 + 24 tokens: they cannot all hold their KV at once, so the
  // scheduler preempts (recompute) and prompts run in chunks of at most 8 tokens per step.
  EngineConfig config = EngineHarness::default_config();
  config.kv.num_blocks = 12;
  config.kv.block_size = 4;
  config.scheduler.max_num_batched_tokens = 8;
  EngineHarness h(config);
  std::vector<GenerationRequest> requests;
  std::vector<std::shared_ptr<RequestStream>> streams;
  for (int i = 0; i < 6; ++i) {
    requests.push_back(greedy(prompt_of(20, i), 24));
    streams.push_back(h.engine.submit(requests.back()));
  }
  h.engine.start();
  for (int i = 0; i < 6; ++i) {
    const auto c = collect(*streams[size_t(i)]);
    EXPECT_EQ(c.end, StreamEnd::kFinished);
    EXPECT_EQ(c.ids[0], reference(h, requests[size_t(i)]).ids) << "request " << i;
  }
  EXPECT_GT(h.engine.gauges().preemptions, 0);
  EXPECT_TRUE(eventually([&] { return h.engine.gauges().kv_blocks_used == 0; }));
}

TEST(ServerEngine, NChoicesAreIndependentAndIndexed) {
  EngineHarness h;
  h.engine.start();
  GenerationRequest r;
  r.prompt = h.tokenizer.encode("abc", true);
  r.max_tokens = 12;
  r.n = 3;
  r.ignore_eos = true;
  r.sampling.temperature = 1.0;
  r.sampling.seed = 77;
  const auto c = collect(*h.engine.submit(r));
  ASSERT_EQ(c.end, StreamEnd::kFinished);
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(c.ids[size_t(i)].size(), 12u);
    EXPECT_EQ(c.finish[size_t(i)], FinishReason::kLength);
  }
  EXPECT_NE(c.ids[0], c.ids[1]);
  EXPECT_NE(c.ids[1], c.ids[2]);
  // Choice i samples with seed + i: choice 0 is what n = 1 with the same seed gives.
  r.n = 1;
  EXPECT_EQ(collect(*h.engine.submit(r)).ids[0], c.ids[0]);
  EXPECT_EQ(c.ids[0], reference(h, r).ids);
}

TEST(ServerEngine, StopStringsEndTheTextAsGenerateDoes) {
  EngineHarness h;
  h.engine.start();
  GenerationRequest r = greedy(h.tokenizer.encode("Once upon a time", true), 60);
  const GenerateResult free_run = reference(h, r);
  ASSERT_GE(free_run.text.size(), 12u);
  r.stop = {free_run.text.substr(8, 3), "never-appears"};
  const auto c = collect(*h.engine.submit(r));
  const GenerateResult expected = reference(h, r);
  EXPECT_EQ(expected.finish_reason, "stop");
  EXPECT_EQ(c.finish[0], FinishReason::kStop);
  EXPECT_EQ(c.text[0], expected.text);
  EXPECT_EQ(c.ids[0], expected.ids);  // the token that completed the stop string is the last one
}

TEST(ServerEngine, EosEndsWithStopUnlessIgnored) {
  EngineHarness h;
  h.engine.start();
  // Find a prompt whose greedy continuation hits EOS (id 1 in the fixture) within 200 tokens.
  for (int salt = 0; salt < 40; ++salt) {
    GenerationRequest r = greedy(prompt_of(5, salt), 200);
    r.ignore_eos = false;
    const GenerateResult expected = reference(h, r);
    if (expected.finish_reason != "eos") continue;
    const auto c = collect(*h.engine.submit(r));
    EXPECT_EQ(c.finish[0], FinishReason::kStop);
    EXPECT_EQ(c.ids[0], expected.ids);
    EXPECT_EQ(c.text[0], expected.text);
    return;
  }
  GTEST_SKIP() << "no fixture prompt reached EOS greedily";
}

TEST(ServerEngine, LogprobsComeFromTheRawLogits) {
  EngineHarness h;
  h.engine.start();
  GenerationRequest r = greedy(h.tokenizer.encode("Hi", true), 5);
  r.logprobs = 3;
  const auto c = collect(*h.engine.submit(r));
  ASSERT_EQ(c.logprobs[0].size(), 5u);
  for (size_t i = 0; i < 5; ++i) {
    const TokenLogprob& t = c.logprobs[0][i];
    EXPECT_EQ(t.id, c.ids[0][i]);
    ASSERT_EQ(t.top.size(), 3u);
    EXPECT_EQ(t.top[0].id, t.id);  // greedy picks the most likely token
    EXPECT_FLOAT_EQ(t.top[0].logprob, t.logprob);
    EXPECT_LE(t.logprob, 0.0f);
    EXPECT_GE(t.top[0].logprob, t.top[1].logprob);
    EXPECT_GE(t.top[1].logprob, t.top[2].logprob);
  }
}

TEST(ServerEngine, CancelFreesBlocksAtOnce) {
  EngineHarness h(EngineHarness::default_config(), 2ms);  // ~2 ms per step: 200 tokens take ~0.4 s
  h.engine.start();
  auto stream = h.engine.submit(greedy(prompt_of(40, 1), 200));
  std::vector<SequenceEvent> events;
  ASSERT_TRUE(stream->next(events, 5s));
  ASSERT_FALSE(events.empty());
  EXPECT_TRUE(eventually([&] { return h.engine.gauges().kv_blocks_used > 0; }));  // published after the step
  h.engine.cancel(stream->id());
  while (stream->next(events, 100ms)) {
  }
  EXPECT_EQ(stream->end(), StreamEnd::kCancelled);
  EXPECT_TRUE(eventually([&] {
    const EngineGauges g = h.engine.gauges();
    return g.kv_blocks_used == 0 && g.running == 0 && g.waiting == 0;
  }));
  EXPECT_TRUE(eventually([&] { return h.engine.idle(); }));  // the dispatcher counts the close just after it
  EXPECT_NE(h.metrics.render(h.engine.gauges()).find("roofline_requests_total{status=\"cancelled\"} 1"), std::string::npos);
  h.engine.cancel(stream->id());  // a late cancel is a no-op
}

TEST(ServerEngine, TimeoutEndsTheRequest) {
  EngineHarness h;
  GenerationRequest r = greedy(prompt_of(10, 2), 100);
  r.timeout = 1ms;
  auto stream = h.engine.submit(r);
  std::this_thread::sleep_for(5ms);  // past its deadline before the engine even starts
  h.engine.start();
  const auto c = collect(*stream);
  EXPECT_EQ(c.end, StreamEnd::kTimeout);
  EXPECT_NE(stream->error_message().find("request timeout"), std::string::npos);
  EXPECT_TRUE(eventually([&] { return h.engine.gauges().kv_blocks_used == 0; }));
}

TEST(ServerEngine, AdmissionLimits) {
  EngineConfig config = EngineHarness::default_config();
  config.max_queue = 3;
  config.kv.num_blocks = 4;  // 64 tokens
  EngineHarness h(config);   // not started: submissions stay queued
  auto expect_kind = [&](const GenerationRequest& r, SubmitError::Kind kind, const char* message) {
    try {
      h.engine.submit(r);
      ADD_FAILURE() << "accepted";
    } catch (const SubmitError& e) {
      EXPECT_EQ(e.kind(), kind);
      EXPECT_NE(std::string(e.what()).find(message), std::string::npos) << e.what();
    }
  };
  expect_kind(greedy(prompt_of(60, 0), 10), SubmitError::Kind::kTooLarge,
              "may need 5 KV blocks (69 tokens) but the KV cache has 4");
  expect_kind(greedy(prompt_of(250, 0), 10), SubmitError::Kind::kTooLarge, "exceeds the model's context of 256");
  expect_kind(greedy({}, 10), SubmitError::Kind::kInvalid, "empty");
  GenerationRequest two = greedy(prompt_of(4, 0), 4);
  two.n = 2;
  h.engine.submit(two);
  expect_kind(two, SubmitError::Kind::kQueueFull, "waiting queue is full");  // 2 + 2 > 3
  h.engine.submit(greedy(prompt_of(4, 0), 4));                              // 3 fits
  h.engine.drain();
  expect_kind(greedy(prompt_of(4, 0), 4), SubmitError::Kind::kDraining, "shutting down");
  h.engine.start();  // drained engines still finish what they accepted
  EXPECT_TRUE(eventually([&] { return h.engine.idle(); }));
}

TEST(ServerEngine, ManyConcurrentClientsAllComplete) {
  EngineConfig config = EngineHarness::default_config();
  config.kv.num_blocks = 40;  // tight: forces preemption under load
  config.kv.block_size = 8;
  config.scheduler.max_num_seqs = 16;
  config.scheduler.max_num_batched_tokens = 64;
  EngineHarness h(config);
  h.engine.start();
  std::atomic<int> finished{0}, cancelled{0};
  std::vector<std::thread> clients;
  for (int t = 0; t < 8; ++t) {
    clients.emplace_back([&, t] {
      std::mt19937 rng{uint32_t(t)};
      for (int i = 0; i < 12; ++i) {
        GenerationRequest r;
        r.prompt = prompt_of(int(rng() % 40) + 1, t * 100 + i);
        r.max_tokens = int(rng() % 30) + 1;
        r.n = int(rng() % 3) + 1;
        r.sampling.temperature = (rng() % 2) ? 0.8 : 0.0;
        r.sampling.seed = rng();
        r.stop = {"zz"};
        auto stream = h.engine.submit(r);
        if (rng() % 6 == 0) {
          h.engine.cancel(stream->id());
          const auto c = collect(*stream);
          (c.end == StreamEnd::kCancelled ? cancelled : finished)++;
          continue;
        }
        const auto c = collect(*stream);
        EXPECT_EQ(c.end, StreamEnd::kFinished);
        for (int k = 0; k < r.n; ++k) {
          EXPECT_NE(c.finish[size_t(k)], FinishReason::kNone);
          EXPECT_LE(c.ids[size_t(k)].size(), size_t(r.max_tokens));
        }
        finished++;
      }
    });
  }
  for (std::thread& c : clients) c.join();
  EXPECT_EQ(finished + cancelled, 96);
  EXPECT_TRUE(eventually([&] {
    const EngineGauges g = h.engine.gauges();
    return g.kv_blocks_used == 0 && g.running == 0 && g.waiting == 0 && h.engine.idle();
  }));
}

TEST(ServerEngine, StopCancelsWhatIsLeft) {
  EngineHarness h(EngineHarness::default_config(), 2ms);
  h.engine.start();
  auto stream = h.engine.submit(greedy(prompt_of(10, 3), 200));
  h.engine.stop();
  EXPECT_EQ(collect(*stream).end, StreamEnd::kCancelled);
  EXPECT_THROW(h.engine.submit(greedy(prompt_of(10, 3), 2)), SubmitError);
}

}  // namespace
}  // namespace roofline::server
