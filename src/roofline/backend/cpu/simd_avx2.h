// AVX2 + FMA + F16C helpers for the *_avx2.cpp files only. Everything is in an anonymous namespace
// (internal linkage), so no AVX2 code is ever shared with plain code through the linker (see kernels.h).
#pragma once
#include <immintrin.h>

#include <cstdint>
#include <cstring>

#include "roofline/core/dtype.h"

namespace roofline::cpu {
namespace {
namespace avx2 {

// Lane mask (all ones in the first `count` of 8 int32 lanes) for _mm256_maskload/maskstore_ps.
inline __m256i first_lanes(int64_t count) {
  const __m256i iota = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(int(count < 8 ? count : 8)), iota);
}

inline float hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

// Copies the first `count` (< n) elements of src into dst[n], zero-filling the rest: partial loads of
// 16-bit data (AVX2 has no 16-bit masked loads).
template <class T, int n>
inline void copy_partial(T (&dst)[n], const T* src, int64_t count) {
  for (int i = 0; i < n; ++i) dst[i] = T(0);
  std::memcpy(dst, src, size_t(count) * sizeof(T));
}

// Element i of a float array stored in dtype (F32, F16 or BF16), as f32; cold paths (bias).
inline float load_scalar(DType dtype, const void* data, int64_t i) {
  switch (dtype) {
    case DType::F16: return _cvtsh_ss(static_cast<const uint16_t*>(data)[i]);
    case DType::BF16: {
      uint32_t bits = uint32_t(static_cast<const uint16_t*>(data)[i]) << 16;
      float f;
      std::memcpy(&f, &bits, 4);
      return f;
    }
    default: return static_cast<const float*>(data)[i];
  }
}

// exp(x), Cephes-style (see simd_avx512.h), max relative error ~1.5e-7 on [-87.33, 88.3]. The input is
// clamped to that range so 2^n can be built in the exponent field: exp(x > 88.3) returns 2.2e38 instead
// of inf, which only ever appears in 1 / (1 + exp(.)) here. max/min keep NaN (second operand).
inline __m256 exp(__m256 x) {
  x = _mm256_min_ps(_mm256_set1_ps(88.3f), _mm256_max_ps(_mm256_set1_ps(-87.33f), x));
  const __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                                   _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
  r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
  __m256 y = _mm256_set1_ps(1.9875691500e-4f);
  y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(1.3981999507e-3f));
  y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(8.3334519073e-3f));
  y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(4.1665795894e-2f));
  y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(1.6666665459e-1f));
  y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(5.0000001201e-1f));
  y = _mm256_fmadd_ps(y, _mm256_mul_ps(r, r), _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
  const __m256i bits = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
  return _mm256_mul_ps(y, _mm256_castsi256_ps(bits));
}

}  // namespace avx2
}  // namespace
}  // namespace roofline::cpu
