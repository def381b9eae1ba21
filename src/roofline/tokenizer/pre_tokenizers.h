// tokenizer.json "pre_tokenizer": Sequence, Split (String/Regex pattern; Isolated, Removed,
// MergedWithPrevious, MergedWithNext, Contiguous; invert), ByteLevel (add_prefix_space, use_regex with the
// GPT-2 regex), Metaspace (replacement, prepend_scheme always/first/never, split), Whitespace,
// WhitespaceSplit, Digits, Punctuation, BertPreTokenizer, CharDelimiterSplit.
//
// They work on a PreTokenized: pieces (byte ranges) of an arena string. Splitting makes sub-ranges;
// rewriting (Metaspace, ByteLevel's prefix space) appends new text to the arena. As in HF, empty pieces
// are dropped after every split.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "roofline/tokenizer/regex.h"

namespace roofline::tok {

struct Piece {
  uint32_t begin, end;  // into PreTokenized::text
  bool at_origin;       // starts at offset 0 of the original input (Metaspace prepend_scheme "first")
};

struct PreTokenized {
  std::string text;
  std::vector<Piece> pieces;
  // A ByteLevel step ran last: pieces still hold raw bytes, which stand for their GPT-2 byte-mapped form.
  bool bytes_unmapped = false;

  std::string_view view(const Piece& p) const { return std::string_view(text).substr(p.begin, p.end - p.begin); }
  void reset(std::string_view segment, bool at_origin);
  // Rewrites pieces to their byte-mapped form (when a later step must see the mapped characters).
  void map_bytes();
};

// One stretch of a piece found by a pattern: a match or the text between matches (HF's find_matches).
struct SplitEvent {
  uint32_t begin, end;  // relative to the piece
  bool is_match;
};

struct PreTokenizeScratch {
  MatchScratch match;
  std::vector<Span> spans;
  std::vector<SplitEvent> events;
  std::vector<Piece> pieces;
  std::string buffer;
};

class PreTokenizer {
 public:
  virtual ~PreTokenizer() = default;
  virtual void pre_tokenize(PreTokenized& pt, PreTokenizeScratch& scratch) const = 0;
  // True when this step leaves pieces byte-mapped (ByteLevel, or a Sequence ending with it).
  virtual bool ends_byte_level() const { return false; }
};

enum class SplitBehavior { Removed, Isolated, MergedWithPrevious, MergedWithNext, Contiguous };

// Null JSON gives null. Throws roofline::Error naming `where` for an unknown or malformed pre-tokenizer.
std::unique_ptr<PreTokenizer> make_pre_tokenizer(const nlohmann::json& j, const std::string& where);
// HF's ByteLevel pre-tokenizer with the given options (used for GPT-2's original files).
std::unique_ptr<PreTokenizer> make_byte_level_pre_tokenizer(bool add_prefix_space, bool use_regex);

}  // namespace roofline::tok
