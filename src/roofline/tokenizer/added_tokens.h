// Added tokens (tokenizer.json "added_tokens"), matched as HF's AddedVocabulary does: leftmost-longest
// over all contents, honouring single_word, lstrip and rstrip. Tokens with normalized=false are found in
// the raw text first; tokens with normalized=true are then found, by their normalized content, in the
// normalized text between those matches.
#pragma once
#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "roofline/tokenizer/regex.h"

namespace roofline::tok {

class Normalizer;

struct AddedToken {
  std::string content;
  int32_t id = -1;
  bool single_word = false;
  bool lstrip = false;
  bool rstrip = false;
  bool normalized = true;
  bool special = false;
};

// A stretch of text: an added token (id >= 0) or text to normalize / tokenize (id < 0).
struct Segment {
  uint32_t begin, end;
  int32_t id;
};

class AddedVocabulary {
 public:
  // Later tokens with the same content replace earlier ones.
  void add(AddedToken token);
  // Builds the matchers; the normalizer (may be null) normalizes the normalized=true contents.
  void build(const Normalizer* normalizer);

  bool empty() const { return tokens_.empty(); }
  bool has_normalized() const { return !normalized_.empty(); }
  // Splits text by the normalized=false tokens (the first pass, on raw text). Text segments may be empty.
  void split_raw(std::string_view text, std::vector<Segment>& out) const { raw_.split(text, tokens_, out); }
  // Splits normalized text by the normalized=true tokens (the second pass).
  void split_normalized(std::string_view text, std::vector<Segment>& out) const {
    normalized_.split(text, tokens_, out);
  }

  const AddedToken* by_id(int32_t id) const;
  std::optional<int32_t> id_of(std::string_view content) const;
  // HF's is_special_token: whether a token string is the content of a special added token.
  bool is_special_content(std::string_view token) const { return special_contents_.count(std::string(token)) > 0; }
  int32_t max_id() const { return max_id_; }

 private:
  // Leftmost-longest matcher over byte strings (a trie with a first-byte filter).
  class Matcher {
   public:
    void clear();
    void add(std::string_view pattern, size_t token_index);
    bool empty() const { return nodes_.size() <= 1; }
    // HF's AddedVocabulary::find_matches over `tokens`.
    void split(std::string_view text, const std::vector<AddedToken>& tokens, std::vector<Segment>& out) const;

   private:
    struct Node {
      std::vector<std::pair<uint8_t, uint32_t>> children;
      int64_t token = -1;  // index into tokens when a pattern ends here
    };
    // Leftmost-longest match at or after pos: (start, end, token index).
    bool find(std::string_view text, size_t pos, size_t& start, size_t& end, size_t& token) const;
    std::vector<Node> nodes_ = std::vector<Node>(1);
    std::array<bool, 256> first_byte_{};
    int single_first_byte_ = -1;  // the first byte of every pattern when they share one, else -1
  };

  std::vector<AddedToken> tokens_;
  std::unordered_map<std::string, size_t> by_content_;
  std::unordered_map<int32_t, size_t> by_id_;
  std::unordered_set<std::string> special_contents_;
  int32_t max_id_ = -1;
  Matcher raw_, normalized_;
};

}  // namespace roofline::tok
