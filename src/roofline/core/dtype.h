// Element types of stored tensors and the scalar conversions between them. Kernels convert inside
// their inner loops (SIMD); these scalar helpers serve references, tests and cold paths.
#pragma once
#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

namespace roofline {

// F8E4M3: float8 e4m3 "fn" (bias 7, no infinities, max 448, NaN = all exponent and mantissa bits set), the
// KV cache's 8-bit storage; safetensors spells it F8_E4M3.
enum class DType : uint8_t { F32, F16, BF16, F64, I32, I64, U8, I8, Bool, F8E4M3 };

size_t dtype_size(DType dtype);
// Names as safetensors writes them: "F32", "F16", "BF16", ...
std::string_view dtype_name(DType dtype);
// Parses a safetensors dtype name; returns false when unknown.
bool parse_dtype(std::string_view name, DType* out);
// Parses a user/HF-facing name: "float32", "bfloat16", "f16", "bf16", ...
bool parse_dtype_loose(std::string_view name, DType* out);

inline float bf16_to_f32(uint16_t bits) { return std::bit_cast<float>(uint32_t(bits) << 16); }

// Round to nearest even, NaN stays NaN (quiet).
inline uint16_t f32_to_bf16(float value) {
  uint32_t bits = std::bit_cast<uint32_t>(value);
  if ((bits & 0x7fffffffu) > 0x7f800000u) return uint16_t((bits >> 16) | 0x40);
  bits += 0x7fffu + ((bits >> 16) & 1u);
  return uint16_t(bits >> 16);
}

float f16_to_f32(uint16_t bits);
uint16_t f32_to_f16(float value);

// float8 e4m3fn: round to nearest even, saturating to +-448 (as the GPU's cvt .satfinite); NaN stays NaN.
uint8_t f32_to_e4m3(float value);
float e4m3_to_f32(uint8_t bits);
constexpr float kE4M3Max = 448.0f;

// Converts n elements of src (in dtype) to f32 (F8E4M3 without a scale).
void convert_to_f32(DType dtype, const void* src, float* dst, size_t n);
// Converts n f32 values to dtype (F32, F16 or BF16).
void convert_from_f32(DType dtype, const float* src, void* dst, size_t n);

}  // namespace roofline
