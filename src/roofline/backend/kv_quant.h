// The FP8 KV cache's number format, on the host: each (token, kv head) vector of head_dim values is stored as
// float8 e4m3 codes with one f32 scale, scale = max |x| / 448, code = e4m3(x / scale) (nearest even,
// saturating). A per-vector scale keeps the relative error of every element near e4m3's own (<= 1/16 of the
// element, or 2^-10 of the vector's max for the smallest ones) whatever the magnitude of the token's keys,
// which a per-tensor scale cannot (keys of different tokens and heads differ by orders of magnitude).
// The CUDA store kernel computes the same codes (backend/cuda/kv_fp8.cuh); tests use these as the reference.
#pragma once
#include <cstdint>

namespace roofline {

// codes[i] = e4m3(x[i] / scale) for i < n; returns scale (0 for an all-zero vector: its codes are 0).
float quantize_kv_vector(const float* x, int64_t n, uint8_t* codes);
// out[i] = e4m3 value of codes[i] * scale.
void dequantize_kv_vector(const uint8_t* codes, float scale, int64_t n, float* out);

}  // namespace roofline
