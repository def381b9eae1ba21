// libFuzzer target for the config.json (+ generation_config.json) parser, the first thing a downloaded model
// feeds the engine: any input must either be rejected with roofline::Error or yield a spec whose derived
// sizes (projection widths, KV bytes per token, parameter count) are computable without overflow (UBSan
// reports a signed overflow). The input is the config text, optionally followed by a NUL byte and the
// generation config text.
#include <cstddef>
#include <cstdint>
#include <string>

#include "roofline/core/error.h"
#include "roofline/model/model_spec.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string input(reinterpret_cast<const char*>(data), size);
  const size_t split = input.find('\0');
  const std::string config = input.substr(0, split);
  const std::string generation = split == std::string::npos ? std::string() : input.substr(split + 1);
  try {
    const roofline::ModelSpec spec = roofline::parse_model_spec(config, generation, "fuzz/config.json");
    volatile int64_t sink = spec.q_dim() + spec.kv_dim() + spec.parameter_count();
    sink = sink + int64_t(spec.kv_bytes_per_token(roofline::DType::BF16));
    (void)sink;
  } catch (const roofline::Error&) {
  }
  return 0;
}
