#include "roofline/core/dtype.h"

#include <cmath>
#include <limits>

#include "roofline/core/error.h"

namespace roofline {

size_t dtype_size(DType dtype) {
  switch (dtype) {
    case DType::F64: case DType::I64: return 8;
    case DType::F32: case DType::I32: return 4;
    case DType::F16: case DType::BF16: return 2;
    case DType::U8: case DType::I8: case DType::Bool: case DType::F8E4M3: return 1;
  }
  return 0;
}

std::string_view dtype_name(DType dtype) {
  switch (dtype) {
    case DType::F32: return "F32";
    case DType::F16: return "F16";
    case DType::BF16: return "BF16";
    case DType::F64: return "F64";
    case DType::I32: return "I32";
    case DType::I64: return "I64";
    case DType::U8: return "U8";
    case DType::I8: return "I8";
    case DType::Bool: return "BOOL";
    case DType::F8E4M3: return "F8_E4M3";
  }
  return "?";
}

bool parse_dtype(std::string_view name, DType* out) {
  static constexpr std::pair<std::string_view, DType> kNames[] = {
      {"F32", DType::F32}, {"F16", DType::F16}, {"BF16", DType::BF16}, {"F64", DType::F64},
      {"I32", DType::I32}, {"I64", DType::I64}, {"U8", DType::U8},     {"I8", DType::I8},
      {"BOOL", DType::Bool}, {"F8_E4M3", DType::F8E4M3}};
  for (auto& [n, d] : kNames)
    if (n == name) { *out = d; return true; }
  return false;
}

bool parse_dtype_loose(std::string_view name, DType* out) {
  if (name == "float32" || name == "f32" || name == "fp32" || name == "float") { *out = DType::F32; return true; }
  if (name == "float16" || name == "f16" || name == "fp16" || name == "half") { *out = DType::F16; return true; }
  if (name == "bfloat16" || name == "bf16") { *out = DType::BF16; return true; }
  if (name == "float64" || name == "f64" || name == "double") { *out = DType::F64; return true; }
  if (name == "fp8" || name == "fp8_e4m3" || name == "float8_e4m3fn") { *out = DType::F8E4M3; return true; }
  return parse_dtype(name, out);
}

float f16_to_f32(uint16_t h) {
  uint32_t sign = uint32_t(h & 0x8000u) << 16;
  uint32_t exp = (h >> 10) & 0x1fu;
  uint32_t mant = h & 0x3ffu;
  uint32_t bits;
  if (exp == 0) {
    if (mant == 0) {
      bits = sign;
    } else {  // subnormal: normalise
      int shift = 0;
      while ((mant & 0x400u) == 0) { mant <<= 1; ++shift; }
      mant &= 0x3ffu;
      bits = sign | uint32_t(127 - 15 - shift + 1) << 23 | mant << 13;
    }
  } else if (exp == 0x1f) {
    bits = sign | 0x7f800000u | mant << 13;
  } else {
    bits = sign | (exp + 127 - 15) << 23 | mant << 13;
  }
  return std::bit_cast<float>(bits);
}

uint16_t f32_to_f16(float value) {
  uint32_t bits = std::bit_cast<uint32_t>(value);
  uint32_t sign = (bits >> 16) & 0x8000u;
  uint32_t abs = bits & 0x7fffffffu;
  if (abs > 0x7f800000u) return uint16_t(sign | 0x7e00u);       // NaN
  if (abs >= 0x477ff000u) return uint16_t(sign | 0x7c00u);      // overflow to inf (after rounding)
  if (abs < 0x38800000u) {                                      // subnormal or zero in f16
    if (abs < 0x33000000u) return uint16_t(sign);               // rounds to zero
    uint32_t exp = abs >> 23;
    uint32_t mant = (abs & 0x7fffffu) | 0x800000u;
    uint32_t shift = 126 - exp;  // value / 2^-24 = mant * 2^(exp - 126); exp < 113 so shift >= 14
    uint32_t half = mant >> shift;
    uint32_t rem = mant & ((1u << shift) - 1);
    uint32_t halfway = 1u << (shift - 1);
    if (rem > halfway || (rem == halfway && (half & 1u))) ++half;
    return uint16_t(sign | half);
  }
  uint32_t rounded = abs + 0xfffu + ((abs >> 13) & 1u);
  return uint16_t(sign | ((rounded - (112u << 23)) >> 13));
}

uint8_t f32_to_e4m3(float value) {
  const uint32_t bits = std::bit_cast<uint32_t>(value);
  const uint8_t sign = uint8_t((bits >> 24) & 0x80u);
  const uint32_t abs = bits & 0x7fffffffu;
  if (abs > 0x7f800000u) return sign | 0x7f;                  // NaN
  const float magnitude = std::bit_cast<float>(abs);
  if (magnitude >= kE4M3Max) return sign | 0x7e;               // saturate (also inf): 448 = 1.110b * 2^8
  if (magnitude < 0.015625f) {                                 // below 2^-6: subnormal steps of 2^-9
    const float steps = std::nearbyint(magnitude * 512.0f);    // round to nearest even; 8 is the smallest normal
    return uint8_t(sign | uint8_t(steps));
  }
  const uint32_t rounded = abs + 0x7ffffu + ((abs >> 20) & 1u);  // keep 3 mantissa bits, nearest even
  const uint32_t exponent = (rounded >> 23) - 127 + 7, mantissa = (rounded >> 20) & 7u;
  if (exponent > 15 || (exponent == 15 && mantissa == 7)) return sign | 0x7e;
  return uint8_t(sign | exponent << 3 | mantissa);
}

float e4m3_to_f32(uint8_t bits) {
  const int exponent = (bits >> 3) & 15, mantissa = bits & 7;
  const float sign = (bits & 0x80) ? -1.0f : 1.0f;
  if (exponent == 15 && mantissa == 7) return std::numeric_limits<float>::quiet_NaN();
  if (exponent == 0) return sign * std::ldexp(float(mantissa), -9);
  return sign * std::ldexp(float(8 + mantissa), exponent - 10);
}

void convert_to_f32(DType dtype, const void* src, float* dst, size_t n) {
  switch (dtype) {
    case DType::F32: std::memcpy(dst, src, n * 4); return;
    case DType::BF16: {
      auto* s = static_cast<const uint16_t*>(src);
      for (size_t i = 0; i < n; ++i) dst[i] = bf16_to_f32(s[i]);
      return;
    }
    case DType::F16: {
      auto* s = static_cast<const uint16_t*>(src);
      for (size_t i = 0; i < n; ++i) dst[i] = f16_to_f32(s[i]);
      return;
    }
    case DType::F64: {
      auto* s = static_cast<const double*>(src);
      for (size_t i = 0; i < n; ++i) dst[i] = float(s[i]);
      return;
    }
    case DType::F8E4M3: {
      auto* s = static_cast<const uint8_t*>(src);
      for (size_t i = 0; i < n; ++i) dst[i] = e4m3_to_f32(s[i]);
      return;
    }
    default: fail("convert_to_f32: unsupported dtype {}", dtype_name(dtype));
  }
}

void convert_from_f32(DType dtype, const float* src, void* dst, size_t n) {
  switch (dtype) {
    case DType::F32: std::memcpy(dst, src, n * 4); return;
    case DType::BF16: {
      auto* d = static_cast<uint16_t*>(dst);
      for (size_t i = 0; i < n; ++i) d[i] = f32_to_bf16(src[i]);
      return;
    }
    case DType::F16: {
      auto* d = static_cast<uint16_t*>(dst);
      for (size_t i = 0; i < n; ++i) d[i] = f32_to_f16(src[i]);
      return;
    }
    default: fail("convert_from_f32: unsupported dtype {}", dtype_name(dtype));
  }
}

}  // namespace roofline
