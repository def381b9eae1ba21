#include "roofline/tokenizer/decoders.h"

#include <nlohmann/json.hpp>

#include "roofline/core/error.h"
#include "roofline/tokenizer/byte_level.h"
#include "roofline/tokenizer/json_util.h"
#include "roofline/tokenizer/regex.h"
#include "roofline/tokenizer/unicode.h"

namespace roofline::tok {

namespace {

constexpr std::string_view kReplacementChar = "\xEF\xBF\xBD";

class SequenceDecoder final : public Decoder {
 public:
  explicit SequenceDecoder(std::vector<std::unique_ptr<Decoder>> parts) : parts_(std::move(parts)) {}
  void decode_chain(std::vector<std::string>& tokens) const override {
    for (const auto& p : parts_) p->decode_chain(tokens);
  }

 private:
  std::vector<std::unique_ptr<Decoder>> parts_;
};

// Maps characters back to bytes (a token with any unmapped character keeps its own bytes), joins
// everything into one token and decodes it as UTF-8, lossily.
class ByteLevelDecoder final : public Decoder {
 public:
  void decode_chain(std::vector<std::string>& tokens) const override {
    const auto& map = ByteLevelMap::get();
    std::string bytes;
    for (const auto& t : tokens) {
      if (!map.unmap(t, bytes)) bytes.append(t);
    }
    tokens.assign(1, utf8_lossy(bytes));
  }
};

class ReplaceDecoder final : public Decoder {
 public:
  ReplaceDecoder(Pattern pattern, std::string content) : pattern_(std::move(pattern)), content_(std::move(content)) {}
  void decode_chain(std::vector<std::string>& tokens) const override {
    MatchScratch scratch;
    std::vector<Span> matches;
    for (auto& t : tokens) {
      matches.clear();
      pattern_.find_all(t, matches, scratch);
      if (matches.empty()) continue;
      std::string out;
      size_t last = 0;
      for (const Span& m : matches) {
        out.append(t, last, m.begin - last);
        out.append(content_);
        last = m.end;
      }
      out.append(t, last, std::string::npos);
      t = std::move(out);
    }
  }

 private:
  Pattern pattern_;
  std::string content_;
};

// Runs of <0xAB> tokens become their bytes as one token when they form valid UTF-8, else one U+FFFD per byte.
class ByteFallbackDecoder final : public Decoder {
 public:
  void decode_chain(std::vector<std::string>& tokens) const override {
    std::vector<std::string> out;
    out.reserve(tokens.size());
    std::string bytes;
    size_t count = 0;
    auto flush = [&]() {
      if (count == 0) return;
      if (is_valid_utf8(bytes)) {
        out.push_back(bytes);
      } else {
        for (size_t i = 0; i < count; ++i) out.emplace_back(kReplacementChar);
      }
      bytes.clear();
      count = 0;
    };
    for (auto& t : tokens) {
      int byte = parse_byte_token(t);
      if (byte >= 0) {
        bytes.push_back(char(byte));
        ++count;
        continue;
      }
      flush();
      out.push_back(std::move(t));
    }
    flush();
    tokens = std::move(out);
  }

 private:
  static int hex(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  }
  // "<0xAB>" -> 0xAB (u8::from_str_radix on the two characters), else -1.
  static int parse_byte_token(const std::string& t) {
    if (t.size() != 6 || t.compare(0, 3, "<0x") != 0 || t[5] != '>') return -1;
    if (t[3] == '+') return hex(t[4]);  // Rust accepts a leading '+'
    int hi = hex(t[3]), lo = hex(t[4]);
    return hi < 0 || lo < 0 ? -1 : hi * 16 + lo;
  }
};

class FuseDecoder final : public Decoder {
 public:
  void decode_chain(std::vector<std::string>& tokens) const override {
    std::string all;
    for (const auto& t : tokens) all += t;
    tokens.assign(1, std::move(all));
  }
};

// Removes up to `start` leading and `stop` trailing `content` characters from every token.
class StripDecoder final : public Decoder {
 public:
  StripDecoder(char32_t content, size_t start, size_t stop) : content_(content), start_(start), stop_(stop) {}
  void decode_chain(std::vector<std::string>& tokens) const override {
    for (auto& t : tokens) {
      size_t begin = 0, end = t.size(), len = 0;
      for (size_t k = 0; k < start_ && begin < t.size(); ++k) {
        if (decode_utf8(t, begin, len) != content_) break;
        begin += len;
      }
      for (size_t k = 0; k < stop_ && end > begin; ++k) {
        size_t s = prev_char_start(t, end);
        if (decode_utf8(t, s, len) != content_) break;
        end = s;
      }
      t = t.substr(begin, end - begin);
    }
  }

 private:
  char32_t content_;
  size_t start_, stop_;
};

// Replacement characters become spaces, except in the first token, where they are dropped (unless the
// prepend scheme is "never").
class MetaspaceDecoder final : public Decoder {
 public:
  MetaspaceDecoder(char32_t replacement, bool prepend) : replacement_(replacement), prepend_(prepend) {}
  void decode_chain(std::vector<std::string>& tokens) const override {
    for (size_t i = 0; i < tokens.size(); ++i) {
      std::string out;
      const std::string& t = tokens[i];
      size_t k = 0, len = 0;
      while (k < t.size()) {
        char32_t c = decode_utf8(t, k, len);
        if (c == replacement_) {
          if (!(i == 0 && prepend_)) out.push_back(' ');
        } else {
          out.append(t, k, len);
        }
        k += len;
      }
      tokens[i] = std::move(out);
    }
  }

