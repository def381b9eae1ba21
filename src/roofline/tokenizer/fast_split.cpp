#include "roofline/tokenizer/fast_split.h"

#include <array>
#include <map>

#include "roofline/tokenizer/unicode.h"

namespace roofline::tok {

namespace {

constexpr uint8_t kLetter = 1, kNumber = 2, kSpace = 4;

// Class bits of every code point: \p{L} and \p{N} as PCRE2's tables have them, \s as White_Space.
// Two-level table over U+0000..U+3FFFF (no letters or numbers are assigned above).
class ClassTable {
 public:
  static const ClassTable& get() {
    static const ClassTable table;  // immutable once built
    return table;
  }
  uint8_t operator()(char32_t c) const {
    if (c < 0x80) return ascii_[c];
    if (c >= kLimit) return 0;
    return blocks_[size_t(stage1_[c >> 8]) * 256 + (c & 0xFF)];
  }

 private:
  static constexpr char32_t kLimit = 0x40000;

  ClassTable() {
    std::vector<uint8_t> cls(kLimit, 0);
    std::string all;
    all.reserve(size_t(kLimit) * 4);
    for (char32_t c = 0; c < kLimit; ++c) {
      if (is_whitespace(c)) cls[c] |= kSpace;
      if (c < 0xD800 || c > 0xDFFF) append_utf8(all, c);
    }
    MatchScratch scratch;
    for (auto [pattern, bit] : {std::pair{"\\p{L}+", kLetter}, std::pair{"\\p{N}+", kNumber}}) {
      Regex re(pattern, "Unicode class table", /*allow_fast_split=*/false);
      std::vector<Span> runs;
      re.find_all(all, runs, scratch);
      for (const Span& r : runs) {
        size_t i = r.begin, len = 0;
        while (i < r.end) {
          cls[decode_utf8(all, i, len)] |= bit;
          i += len;
        }
      }
    }
    for (char32_t c = 0; c < 0x80; ++c) ascii_[c] = cls[c];
    std::map<std::array<uint8_t, 256>, uint16_t> seen;
    stage1_.resize(kLimit >> 8);
    for (size_t block = 0; block < stage1_.size(); ++block) {
      std::array<uint8_t, 256> b;
      std::copy(cls.begin() + std::ptrdiff_t(block * 256), cls.begin() + std::ptrdiff_t(block * 256 + 256), b.begin());
      auto [it, inserted] = seen.emplace(b, uint16_t(seen.size()));
      if (inserted) blocks_.insert(blocks_.end(), b.begin(), b.end());
      stage1_[block] = it->second;
    }
  }

  std::array<uint8_t, 128> ascii_{};
  std::vector<uint16_t> stage1_;
  std::vector<uint8_t> blocks_;
};

// Character access over valid UTF-8: code point, byte length and class at byte offset i (< size).
struct Text {
  std::string_view s;
  const ClassTable& classes;

