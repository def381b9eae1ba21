#include "roofline/tokenizer/pre_tokenizers.h"

#include <algorithm>

#include <nlohmann/json.hpp>

#include "roofline/core/error.h"
#include "roofline/tokenizer/byte_level.h"
#include "roofline/tokenizer/json_util.h"
#include "roofline/tokenizer/unicode.h"

namespace roofline::tok {

// The GPT-2 pre-tokenization regex of HF's ByteLevel pre-tokenizer (use_regex = true).
constexpr std::string_view kGpt2Regex =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

void PreTokenized::reset(std::string_view segment, bool at_origin) {
  text.assign(segment);
  pieces.clear();
  if (!segment.empty()) pieces.push_back({0, uint32_t(segment.size()), at_origin});
  bytes_unmapped = false;
}

void PreTokenized::map_bytes() {
  if (!bytes_unmapped) return;
  bytes_unmapped = false;
  const auto& map = ByteLevelMap::get();
  std::string mapped;
  for (Piece& p : pieces) {
    mapped.clear();
    map.map_bytes(view(p), mapped);
    p.begin = uint32_t(text.size());
    text.append(mapped);
    p.end = uint32_t(text.size());
  }
}

namespace {

// Events from pattern matches inside a piece of length len (HF: Pattern::find_matches, then Invert).
void events_from_spans(uint32_t len, const std::vector<Span>& matches, bool invert, std::vector<SplitEvent>& ev) {
  ev.clear();
  uint32_t prev = 0;
  for (const Span& m : matches) {
    if (prev != m.begin) ev.push_back({prev, m.begin, invert});
    ev.push_back({m.begin, m.end, !invert});
    prev = m.end;
  }
  if (prev != len) ev.push_back({prev, len, invert});
}

// Events from a character predicate: every matching character is its own match (HF's Fn(char) pattern).
template <typename Pred>
void events_from_chars(std::string_view s, Pred&& pred, std::vector<SplitEvent>& ev) {
  ev.clear();
  uint32_t last = 0;
  size_t i = 0, len = 0;
  while (i < s.size()) {
    char32_t c = decode_utf8(s, i, len);
    if (pred(c)) {
      if (last < i) ev.push_back({last, uint32_t(i), false});
      ev.push_back({uint32_t(i), uint32_t(i + len), true});
      last = uint32_t(i + len);
    }
    i += len;
  }
  if (s.size() > last) ev.push_back({last, uint32_t(s.size()), false});
}

// HF's NormalizedString::split: folds events by behavior and emits the surviving non-empty pieces.
void apply_behavior(const Piece& parent, std::vector<SplitEvent>& ev, SplitBehavior behavior,
                    std::vector<Piece>& out) {
  auto emit = [&](uint32_t b, uint32_t e) {
    if (b < e) out.push_back({parent.begin + b, parent.begin + e, parent.at_origin && b == 0});
  };
  switch (behavior) {
    case SplitBehavior::Isolated:
      for (const auto& e : ev) emit(e.begin, e.end);
      return;
    case SplitBehavior::Removed:
      for (const auto& e : ev)
        if (!e.is_match) emit(e.begin, e.end);
      return;
    case SplitBehavior::Contiguous:
    case SplitBehavior::MergedWithPrevious: {
      std::vector<SplitEvent> acc;
      bool previous = false;
      for (const auto& e : ev) {
        bool merge = behavior == SplitBehavior::Contiguous ? e.is_match == previous : e.is_match && !previous;
        if (merge && !acc.empty()) {
          acc.back().end = e.end;
        } else {
          acc.push_back(e);
        }
        previous = e.is_match;
      }
      for (const auto& e : acc) emit(e.begin, e.end);
      return;
    }
    case SplitBehavior::MergedWithNext: {
      std::vector<SplitEvent> acc;
      bool previous = false;
      for (auto it = ev.rbegin(); it != ev.rend(); ++it) {
        if (it->is_match && !previous && !acc.empty()) {
          acc.back().begin = it->begin;
        } else {
          acc.push_back(*it);
        }
        previous = it->is_match;
      }
      for (auto it = acc.rbegin(); it != acc.rend(); ++it) emit(it->begin, it->end);
      return;
    }
  }
}

// Splits every piece with events produced by make_events(piece view, events).
template <typename MakeEvents>
void split_pieces(PreTokenized& pt, PreTokenizeScratch& scratch, SplitBehavior behavior, MakeEvents&& make_events) {
  scratch.pieces.clear();
  for (const Piece& p : pt.pieces) {
    make_events(pt.view(p), scratch.events);
    apply_behavior(p, scratch.events, behavior, scratch.pieces);
  }
  pt.pieces.swap(scratch.pieces);
}

SplitBehavior parse_behavior(const nlohmann::json& j, const std::string& where, SplitBehavior fallback) {
  if (!j.contains("behavior") || j["behavior"].is_null()) return fallback;
  std::string b = json_string(j, "behavior", where);
  if (b == "Removed") return SplitBehavior::Removed;
  if (b == "Isolated") return SplitBehavior::Isolated;
  if (b == "MergedWithPrevious") return SplitBehavior::MergedWithPrevious;
  if (b == "MergedWithNext") return SplitBehavior::MergedWithNext;
  if (b == "Contiguous") return SplitBehavior::Contiguous;
  fail("{}: unknown split behavior '{}' (expected Removed, Isolated, MergedWithPrevious, MergedWithNext or "
       "Contiguous)",
       where, b);
}

class SequencePreTokenizer final : public PreTokenizer {
 public:
  explicit SequencePreTokenizer(std::vector<std::unique_ptr<PreTokenizer>> parts) : parts_(std::move(parts)) {}
  void pre_tokenize(PreTokenized& pt, PreTokenizeScratch& scratch) const override {
    for (const auto& p : parts_) p->pre_tokenize(pt, scratch);
  }
  bool ends_byte_level() const override { return !parts_.empty() && parts_.back()->ends_byte_level(); }

