// Normalizers, decoders, post-processors and the Unicode helpers on their own.
#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "roofline/core/error.h"
#include "roofline/tokenizer/decoders.h"
#include "roofline/tokenizer/normalizers.h"
#include "roofline/tokenizer/post_processor.h"
#include "roofline/tokenizer/unicode.h"

namespace roofline::tok {
namespace {

std::string normalize(const std::string& json, std::string text) {
  auto n = make_normalizer(nlohmann::json::parse(json), "test");
  MatchScratch scratch;
  n->normalize(text, scratch);
  return text;
}

std::vector<std::string> decode_chain(const std::string& json, std::vector<std::string> tokens) {
  make_decoder(nlohmann::json::parse(json), "test")->decode_chain(tokens);
  return tokens;
}

std::vector<int32_t> post(const std::string& json, std::vector<int32_t> ids, bool add_special) {
  make_post_processor(nlohmann::json::parse(json), "test")->process(ids, add_special);
  return ids;
}

TEST(Normalizers, UnicodeForms) {
  const std::string decomposed = "e\xCC\x81";  // e + U+0301
  const std::string composed = "\xC3\xA9";      // é
  EXPECT_EQ(normalize(R"({"type":"NFC"})", "caf" + decomposed), "caf" + composed);
  EXPECT_EQ(normalize(R"({"type":"NFD"})", "caf" + composed), "caf" + decomposed);
  EXPECT_EQ(normalize(R"({"type":"NFKC"})", "\xEF\xAC\x81"), "fi");             // ﬁ ligature
  EXPECT_EQ(normalize(R"({"type":"NFKD"})", "\xE2\x91\xA0" + composed), "1" + decomposed);  // ① é
  EXPECT_EQ(normalize(R"({"type":"NFC"})", "\xE2\x84\xAB"), "\xC3\x85");        // Angstrom sign -> Å
  EXPECT_EQ(normalize(R"({"type":"NFC"})", "\xE1\x84\x80\xE1\x85\xA1"), "\xEA\xB0\x80");  // jamo -> 가
}

TEST(Normalizers, PiecewiseNormalizationEqualsWhole) {
  // normalize_unicode only sends the stretches that can change through utf8proc; it must agree with
  // normalizing the whole string, including marks, Hangul jamo and singletons next to plain text.
  const std::vector<std::string> pieces = {"a", " ", "e", "\xCC\x81", "\xCC\xA3", "\xC3\xA9", "\xE1\x84\x80",
                                           "\xE1\x85\xA1", "\xE1\x86\xA8", "\xEA\xB0\x80", "\xE2\x84\xAB",
                                           "\xEF\xAC\x81", "\xE4\xB8\xAD", "\xF0\x9F\x98\x80", "\xEF\xB8\x8F",
                                           "\xE0\xA4\x95", "\xE0\xA4\xBC", "\xE0\xAD\x87", "\xE0\xAC\xBE", "K",
                                           "\xE2\x84\xAA", "\xCD\x84", "\xE3\x81\x8B", "\xE3\x82\x99", "\xEF\xA4\x80"};
  std::mt19937 rng(7);
  for (int iter = 0; iter < 3000; ++iter) {
    std::string s;
    int n = 1 + int(rng() % 12);
    for (int k = 0; k < n; ++k) s += pieces[rng() % pieces.size()];
    for (NormalForm f : {NormalForm::NFC, NormalForm::NFD, NormalForm::NFKC, NormalForm::NFKD})
      ASSERT_EQ(normalize_unicode(s, f), normalize_unicode_whole(s, f)) << "form " << int(f) << " of " << s;
  }
}

TEST(Normalizers, SimpleOnes) {
  EXPECT_EQ(normalize(R"({"type":"Lowercase"})", "HeLLo \xC3\x89T\xC3\x89 \xC4\xB0"), "hello \xC3\xA9t\xC3\xA9 i\xCC\x87");
  EXPECT_EQ(normalize(R"({"type":"Strip","strip_left":true,"strip_right":true})", " \t hi \n"), "hi");
  EXPECT_EQ(normalize(R"({"type":"Strip","strip_left":false,"strip_right":true})", "  hi  "), "  hi");
  EXPECT_EQ(normalize(R"({"type":"StripAccents"})", "e\xCC\x81t\xCC\x81"), "et");
  EXPECT_EQ(normalize(R"({"type":"Prepend","prepend":"▁"})", "Hey"), "▁Hey");
  EXPECT_EQ(normalize(R"({"type":"Prepend","prepend":"▁"})", ""), "");
  EXPECT_EQ(normalize(R"({"type":"Replace","pattern":{"String":" "},"content":"▁"})", "a b  c"), "a▁b▁▁c");
  EXPECT_EQ(normalize(R"({"type":"Replace","pattern":{"Regex":"\\s+"},"content":"_"})", "a \t b\nc"), "a_b_c");
  EXPECT_EQ(normalize(R"({"type":"Sequence","normalizers":[{"type":"Prepend","prepend":"▁"},
                         {"type":"Replace","pattern":{"String":" "},"content":"▁"}]})",
                      "Hello world"),
            "▁Hello▁world");
  EXPECT_EQ(normalize(R"({"type":"BertNormalizer","clean_text":true,"handle_chinese_chars":true,
                         "strip_accents":null,"lowercase":true})",
                      "H\xC3\xA9llo\t\xE4\xB8\xAD\x01"),
            "hello  \xE4\xB8\xAD ");
  EXPECT_THROW(normalize(R"({"type":"Precompiled","precompiled_charsmap":""})", "x"), Error);
}

