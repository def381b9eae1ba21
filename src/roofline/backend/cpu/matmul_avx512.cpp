// AVX-512 matmul: the vector trait and weight loaders for matmul_kernels.h.
// gemm register tile: 12 weight rows x 32 rows of x = 24 zmm accumulators.
#include "roofline/backend/cpu/simd_avx512.h"
// (simd header first: matmul_kernels.h uses _mm_prefetch)
#include "roofline/backend/cpu/matmul_kernels.h"

namespace roofline::cpu {
namespace {

struct Avx512 {
  using F = __m512;
  static constexpr int64_t kWidth = 16;
  static constexpr int64_t kTileN = 12;
  // gemv weight rows per tile for M = 1..8 rows of x: MR*NR accumulators + 2*MR x vectors <= 32 zmm.
  static constexpr int kGemvRows[9] = {0, 8, 6, 4, 4, 3, 2, 2, 2};
  static constexpr int64_t kGemvAlign = 24;  // a multiple of every gemv tile width

  static F zero() { return _mm512_setzero_ps(); }
  static F load(const float* p) { return _mm512_loadu_ps(p); }
  static F broadcast(const float* p) { return _mm512_set1_ps(*p); }
  static F fmadd(F a, F b, F c) { return _mm512_fmadd_ps(a, b, c); }
  static void store(float* p, F v) { _mm512_storeu_ps(p, v); }
  static float hsum(F v) { return avx512::hsum(v); }
  static float load_scalar(DType dtype, const void* data, int64_t i) { return avx512::load_scalar(dtype, data, i); }
};

inline __mmask32 first_lanes32(int64_t count) {
  if (count <= 0) return 0;
  return count >= 32 ? __mmask32(0xffffffffu) : __mmask32((1u << unsigned(count)) - 1u);
}

// bf16: one 64-byte load holds 16 pairs; pair i gives element 2i by a 16-bit shift and element 2i+1 by
// masking the low half (x is packed even/odd to match).
struct Bf16Loader {
  using T = uint16_t;
  static constexpr bool kEvenOdd = true;
  static void split(__m512i v, __m512* out) {
    out[0] = _mm512_castsi512_ps(_mm512_slli_epi32(v, 16));
    out[1] = _mm512_castsi512_ps(_mm512_and_si512(v, _mm512_set1_epi32(int(0xffff0000u))));
  }
  static void load_chunk(const T* p, __m512* out) { split(_mm512_loadu_si512(p), out); }
  static void load_chunk_partial(const T* p, int64_t count, __m512* out) {
    split(_mm512_maskz_loadu_epi16(first_lanes32(count), p), out);
  }
  // 16 elements in natural order (gemm weight tiles); lanes past count are zero.
  static __m512 load_vector(const T* p) {
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i*)p)), 16));
  }
  static __m512 load_vector(const T* p, int64_t count) {
    const __m512i v = _mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(avx512::first_lanes(count), p));
    return _mm512_castsi512_ps(_mm512_slli_epi32(v, 16));
  }
};

struct F16Loader {
  using T = uint16_t;
  static constexpr bool kEvenOdd = false;
  static void load_chunk(const T* p, __m512* out) {
    out[0] = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i*)p));
    out[1] = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i*)(p + 16)));
  }
  static void load_chunk_partial(const T* p, int64_t count, __m512* out) {
    out[0] = load_vector(p, count);
    out[1] = load_vector(p + 16, count - 16);
  }
  static __m512 load_vector(const T* p) { return _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i*)p)); }
  static __m512 load_vector(const T* p, int64_t count) {
    return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(avx512::first_lanes(count), p));
  }
};

struct F32Loader {
  using T = float;
  static constexpr bool kEvenOdd = false;
  static void load_chunk(const T* p, __m512* out) {
    out[0] = _mm512_loadu_ps(p);
    out[1] = _mm512_loadu_ps(p + 16);
  }
  static void load_chunk_partial(const T* p, int64_t count, __m512* out) {
    out[0] = load_vector(p, count);
    out[1] = load_vector(p + 16, count - 16);
  }
  static __m512 load_vector(const T* p) { return _mm512_loadu_ps(p); }
  static __m512 load_vector(const T* p, int64_t count) { return _mm512_maskz_loadu_ps(avx512::first_lanes(count), p); }
};

}  // namespace

MatmulKernels matmul_kernels_avx512() {
  return matmul_impl::make_matmul_kernels<Avx512, F32Loader, F16Loader, Bf16Loader>();
}

}  // namespace roofline::cpu
