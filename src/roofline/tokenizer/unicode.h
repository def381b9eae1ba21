// UTF-8 and Unicode helpers for the tokenizer, with the exact semantics of the Rust functions that HF
// `tokenizers` relies on: char::is_whitespace (White_Space), regex \w, char::is_numeric,
// char::to_lowercase, String::from_utf8_lossy. Internal to roofline/tokenizer.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace roofline::tok {

// Decodes one code point from valid UTF-8 at s[i]; sets len to its byte length (1..4).
inline char32_t decode_utf8(std::string_view s, size_t i, size_t& len) {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data()) + i;
  unsigned char c = p[0];
  if (c < 0x80) {
    len = 1;
    return c;
  }
  if (c < 0xE0) {
    len = 2;
    return char32_t(((c & 0x1F) << 6) | (p[1] & 0x3F));
  }
  if (c < 0xF0) {
    len = 3;
    return char32_t(((c & 0x0F) << 12) | ((p[1] & 0x3F) << 6) | (p[2] & 0x3F));
  }
  len = 4;
  return char32_t(((c & 0x07) << 18) | ((p[1] & 0x3F) << 12) | ((p[2] & 0x3F) << 6) | (p[3] & 0x3F));
}

// Byte length of the UTF-8 sequence that starts with lead byte c (1 for a stray continuation byte).
inline size_t utf8_len(unsigned char c) { return c < 0xC0 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4; }

// Start of the code point that ends right before byte offset i (> 0) in valid UTF-8.
inline size_t prev_char_start(std::string_view s, size_t i) {
  do --i;
  while (i > 0 && (static_cast<unsigned char>(s[i]) & 0xC0) == 0x80);
  return i;
}

void append_utf8(std::string& out, char32_t c);

// Length of the longest prefix of s that is valid UTF-8 (== s.size() when all of it is).
size_t valid_utf8_prefix(std::string_view s);
inline bool is_valid_utf8(std::string_view s) { return valid_utf8_prefix(s) == s.size(); }
// Rust's String::from_utf8_lossy: each maximal invalid subsequence becomes one U+FFFD.
std::string utf8_lossy(std::string_view s);
// True when s ends with U+FFFD.
bool ends_with_replacement_char(std::string_view s);

// Character classes, as Rust defines them.
bool is_whitespace(char32_t c);   // char::is_whitespace: the White_Space property
bool is_word_char(char32_t c);    // regex crate's Unicode \w
bool is_numeric(char32_t c);      // char::is_numeric: Nd | Nl | No
bool is_punctuation(char32_t c);  // ASCII punctuation or general category P*
bool is_mark(char32_t c);         // general category M* (Mn | Mc | Me)
bool is_control_or_format(char32_t c);  // Cc | Cf | Co | Cn (BERT's is_control, minus \t \n \r)
bool is_cjk_ideograph(char32_t c);      // the ranges BERT pads with spaces

// char::to_lowercase for one code point, appended as UTF-8 (full mapping: U+0130 -> "i\u0307").
void append_lowercase(std::string& out, char32_t c);

enum class NormalForm { NFC, NFD, NFKC, NFKD };
// Unicode normalization of valid UTF-8 (only the stretches that can change go through utf8proc).
std::string normalize_unicode(std::string_view s, NormalForm form);
// The same, the whole string through utf8proc (the reference for tests).
std::string normalize_unicode_whole(std::string_view s, NormalForm form);

}  // namespace roofline::tok
