#include "roofline/engine/stop_text_stream.h"

#include <algorithm>

#include "roofline/core/error.h"

namespace roofline {

size_t stop_string_hold_back(const std::string& text, const std::vector<std::string>& stops) {
  size_t hold = 0;
  for (const std::string& s : stops)
    for (size_t len = std::min(s.size() - 1, text.size()); len > hold; --len)
      if (text.compare(text.size() - len, len, s, 0, len) == 0) {
        hold = len;
        break;
      }
  return hold;
}

StopTextStream::StopTextStream(const Tokenizer& tokenizer, std::vector<std::string> stop_strings)
    : decode_(tokenizer, /*skip_special_tokens=*/true), stops_(std::move(stop_strings)) {
  for (const std::string& s : stops_) ROOFLINE_CHECK(!s.empty(), "a stop string is empty");
}

std::string StopTextStream::push(int32_t id) {
  if (stopped_) return {};
  text_ += decode_.push(id);
  for (const std::string& s : stops_) {
    // Only text that arrived since the last emission can complete a match (emitted text held none).
    const size_t from = emitted_ > s.size() ? emitted_ - s.size() : 0;
    const size_t at = text_.find(s, from);
    if (at != std::string::npos) {
      text_.resize(at);  // several matches: each cut shortens the text, so the earliest one wins
      stopped_ = true;
    }
  }
  const size_t safe = stopped_ ? text_.size() : text_.size() - stop_string_hold_back(text_, stops_);
  if (safe <= emitted_) return {};
  std::string piece = text_.substr(emitted_, safe - emitted_);
  emitted_ = safe;
  return piece;
}

std::string StopTextStream::finish() {
  if (!stopped_) text_ += decode_.flush();
  std::string piece = text_.substr(std::min(emitted_, text_.size()));
  emitted_ = text_.size();
  return piece;
}

}  // namespace roofline
