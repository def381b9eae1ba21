#include "roofline/tokenizer/unicode.h"

#include <cstdlib>
#include <cstring>
#include <utf8proc.h>

#include "roofline/core/error.h"

namespace roofline::tok {

void append_utf8(std::string& out, char32_t c) {
  if (c < 0x80) {
    out.push_back(char(c));
  } else if (c < 0x800) {
    out.push_back(char(0xC0 | (c >> 6)));
    out.push_back(char(0x80 | (c & 0x3F)));
  } else if (c < 0x10000) {
    out.push_back(char(0xE0 | (c >> 12)));
    out.push_back(char(0x80 | ((c >> 6) & 0x3F)));
    out.push_back(char(0x80 | (c & 0x3F)));
  } else {
    out.push_back(char(0xF0 | (c >> 18)));
    out.push_back(char(0x80 | ((c >> 12) & 0x3F)));
    out.push_back(char(0x80 | ((c >> 6) & 0x3F)));
    out.push_back(char(0x80 | (c & 0x3F)));
  }
}

namespace {

// One step of Rust's Utf8Chunks: from s[i] (a byte >= 0x80), advances i over the longest prefix of a
// well-formed sequence and returns whether the whole sequence was well formed.
bool step_non_ascii(const unsigned char* s, size_t n, size_t& i) {
  auto next = [&]() -> unsigned char { return i < n ? s[i] : 0; };
  auto is_cont = [](unsigned char c) { return (c & 0xC0) == 0x80; };
  unsigned char b = s[i++];
  if (b >= 0xC2 && b <= 0xDF) {
    if (!is_cont(next())) return false;
    ++i;
    return true;
  }
  if (b >= 0xE0 && b <= 0xEF) {
    unsigned char c = next();
    bool ok = (b == 0xE0) ? (c >= 0xA0 && c <= 0xBF) : (b == 0xED) ? (c >= 0x80 && c <= 0x9F) : is_cont(c);
    if (!ok) return false;
    ++i;
    if (!is_cont(next())) return false;
    ++i;
    return true;
  }
  if (b >= 0xF0 && b <= 0xF4) {
    unsigned char c = next();
    bool ok = (b == 0xF0) ? (c >= 0x90 && c <= 0xBF) : (b == 0xF4) ? (c >= 0x80 && c <= 0x8F) : is_cont(c);
    if (!ok) return false;
    ++i;
    if (!is_cont(next())) return false;
    ++i;
    if (!is_cont(next())) return false;
    ++i;
    return true;
  }
  return false;
}

size_t skip_ascii(const unsigned char* s, size_t n, size_t i) {
  while (i + 8 <= n) {
    uint64_t w;
    std::memcpy(&w, s + i, 8);
    if (w & 0x8080808080808080ULL) break;
    i += 8;
  }
  while (i < n && s[i] < 0x80) ++i;
  return i;
}

}  // namespace

size_t valid_utf8_prefix(std::string_view sv) {
  const auto* s = reinterpret_cast<const unsigned char*>(sv.data());
  size_t n = sv.size(), i = 0;
  while (true) {
    i = skip_ascii(s, n, i);
    if (i >= n) return n;
    size_t start = i;
    if (!step_non_ascii(s, n, i)) return start;
  }
}

std::string utf8_lossy(std::string_view sv) {
  size_t valid = valid_utf8_prefix(sv);
  if (valid == sv.size()) return std::string(sv);
  const auto* s = reinterpret_cast<const unsigned char*>(sv.data());
  size_t n = sv.size(), i = valid;
  std::string out(sv.substr(0, valid));
  out.reserve(sv.size() + 16);
  while (i < n) {
    if (s[i] < 0x80) {
      out.push_back(char(s[i++]));
      continue;
    }
    size_t start = i;
    if (step_non_ascii(s, n, i)) {
      out.append(sv.data() + start, i - start);
    } else {
      out.append("\xEF\xBF\xBD");
    }
  }
  return out;
}

bool ends_with_replacement_char(std::string_view s) {
  return s.size() >= 3 && s.substr(s.size() - 3) == "\xEF\xBF\xBD";
}

bool is_whitespace(char32_t c) {
  if (c < 0x80) return (c >= 0x09 && c <= 0x0D) || c == 0x20;
  switch (c) {
    case 0x85: case 0xA0: case 0x1680: case 0x2028: case 0x2029: case 0x202F: case 0x205F: case 0x3000:
      return true;
    default:
      return c >= 0x2000 && c <= 0x200A;
  }
}

namespace {
utf8proc_category_t category(char32_t c) { return utf8proc_category(utf8proc_int32_t(c)); }
}  // namespace

bool is_word_char(char32_t c) {
  if (c < 0x80) return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
  if (c == 0x200C || c == 0x200D) return true;  // Join_Control
  // Other_Alphabetic characters outside L/M/N (circled and squared Latin letters).
  if ((c >= 0x24B6 && c <= 0x24E9) || (c >= 0x1F130 && c <= 0x1F149) || (c >= 0x1F150 && c <= 0x1F169) ||
      (c >= 0x1F170 && c <= 0x1F189))
    return true;
  switch (category(c)) {
    case UTF8PROC_CATEGORY_LU: case UTF8PROC_CATEGORY_LL: case UTF8PROC_CATEGORY_LT:
    case UTF8PROC_CATEGORY_LM: case UTF8PROC_CATEGORY_LO: case UTF8PROC_CATEGORY_NL:
    case UTF8PROC_CATEGORY_MN: case UTF8PROC_CATEGORY_MC: case UTF8PROC_CATEGORY_ME:
    case UTF8PROC_CATEGORY_ND: case UTF8PROC_CATEGORY_PC:
      return true;
    default:
      return false;
  }
}

bool is_numeric(char32_t c) {
  if (c < 0x80) return c >= '0' && c <= '9';
  auto cat = category(c);
  return cat == UTF8PROC_CATEGORY_ND || cat == UTF8PROC_CATEGORY_NL || cat == UTF8PROC_CATEGORY_NO;
}

bool is_punctuation(char32_t c) {
  if (c < 0x80) return (c >= 0x21 && c <= 0x2F) || (c >= 0x3A && c <= 0x40) || (c >= 0x5B && c <= 0x60) ||
                       (c >= 0x7B && c <= 0x7E);
  switch (category(c)) {
    case UTF8PROC_CATEGORY_PC: case UTF8PROC_CATEGORY_PD: case UTF8PROC_CATEGORY_PS: case UTF8PROC_CATEGORY_PE:
    case UTF8PROC_CATEGORY_PI: case UTF8PROC_CATEGORY_PF: case UTF8PROC_CATEGORY_PO:
      return true;
    default:
      return false;
  }
}

bool is_mark(char32_t c) {
  if (c < 0x300) return false;
  auto cat = category(c);
  return cat == UTF8PROC_CATEGORY_MN || cat == UTF8PROC_CATEGORY_MC || cat == UTF8PROC_CATEGORY_ME;
}

bool is_control_or_format(char32_t c) {
  auto cat = category(c);
  return cat == UTF8PROC_CATEGORY_CC || cat == UTF8PROC_CATEGORY_CF || cat == UTF8PROC_CATEGORY_CN ||
         cat == UTF8PROC_CATEGORY_CO || cat == UTF8PROC_CATEGORY_CS;
}

bool is_cjk_ideograph(char32_t c) {
  return (c >= 0x4E00 && c <= 0x9FFF) || (c >= 0x3400 && c <= 0x4DBF) || (c >= 0x20000 && c <= 0x2A6DF) ||
         (c >= 0x2A700 && c <= 0x2B73F) || (c >= 0x2B740 && c <= 0x2B81F) || (c >= 0x2B920 && c <= 0x2CEAF) ||
         (c >= 0xF900 && c <= 0xFAFF) || (c >= 0x2F800 && c <= 0x2FA1F);
}

void append_lowercase(std::string& out, char32_t c) {
  if (c < 0x80) {
    out.push_back(char(c >= 'A' && c <= 'Z' ? c + 32 : c));
    return;
  }
  if (c == 0x130) {  // the one unconditional multi-character lowercase mapping (SpecialCasing.txt)
    out.append("i\xCC\x87");
    return;
  }
  append_utf8(out, char32_t(utf8proc_tolower(utf8proc_int32_t(c))));
}

namespace {

int normal_form_options(NormalForm form) {
  switch (form) {
    case NormalForm::NFC: return UTF8PROC_STABLE | UTF8PROC_COMPOSE;
    case NormalForm::NFD: return UTF8PROC_STABLE | UTF8PROC_DECOMPOSE;
    case NormalForm::NFKC: return UTF8PROC_STABLE | UTF8PROC_COMPOSE | UTF8PROC_COMPAT;
    case NormalForm::NFKD: return UTF8PROC_STABLE | UTF8PROC_DECOMPOSE | UTF8PROC_COMPAT;
  }
  return 0;
}

void append_normalized(std::string& out, std::string_view s, int options) {
  utf8proc_uint8_t* buf = nullptr;
  utf8proc_ssize_t n = utf8proc_map(reinterpret_cast<const utf8proc_uint8_t*>(s.data()), utf8proc_ssize_t(s.size()),
                                    &buf, utf8proc_option_t(options));
  if (n < 0) fail("tokenizer: Unicode normalization failed: {}", utf8proc_errmsg(n));
  out.append(reinterpret_cast<const char*>(buf), size_t(n));
  std::free(buf);
}

// A character that every normal form leaves alone and that never interacts with its neighbours: a starter
// (combining class 0, not a mark, so nothing reorders across it and it is never the second of a
// composition) without a decomposition of the kind the form applies, and not Hangul (which composes
// algorithmically). Text splits before such a character without changing its normalization.
bool is_inert(char32_t c, bool compat) {
  if (c < 0x80) return true;
  if ((c >= 0x1100 && c <= 0x11FF) || (c >= 0xAC00 && c <= 0xD7A3) || (c >= 0xA960 && c <= 0xA97F) ||
      (c >= 0xD7B0 && c <= 0xD7FF))
    return false;
  const utf8proc_property_t* p = utf8proc_get_property(utf8proc_int32_t(c));
  if (p->combining_class != 0) return false;
  if (p->category == UTF8PROC_CATEGORY_MN || p->category == UTF8PROC_CATEGORY_MC || p->category == UTF8PROC_CATEGORY_ME)
    return false;
  if (p->decomp_seqindex != UINT16_MAX && (compat || p->decomp_type == 0)) return false;
  return true;
}

}  // namespace

std::string normalize_unicode_whole(std::string_view s, NormalForm form) {
  std::string out;
  append_normalized(out, s, normal_form_options(form));
  return out;
}

std::string normalize_unicode(std::string_view s, NormalForm form) {
  const int options = normal_form_options(form);
  const bool compat = form == NormalForm::NFKC || form == NormalForm::NFKD;
  // Only the stretches around characters that are not inert go through utf8proc: each stretch runs from
  // the inert character before it (which may compose with what follows) to the next inert character.
  std::string out;
  out.reserve(s.size());
  size_t copied = 0;       // s[0, copied) is in out
  size_t last_inert = 0;   // start of the latest inert character at or after `copied`
  bool have_inert = false;
  size_t i = 0, len = 0;
  while (i < s.size()) {
    if (static_cast<unsigned char>(s[i]) < 0x80) {
      last_inert = i++;
      have_inert = true;
      continue;
    }
    char32_t c = decode_utf8(s, i, len);
    if (is_inert(c, compat)) {
      last_inert = i;
      have_inert = true;
      i += len;
      continue;
    }
    size_t start = have_inert ? last_inert : copied;
    size_t end = i + len;
    while (end < s.size()) {
      size_t l = 0;
      char32_t d = decode_utf8(s, end, l);
      if (is_inert(d, compat)) break;
      end += l;
    }
    out.append(s.substr(copied, start - copied));
    append_normalized(out, s.substr(start, end - start), options);
    copied = i = end;
    have_inert = false;
  }
  out.append(s.substr(copied));
  return out;
}

}  // namespace roofline::tok