 private:
  std::vector<std::unique_ptr<PreTokenizer>> parts_;
};

class SplitPreTokenizer final : public PreTokenizer {
 public:
  SplitPreTokenizer(Pattern pattern, SplitBehavior behavior, bool invert)
      : pattern_(std::move(pattern)), behavior_(behavior), invert_(invert) {}
  void pre_tokenize(PreTokenized& pt, PreTokenizeScratch& scratch) const override {
    pt.map_bytes();
    scratch.pieces.clear();
    for (const Piece& p : pt.pieces) {
      std::string_view s = pt.view(p);
      scratch.spans.clear();
      pattern_.find_all(s, scratch.spans, scratch.match);
      if (behavior_ == SplitBehavior::Isolated) {  // fast path: every stretch is a piece
        uint32_t prev = 0;
        for (const Span& m : scratch.spans) {
          if (prev < m.begin) scratch.pieces.push_back({p.begin + prev, p.begin + m.begin, p.at_origin && prev == 0});
          if (m.begin < m.end)
            scratch.pieces.push_back({p.begin + m.begin, p.begin + m.end, p.at_origin && m.begin == 0});
          prev = m.end;
        }
        if (prev < s.size()) scratch.pieces.push_back({p.begin + prev, p.end, p.at_origin && prev == 0});
        continue;
      }
      events_from_spans(uint32_t(s.size()), scratch.spans, invert_, scratch.events);
      apply_behavior(p, scratch.events, behavior_, scratch.pieces);
    }
    pt.pieces.swap(scratch.pieces);
  }

 private:
  Pattern pattern_;
  SplitBehavior behavior_;
  bool invert_;
};

class ByteLevelPreTokenizer final : public PreTokenizer {
 public:
  ByteLevelPreTokenizer(bool add_prefix_space, bool use_regex) : add_prefix_space_(add_prefix_space) {
    if (use_regex) regex_ = std::make_unique<Regex>(kGpt2Regex, "ByteLevel pre-tokenizer");
  }
  void pre_tokenize(PreTokenized& pt, PreTokenizeScratch& scratch) const override {
    pt.map_bytes();
    if (add_prefix_space_) {
      for (Piece& p : pt.pieces) {
        if (pt.text[p.begin] == ' ') continue;
        scratch.buffer.assign(" ");
        scratch.buffer.append(pt.view(p));
        p.begin = uint32_t(pt.text.size());
        pt.text.append(scratch.buffer);
        p.end = uint32_t(pt.text.size());
      }
    }
    if (regex_) {
      scratch.pieces.clear();
      for (const Piece& p : pt.pieces) {
        std::string_view s = pt.view(p);
        scratch.spans.clear();
        regex_->find_all(s, scratch.spans, scratch.match);
        uint32_t prev = 0;
        for (const Span& m : scratch.spans) {
          if (prev < m.begin) scratch.pieces.push_back({p.begin + prev, p.begin + m.begin, p.at_origin && prev == 0});
          if (m.begin < m.end)
            scratch.pieces.push_back({p.begin + m.begin, p.begin + m.end, p.at_origin && m.begin == 0});
          prev = m.end;
        }
        if (prev < s.size()) scratch.pieces.push_back({p.begin + prev, p.end, p.at_origin && prev == 0});
      }
      pt.pieces.swap(scratch.pieces);
    }
    pt.bytes_unmapped = true;
  }
  bool ends_byte_level() const override { return true; }

