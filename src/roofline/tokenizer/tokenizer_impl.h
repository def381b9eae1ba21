// The pipeline behind roofline::Tokenizer (internal): added tokens -> normalizer -> pre-tokenizer ->
// BPE model -> post-processor for encoding; ids -> token strings -> decoder chain for decoding.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "roofline/tokenizer/added_tokens.h"
#include "roofline/tokenizer/bpe_model.h"
#include "roofline/tokenizer/decoders.h"
#include "roofline/tokenizer/normalizers.h"
#include "roofline/tokenizer/post_processor.h"
#include "roofline/tokenizer/pre_tokenizers.h"
#include "roofline/tokenizer/tokenizer.h"

namespace roofline {

struct Tokenizer::Impl {
  std::string label;  // where it was loaded from, for messages
  std::unique_ptr<tok::Normalizer> normalizer;
  std::unique_ptr<tok::PreTokenizer> pre_tokenizer;
  std::unique_ptr<tok::BpeModel> model;
  std::unique_ptr<tok::PostProcessor> post_processor;
  std::unique_ptr<tok::Decoder> decoder;
  tok::AddedVocabulary added;
  TokenizerConfig config;
  int64_t vocab_size = 0;

  // Call after the parts are set: builds the added-token matchers and the model's byte-level input.
  void finalize();

  std::vector<int32_t> encode(std::string_view text, bool add_special_tokens) const;
  std::string decode(const int32_t* ids, size_t n, bool skip_special_tokens) const;
  // The token string of an id (added tokens first), or null.
  const std::string* token_of(int32_t id) const;
};

}  // namespace roofline