TEST(Decoders, Chain) {
  const std::string llama = R"({"type":"Sequence","decoders":[
      {"type":"Replace","pattern":{"String":"▁"},"content":" "},{"type":"ByteFallback"},{"type":"Fuse"},
      {"type":"Strip","content":" ","start":1,"stop":0}]})";
  EXPECT_EQ(decode_chain(llama, {"▁Hello", "▁world", "<0x21>"}), (std::vector<std::string>{"Hello world!"}));
  // A run of byte tokens that is valid UTF-8 becomes its text; an invalid run one U+FFFD per byte.
  EXPECT_EQ(decode_chain(llama, {"▁a", "<0xE4>", "<0xB8>", "<0xAD>"}), (std::vector<std::string>{"a\xE4\xB8\xAD"}));
  EXPECT_EQ(decode_chain(llama, {"▁a", "<0xE4>", "<0xB8>"}),
            (std::vector<std::string>{"a\xEF\xBF\xBD\xEF\xBF\xBD"}));
  EXPECT_EQ(decode_chain(R"({"type":"ByteFallback"})", {"<0x61>", "b", "<0xFF>"}),
            (std::vector<std::string>{"a", "b", "\xEF\xBF\xBD"}));
}

TEST(Decoders, ByteLevel) {
  // Ġ is the space byte; a token with a character outside the byte alphabet keeps its own bytes.
  EXPECT_EQ(decode_chain(R"({"type":"ByteLevel"})", {"Hello", "\xC4\xA0world", "<|x y|>"}),
            (std::vector<std::string>{"Hello world<|x y|>"}));
  // Incomplete UTF-8 decodes lossily, one U+FFFD per maximal invalid subsequence.
  EXPECT_EQ(decode_chain(R"({"type":"ByteLevel"})", {"\xC3\xA4\xC2\xB8"}),  // bytes E4 B8
            (std::vector<std::string>{"\xEF\xBF\xBD"}));
}

