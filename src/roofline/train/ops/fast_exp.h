// exp(x) for f32 without a library call, so that loops over it vectorise (`omp simd`): Cephes' expf
// (range reduction by ln 2 in two parts, degree-5 polynomial, scaling by 2^n through the exponent bits).
// Relative error about 2 ulp on [-87, 88]; inputs below -87.3 give 0.
#pragma once
#include <cstdint>
#include <algorithm>
#include <cstring>

namespace roofline::train {

#pragma omp declare simd
inline float fast_exp(float x) {
  const float clamped = std::min(std::max(x, -87.3f), 88.3f);
  // Round to nearest by the 1.5 * 2^23 trick (no floor call, so the loop vectorises at any ISA).
  const float n = (clamped * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
  const float r = clamped - n * 0.693359375f + n * 2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  const int32_t bits = (int32_t(n) + 127) << 23;
  float scale;
  std::memcpy(&scale, &bits, sizeof scale);
  return x < -87.3f ? 0.0f : p * scale;
}

}  // namespace roofline::train