 private:
  char32_t replacement_;
  bool prepend_;
};

class BpeSuffixDecoder final : public Decoder {
 public:
  explicit BpeSuffixDecoder(std::string suffix) : suffix_(std::move(suffix)) {}
  void decode_chain(std::vector<std::string>& tokens) const override {
    if (suffix_.empty()) return;
    for (size_t i = 0; i < tokens.size(); ++i) {
      const char* replacement = i + 1 == tokens.size() ? "" : " ";
      tokens[i] = replace_all(tokens[i], suffix_, replacement);
    }
  }
  static std::string replace_all(const std::string& s, const std::string& from, const std::string& to) {
    std::string out;
    size_t last = 0, pos = 0;
    while ((pos = s.find(from, last)) != std::string::npos) {
      out.append(s, last, pos - last);
      out += to;
      last = pos + from.size();
    }
    out.append(s, last, std::string::npos);
    return out;
  }

 private:
  std::string suffix_;
};

class WordPieceDecoder final : public Decoder {
 public:
  WordPieceDecoder(std::string prefix, bool cleanup) : prefix_(std::move(prefix)), cleanup_(cleanup) {}
  void decode_chain(std::vector<std::string>& tokens) const override {
    for (size_t i = 0; i < tokens.size(); ++i) {
      std::string& t = tokens[i];
      if (i != 0) {
        if (!prefix_.empty() && t.compare(0, prefix_.size(), prefix_) == 0) {
          t = t.substr(prefix_.size());
        } else {
          std::string spaced;
          spaced.reserve(t.size() + 1);
          spaced.push_back(' ');
          spaced.append(t);
          t = std::move(spaced);
        }
      }
      if (cleanup_) {
        static const std::pair<const char*, const char*> kRules[] = {
            {" .", "."},     {" ?", "?"},     {" !", "!"},          {" ,", ","},          {" ' ", "'"},  {" n't", "n't"},
            {" 'm", "'m"},   {" do not", " don't"}, {" 's", "'s"}, {" 've", "'ve"}, {" 're", "'re"}};
        for (const auto& [from, to] : kRules) t = BpeSuffixDecoder::replace_all(t, from, to);
      }
    }
  }

 private:
  std::string prefix_;
  bool cleanup_;
};


}  // namespace

std::unique_ptr<Decoder> make_byte_level_decoder() { return std::make_unique<ByteLevelDecoder>(); }

std::unique_ptr<Decoder> make_decoder(const nlohmann::json& j, const std::string& where) {
  if (j.is_null()) return nullptr;
  std::string type = json_type(j, where);
  if (type == "Sequence") {
    const auto& list = json_field(j, "decoders", where);
    if (!list.is_array()) fail("{}: Sequence 'decoders' must be a list", where);
    std::vector<std::unique_ptr<Decoder>> parts;
    for (size_t i = 0; i < list.size(); ++i) {
      auto part = make_decoder(list[i], fmt::format("{}[{}]", where, i));
      if (part) parts.push_back(std::move(part));
    }
    return std::make_unique<SequenceDecoder>(std::move(parts));
  }
  if (type == "ByteLevel") return make_byte_level_decoder();
  if (type == "ByteFallback") return std::make_unique<ByteFallbackDecoder>();
  if (type == "Fuse") return std::make_unique<FuseDecoder>();
  if (type == "Replace") {
    return std::make_unique<ReplaceDecoder>(Pattern::from_json(json_field(j, "pattern", where), where + " Replace"),
                                            json_string(j, "content", where));
  }
  if (type == "Strip") {
    int64_t start = json_int(j, "start", where), stop = json_int(j, "stop", where);
    if (start < 0 || stop < 0) fail("{}: Strip start/stop must not be negative", where);
    return std::make_unique<StripDecoder>(json_char(j, "content", where),
                                          size_t(start), size_t(stop));
  }
  if (type == "Metaspace") {
    char32_t replacement = json_char(j, "replacement", where, "\xE2\x96\x81");
    bool prepend = json_bool(j, "add_prefix_space", where, true);
    if (j.contains("prepend_scheme") && !j["prepend_scheme"].is_null())
      prepend = json_string(j, "prepend_scheme", where) != "never";
    return std::make_unique<MetaspaceDecoder>(replacement, prepend);
  }
  if (type == "BPEDecoder") return std::make_unique<BpeSuffixDecoder>(json_string_or(j, "suffix", where, "</w>"));
  if (type == "WordPiece") {
    return std::make_unique<WordPieceDecoder>(json_string_or(j, "prefix", where, "##"),
                                              json_bool(j, "cleanup", where, true));
  }
  fail("{}: decoder type '{}' is not supported (supported: Sequence, ByteLevel, Replace, ByteFallback, Fuse, Strip, "
       "Metaspace, BPEDecoder, WordPiece)",
       where, type);
}

}  // namespace roofline::tok
