// tokenizer.json "decoder": Sequence, ByteLevel, Replace, ByteFallback, Fuse, Strip, Metaspace,
// BPEDecoder, WordPiece. Like HF's Decoder::decode_chain, each rewrites the list of token strings; the
// decoded text is the concatenation of the final list.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

namespace roofline::tok {

class Decoder {
 public:
  virtual ~Decoder() = default;
  virtual void decode_chain(std::vector<std::string>& tokens) const = 0;
};

// Null JSON gives null. Throws roofline::Error naming `where` for an unknown or malformed decoder.
std::unique_ptr<Decoder> make_decoder(const nlohmann::json& j, const std::string& where);
std::unique_ptr<Decoder> make_byte_level_decoder();

}  // namespace roofline::tok
