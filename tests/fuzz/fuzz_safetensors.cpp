// libFuzzer target for the safetensors parser: any input must either be rejected with roofline::Error or
// yield tensors whose every byte lies inside the input (ASan reports a view that reaches past it).
#include <cstddef>
#include <cstdint>
#include <cstdlib>

#include "roofline/core/error.h"
#include "roofline/formats/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    roofline::SafetensorsFile file(data, size, "fuzz");
    volatile uint8_t sink = 0;
    for (const roofline::SafetensorsEntry& e : file.entries()) {
      auto bytes = file.raw_bytes(e.name);
      if (bytes.size() != e.nbytes()) std::abort();
      for (uint8_t b : bytes) sink = uint8_t(sink + b);
      if (!e.supported) continue;
      roofline::Tensor t = file.tensor(e.name);
      if (t.nbytes() != e.nbytes() || t.shape() != e.shape) std::abort();
      const auto* p = t.ptr<uint8_t>();
      for (size_t i = 0; i < t.nbytes(); ++i) sink = uint8_t(sink + p[i]);
    }
    (void)sink;
  } catch (const roofline::Error&) {
  }
  return 0;
}
