// tokenizer.json "normalizer": Sequence, NFC, NFD, NFKC, NFKD, Lowercase, Prepend, Replace (String or
// Regex), Strip, StripAccents, BertNormalizer, ByteLevel. Each rewrites a valid UTF-8 string in place,
// as HF's NormalizedString operations do (alignments are not tracked: encode returns ids only).
#pragma once
#include <memory>
#include <string>

#include <nlohmann/json_fwd.hpp>

#include "roofline/tokenizer/regex.h"

namespace roofline::tok {

class Normalizer {
 public:
  virtual ~Normalizer() = default;
  virtual void normalize(std::string& text, MatchScratch& scratch) const = 0;
};

// Null JSON gives null. Throws roofline::Error naming `where` for an unknown or malformed normalizer.
std::unique_ptr<Normalizer> make_normalizer(const nlohmann::json& j, const std::string& where);

}  // namespace roofline::tok
