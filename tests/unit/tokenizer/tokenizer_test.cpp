// The whole tokenizer on small hand-made tokenizer.json files: BPE merges, byte fallback, unk, affixes,
// ignore_merges, added tokens (lstrip, rstrip, single_word, normalized), configs and errors.
#include <gtest/gtest.h>

#include <filesystem>
#include <functional>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include <unistd.h>

#include <nlohmann/json.hpp>

#include "roofline/core/error.h"
#include "roofline/tokenizer/tokenizer.h"
#include "tokenizer_test_util.h"

namespace roofline {
namespace {

using Ids = std::vector<int32_t>;
using nlohmann::json;

// A tokenizer.json with the given BPE model fields and pipeline parts (null when not given).
json make_json(json vocab, json merges, json model_extra = json::object(), json parts = json::object()) {
  json model = {{"type", "BPE"}, {"vocab", vocab}, {"merges", merges}, {"dropout", nullptr}};
  for (auto& [k, v] : model_extra.items()) model[k] = v;
  json j = {{"version", "1.0"},      {"added_tokens", json::array()}, {"normalizer", nullptr},
            {"pre_tokenizer", nullptr}, {"post_processor", nullptr},    {"decoder", nullptr},
            {"model", model}};
  for (auto& [k, v] : parts.items()) j[k] = v;
  return j;
}

Tokenizer load(const json& j) { return Tokenizer::from_json_string(j.dump(), "test tokenizer.json"); }

json added(int id, const std::string& content, bool special, json flags = json::object()) {
  json t = {{"id", id},          {"content", content}, {"single_word", false}, {"lstrip", false},
            {"rstrip", false}, {"normalized", false}, {"special", special}};
  for (auto& [k, v] : flags.items()) t[k] = v;
  return t;
}

const json kWhitespaceSplit = {{"type", "WhitespaceSplit"}};

TEST(Bpe, MergesByRank) {
  json vocab = {{"a", 0}, {"b", 1}, {"c", 2}, {"ab", 3}, {"bc", 4}, {"abc", 5}};
  // "a b" first: ab + c, then "ab c".
  EXPECT_EQ(load(make_json(vocab, {"a b", "ab c", "b c"})).encode("abc", false), (Ids{5}));
  // "b c" first: a + bc, and no merge joins a and bc.
  EXPECT_EQ(load(make_json(vocab, {"b c", "a b", "ab c"})).encode("abc", false), (Ids{0, 4}));
  // Merges may be given as pairs.
  EXPECT_EQ(load(make_json(vocab, json::array({{"b", "c"}, {"a", "b"}}))).encode("abc", false), (Ids{0, 4}));
}

TEST(Bpe, LeftmostAmongEqualRanks) {
  json vocab = {{"a", 0}, {"aa", 1}};
  auto tok = load(make_json(vocab, {"a a"}));
  EXPECT_EQ(tok.encode("aaa", false), (Ids{1, 0}));
  EXPECT_EQ(tok.encode("aaaa", false), (Ids{1, 1}));
  // Long words take the heap path; the result is the same greedy order.
  std::string many(301, 'a');
  Ids expected(150, 1);
  expected.push_back(0);
  EXPECT_EQ(tok.encode(many, false), expected);
}

TEST(Bpe, ByteFallbackAndUnk) {
  json vocab = {{"<unk>", 0}, {"a", 1}, {"<0xC3>", 2}, {"<0xA9>", 3}};
  json parts = json::parse(R"({"decoder": {"type": "Sequence", "decoders": [{"type": "ByteFallback"}, {"type": "Fuse"}]}})");
  auto fb = load(make_json(vocab, json::array(), {{"byte_fallback", true}, {"unk_token", "<unk>"}}, parts));
  EXPECT_EQ(fb.encode("a\xC3\xA9" "a", false), (Ids{1, 2, 3, 1}));
  EXPECT_EQ(fb.decode({1, 2, 3, 1}), "a\xC3\xA9" "a");
  // A character whose bytes have no <0x..> tokens falls to unk.
  EXPECT_EQ(fb.encode("xa", false), (Ids{0, 1}));
  // fuse_unk joins neighbouring unknowns; without it each character is one unk.
  auto fused = load(make_json(vocab, json::array(), {{"unk_token", "<unk>"}, {"fuse_unk", true}}));
  EXPECT_EQ(fused.encode("xyaz", false), (Ids{0, 1, 0}));
  auto unfused = load(make_json(vocab, json::array(), {{"unk_token", "<unk>"}, {"fuse_unk", false}}));
  EXPECT_EQ(unfused.encode("xyaz", false), (Ids{0, 0, 1, 0}));
  // Without an unk token unknown characters are dropped.
  EXPECT_EQ(load(make_json(vocab, json::array())).encode("xay", false), (Ids{1}));
}

TEST(Bpe, SubwordPrefixAndSuffix) {
  json vocab = {{"h", 0}, {"##e", 1}, {"##y", 2}, {"he", 3}, {"hey", 4}, {"y</w>", 5}, {"##y</w>", 6}};
  auto prefix = load(make_json(vocab, {"h ##e", "he ##y"}, {{"continuing_subword_prefix", "##"}},
                               {{"pre_tokenizer", kWhitespaceSplit}}));
  EXPECT_EQ(prefix.encode("hey he", false), (Ids{4, 3}));
  json vocab2 = {{"a", 0}, {"b</w>", 1}, {"ab</w>", 2}, {"b", 3}};
  auto suffix = load(make_json(vocab2, {"a b</w>"}, {{"end_of_word_suffix", "</w>"}},
                               {{"pre_tokenizer", kWhitespaceSplit}}));
  EXPECT_EQ(suffix.encode("ab b", false), (Ids{2, 1}));
}

TEST(Bpe, IgnoreMerges) {
  // "abc" is in the vocab but no merge sequence reaches it.
  json vocab = {{"a", 0}, {"b", 1}, {"c", 2}, {"bc", 3}, {"abc", 4}};
  EXPECT_EQ(load(make_json(vocab, {"b c"})).encode("abc", false), (Ids{0, 3}));
  EXPECT_EQ(load(make_json(vocab, {"b c"}, {{"ignore_merges", true}})).encode("abc", false), (Ids{4}));
}

TEST(AddedTokens, LongestFirstAndSplitting) {
  json vocab = {{"a", 0}, {"b", 1}, {"<", 2}, {">", 3}, {" ", 4}};
  json j = make_json(vocab, json::array());
  j["added_tokens"] = {added(10, "<a>", true), added(11, "<a><b>", true), added(12, "bb", false)};
  auto tok = load(j);
  EXPECT_EQ(tok.encode("a<a><b>a<a>", false), (Ids{0, 11, 0, 10}));
  EXPECT_EQ(tok.encode("abba", false), (Ids{0, 12, 0}));
  EXPECT_TRUE(tok.is_special(10));
  EXPECT_FALSE(tok.is_special(12));
  EXPECT_EQ(tok.token_to_id("<a><b>"), 11);
  EXPECT_EQ(tok.id_to_token(10), "<a>");
  EXPECT_EQ(tok.vocab_size(), 13);
  EXPECT_EQ(tok.decode({0, 10, 12}, false), "a <a> bb");  // no decoder: tokens joined by spaces
  EXPECT_EQ(tok.decode({0, 10, 12, 99}, true), "a bb");   // special <a> and the unknown id skipped
  // An added token already in the model vocab keeps the model's id, whatever the file says.
  j["added_tokens"] = {added(20, "b", true)};
  auto tok2 = load(j);
  EXPECT_EQ(tok2.token_to_id("b"), 1);
  EXPECT_TRUE(tok2.is_special(1));
  EXPECT_EQ(tok2.encode("ab", false), (Ids{0, 1}));
  EXPECT_EQ(tok2.decode({0, 1}, true), "a");
}

TEST(AddedTokens, StripAndSingleWord) {
  json vocab = {{"a", 0}, {" ", 1}, {"x", 2}};
  json j = make_json(vocab, json::array());
  j["added_tokens"] = {added(10, "[L]", true, {{"lstrip", true}}), added(11, "[R]", true, {{"rstrip", true}}),
                       added(12, "tok", false, {{"single_word", true}})};
  auto tok = load(j);
  // lstrip swallows the spaces before, rstrip the spaces after.
  EXPECT_EQ(tok.encode("a  [L] a", false), (Ids{0, 10, 1, 0}));
  EXPECT_EQ(tok.encode("a [R]  a", false), (Ids{0, 1, 11, 0}));
  // single_word: only when not inside a word.
  EXPECT_EQ(tok.encode("a tok a", false), (Ids{0, 1, 12, 1, 0}));
  EXPECT_EQ(tok.encode("xtok", false), (Ids{2}));  // "tok" is not in the model vocab: t, o, k dropped
}

TEST(AddedTokens, NormalizedTokensMatchNormalizedText) {
  json vocab = {{"h", 0}, {"i", 1}, {" ", 2}};
  json j = make_json(vocab, json::array(), json::object(), {{"normalizer", {{"type", "Lowercase"}}}});
  j["added_tokens"] = {added(10, "HELLO", false, {{"normalized", true}}), added(11, "RAW", true)};
  auto tok = load(j);
  // The normalized token matches "hello" in any case; the raw one only as written.
  EXPECT_EQ(tok.encode("hi Hello HI", false), (Ids{0, 1, 2, 10, 2, 0, 1}));
  EXPECT_EQ(tok.encode("RAW raw", false), (Ids{11, 2}));  // "raw" lowercases to r, a, w: not in vocab
}

TEST(Tokenizer, PrependNormalizerPerSegment) {
  // As Llama 2: each stretch between added tokens is normalized on its own, so each gets the "▁".
  json vocab = {{"<s>", 0}, {"▁", 1}, {"a", 2}, {"▁a", 3}};
  json parts = json::parse(R"({
      "normalizer": {"type": "Sequence", "normalizers": [
          {"type": "Prepend", "prepend": "▁"},
          {"type": "Replace", "pattern": {"String": " "}, "content": "▁"}]},
      "post_processor": {"type": "TemplateProcessing",
          "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
          "special_tokens": {"<s>": {"id": "<s>", "ids": [0], "tokens": ["<s>"]}}}})");
  json j = make_json(vocab, {"▁ a"}, json::object(), parts);
  j["added_tokens"] = {added(0, "<s>", true)};
  auto tok = load(j);
  EXPECT_EQ(tok.encode("a<s>a", false), (Ids{3, 0, 3}));
  EXPECT_EQ(tok.encode("a a", true), (Ids{0, 3, 3}));
  EXPECT_EQ(tok.encode("", true), (Ids{0}));
  EXPECT_EQ(tok.encode("", false), (Ids{}));
}

TEST(Tokenizer, InvalidUtf8InputIsReadLossily) {
  json vocab = {{"a", 0}, {"\xEF\xBF\xBD", 1}};
  auto tok = load(make_json(vocab, json::array()));
  EXPECT_EQ(tok.encode("a\xFF" "a", false), (Ids{0, 1, 0}));
}

TEST(Tokenizer, ConfigAndDirectoryLoading) {
  namespace fs = std::filesystem;
  fs::path dir = fs::temp_directory_path() / ("roofline_tok_test_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  json vocab = {{"a", 0}, {"<s>", 1}, {"</s>", 2}};
  std::ofstream(dir / "tokenizer.json") << make_json(vocab, json::array()).dump();
  std::ofstream(dir / "tokenizer_config.json")
      << R"({"bos_token": {"__type": "AddedToken", "content": "<s>"}, "eos_token": "</s>", "pad_token": null,
             "add_bos_token": true, "chat_template": "{{ bos_token }}"})";
  auto tok = Tokenizer::from_path(dir.string());
  EXPECT_EQ(tok.config().bos_token, "<s>");
  EXPECT_EQ(tok.config().eos_token, "</s>");
  EXPECT_EQ(tok.config().pad_token, "");
  EXPECT_EQ(tok.config().add_bos_token, true);
  EXPECT_FALSE(tok.config().add_eos_token.has_value());
  EXPECT_EQ(tok.config().chat_template, "{{ bos_token }}");
  auto tok2 = Tokenizer::from_path((dir / "tokenizer.json").string());
  EXPECT_EQ(tok2.config().eos_token, "</s>");
  fs::remove_all(dir);
}

