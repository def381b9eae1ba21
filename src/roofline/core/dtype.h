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

enum class DType : uint8_t { F32, F16, BF16, F64, I32, I64, U8, I8, Bool };

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

// Converts n elements of src (in dtype) to f32.
void convert_to_f32(DType dtype, const void* src, float* dst, size_t n);
// Converts n f32 values to dtype (F32, F16 or BF16).
void convert_from_f32(DType dtype, const float* src, void* dst, size_t n);

}  // namespace roofline
