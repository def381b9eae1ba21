// Regular expressions for tokenizer.json patterns: PCRE2 (UTF + UCP, JIT compiled) with the pattern
// dialect and match iteration of Oniguruma (Ruby syntax), which HF `tokenizers` uses for Split,
// Replace and the GPT-2 ByteLevel regex.
//
// Dialect differences handled by rewriting the pattern: \s and \S mean Unicode White_Space (PCRE2's \s
// also takes U+180E), \h and \H mean hex digits; ^ and $ are line anchors (PCRE2_MULTILINE).
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json_fwd.hpp>

namespace roofline::tok {

struct Span {
  uint32_t begin, end;  // byte offsets, [begin, end)
};

// Per-call matching state (PCRE2 match data, a JIT stack when a pattern needs more than the default).
// Not shared between threads; cheap to create.
class MatchScratch {
 public:
  MatchScratch();
  ~MatchScratch();
  MatchScratch(const MatchScratch&) = delete;
  MatchScratch& operator=(const MatchScratch&) = delete;

 private:
  friend class Regex;
  struct State;
  std::unique_ptr<State> state_;
};

class Regex {
 public:
  // `where` names the pattern's origin for error messages (e.g. "tokenizer.json pre_tokenizer Split").
  // The well-known pre-tokenization patterns run on hand-written matchers (fast_split.h) unless
  // allow_fast_split is false.
  Regex(std::string_view pattern, const std::string& where, bool allow_fast_split = true);
  Regex(Regex&&) noexcept;
  Regex& operator=(Regex&&) noexcept;
  ~Regex();

  // Appends every match of Oniguruma's find_iter over valid UTF-8 text: leftmost-first, non-overlapping,
  // and an empty match that ends where the previous match ended is skipped.
  void find_all(std::string_view text, std::vector<Span>& out, MatchScratch& scratch) const;

 private:
  struct Code;
  std::unique_ptr<Code> code_;
};

// A tokenizer.json pattern: {"String": s} (a literal) or {"Regex": r}.
class Pattern {
 public:
  static Pattern from_json(const nlohmann::json& j, const std::string& where);
  static Pattern literal(std::string s);

  void find_all(std::string_view text, std::vector<Span>& out, MatchScratch& scratch) const;

 private:
  std::string literal_;
  std::shared_ptr<const Regex> regex_;  // null for a non-empty literal
};

// Rewrites an Oniguruma pattern into the equivalent PCRE2 pattern (exposed for tests).
std::string onig_to_pcre2(std::string_view pattern);

}  // namespace roofline::tok