TEST(Tokenizer, RealConfigs) {
  EXPECT_EQ(test::real_tokenizer("llama2").config().bos_token, "<s>");
  EXPECT_EQ(test::real_tokenizer("llama2").config().add_bos_token, true);
  EXPECT_EQ(test::real_tokenizer("llama3").config().bos_token, "<|begin_of_text|>");
  EXPECT_FALSE(test::real_tokenizer("llama3").config().chat_template.empty());
  EXPECT_EQ(test::real_tokenizer("qwen3").config().eos_token, "<|im_end|>");
  EXPECT_EQ(test::real_tokenizer("qwen3").config().pad_token, "<|endoftext|>");
  EXPECT_EQ(test::real_tokenizer("qwen3").config().bos_token, "");
  const Tokenizer& gpt2 = test::real_tokenizer("gpt2");
  EXPECT_EQ(gpt2.encode("Hello world", true), (Ids{15496, 995}));
  EXPECT_EQ(gpt2.token_to_id("<|endoftext|>"), 50256);
  EXPECT_TRUE(gpt2.is_special(50256));
  EXPECT_EQ(gpt2.vocab_size(), 50257);
  EXPECT_EQ(gpt2.config().eos_token, "<|endoftext|>");
  EXPECT_EQ(test::real_tokenizer("llama3").vocab_size(), 128256);
  EXPECT_EQ(test::real_tokenizer("qwen3").vocab_size(), 151669);
}

