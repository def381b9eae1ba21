// The text a client sees of one generated sequence: DecodeStream for incremental detokenization, cut at
// stop strings with the rule roofline::generate() follows:
//  - the text ends just before the first occurrence of any stop string (the stop string is not shown);
//  - a suffix that could still grow into a stop string is held back until the next token settles it;
//  - ending without a stop string (EOS, length) releases everything held back.
// generate() and the server's engine both use it.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "roofline/tokenizer/tokenizer.h"

namespace roofline {

class StopTextStream {
 public:
  // Special tokens are skipped in the text, as generate() does. Stop strings must not be empty.
  StopTextStream(const Tokenizer& tokenizer, std::vector<std::string> stop_strings);

  // Adds one sampled id and returns the text that became final. Once a stop string matched, stopped()
  // is true, the returned text ends before it and later pushes return nothing.
  std::string push(int32_t id);
  // Ends the sequence without a stop string: returns whatever is still held back or undecoded.
  std::string finish();

  bool stopped() const { return stopped_; }

 private:
  DecodeStream decode_;
  std::vector<std::string> stops_;
  std::string text_;    // decoded text so far (cut at the stop string once stopped_)
  size_t emitted_ = 0;  // bytes of text_ returned so far
  bool stopped_ = false;
};

// Length of the longest suffix of `text` that is a proper prefix of some stop string: text that must wait,
// since the next token may complete a stop string.
size_t stop_string_hold_back(const std::string& text, const std::vector<std::string>& stops);

}  // namespace roofline