  char32_t at(size_t i, size_t& len) const {
    unsigned char b = static_cast<unsigned char>(s[i]);
    if (b < 0x80) {
      len = 1;
      return b;
    }
    return decode_utf8(s, i, len);
  }
  uint8_t cls(size_t i, size_t& len) const { return classes(at(i, len)); }
  // End of the run of characters from i whose class has any of `bits`.
  size_t run(size_t i, uint8_t bits) const {
    size_t len = 0;
    while (i < s.size() && (cls(i, len) & bits)) i += len;
    return i;
  }
  // End of the run of characters from i that are in none of the classes (the class [^\s\p{L}\p{N}]).
  size_t other_run(size_t i) const {
    size_t len = 0;
    while (i < s.size() && cls(i, len) == 0) i += len;
    return i;
  }
  // Up to max characters of class bits from i.
  size_t run_max(size_t i, uint8_t bits, int max) const {
    size_t len = 0;
    for (int k = 0; k < max && i < s.size() && (cls(i, len) & bits); ++k) i += len;
    return i;
  }
};

// Length of a contraction after an apostrophe at s[i] ('s 't 're 've 'm 'll 'd), or 0. With caseless,
// letters match either case, and 's' also matches U+017F (long s), as Unicode case folding has it.
size_t contraction(std::string_view s, size_t i, bool caseless) {
  auto is = [&](size_t k, char lower) -> size_t {  // bytes of a match of `lower` at s[k], or 0
    if (k >= s.size()) return 0;
    char c = s[k];
    if (c == lower || (caseless && c == lower - 32)) return 1;
    if (caseless && lower == 's' && s.compare(k, 2, "\xC5\xBF") == 0) return 2;
    return 0;
  };
  size_t a;
  if ((a = is(i, 's')) || (a = is(i, 't')) || (a = is(i, 'm')) || (a = is(i, 'd'))) return a;
  size_t b;
  if ((a = is(i, 'r')) && (b = is(i + a, 'e'))) return a + b;
  if ((a = is(i, 'v')) && (b = is(i + a, 'e'))) return a + b;
  if ((a = is(i, 'l')) && (b = is(i + a, 'l'))) return a + b;
  return 0;
}

// The whitespace alternatives shared by all three patterns, at a whitespace character at i:
// [\s*[\r\n]+ when with_newline_rule] | \s+(?!\S) | \s+. Returns the match end.
size_t whitespace_match(const Text& t, size_t i, bool with_newline_rule) {
  const size_t n = t.s.size();
  size_t j = i, len = 0, last_start = i, last_newline_end = 0, count = 0;
  while (j < n && (t.cls(j, len) & kSpace)) {
    if (t.s[j] == '\r' || t.s[j] == '\n') last_newline_end = j + 1;
    last_start = j;
    j += len;
    ++count;
  }
  if (with_newline_rule && last_newline_end) return last_newline_end;  // \s*[\r\n]+ (backtracked)
  if (j == n) return j;                                                // \s+(?!\S) at the end
  if (count >= 2) return last_start;                                   // \s+(?!\S), giving back one
  return j;                                                            // \s+
}

void split_gpt2(const Text& t, std::vector<Span>& out) {
  const size_t n = t.s.size();
  size_t i = 0;
  while (i < n) {
    const size_t start = i;
    size_t len0 = 0;
    char32_t c0 = t.at(i, len0);
    size_t end = 0;
    if (c0 == '\'' && (end = contraction(t.s, i + 1, false))) {
      end += i + 1;
    } else {
      // ' ?\p{L}+', ' ?\p{N}+', ' ?[^\s\p{L}\p{N}]+': an optional space, then a run of one class.
      size_t at = i;
      if (c0 == ' ' && i + 1 < n) at = i + 1;
      size_t len = 0;
      uint8_t c = t.cls(at, len);
      if (at != i && (c & kSpace)) {  // a space before whitespace: no optional-space alternative
        at = i;
        c = t.cls(at, len);
      }
      if (c & kLetter) {
        end = t.run(at, kLetter);
      } else if (c & kNumber) {
        end = t.run(at, kNumber);
      } else if (c == 0) {
        end = t.other_run(at);
      } else {
        end = whitespace_match(t, i, /*with_newline_rule=*/false);
      }
    }
    out.push_back({uint32_t(start), uint32_t(end)});
    i = end;
  }
}

void split_llama3(const Text& t, int max_digits, std::vector<Span>& out) {
  const size_t n = t.s.size();
  size_t i = 0;
  while (i < n) {
    const size_t start = i;
    size_t len0 = 0;
    char32_t c0 = t.at(i, len0);
    uint8_t k0 = t.classes(c0);
    size_t end = 0, len1 = 0;
    if (c0 == '\'' && (end = contraction(t.s, i + 1, true))) {  // (?i:'s|'t|'re|'ve|'m|'ll|'d)
      end += i + 1;
    } else if (k0 & kLetter) {  // [^\r\n\p{L}\p{N}]?\p{L}+ without the optional character
      end = t.run(i, kLetter);
    } else if (c0 != '\r' && c0 != '\n' && !(k0 & kNumber) && i + len0 < n && (t.cls(i + len0, len1) & kLetter)) {
      end = t.run(i + len0, kLetter);  // ... with it
    } else if (k0 & kNumber) {  // \p{N}{1,max}
      end = t.run_max(i, kNumber, max_digits);
    } else {
      // ' ?[^\s\p{L}\p{N}]+[\r\n]*'
      size_t at = i;
      if (c0 == ' ' && i + 1 < n) {
        size_t len = 0;
        if (t.cls(i + 1, len) == 0) at = i + 1;
      }
      size_t len = 0;
      if (t.cls(at, len) == 0) {
        end = t.other_run(at);
        while (end < n && (t.s[end] == '\r' || t.s[end] == '\n')) ++end;
      } else {
        end = whitespace_match(t, i, /*with_newline_rule=*/true);
      }
    }
    out.push_back({uint32_t(start), uint32_t(end)});
    i = end;
  }
}

}  // namespace

KnownSplit recognize_split_pattern(std::string_view pattern) {
  if (pattern == R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)") return KnownSplit::Gpt2;
  if (pattern ==
      R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)")
    return KnownSplit::Llama3;
  if (pattern ==
      R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)")
    return KnownSplit::SingleDigit;
  return KnownSplit::None;
}

void fast_split(KnownSplit kind, std::string_view text, std::vector<Span>& out) {
  Text t{text, ClassTable::get()};
  switch (kind) {
    case KnownSplit::Gpt2: split_gpt2(t, out); return;
    case KnownSplit::Llama3: split_llama3(t, 3, out); return;
    case KnownSplit::SingleDigit: split_llama3(t, 1, out); return;
    case KnownSplit::None: return;
  }
}

}  // namespace roofline::tok