TEST(Tokenizer, ConcurrentEncodesAgree) {
  const Tokenizer& tok = test::real_tokenizer("llama3");
  std::string text;
  for (int i = 0; i < 200; ++i) text += "Concurrent encoding of text number " + std::to_string(i) + ", with words. ";
  Ids expected = tok.encode(text, true);
  std::vector<Ids> results(4);
  std::vector<std::thread> threads;
  for (size_t t = 0; t < results.size(); ++t)
    threads.emplace_back([&, t] {
      for (int rep = 0; rep < 5; ++rep) results[t] = tok.encode(text, true);
    });
  for (auto& th : threads) th.join();
  for (const auto& r : results) EXPECT_EQ(r, expected);
}

// ---- errors ------------------------------------------------------------------------------------------

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

TEST(TokenizerErrors, MalformedJson) {
  std::string e = error_of([] { Tokenizer::from_json_string("{\"model\": {", "broken.json"); });
  EXPECT_TRUE(contains(e, "broken.json") && contains(e, "malformed JSON")) << e;
  e = error_of([] { Tokenizer::from_json_string("[1, 2]", "list.json"); });
  EXPECT_TRUE(contains(e, "list.json")) << e;
  e = error_of([] { Tokenizer::from_json_string("{\"version\": \"1.0\"}", "nomodel.json"); });
  EXPECT_TRUE(contains(e, "nomodel.json") && contains(e, "model")) << e;
}

