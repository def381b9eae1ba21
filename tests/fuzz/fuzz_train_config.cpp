// libFuzzer target for `roofline train --config FILE` (TOML subset or JSON): any input must either be
// rejected with roofline::Error or yield (key, value) pairs.
#include <cstddef>
#include <cstdint>
#include <string>

#include "roofline/core/error.h"
#include "roofline/train/config_file.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    const auto pairs = roofline::train::parse_config_text(std::string(reinterpret_cast<const char*>(data), size), "fuzz.toml");
    volatile size_t sink = 0;
    for (const auto& [key, value] : pairs) sink = sink + key.size() + value.size();
    (void)sink;
  } catch (const roofline::Error&) {
  }
  return 0;
}
