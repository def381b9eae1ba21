// The hand-written matchers of the well-known pre-tokenization regexes against PCRE2 running the regexes
// themselves, on random text built to hit every alternative and its backtracking.
#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

#include "roofline/tokenizer/fast_split.h"
#include "roofline/tokenizer/regex.h"
#include "tokenizer_test_util.h"

namespace roofline::tok {
namespace {

const char* kPatterns[] = {
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)",
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)",
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)",
};

std::vector<Span> spans_of(const Regex& re, const std::string& text) {
  MatchScratch scratch;
  std::vector<Span> out;
  re.find_all(text, out, scratch);
  return out;
}

std::string show(const std::string& text, const std::vector<Span>& spans) {
  std::string s;
  for (const Span& sp : spans) {
    s.push_back('[');
    s.append(text, sp.begin, sp.end - sp.begin);
    s.push_back(']');
  }
  return s;
}

TEST(FastSplit, RecognizesKnownPatterns) {
  EXPECT_EQ(recognize_split_pattern(kPatterns[0]), KnownSplit::Gpt2);
  EXPECT_EQ(recognize_split_pattern(kPatterns[1]), KnownSplit::Llama3);
  EXPECT_EQ(recognize_split_pattern(kPatterns[2]), KnownSplit::SingleDigit);
  EXPECT_EQ(recognize_split_pattern("\\s+"), KnownSplit::None);
}

TEST(FastSplit, MatchesPcre2OnRandomText) {
  // Pieces chosen for the alternatives: apostrophes and contraction letters in both cases (and U+017F,
  // which folds to 's'), letters of several scripts, marks, digits of several scripts, punctuation,
  // every kind of whitespace (U+0085 and U+3000 included; U+180E and U+FEFF are not whitespace).
  const std::vector<std::string> pieces = {
      "'", "s", "S", "t", "T", "re", "RE", "Re", "ve", "VE", "m", "M", "ll", "LL", "lL", "d", "D", "\xC5\xBF",
      "\xE2\x84\xAA", "a", "Z", "hello", "\xC3\xA9", "\xE4\xB8\xAD\xE6\x96\x87", "\xD0\x96", "\xD8\xB9",
      "\xCC\x81", "\xE0\xA4\xBE", "0", "7", "12345", "\xD9\xA3", "\xEF\xBC\x91", "\xE2\x85\xA0", "\xC2\xB2", "!",
      ".", "(", "_", "-", "\xE2\x80\x94", "\xF0\x9F\x98\x80", "\xE2\x80\x8D", " ", " ", "  ", "\t", "\n", "\r",
      "\r\n", "\n\n", "\x0B", "\x0C", "\xC2\x85", "\xC2\xA0", "\xE3\x80\x80", "\xE2\x80\xA8", "\xE1\xA0\x8E",
      "\xEF\xBB\xBF", "\x01", "\x7F"};
  std::mt19937 rng(2024);
  for (const char* pattern : kPatterns) {
    Regex fast(pattern, "fast", /*allow_fast_split=*/true);
    Regex pcre(pattern, "pcre2", /*allow_fast_split=*/false);
    for (int iter = 0; iter < 20000; ++iter) {
      std::string text;
      int n = 1 + int(rng() % 14);
      for (int k = 0; k < n; ++k) text += pieces[rng() % pieces.size()];
      auto a = spans_of(fast, text), b = spans_of(pcre, text);
      ASSERT_EQ(show(text, a), show(text, b)) << "pattern " << pattern;
    }
  }
}

TEST(FastSplit, MatchesPcre2OnRealText) {
  std::string text = test::read_text_file(test::fixtures_dir() + "/tokenizer_texts.json");
  for (const char* pattern : kPatterns) {
    Regex fast(pattern, "fast", true);
    Regex pcre(pattern, "pcre2", false);
    EXPECT_EQ(show(text, spans_of(fast, text)), show(text, spans_of(pcre, text)));
  }
}

}  // namespace
}  // namespace roofline::tok
