// The FP8 KV cache's number format on the device (the host reference is backend/kv_quant.h): each
// (token, kv head) vector is stored as float8 e4m3 codes with one f32 scale = max |x| / 448, code =
// e4m3(x * (448 / max |x|)) rounded to nearest even and saturated (cvt .satfinite), value = code * scale.
// A vector is held by `lanes` consecutive lanes of a warp, 8 elements each (lanes = head_dim / 8, a power of
// two dividing 32), so the max is a few shuffles and any store kernel can quantize its rows in registers:
// store_kv today, a fused rope + store tomorrow. Every lane of the warp must call it (full-mask shuffles).
#pragma once
#include <cuda_fp16.h>
#include <cuda_fp8.h>

#include <cstdint>

namespace roofline::cuda::device {

constexpr float kE4M3Max = 448.0f;

// Eight codes, packed little-endian into two words (element 0 in the lowest byte).
__device__ __forceinline__ uint2 pack_e4m3x8(const float (&x)[8], float inverse_scale) {
  uint32_t words[2];
#pragma unroll
  for (int w = 0; w < 2; ++w) {
    uint32_t word = 0;
#pragma unroll
    for (int p = 0; p < 2; ++p) {
      const float2 pair = make_float2(x[4 * w + 2 * p] * inverse_scale, x[4 * w + 2 * p + 1] * inverse_scale);
      const __nv_fp8x2_storage_t codes = __nv_cvt_float2_to_fp8x2(pair, __NV_SATFINITE, __NV_E4M3);
      word |= uint32_t(codes) << (16 * p);
    }
    words[w] = word;
  }
  return make_uint2(words[0], words[1]);
}

// Quantizes this lane's 8 elements of a vector spread over `lanes` lanes (see the file comment). Returns the
// codes; *scale gets the vector's scale (the same in all its lanes). An all-zero vector gets scale 0 and zero
// codes; a vector holding inf gets NaN codes (as the host reference: the damage stays visible).
__device__ __forceinline__ uint2 quantize_kv8(const float (&x)[8], int lanes, float* scale) {
  float amax = 0.0f;
#pragma unroll
  for (int e = 0; e < 8; ++e) amax = fmaxf(amax, fabsf(x[e]));
  for (int offset = lanes / 2; offset > 0; offset >>= 1) amax = fmaxf(amax, __shfl_xor_sync(0xffffffffu, amax, offset));
  if (!(amax > 0.0f)) {
    *scale = 0.0f;
    return make_uint2(0u, 0u);
  }
  if (isinf(amax)) {
    *scale = 1.0f;
    return make_uint2(0x7f7f7f7fu, 0x7f7f7f7fu);
  }
  *scale = amax / kE4M3Max;
  return pack_e4m3x8(x, kE4M3Max / amax);
}

// Two codes (low byte first) -> two floats, through the hardware's e4m3x2 -> f16x2 conversion (exact).
__device__ __forceinline__ float2 e4m3x2_to_float2(uint32_t two_codes) {
  const __half2_raw h = __nv_cvt_fp8x2_to_halfraw2(__nv_fp8x2_storage_t(two_codes & 0xffffu), __NV_E4M3);
  return __half22float2(__half2(h));
}

// Eight codes (as pack_e4m3x8 lays them out) -> eight floats, unscaled.
__device__ __forceinline__ void unpack_e4m3x8(uint2 codes, float (&out)[8]) {
  const uint32_t words[2] = {codes.x, codes.y};
#pragma unroll
  for (int w = 0; w < 2; ++w) {
    const float2 lo = e4m3x2_to_float2(words[w]), hi = e4m3x2_to_float2(words[w] >> 16);
    out[4 * w] = lo.x, out[4 * w + 1] = lo.y, out[4 * w + 2] = hi.x, out[4 * w + 3] = hi.y;
  }
}

}  // namespace roofline::cuda::device
