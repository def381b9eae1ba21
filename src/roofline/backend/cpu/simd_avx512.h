// AVX-512 helpers for the *_avx512*.cpp files only. Everything is in an anonymous namespace (internal
// linkage), so no AVX-512 code is ever shared with plain code through the linker (see kernels.h).
#pragma once
// GCC 12 warns inside its own AVX-512 intrinsics (_mm512_undefined_* is "__Y = __Y", GCC bug 105593);
// silence that one warning for the header's lines only.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#include <immintrin.h>
#pragma GCC diagnostic pop
#else
#include <immintrin.h>
#endif

#include <cstdint>
#include <cstring>

#include "roofline/core/dtype.h"

namespace roofline::cpu {
namespace {
namespace avx512 {

// Mask of the first `count` lanes (none for count <= 0, all 16 for count >= 16).
inline __mmask16 first_lanes(int64_t count) {
  if (count <= 0) return 0;
  return count >= 16 ? __mmask16(0xffff) : __mmask16((1u << unsigned(count)) - 1u);
}

// Sum of the 16 lanes.
inline float hsum(__m512 v) {
  v = _mm512_add_ps(v, _mm512_shuffle_f32x4(v, v, _MM_SHUFFLE(1, 0, 3, 2)));
  v = _mm512_add_ps(v, _mm512_shuffle_f32x4(v, v, _MM_SHUFFLE(2, 3, 0, 1)));
  v = _mm512_add_ps(v, _mm512_permute_ps(v, _MM_SHUFFLE(1, 0, 3, 2)));
  v = _mm512_add_ps(v, _mm512_permute_ps(v, _MM_SHUFFLE(2, 3, 0, 1)));
  return _mm512_cvtss_f32(v);
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

// exp(x), Cephes-style: x = n ln2 + r with |r| <= ln2/2, a degree-6 polynomial for e^r, then scale by
// 2^n with vscalefps (which handles overflow to inf and underflow to 0). Max relative error ~1.5e-7.
inline __m512 exp(__m512 x) {
  const __m512 log2e = _mm512_set1_ps(1.44269504088896341f);
  const __m512 ln2_hi = _mm512_set1_ps(0.693359375f);
  const __m512 ln2_lo = _mm512_set1_ps(-2.12194440e-4f);
  // Above 88.7 the result is inf anyway; below -87.33 it would be denormal (slow, and irrelevant next to
  // the other terms of a softmax or sigmoid), so it stops at FLT_MIN. max/min keep NaN (second operand).
  x = _mm512_min_ps(_mm512_set1_ps(104.0f), _mm512_max_ps(_mm512_set1_ps(-87.33f), x));
  __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, log2e), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmadd_ps(n, ln2_hi, x);
  r = _mm512_fnmadd_ps(n, ln2_lo, r);
  __m512 y = _mm512_set1_ps(1.9875691500e-4f);
  y = _mm512_fmadd_ps(y, r, _mm512_set1_ps(1.3981999507e-3f));
  y = _mm512_fmadd_ps(y, r, _mm512_set1_ps(8.3334519073e-3f));
  y = _mm512_fmadd_ps(y, r, _mm512_set1_ps(4.1665795894e-2f));
  y = _mm512_fmadd_ps(y, r, _mm512_set1_ps(1.6666665459e-1f));
  y = _mm512_fmadd_ps(y, r, _mm512_set1_ps(5.0000001201e-1f));
  y = _mm512_fmadd_ps(y, _mm512_mul_ps(r, r), _mm512_add_ps(r, _mm512_set1_ps(1.0f)));
  return _mm512_scalef_ps(y, n);
}

}  // namespace avx512
}  // namespace
}  // namespace roofline::cpu