TEST(Decoders, MetaspaceStripAndSuffix) {
  EXPECT_EQ(decode_chain(R"({"type":"Metaspace","replacement":"▁","prepend_scheme":"always"})", {"▁Hey", "▁friend!"}),
            (std::vector<std::string>{"Hey", " friend!"}));
  EXPECT_EQ(decode_chain(R"({"type":"Metaspace","replacement":"▁","prepend_scheme":"never"})", {"▁Hey", "▁friend!"}),
            (std::vector<std::string>{" Hey", " friend!"}));
  EXPECT_EQ(decode_chain(R"({"type":"Strip","content":"x","start":2,"stop":1})", {"xxxaxx", "ax"}),
            (std::vector<std::string>{"xax", "a"}));
  EXPECT_EQ(decode_chain(R"({"type":"BPEDecoder","suffix":"</w>"})", {"My</w>", "na", "me</w>"}),
            (std::vector<std::string>{"My ", "na", "me"}));
  EXPECT_EQ(decode_chain(R"({"type":"WordPiece","prefix":"##","cleanup":true})", {"Hey", "fri", "##end", "!"}),
            (std::vector<std::string>{"Hey", " fri", "end", "!"}));
  EXPECT_THROW(decode_chain(R"({"type":"CTC"})", {}), Error);
}

TEST(PostProcessors, Kinds) {
  const std::string tmpl = R"({"type":"TemplateProcessing",
      "single":[{"SpecialToken":{"id":"<s>","type_id":0}},{"Sequence":{"id":"A","type_id":0}},
                {"SpecialToken":{"id":"</s>","type_id":0}}],
      "pair":[],"special_tokens":{"<s>":{"id":"<s>","ids":[1],"tokens":["<s>"]},
                                   "</s>":{"id":"</s>","ids":[2],"tokens":["</s>"]}}})";
  EXPECT_EQ(post(tmpl, {7, 8}, true), (std::vector<int32_t>{1, 7, 8, 2}));
  EXPECT_EQ(post(tmpl, {7, 8}, false), (std::vector<int32_t>{7, 8}));
  EXPECT_EQ(post(R"({"type":"RobertaProcessing","sep":["</s>",2],"cls":["<s>",0]})", {5}, true),
            (std::vector<int32_t>{0, 5, 2}));
  EXPECT_EQ(post(R"({"type":"BertProcessing","sep":["[SEP]",102],"cls":["[CLS]",101]})", {5}, true),
            (std::vector<int32_t>{101, 5, 102}));
  EXPECT_EQ(post(R"({"type":"ByteLevel","add_prefix_space":true,"trim_offsets":false})", {5}, true),
            (std::vector<int32_t>{5}));
  EXPECT_EQ(post(R"({"type":"Sequence","processors":[{"type":"ByteLevel"},
                     {"type":"RobertaProcessing","sep":["</s>",2],"cls":["<s>",0]}]})",
                 {5}, true),
            (std::vector<int32_t>{0, 5, 2}));
  EXPECT_THROW(post(R"({"type":"TemplateProcessing","single":[{"SpecialToken":{"id":"<x>","type_id":0}}],
                        "special_tokens":{}})",
                    {}, true),
               Error);
}

TEST(Unicode, LossyUtf8) {
  EXPECT_EQ(utf8_lossy("abc"), "abc");
  const std::string fffd = "\xEF\xBF\xBD";
  EXPECT_EQ(utf8_lossy("a\xFF" "b"), "a" + fffd + "b");
  EXPECT_EQ(utf8_lossy("\xE4\xB8"), fffd);                  // one truncated sequence: one U+FFFD
  EXPECT_EQ(utf8_lossy("\xE4\xB8" "a"), fffd + "a");
  EXPECT_EQ(utf8_lossy("\xF0\x9F\x98"), fffd);
  EXPECT_EQ(utf8_lossy("\xC0\xAF"), fffd + fffd);            // overlong: each byte invalid
  EXPECT_EQ(utf8_lossy("\xED\xA0\x80"), fffd + fffd + fffd); // surrogate: E D not followed by A0..BF
  EXPECT_EQ(utf8_lossy("\xE4\xB8\xAD\x80"), "\xE4\xB8\xAD" + fffd);
  EXPECT_TRUE(is_valid_utf8("\xF0\x9F\x98\x80"));
  EXPECT_FALSE(is_valid_utf8("\xF4\x90\x80\x80"));  // above U+10FFFF
}

}  // namespace
}  // namespace roofline::tok
