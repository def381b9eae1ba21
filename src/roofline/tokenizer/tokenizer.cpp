// Encoding and decoding (the loaders are in tokenizer_loader.cpp).
#include <algorithm>

#include "roofline/core/error.h"
#include "roofline/tokenizer/tokenizer_impl.h"
#include "roofline/tokenizer/unicode.h"

namespace roofline {

void Tokenizer::Impl::finalize() {
  added.build(normalizer.get());
  if (pre_tokenizer && pre_tokenizer->ends_byte_level()) model->enable_byte_level_input();
  vocab_size = int64_t(std::max(model->max_id(), added.max_id())) + 1;
}

namespace {

// Per-call state of one encode.
struct EncodeState {
  explicit EncodeState(const tok::BpeModel& model) : session(model) {}
  tok::BpeModel::Session session;
  tok::PreTokenizeScratch scratch;
  tok::PreTokenized pt;
  std::string normalized;
  std::vector<tok::Segment> raw_segments, normalized_segments;
};

}  // namespace

std::vector<int32_t> Tokenizer::Impl::encode(std::string_view input, bool add_special_tokens) const {
  // HF takes Rust strings, which are valid UTF-8; other input is read as from_utf8_lossy would.
  std::string sanitized;
  std::string_view text = input;
  if (!tok::is_valid_utf8(input)) {
    sanitized = tok::utf8_lossy(input);
    text = sanitized;
  }

  std::vector<int32_t> ids;
  ids.reserve(text.size() / 3 + 8);
  EncodeState st(*model);

  // Normalized text (or a raw stretch when there is no normalizer) -> pre-tokenizer -> model.
  auto tokenize_text = [&](std::string_view s, bool at_origin) {
    if (s.empty()) return;
    if (!pre_tokenizer) {
      model->tokenize(s, ids, st.session);
      return;
    }
    st.pt.reset(s, at_origin);
    pre_tokenizer->pre_tokenize(st.pt, st.scratch);
    for (const tok::Piece& p : st.pt.pieces) {
      if (st.pt.bytes_unmapped) {
        model->tokenize_byte_level(st.pt.view(p), ids, st.session);
      } else {
        model->tokenize(st.pt.view(p), ids, st.session);
      }
    }
  };

  // One stretch of raw text between non-normalized added tokens.
  auto encode_raw = [&](std::string_view raw, bool at_origin) {
    if (raw.empty()) return;
    std::string_view norm = raw;
    if (normalizer) {
      st.normalized.assign(raw);
      normalizer->normalize(st.normalized, st.scratch.match);
      norm = st.normalized;
    }
    if (norm.empty()) return;
    if (!added.has_normalized()) {
      tokenize_text(norm, at_origin);
      return;
    }
    added.split_normalized(norm, st.normalized_segments);
    for (const tok::Segment& seg : st.normalized_segments) {
      if (seg.id >= 0) {
        ids.push_back(seg.id);
      } else {
        tokenize_text(norm.substr(seg.begin, seg.end - seg.begin), at_origin && seg.begin == 0);
      }
    }
  };

  if (added.empty()) {
    encode_raw(text, true);
  } else {
    added.split_raw(text, st.raw_segments);
    for (const tok::Segment& seg : st.raw_segments) {
      if (seg.id >= 0) {
        ids.push_back(seg.id);
      } else {
        encode_raw(text.substr(seg.begin, seg.end - seg.begin), seg.begin == 0);
      }
    }
  }
  if (post_processor) post_processor->process(ids, add_special_tokens);
  return ids;
}

const std::string* Tokenizer::Impl::token_of(int32_t id) const {
  if (const tok::AddedToken* t = added.by_id(id)) return &t->content;
  return model->id_to_token(id);
}

std::string Tokenizer::Impl::decode(const int32_t* ids, size_t n, bool skip_special_tokens) const {
  // As HF's TokenizerImpl::decode: every id (added tokens included) becomes its token string, unknown ids
  // are dropped, special ones too when asked, and the decoder chain turns the strings into text.
  std::vector<std::string> tokens;
  tokens.reserve(n);
  for (size_t i = 0; i < n; ++i) {
    const std::string* t = token_of(ids[i]);
    if (!t) continue;
    if (skip_special_tokens && added.is_special_content(*t)) continue;
    tokens.push_back(*t);
  }
  std::string out;
  if (decoder) {
    decoder->decode_chain(tokens);
    for (const auto& t : tokens) out += t;
  } else {
    for (size_t i = 0; i < tokens.size(); ++i) {
      if (i) out.push_back(' ');
      out += tokens[i];
    }
  }
  return out;
}

// ---- public API --------------------------------------------------------------------------------------

Tokenizer::Tokenizer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Tokenizer::Tokenizer(Tokenizer&&) noexcept = default;
Tokenizer& Tokenizer::operator=(Tokenizer&&) noexcept = default;
Tokenizer::~Tokenizer() = default;

std::vector<int32_t> Tokenizer::encode(std::string_view text, bool add_special_tokens) const {
  return impl_->encode(text, add_special_tokens);
}

std::string Tokenizer::decode(const std::vector<int32_t>& ids, bool skip_special_tokens) const {
  return impl_->decode(ids.data(), ids.size(), skip_special_tokens);
}

int64_t Tokenizer::vocab_size() const { return impl_->vocab_size; }

std::optional<int32_t> Tokenizer::token_to_id(std::string_view token) const {
  if (auto id = impl_->added.id_of(token)) return id;
  return impl_->model->token_to_id(token);
}

std::string Tokenizer::id_to_token(int32_t id) const {
  const std::string* t = impl_->token_of(id);
  return t ? *t : std::string();
}

bool Tokenizer::is_special(int32_t id) const {
  const tok::AddedToken* t = impl_->added.by_id(id);
  return t && t->special;
}

const TokenizerConfig& Tokenizer::config() const { return impl_->config; }

}  // namespace roofline
