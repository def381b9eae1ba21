#include "roofline/backend/kv_quant.h"

#include <cmath>

#include "roofline/core/dtype.h"

namespace roofline {

float quantize_kv_vector(const float* x, int64_t n, uint8_t* codes) {
  float amax = 0.0f;
  for (int64_t i = 0; i < n; ++i) amax = std::fmax(amax, std::fabs(x[i]));
  if (!(amax > 0.0f) || !std::isfinite(amax)) {
    // Zeros store as zeros; a vector holding inf or NaN stores NaN codes, so the damage stays visible.
    const uint8_t code = amax > 0.0f ? uint8_t(0x7f) : uint8_t(0);
    for (int64_t i = 0; i < n; ++i) codes[i] = code;
    return amax > 0.0f ? 1.0f : 0.0f;
  }
  // The same two f32 operations as the CUDA kernel, so both round alike.
  const float inverse = kE4M3Max / amax;
  for (int64_t i = 0; i < n; ++i) codes[i] = f32_to_e4m3(x[i] * inverse);
  return amax / kE4M3Max;
}

void dequantize_kv_vector(const uint8_t* codes, float scale, int64_t n, float* out) {
  for (int64_t i = 0; i < n; ++i) out[i] = e4m3_to_f32(codes[i]) * scale;
}

}  // namespace roofline
