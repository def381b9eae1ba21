#include "roofline/tokenizer/normalizers.h"

#include <vector>

#include <nlohmann/json.hpp>

#include "roofline/core/error.h"
#include "roofline/tokenizer/byte_level.h"
#include "roofline/tokenizer/json_util.h"
#include "roofline/tokenizer/unicode.h"

namespace roofline::tok {

namespace {

// Applies f(code point, out) to every character of text, building a new string.
template <typename F>
void map_chars(std::string& text, F&& f) {
  std::string out;
  out.reserve(text.size());
  size_t i = 0, len = 0;
  while (i < text.size()) {
    char32_t c = decode_utf8(text, i, len);
    f(c, out);
    i += len;
  }
  text = std::move(out);
}

class SequenceNormalizer final : public Normalizer {
 public:
  explicit SequenceNormalizer(std::vector<std::unique_ptr<Normalizer>> parts) : parts_(std::move(parts)) {}
  void normalize(std::string& text, MatchScratch& scratch) const override {
    for (const auto& p : parts_) p->normalize(text, scratch);
  }

 private:
  std::vector<std::unique_ptr<Normalizer>> parts_;
};

class UnicodeNormalizer final : public Normalizer {
 public:
  explicit UnicodeNormalizer(NormalForm form) : form_(form) {}
  void normalize(std::string& text, MatchScratch&) const override { text = normalize_unicode(text, form_); }

 private:
  NormalForm form_;
};

class LowercaseNormalizer final : public Normalizer {
 public:
  void normalize(std::string& text, MatchScratch&) const override {
    map_chars(text, [](char32_t c, std::string& out) { append_lowercase(out, c); });
  }
};

class PrependNormalizer final : public Normalizer {
 public:
  explicit PrependNormalizer(std::string prefix) : prefix_(std::move(prefix)) {}
  void normalize(std::string& text, MatchScratch&) const override {
    if (!text.empty()) text.insert(0, prefix_);
  }

 private:
  std::string prefix_;
};

class ReplaceNormalizer final : public Normalizer {
 public:
  ReplaceNormalizer(Pattern pattern, std::string content) : pattern_(std::move(pattern)), content_(std::move(content)) {}
  void normalize(std::string& text, MatchScratch& scratch) const override {
    std::vector<Span> matches;
    pattern_.find_all(text, matches, scratch);
    if (matches.empty()) return;
    std::string out;
    out.reserve(text.size() + matches.size() * content_.size());
    size_t last = 0;
    for (const Span& m : matches) {
      out.append(text, last, m.begin - last);
      out.append(content_);
      last = m.end;
    }
    out.append(text, last, std::string::npos);
    text = std::move(out);
  }

 private:
  Pattern pattern_;
  std::string content_;
};

class StripNormalizer final : public Normalizer {
 public:
  StripNormalizer(bool left, bool right) : left_(left), right_(right) {}
  void normalize(std::string& text, MatchScratch&) const override {
    size_t begin = 0, end = text.size(), len = 0;
    if (left_) {
      while (begin < end) {
        char32_t c = decode_utf8(text, begin, len);
        if (!is_whitespace(c)) break;
        begin += len;
      }
    }
    if (right_) {
      while (end > begin) {
        size_t start = prev_char_start(text, end);
        if (!is_whitespace(decode_utf8(text, start, len))) break;
        end = start;
      }
    }
    text = text.substr(begin, end - begin);
  }

