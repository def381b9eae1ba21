#include "roofline/core/error.h"
#include "roofline/tokenizer/tokenizer.h"
#include "roofline/tokenizer/unicode.h"

namespace roofline {

namespace {

// A byte-fallback token "<0xAB>": its run of bytes is only final once a different token follows.
bool is_byte_token(const std::string& t) {
  auto hex = [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); };
  return t.size() == 6 && t.compare(0, 3, "<0x") == 0 && t[5] == '>' && hex(t[3]) && hex(t[4]);
}

}  // namespace

DecodeStream::DecodeStream(const Tokenizer& tokenizer, bool skip_special_tokens)
    : tokenizer_(tokenizer), skip_special_(skip_special_tokens) {}

std::string DecodeStream::push(int32_t id) {
  ids_.push_back(id);
  return advance(/*force=*/false);
}

std::string DecodeStream::flush() { return advance(/*force=*/true); }

std::string DecodeStream::advance(bool force) {
  std::string text = tokenizer_.decode(ids_, skip_special_);
  if (text.size() <= prefix_.size()) return {};
  if (!force) {
    if (tok::ends_with_replacement_char(text)) return {};
    // The last token that reaches the decoder (skipped and unknown ids do not) may open a byte run.
    for (auto it = ids_.rbegin(); it != ids_.rend(); ++it) {
      std::string token = tokenizer_.id_to_token(*it);
      if (token.empty()) continue;
      if (skip_special_) {
        auto id = tokenizer_.token_to_id(token);
        if (id && tokenizer_.is_special(*id)) continue;
      }
      if (is_byte_token(token)) return {};
      break;
    }
  }
  if (text.compare(0, prefix_.size(), prefix_) != 0)
    fail("DecodeStream: decoding changed text already returned ('{}' is no longer a prefix of '{}')", prefix_, text);
  std::string fresh = text.substr(prefix_.size());
  // Keep the ids of the chunk just emitted as context for the next one.
  size_t new_prefix_index = ids_.size() - prefix_index_;
  ids_.erase(ids_.begin(), ids_.begin() + std::ptrdiff_t(prefix_index_));
  prefix_ = tokenizer_.decode(ids_, skip_special_);
  prefix_index_ = new_prefix_index;
  return fresh;
}

}  // namespace roofline
