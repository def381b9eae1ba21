// StopTextStream follows generate()'s stop-string rule: checked against generate() itself on the fixture
// model, and on hand-made texts for the hold-back invariant.
#include <gtest/gtest.h>

#include "roofline/engine/generator.h"
#include "roofline/engine/stop_text_stream.h"
#include "roofline/model/model.h"
#include "test_support.h"

namespace roofline {
namespace {

TEST(StopTextStream, HoldBackIsTheLongestStopPrefixAtTheEnd) {
  EXPECT_EQ(stop_string_hold_back("abc", {"cde"}), 1u);
  EXPECT_EQ(stop_string_hold_back("abcd", {"cde", "bcdx"}), 3u);
  EXPECT_EQ(stop_string_hold_back("abc", {"xyz"}), 0u);
  EXPECT_EQ(stop_string_hold_back("abc", {"abc"}), 0u);  // a whole stop string is a match, not a prefix
}

// Pushes `text`'s tokens one by one; every emission must be final text (a prefix of the expected).
std::string stream_text(const Tokenizer& tokenizer, const std::string& text, const std::vector<std::string>& stops,
                        bool* stopped) {
  StopTextStream s(tokenizer, stops);
  std::string out;
  for (int32_t id : tokenizer.encode(text, false)) {
    out += s.push(id);
    if (s.stopped()) break;
  }
  *stopped = s.stopped();
  if (!*stopped) out += s.finish();
  return out;
}

TEST(StopTextStream, CutsBeforeTheEarliestStopAndHoldsBackPrefixes) {
  const Tokenizer tokenizer = Tokenizer::from_path((test::fixtures_dir() + "/models/qwen3-f32"));
  const std::string text = "Hello world, this is a test of stop strings.";
  bool stopped = false;
  EXPECT_EQ(stream_text(tokenizer, text, {"is a"}, &stopped), "Hello world, this ");
  EXPECT_TRUE(stopped);
  EXPECT_EQ(stream_text(tokenizer, text, {"test", "world"}, &stopped), "Hello ");
  EXPECT_EQ(stream_text(tokenizer, text, {"nowhere"}, &stopped), text);
  EXPECT_FALSE(stopped);
  // A prefix of a stop string at the very end is released when the sequence ends.
  EXPECT_EQ(stream_text(tokenizer, "abc sto", {"stop"}, &stopped), "abc sto");

  StopTextStream s(tokenizer, {"XYZ"});
  std::string shown;
  for (int32_t id : tokenizer.encode("abcX", false)) shown += s.push(id);
  EXPECT_EQ(shown, "abc");  // "X" could begin "XYZ": held
  EXPECT_EQ(s.finish(), "X");
}

TEST(StopTextStream, MatchesGenerate) {
  auto model = Model::load((test::fixtures_dir() + "/models/qwen3-f32"));
  const Tokenizer tokenizer = Tokenizer::from_path((test::fixtures_dir() + "/models/qwen3-f32"));
  auto backend = make_cpu_backend(1);
  Decoder decoder(model->spec, model->weights, *backend);
  GenerateOptions options;
  options.max_new_tokens = 60;
  options.sampling.temperature = 0;
  const std::vector<int32_t> prompt = tokenizer.encode("Once upon a time", true);
  const GenerateResult free_run = generate(decoder, &tokenizer, prompt, options);
  ASSERT_GE(free_run.text.size(), 20u);
  // Stop strings taken from the text itself, so that they match mid-generation.
  for (size_t at : {size_t(3), size_t(10), free_run.text.size() / 2}) {
    const std::string stop = free_run.text.substr(at, 2);
    SCOPED_TRACE(stop);
    options.stop_strings = {stop};
    std::string streamed;
    const GenerateResult expected = generate(decoder, &tokenizer, prompt, options,
                                             [&](std::string_view piece) { streamed += piece; });
    StopTextStream s(tokenizer, {stop});
    std::string text;
    for (int32_t id : expected.ids) text += s.push(id);
    EXPECT_TRUE(s.stopped());
    EXPECT_EQ(text, expected.text);
    EXPECT_EQ(text, streamed);
  }
}

}  // namespace
}  // namespace roofline