 private:
  bool left_, right_;
};

class StripAccentsNormalizer final : public Normalizer {
 public:
  void normalize(std::string& text, MatchScratch&) const override {
    map_chars(text, [](char32_t c, std::string& out) {
      if (!is_mark(c)) append_utf8(out, c);
    });
  }
};

// SentencePiece's NMT normalization: drop some control characters, map other spaces to ' '.
class NmtNormalizer final : public Normalizer {
 public:
  void normalize(std::string& text, MatchScratch&) const override {
    map_chars(text, [](char32_t c, std::string& out) {
      if ((c >= 0x1 && c <= 0x8) || c == 0xB || (c >= 0xE && c <= 0x1F) || c == 0x7F || c == 0x8F || c == 0x9F) return;
      bool space = c == 0x9 || c == 0xA || c == 0xC || c == 0xD || c == 0x1680 || (c >= 0x200B && c <= 0x200F) ||
                   c == 0x2028 || c == 0x2029 || c == 0x2581 || c == 0xFEFF || c == 0xFFFD;
      append_utf8(out, space ? U' ' : c);
    });
  }
};

class BertNormalizer final : public Normalizer {
 public:
  BertNormalizer(bool clean_text, bool chinese, bool strip_accents, bool lowercase)
      : clean_text_(clean_text), chinese_(chinese), strip_accents_(strip_accents), lowercase_(lowercase) {}
  void normalize(std::string& text, MatchScratch&) const override {
    if (clean_text_) {
      map_chars(text, [](char32_t c, std::string& out) {
        bool control = c != '\t' && c != '\n' && c != '\r' && is_control_or_format(c);
        if (c == 0 || c == 0xFFFD || control) return;
        bool space = c == '\t' || c == '\n' || c == '\r' || is_whitespace(c);
        append_utf8(out, space ? U' ' : c);
      });
    }
    if (chinese_) {
      map_chars(text, [](char32_t c, std::string& out) {
        if (is_cjk_ideograph(c)) {
          out.push_back(' ');
          append_utf8(out, c);
          out.push_back(' ');
        } else {
          append_utf8(out, c);
        }
      });
    }
    if (strip_accents_) {
      text = normalize_unicode(text, NormalForm::NFD);
      map_chars(text, [](char32_t c, std::string& out) {
        if (!is_mark(c)) append_utf8(out, c);
      });
    }
    if (lowercase_) map_chars(text, [](char32_t c, std::string& out) { append_lowercase(out, c); });
  }

 private:
  bool clean_text_, chinese_, strip_accents_, lowercase_;
};

class ByteLevelNormalizer final : public Normalizer {
 public:
  void normalize(std::string& text, MatchScratch&) const override {
    std::string out;
    out.reserve(text.size() * 2);
    ByteLevelMap::get().map_bytes(text, out);
    text = std::move(out);
  }
};

}  // namespace

std::unique_ptr<Normalizer> make_normalizer(const nlohmann::json& j, const std::string& where) {
  if (j.is_null()) return nullptr;
  std::string type = json_type(j, where);
  if (type == "Sequence") {
    std::vector<std::unique_ptr<Normalizer>> parts;
    const auto& list = json_field(j, "normalizers", where);
    if (!list.is_array()) fail("{}: Sequence 'normalizers' must be a list", where);
    for (size_t i = 0; i < list.size(); ++i) {
      auto part = make_normalizer(list[i], fmt::format("{}[{}]", where, i));
      if (part) parts.push_back(std::move(part));
    }
    return std::make_unique<SequenceNormalizer>(std::move(parts));
  }
  if (type == "NFC") return std::make_unique<UnicodeNormalizer>(NormalForm::NFC);
  if (type == "NFD") return std::make_unique<UnicodeNormalizer>(NormalForm::NFD);
  if (type == "NFKC") return std::make_unique<UnicodeNormalizer>(NormalForm::NFKC);
  if (type == "NFKD") return std::make_unique<UnicodeNormalizer>(NormalForm::NFKD);
  if (type == "Lowercase") return std::make_unique<LowercaseNormalizer>();
  if (type == "StripAccents") return std::make_unique<StripAccentsNormalizer>();
  if (type == "Nmt") return std::make_unique<NmtNormalizer>();
  if (type == "ByteLevel") return std::make_unique<ByteLevelNormalizer>();
  if (type == "Prepend") return std::make_unique<PrependNormalizer>(json_string(j, "prepend", where));
  if (type == "Replace") {
    return std::make_unique<ReplaceNormalizer>(Pattern::from_json(json_field(j, "pattern", where), where + " Replace"),
                                               json_string(j, "content", where));
  }
  if (type == "Strip") {
    return std::make_unique<StripNormalizer>(json_bool(j, "strip_left", where, true),
                                             json_bool(j, "strip_right", where, true));
  }
  if (type == "BertNormalizer") {
    bool lowercase = json_bool(j, "lowercase", where, true);
    bool strip_accents = lowercase;
    if (j.contains("strip_accents") && !j["strip_accents"].is_null()) strip_accents = json_bool(j, "strip_accents", where, lowercase);
    return std::make_unique<BertNormalizer>(json_bool(j, "clean_text", where, true),
                                            json_bool(j, "handle_chinese_chars", where, true), strip_accents, lowercase);
  }
  fail("{}: normalizer type '{}' is not supported (supported: Sequence, NFC, NFD, NFKC, NFKD, Lowercase, Prepend, "
       "Replace, Strip, StripAccents, Nmt, BertNormalizer, ByteLevel)",
       where, type);
}

}  // namespace roofline::tok
