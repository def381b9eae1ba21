// DecodeStream: what push() returns is valid UTF-8, and everything pushed plus flush() is decode(all ids),
// on random id sequences (byte-fallback runs, partial UTF-8, special tokens) for the real tokenizers.
#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

#include "roofline/tokenizer/tokenizer.h"
#include "roofline/tokenizer/unicode.h"
#include "tokenizer_test_util.h"

namespace roofline::test {
namespace {

void check_stream(const Tokenizer& tok, const std::vector<int32_t>& ids, bool skip) {
  DecodeStream stream(tok, skip);
  std::string streamed;
  for (int32_t id : ids) {
    std::string chunk = stream.push(id);
    ASSERT_TRUE(tok::is_valid_utf8(chunk)) << "chunk is not valid UTF-8";
    streamed += chunk;
  }
  streamed += stream.flush();
  ASSERT_EQ(streamed, tok.decode(ids, skip)) << "ids: " << ::testing::PrintToString(ids);
}

class DecodeStreamRandom : public ::testing::TestWithParam<const char*> {};

TEST_P(DecodeStreamRandom, EqualsFullDecode) {
  const std::string name = GetParam();
  const Tokenizer& tok = real_tokenizer(name);
  std::mt19937 rng(42);
  // Ids that stress the stream: byte tokens (<0x80>.. continuation bytes, lead bytes), special tokens,
  // spaces, and ids from real text.
  std::vector<int32_t> interesting;
  for (int b : {0x20, 0x41, 0x80, 0x8F, 0xA9, 0xB8, 0xBF, 0xC3, 0xE4, 0xF0, 0x9F, 0xFF}) {
    char code[8];
    std::snprintf(code, sizeof(code), "<0x%02X>", b);
    if (auto id = tok.token_to_id(code)) interesting.push_back(*id);
  }
  for (const char* t : {"<s>", "</s>", "<unk>", "<|begin_of_text|>", "<|im_start|>", "<|endoftext|>", "<think>",
                        "\xE2\x96\x81", "\xC4\xA0", " "}) {
    if (auto id = tok.token_to_id(t)) interesting.push_back(*id);
  }
  for (const char* text : {"Hello world, \xE4\xB8\xAD\xE6\x96\x87 and \xF0\x9F\x98\x80\xF0\x9F\x91\x8D\xF0\x9F\x8F\xBD!",
                           "  spaced   out\n\n", "\xC3\xA9t\xC3\xA9 caf\xC3\xA9"}) {
    for (int32_t id : tok.encode(text, true)) interesting.push_back(id);
  }
  std::uniform_int_distribution<int32_t> any_id(0, int32_t(tok.vocab_size()) - 1);
  for (int iter = 0; iter < 400; ++iter) {
    std::vector<int32_t> ids;
    int n = 1 + int(rng() % 24);
    for (int k = 0; k < n; ++k) {
      ids.push_back(rng() % 4 == 0 ? any_id(rng) : interesting[rng() % interesting.size()]);
    }
    check_stream(tok, ids, false);
    check_stream(tok, ids, true);
    if (HasFatalFailure()) return;
  }
}

INSTANTIATE_TEST_SUITE_P(RealTokenizers, DecodeStreamRandom, ::testing::Values("llama2", "llama3", "qwen3", "gpt2"));

TEST(DecodeStream, HoldsBackIncompleteCharacters) {
  const Tokenizer& tok = real_tokenizer("llama3");
  std::vector<int32_t> ids = tok.encode("\xF0\x9F\x98\x80", false);  // one emoji, several byte-level tokens
  ASSERT_GT(ids.size(), 1u);
  DecodeStream stream(tok);
  for (size_t i = 0; i + 1 < ids.size(); ++i) EXPECT_EQ(stream.push(ids[i]), "");
  EXPECT_EQ(stream.push(ids.back()), "\xF0\x9F\x98\x80");
  EXPECT_EQ(stream.flush(), "");
  // A stream that ends mid-character gives what full decode gives.
  DecodeStream partial(tok);
  EXPECT_EQ(partial.push(ids[0]), "");
  EXPECT_EQ(partial.flush(), tok.decode({ids[0]}));
}

TEST(DecodeStream, SentencePieceLeadingSpace) {
  const Tokenizer& tok = real_tokenizer("llama2");
  std::vector<int32_t> ids = tok.encode("Hello big world", true);
  DecodeStream stream(tok, /*skip_special_tokens=*/true);
  std::vector<std::string> chunks;
  for (int32_t id : ids) chunks.push_back(stream.push(id));
  chunks.push_back(stream.flush());
  std::string all;
  for (const auto& c : chunks) all += c;
  EXPECT_EQ(all, "Hello big world");
  EXPECT_EQ(chunks.back(), "");
}

}  // namespace
}  // namespace roofline::test
