// Hand-written matchers for the pre-tokenization regexes that nearly every byte-level BPE uses (GPT-2's,
// Llama 3's with \p{N}{1,3}, Qwen 2/3's with \p{N}). They give exactly the matches of the regex under
// Oniguruma/PCRE2 leftmost-first semantics, several times faster than the JIT-compiled regex. Character
// classes (\p{L}, \p{N}) come from PCRE2's own Unicode tables so both paths agree on every code point;
// \s is Unicode White_Space, as in Oniguruma.
#pragma once
#include <string_view>
#include <vector>

#include "roofline/tokenizer/regex.h"

namespace roofline::tok {

enum class KnownSplit {
  None,
  Gpt2,         // 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
  Llama3,       // (?i:'s|...|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
  SingleDigit,  // the Llama 3 pattern with \p{N} in place of \p{N}{1,3} (Qwen 2 and 3)
};

// Which known pattern this regex source is, if any (an exact match of the source text).
KnownSplit recognize_split_pattern(std::string_view pattern);

// Appends the matches of the known pattern in valid UTF-8 text (they tile the text: every byte is in one).
void fast_split(KnownSplit kind, std::string_view text, std::vector<Span>& out);

}  // namespace roofline::tok