// Found by tests/fuzz/fuzz_tokenizer_json.cpp: tables indexed by id are as long as the largest id, so a file
// with one huge id asked for tens of gigabytes; ids past 2^24 - 1 are an error of the file.
TEST(TokenizerErrors, HugeIdsAreRefused) {
  std::string e = error_of([] { load(make_json({{"a", 0}, {"b", 2000000000}}, json::array())); });
  EXPECT_TRUE(contains(e, "'b' has id 2000000000") && contains(e, "largest supported id 16777215")) << e;
  json j = make_json({{"a", 0}}, json::array());
  j["added_tokens"] = json::array({added(1 << 30, "<big>", true)});
  e = error_of([&] { load(j); });
  EXPECT_TRUE(contains(e, "id 1073741824 out of range")) << e;
  j["added_tokens"] = json::array({added((1 << 24) - 1, "<big>", true)});
  EXPECT_EQ(load(j).vocab_size(), 1 << 24);  // the largest allowed id still loads
}

TEST(TokenizerErrors, UnsupportedModelTypes) {
  for (const char* type : {"WordPiece", "Unigram", "WordLevel"}) {
    json j = make_json({{"a", 0}}, json::array());
    j["model"]["type"] = type;
    std::string e = error_of([&] { load(j); });
    EXPECT_TRUE(contains(e, type) && contains(e, "supported: BPE")) << e;
  }
}

TEST(TokenizerErrors, BadModelContents) {
  std::string e = error_of([] { load(make_json({{"a", 0}}, {"a b"})); });
  EXPECT_TRUE(contains(e, "'b' is not in the vocab")) << e;
  e = error_of([] { load(make_json({{"a", 0}, {"b", 1}}, {"a b"})); });
  EXPECT_TRUE(contains(e, "merged token 'ab'")) << e;
  e = error_of([] { load(make_json({{"a", 0}}, {"a  b c"})); });
  EXPECT_TRUE(contains(e, "merge 1")) << e;
  e = error_of([] { load(make_json({{"a", 0}}, json::array(), {{"dropout", 0.1}})); });
  EXPECT_TRUE(contains(e, "dropout")) << e;
  e = error_of([] { load(make_json({{"a", 0}}, json::array(), json::object(), {{"normalizer", {{"type", "Magic"}}}})); });
  EXPECT_TRUE(contains(e, "normalizer type 'Magic'")) << e;
  e = error_of([] { load(make_json({{"a", 0}}, json::array(), json::object(), {{"decoder", {{"type", "CTC"}}}})); });
  EXPECT_TRUE(contains(e, "decoder type 'CTC'")) << e;
  // dropout 0 behaves as none.
  EXPECT_EQ(load(make_json({{"a", 0}}, json::array(), {{"dropout", 0.0}})).encode("a", false), (Ids{0}));
}

TEST(TokenizerErrors, MissingFiles) {
  std::string e = error_of([] { Tokenizer::from_json_file("/nonexistent/dir/tokenizer.json"); });
  EXPECT_TRUE(contains(e, "/nonexistent/dir/tokenizer.json") && contains(e, "cannot open")) << e;
  e = error_of([] { Tokenizer::from_path("/nonexistent/model"); });
  EXPECT_TRUE(contains(e, "/nonexistent/model")) << e;
  e = error_of([] { Tokenizer::from_path(std::filesystem::temp_directory_path().string()); });
  EXPECT_TRUE(contains(e, "no tokenizer")) << e;
  e = error_of([] { Tokenizer::from_gpt2_files("/nonexistent/encoder.json", "/nonexistent/vocab.bpe"); });
  EXPECT_TRUE(contains(e, "/nonexistent/encoder.json")) << e;
}

}  // namespace
}  // namespace roofline
