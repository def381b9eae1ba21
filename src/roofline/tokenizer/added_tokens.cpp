#include "roofline/tokenizer/added_tokens.h"

#include <algorithm>
#include <cstring>

#include "roofline/tokenizer/normalizers.h"
#include "roofline/tokenizer/unicode.h"

namespace roofline::tok {

namespace {

// Rust regex \w$ / ^\w, \s*$ and ^\s* on valid UTF-8, as HF's added_vocabulary.rs uses them.
bool ends_with_word(std::string_view s) {
  if (s.empty()) return false;
  size_t len = 0;
  return is_word_char(decode_utf8(s, prev_char_start(s, s.size()), len));
}
bool starts_with_word(std::string_view s) {
  if (s.empty()) return false;
  size_t len = 0;
  return is_word_char(decode_utf8(s, 0, len));
}
size_t trailing_space_start(std::string_view s) {
  size_t end = s.size(), len = 0;
  while (end > 0) {
    size_t start = prev_char_start(s, end);
    if (!is_whitespace(decode_utf8(s, start, len))) break;
    end = start;
  }
  return end;
}
size_t leading_space_end(std::string_view s) {
  size_t i = 0, len = 0;
  while (i < s.size() && is_whitespace(decode_utf8(s, i, len))) i += len;
  return i;
}

}  // namespace

void AddedVocabulary::add(AddedToken token) {
  if (token.content.empty()) return;
  auto it = by_content_.find(token.content);
  size_t index;
  if (it != by_content_.end()) {
    index = it->second;
    by_id_.erase(tokens_[index].id);
    tokens_[index] = std::move(token);
  } else {
    index = tokens_.size();
    by_content_.emplace(token.content, index);
    tokens_.push_back(std::move(token));
  }
  const AddedToken& t = tokens_[index];
  by_id_[t.id] = index;
  if (t.special) special_contents_.insert(t.content);
  max_id_ = std::max(max_id_, t.id);
}

void AddedVocabulary::build(const Normalizer* normalizer) {
  raw_.clear();
  normalized_.clear();
  MatchScratch scratch;
  for (size_t i = 0; i < tokens_.size(); ++i) {
    const AddedToken& t = tokens_[i];
    if (!t.normalized) {
      raw_.add(t.content, i);
      continue;
    }
    std::string pattern = t.content;
    if (normalizer) normalizer->normalize(pattern, scratch);
    if (!pattern.empty()) normalized_.add(pattern, i);
  }
}

const AddedToken* AddedVocabulary::by_id(int32_t id) const {
  auto it = by_id_.find(id);
  return it == by_id_.end() ? nullptr : &tokens_[it->second];
}

std::optional<int32_t> AddedVocabulary::id_of(std::string_view content) const {
  auto it = by_content_.find(std::string(content));
  if (it == by_content_.end()) return std::nullopt;
  return tokens_[it->second].id;
}

void AddedVocabulary::Matcher::clear() {
  nodes_.assign(1, Node{});
  first_byte_.fill(false);
  single_first_byte_ = -1;
}

void AddedVocabulary::Matcher::add(std::string_view pattern, size_t token_index) {
  unsigned char first = static_cast<unsigned char>(pattern[0]);
  if (nodes_.size() == 1) {
    single_first_byte_ = first;
  } else if (single_first_byte_ != int(first)) {
    single_first_byte_ = -1;
  }
  first_byte_[first] = true;
  uint32_t node = 0;
  for (unsigned char c : pattern) {
    auto& children = nodes_[node].children;
    auto it = std::find_if(children.begin(), children.end(), [c](const auto& e) { return e.first == c; });
    if (it != children.end()) {
      node = it->second;
    } else {
      uint32_t child = uint32_t(nodes_.size());
      nodes_[node].children.emplace_back(c, child);
      nodes_.emplace_back();
      node = child;
    }
  }
  // The same pattern twice (e.g. two normalized contents that normalize alike): the first one wins.
  if (nodes_[node].token < 0) nodes_[node].token = int64_t(token_index);
}

bool AddedVocabulary::Matcher::find(std::string_view text, size_t pos, size_t& start, size_t& end,
                                    size_t& token) const {
  for (size_t s = pos; s < text.size(); ++s) {
    if (single_first_byte_ >= 0) {  // all patterns start with one byte (e.g. '<'): jump with memchr
      const void* hit = std::memchr(text.data() + s, single_first_byte_, text.size() - s);
      if (!hit) return false;
      s = size_t(static_cast<const char*>(hit) - text.data());
    } else if (!first_byte_[static_cast<unsigned char>(text[s])]) {
      continue;
    }
    uint32_t node = 0;
    int64_t best = -1;
    size_t best_end = 0;
    for (size_t i = s; i < text.size(); ++i) {
      unsigned char c = static_cast<unsigned char>(text[i]);
      const auto& children = nodes_[node].children;
      auto it = std::find_if(children.begin(), children.end(), [c](const auto& e) { return e.first == c; });
      if (it == children.end()) break;
      node = it->second;
      if (nodes_[node].token >= 0) {
        best = nodes_[node].token;
        best_end = i + 1;
      }
    }
    if (best >= 0) {
      start = s;
      end = best_end;
      token = size_t(best);
      return true;
    }
  }
  return false;
}

void AddedVocabulary::Matcher::split(std::string_view text, const std::vector<AddedToken>& tokens,
                                     std::vector<Segment>& out) const {
  out.clear();
  size_t start_offset = 0, pos = 0;
  size_t m_start = 0, m_end = 0, index = 0;
  while (!empty() && find(text, pos, m_start, m_end, index)) {
    pos = m_end;  // the matcher's iteration continues after the match, whatever happens to it below
    const AddedToken& t = tokens[index];
    size_t start = m_start, stop = m_end;
    if (t.single_word) {
      bool start_space = start == 0 || !ends_with_word(text.substr(0, start));
      bool stop_space = stop == text.size() || !starts_with_word(text.substr(stop));
      if (!start_space || !stop_space) continue;
    }
    if (t.lstrip) start = std::max(trailing_space_start(text.substr(0, start)), start_offset);
    if (t.rstrip) stop += leading_space_end(text.substr(stop));
    if (start_offset < start) out.push_back({uint32_t(start_offset), uint32_t(start), -1});
    out.push_back({uint32_t(start), uint32_t(stop), t.id});
    start_offset = stop;
  }
  if (start_offset < text.size()) out.push_back({uint32_t(start_offset), uint32_t(text.size()), -1});
}

}  // namespace roofline::tok
