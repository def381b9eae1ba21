// libFuzzer target for tokenizer.json loading (it comes with a model, so it may be hostile): any text must
// either load, or be rejected with roofline::Error — and a tokenizer that loads must encode and decode a
// mixed-script text without crashing, running away or reading out of bounds (regexes of the pre-tokenizer
// and normalizer included).
#include <cstddef>
#include <cstdint>
#include <string>

#include "roofline/core/error.h"
#include "roofline/tokenizer/tokenizer.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::string text = "Hello, world! 123 <s> ünïcödé 漢字 🙂\n\t  end";
  try {
    const roofline::Tokenizer tok =
        roofline::Tokenizer::from_json_string(std::string(reinterpret_cast<const char*>(data), size), "fuzz");
    for (bool special : {false, true}) {
      const std::vector<int32_t> ids = tok.encode(text, special);
      volatile size_t sink = tok.decode(ids, special).size();
      for (int32_t id : ids) sink = sink + tok.id_to_token(id).size();
      (void)sink;
    }
  } catch (const roofline::Error&) {
  }
  return 0;
}
