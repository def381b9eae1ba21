// Hugging Face tokenizer.json (BPE: byte-level and SentencePiece-style with byte fallback), and GPT-2's
// original encoder.json + vocab.bpe pair. Encoding and decoding match HF `tokenizers` exactly.
#pragma once
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace roofline {

// What tokenizer_config.json adds: the chat template and the names of special tokens.
struct TokenizerConfig {
  std::string chat_template;  // empty when absent
  std::string bos_token, eos_token, pad_token, unk_token;  // empty when absent
  std::optional<bool> add_bos_token, add_eos_token;        // explicit overrides, when present
};

class Tokenizer {
 public:
  // tokenizer.json
  static Tokenizer from_json_file(const std::string& path);
  static Tokenizer from_json_string(const std::string& json, const std::string& label);
  // GPT-2 original files: encoder.json (token -> id) and vocab.bpe (merges).
  static Tokenizer from_gpt2_files(const std::string& encoder_json, const std::string& vocab_bpe);
  // A model directory: tokenizer.json (+ tokenizer_config.json when present), else
  // encoder.json + vocab.bpe, else vocab.json + merges.txt. A path to a file is taken as tokenizer.json.
  static Tokenizer from_path(const std::string& path);

  Tokenizer(Tokenizer&&) noexcept;
  Tokenizer& operator=(Tokenizer&&) noexcept;
  ~Tokenizer();

  // add_special_tokens: apply the post-processor (BOS etc.) as HF's encode(..., add_special_tokens=True).
  std::vector<int32_t> encode(std::string_view text, bool add_special_tokens) const;
  // As HF's decode(ids, skip_special_tokens=...). Invalid UTF-8 from byte tokens becomes U+FFFD.
  std::string decode(const std::vector<int32_t>& ids, bool skip_special_tokens = false) const;

  int64_t vocab_size() const;  // largest id + 1, added tokens included
  std::optional<int32_t> token_to_id(std::string_view token) const;
  std::string id_to_token(int32_t id) const;  // empty for an unknown id
  bool is_special(int32_t id) const;
  const TokenizerConfig& config() const;

 private:
  struct Impl;
  explicit Tokenizer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// Incremental detokenization for streaming: push ids one at a time, get back the text that became
// final (never half a UTF-8 character, and SentencePiece's leading-space rule handled as full decode would).
// The concatenation of every push() and a final flush() equals decode(all ids).
//
// As HF's DecodeStream: the ids of the last emitted chunk stay as context, the window is decoded whole
// and the text past the context's own decoding is new. Text is held back while it ends in U+FFFD (an
// incomplete UTF-8 sequence) or in a byte-fallback token (<0xAB>), whose run may still turn invalid.
class DecodeStream {
 public:
  DecodeStream(const Tokenizer& tokenizer, bool skip_special_tokens = false);
  std::string push(int32_t id);
  // Whatever is still held back (e.g. an incomplete UTF-8 sequence at the end), as full decode gives it.
  // The stream stays usable: later pushes continue the same text.
  std::string flush();

 private:
  // Returns the text of ids_ past prefix_ when it is final (or `force`), and slides the window.
  std::string advance(bool force);

  const Tokenizer& tokenizer_;
  bool skip_special_;
  std::vector<int32_t> ids_;  // context ids (decoding to prefix_) followed by ids not yet emitted
  std::string prefix_;        // decode of ids_ as of the last emission: text already returned
  size_t prefix_index_ = 0;   // ids_[0, prefix_index_) are context only and drop at the next emission
};

}  // namespace roofline
