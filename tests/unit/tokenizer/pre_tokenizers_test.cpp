// Pre-tokenizers on their own: the pieces each one makes, against what HF `tokenizers` makes.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "roofline/core/error.h"
#include "roofline/tokenizer/pre_tokenizers.h"

namespace roofline::tok {
namespace {

using Pieces = std::vector<std::string>;

Pieces run(const std::string& json, const std::string& text, bool at_origin = true) {
  auto pre = make_pre_tokenizer(nlohmann::json::parse(json), "test");
  PreTokenized pt;
  pt.reset(text, at_origin);
  PreTokenizeScratch scratch;
  pre->pre_tokenize(pt, scratch);
  pt.map_bytes();
  Pieces out;
  for (const auto& p : pt.pieces) out.emplace_back(pt.view(p));
  return out;
}

std::string split(const std::string& pattern_kind, const std::string& pattern, const std::string& behavior,
                  bool invert = false) {
  nlohmann::json j = {{"type", "Split"},
                      {"pattern", {{pattern_kind, pattern}}},
                      {"behavior", behavior},
                      {"invert", invert}};
  return j.dump();
}

TEST(PreTokenizers, SplitBehaviors) {
  // HF's own examples (normalizer.rs tests): "The-final--countdown" split on '-'.
  const std::string text = "The-final--countdown";
  EXPECT_EQ(run(split("String", "-", "Removed"), text), (Pieces{"The", "final", "countdown"}));
  EXPECT_EQ(run(split("String", "-", "Isolated"), text), (Pieces{"The", "-", "final", "-", "-", "countdown"}));
  EXPECT_EQ(run(split("String", "-", "MergedWithPrevious"), text), (Pieces{"The-", "final-", "-", "countdown"}));
  EXPECT_EQ(run(split("String", "-", "MergedWithNext"), text), (Pieces{"The", "-final", "-", "-countdown"}));
  EXPECT_EQ(run(split("String", "-", "Contiguous"), text), (Pieces{"The", "-", "final", "--", "countdown"}));
}

TEST(PreTokenizers, SplitRegexAndInvert) {
  EXPECT_EQ(run(split("Regex", "\\s+", "Removed"), "How are  you"), (Pieces{"How", "are", "you"}));
  EXPECT_EQ(run(split("Regex", "\\s+", "Isolated"), "How are  you"), (Pieces{"How", " ", "are", "  ", "you"}));
  // invert: the matches are the pieces kept, the rest is what gets removed.
  EXPECT_EQ(run(split("Regex", "\\w+", "Removed", true), "Hey, friend!"), (Pieces{"Hey", "friend"}));
  EXPECT_EQ(run(split("Regex", "\\w+", "MergedWithNext", true), "Hey, friend!"), (Pieces{"Hey", ", friend", "!"}));
  // A literal pattern is not a regex.
  EXPECT_EQ(run(split("String", ".", "Removed"), "a.b+c"), (Pieces{"a", "b+c"}));
}

TEST(PreTokenizers, SplitGpt2StylePattern) {
  const std::string llama3 =
      R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
  EXPECT_EQ(run(split("Regex", llama3, "Isolated"), "I'LL pay 12345 now!!\n\n  ok"),
            (Pieces{"I", "'LL", " pay", " ", "123", "45", " now", "!!\n\n", " ", " ok"}));
}

TEST(PreTokenizers, OnigWhitespaceClass) {
  // Oniguruma's \s is Unicode White_Space: U+0085 is in, U+180E and U+FEFF are out.
  const std::string ws = split("Regex", "\\s+", "Removed");
  EXPECT_EQ(run(ws, "a\xC2\x85" "b"), (Pieces{"a", "b"}));
  EXPECT_EQ(run(ws, "a\xE1\xA0\x8E" "b"), (Pieces{"a\xE1\xA0\x8E" "b"}));
  EXPECT_EQ(run(ws, "a\xEF\xBB\xBF" "b"), (Pieces{"a\xEF\xBB\xBF" "b"}));
  EXPECT_EQ(run(split("Regex", "[^\\s]+", "Removed", true), "x\xC2\x85y"), (Pieces{"x", "y"}));
}

TEST(PreTokenizers, ByteLevel) {
  EXPECT_EQ(run(R"({"type":"ByteLevel","add_prefix_space":false,"use_regex":true})", "Hello my friend, how?"),
            (Pieces{"Hello", "\xC4\xA0my", "\xC4\xA0" "friend", ",", "\xC4\xA0how", "?"}));
  EXPECT_EQ(run(R"({"type":"ByteLevel","add_prefix_space":true,"use_regex":true})", "Hello there"),
            (Pieces{"\xC4\xA0Hello", "\xC4\xA0there"}));
  // No second prefix space when there is one already; use_regex=false keeps the piece whole.
  EXPECT_EQ(run(R"({"type":"ByteLevel","add_prefix_space":true,"use_regex":false})", " a b"),
            (Pieces{"\xC4\xA0" "a\xC4\xA0" "b"}));
  // Multi-byte characters become one mapped character per byte.
  EXPECT_EQ(run(R"({"type":"ByteLevel","add_prefix_space":false,"use_regex":false})", "\xC3\xA9"),
            (Pieces{"\xC3\x83\xC2\xA9"}));
  // Whitespace runs keep their last space for the next word (\s+(?!\S)).
  EXPECT_EQ(run(R"({"type":"ByteLevel","add_prefix_space":false})", "a   b"),
            (Pieces{"a", "\xC4\xA0\xC4\xA0", "\xC4\xA0" "b"}));
}

TEST(PreTokenizers, Metaspace) {
  const std::string always = R"({"type":"Metaspace","replacement":"▁","prepend_scheme":"always","split":true})";
  EXPECT_EQ(run(always, "Hey friend!"), (Pieces{"▁Hey", "▁friend!"}));
  EXPECT_EQ(run(always, "Hey   friend!"), (Pieces{"▁Hey", "▁", "▁", "▁friend!"}));
  EXPECT_EQ(run(always, " Hey"), (Pieces{"▁Hey"}));
  const std::string never = R"({"type":"Metaspace","replacement":"▁","prepend_scheme":"never","split":true})";
  EXPECT_EQ(run(never, "Hey friend"), (Pieces{"Hey", "▁friend"}));
  const std::string first = R"({"type":"Metaspace","replacement":"▁","prepend_scheme":"first","split":false})";
  EXPECT_EQ(run(first, "Hey my friend", true), (Pieces{"▁Hey▁my▁friend"}));
  EXPECT_EQ(run(first, "how are", false), (Pieces{"how▁are"}));
  // Legacy add_prefix_space=false means never.
  EXPECT_EQ(run(R"({"type":"Metaspace","replacement":"▁","add_prefix_space":false})", "a b"), (Pieces{"a", "▁b"}));
}

TEST(PreTokenizers, WhitespaceDigitsPunctuation) {
  EXPECT_EQ(run(R"({"type":"Whitespace"})", "Hey man!! How's it going?"),
            (Pieces{"Hey", "man", "!!", "How", "'", "s", "it", "going", "?"}));
  EXPECT_EQ(run(R"({"type":"WhitespaceSplit"})", "Hey man!!\tHow's  it"), (Pieces{"Hey", "man!!", "How's", "it"}));
  EXPECT_EQ(run(R"({"type":"Digits","individual_digits":false})", "Hey 123 friend!"), (Pieces{"Hey ", "123", " friend!"}));
  EXPECT_EQ(run(R"({"type":"Digits","individual_digits":true})", "a123"), (Pieces{"a", "1", "2", "3"}));
  EXPECT_EQ(run(R"({"type":"Punctuation","behavior":"Isolated"})", "Hey friend!  How are you?!?"),
            (Pieces{"Hey friend", "!", "  How are you", "?", "!", "?"}));
  EXPECT_EQ(run(R"({"type":"BertPreTokenizer"})", "Hey friend!  How"), (Pieces{"Hey", "friend", "!", "How"}));
  EXPECT_EQ(run(R"({"type":"CharDelimiterSplit","delimiter":"x"})", "axbxxc"), (Pieces{"a", "b", "c"}));
}

TEST(PreTokenizers, Sequence) {
  const std::string seq = R"({"type":"Sequence","pretokenizers":[
      {"type":"WhitespaceSplit"},{"type":"Digits","individual_digits":true}]})";
  EXPECT_EQ(run(seq, "ab12 c3"), (Pieces{"ab", "1", "2", "c", "3"}));
  // A step after ByteLevel sees the mapped characters.
  const std::string after = R"({"type":"Sequence","pretokenizers":[
      {"type":"ByteLevel","add_prefix_space":false,"use_regex":false},
      {"type":"Split","pattern":{"String":"Ġ"},"behavior":"MergedWithNext"}]})";
  EXPECT_EQ(run(after, "a b"), (Pieces{"a", "\xC4\xA0" "b"}));
}

TEST(PreTokenizers, Errors) {
  EXPECT_THROW(run(R"({"type":"UnicodeScripts"})", "x"), Error);
  EXPECT_THROW(run(R"({"type":"Split","pattern":{"Regex":"(unclosed"},"behavior":"Isolated"})", "x"), Error);
  EXPECT_THROW(run(R"({"type":"Split","pattern":{"String":"a"},"behavior":"Sideways"})", "x"), Error);
  try {
    run(R"({"type":"Split","pattern":{"Regex":"(unclosed"},"behavior":"Isolated"})", "x");
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("(unclosed"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace roofline::tok