 private:
  bool add_prefix_space_;
  std::unique_ptr<Regex> regex_;
};

enum class PrependScheme { Always, First, Never };

class MetaspacePreTokenizer final : public PreTokenizer {
 public:
  MetaspacePreTokenizer(char32_t replacement, PrependScheme scheme, bool split)
      : replacement_(replacement), scheme_(scheme), split_(split) {
    append_utf8(replacement_utf8_, replacement);
  }
  void pre_tokenize(PreTokenized& pt, PreTokenizeScratch& scratch) const override {
    pt.map_bytes();
    scratch.pieces.clear();
    for (Piece p : pt.pieces) {
      std::string& buf = scratch.buffer;
      buf.clear();
      for (char c : pt.view(p)) {
        if (c == ' ') {
          buf.append(replacement_utf8_);
        } else {
          buf.push_back(c);
        }
      }
      bool starts = buf.compare(0, replacement_utf8_.size(), replacement_utf8_) == 0;
      if (!starts && (scheme_ == PrependScheme::Always || (scheme_ == PrependScheme::First && p.at_origin)))
        buf.insert(0, replacement_utf8_);
      p.begin = uint32_t(pt.text.size());
      pt.text.append(buf);
      p.end = uint32_t(pt.text.size());
      if (!split_) {
        if (p.begin < p.end) scratch.pieces.push_back(p);
        continue;
      }
      events_from_chars(pt.view(p), [&](char32_t c) { return c == replacement_; }, scratch.events);
      apply_behavior(p, scratch.events, SplitBehavior::MergedWithNext, scratch.pieces);
    }
    pt.pieces.swap(scratch.pieces);
  }

 private:
  char32_t replacement_;
  std::string replacement_utf8_;
  PrependScheme scheme_;
  bool split_;
};

// Whitespace: the pieces are the matches of \w+|[^\w\s]+ (whitespace is dropped).
class WhitespacePreTokenizer final : public PreTokenizer {
 public:
  void pre_tokenize(PreTokenized& pt, PreTokenizeScratch& scratch) const override {
    pt.map_bytes();
    scratch.pieces.clear();
    for (const Piece& p : pt.pieces) {
      std::string_view s = pt.view(p);
      size_t i = 0, len = 0;
      while (i < s.size()) {
        char32_t c = decode_utf8(s, i, len);
        if (is_whitespace(c)) {
          i += len;
          continue;
        }
        bool word = is_word_char(c);
        size_t start = i;
        i += len;
        while (i < s.size()) {
          char32_t d = decode_utf8(s, i, len);
          bool same = word ? is_word_char(d) : (!is_word_char(d) && !is_whitespace(d));
          if (!same) break;
          i += len;
        }
        scratch.pieces.push_back({p.begin + uint32_t(start), p.begin + uint32_t(i), p.at_origin && start == 0});
      }
    }
    pt.pieces.swap(scratch.pieces);
  }
};

// Splits on a character class with a fixed behavior (WhitespaceSplit, Digits, Punctuation, CharDelimiterSplit).
template <typename Pred>
class CharSplitPreTokenizer final : public PreTokenizer {
 public:
  CharSplitPreTokenizer(Pred pred, SplitBehavior behavior) : pred_(pred), behavior_(behavior) {}
  void pre_tokenize(PreTokenized& pt, PreTokenizeScratch& scratch) const override {
    pt.map_bytes();
    split_pieces(pt, scratch, behavior_,
                 [&](std::string_view s, std::vector<SplitEvent>& ev) { events_from_chars(s, pred_, ev); });
  }

 private:
  Pred pred_;
  SplitBehavior behavior_;
};

template <typename Pred>
std::unique_ptr<PreTokenizer> char_split(Pred pred, SplitBehavior behavior) {
  return std::make_unique<CharSplitPreTokenizer<Pred>>(pred, behavior);
}


}  // namespace

std::unique_ptr<PreTokenizer> make_byte_level_pre_tokenizer(bool add_prefix_space, bool use_regex) {
  return std::make_unique<ByteLevelPreTokenizer>(add_prefix_space, use_regex);
}

std::unique_ptr<PreTokenizer> make_pre_tokenizer(const nlohmann::json& j, const std::string& where) {
  if (j.is_null()) return nullptr;
  std::string type = json_type(j, where);
  if (type == "Sequence") {
    const auto& list = json_field(j, "pretokenizers", where);
    if (!list.is_array()) fail("{}: Sequence 'pretokenizers' must be a list", where);
    std::vector<std::unique_ptr<PreTokenizer>> parts;
    for (size_t i = 0; i < list.size(); ++i) {
      auto part = make_pre_tokenizer(list[i], fmt::format("{}[{}]", where, i));
      if (part) parts.push_back(std::move(part));
    }
    return std::make_unique<SequencePreTokenizer>(std::move(parts));
  }
  if (type == "Split") {
    return std::make_unique<SplitPreTokenizer>(Pattern::from_json(json_field(j, "pattern", where), where + " Split"),
                                               parse_behavior(j, where, SplitBehavior::Removed),
                                               json_bool(j, "invert", where, false));
  }
  if (type == "ByteLevel") {
    return make_byte_level_pre_tokenizer(json_bool(j, "add_prefix_space", where, true),
                                         json_bool(j, "use_regex", where, true));
  }
  if (type == "Metaspace") {
    char32_t replacement = json_char(j, "replacement", where, "\xE2\x96\x81");
    PrependScheme scheme = PrependScheme::Always;
    bool has_scheme = j.contains("prepend_scheme") && !j["prepend_scheme"].is_null();
    if (has_scheme) {
      std::string s = json_string(j, "prepend_scheme", where);
      if (s == "always") {
        scheme = PrependScheme::Always;
      } else if (s == "first") {
        scheme = PrependScheme::First;
      } else if (s == "never") {
        scheme = PrependScheme::Never;
      } else {
        fail("{}: unknown Metaspace prepend_scheme '{}' (expected always, first or never)", where, s);
      }
    }
    if (!json_bool(j, "add_prefix_space", where, true)) {
      if (has_scheme && scheme != PrependScheme::Never)
        fail("{}: Metaspace add_prefix_space=false contradicts prepend_scheme", where);
      scheme = PrependScheme::Never;
    }
    return std::make_unique<MetaspacePreTokenizer>(replacement, scheme, json_bool(j, "split", where, true));
  }
  if (type == "Whitespace") return std::make_unique<WhitespacePreTokenizer>();
  if (type == "WhitespaceSplit") return char_split([](char32_t c) { return is_whitespace(c); }, SplitBehavior::Removed);
  if (type == "Digits") {
    bool individual = json_bool(j, "individual_digits", where, false);
    return char_split([](char32_t c) { return is_numeric(c); },
                      individual ? SplitBehavior::Isolated : SplitBehavior::Contiguous);
  }
  if (type == "Punctuation") {
    return char_split([](char32_t c) { return is_punctuation(c); }, parse_behavior(j, where, SplitBehavior::Isolated));
  }
  if (type == "CharDelimiterSplit") {
    char32_t delimiter = json_char(j, "delimiter", where);
    return char_split([delimiter](char32_t c) { return c == delimiter; }, SplitBehavior::Removed);
  }
  if (type == "BertPreTokenizer") {
    std::vector<std::unique_ptr<PreTokenizer>> parts;
    parts.push_back(char_split([](char32_t c) { return is_whitespace(c); }, SplitBehavior::Removed));
    parts.push_back(char_split([](char32_t c) { return is_punctuation(c); }, SplitBehavior::Isolated));
    return std::make_unique<SequencePreTokenizer>(std::move(parts));
  }
  fail("{}: pre-tokenizer type '{}' is not supported (supported: Sequence, Split, ByteLevel, Metaspace, Whitespace, "
       "WhitespaceSplit, Digits, Punctuation, CharDelimiterSplit, BertPreTokenizer)",
       where, type);
}

}  // namespace roofline::tok
