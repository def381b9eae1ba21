// AVX2 matmul: the vector trait and weight loaders for matmul_kernels.h, sized for 16 ymm registers.
// gemm register tile: 6 weight rows x 16 rows of x = 12 ymm accumulators.
#include "roofline/backend/cpu/simd_avx2.h"
// (simd header first: matmul_kernels.h uses _mm_prefetch)
#include "roofline/backend/cpu/matmul_kernels.h"

namespace roofline::cpu {
namespace {

struct Avx2 {
  using F = __m256;
  static constexpr int64_t kWidth = 8;
  static constexpr int64_t kTileN = 6;
  // gemv weight rows per tile for M = 1..8 rows of x (x can come from memory operands). Eight rows for
  // M = 1, as on AVX-512: eight streams keep more misses in flight than four.
  static constexpr int kGemvRows[9] = {0, 8, 4, 3, 2, 2, 1, 1, 1};
  static constexpr int64_t kGemvAlign = 24;  // a multiple of every gemv tile width

  static F zero() { return _mm256_setzero_ps(); }
  static F load(const float* p) { return _mm256_loadu_ps(p); }
  static F broadcast(const float* p) { return _mm256_broadcast_ss(p); }
  static F fmadd(F a, F b, F c) { return _mm256_fmadd_ps(a, b, c); }
  static void store(float* p, F v) { _mm256_storeu_ps(p, v); }
  static float hsum(F v) { return avx2::hsum(v); }
  static float load_scalar(DType dtype, const void* data, int64_t i) { return avx2::load_scalar(dtype, data, i); }
};

// bf16: each 32-byte load holds 8 pairs; pair i gives element 2i by a 16-bit shift and element 2i+1 by
// masking the low half (x is packed even/odd per 16 elements to match).
struct Bf16Loader {
  using T = uint16_t;
  static constexpr bool kEvenOdd = true;
  static void split(__m256i v, __m256* out) {
    out[0] = _mm256_castsi256_ps(_mm256_slli_epi32(v, 16));
    out[1] = _mm256_castsi256_ps(_mm256_and_si256(v, _mm256_set1_epi32(int(0xffff0000u))));
  }
  static void load_chunk(const T* p, __m256* out) {
    split(_mm256_loadu_si256((const __m256i*)p), out);
    split(_mm256_loadu_si256((const __m256i*)(p + 16)), out + 2);
  }
  static void load_chunk_partial(const T* p, int64_t count, __m256* out) {
    T tmp[32];
    avx2::copy_partial(tmp, p, count);
    load_chunk(tmp, out);
  }
  // 8 elements in natural order (gemm weight tiles); lanes past count are zero.
  static __m256 load_vector(const T* p) {
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i*)p)), 16));
  }
  static __m256 load_vector(const T* p, int64_t count) {
    T tmp[8];
    avx2::copy_partial(tmp, p, count);
    return load_vector(tmp);
  }
};

struct F16Loader {
  using T = uint16_t;
  static constexpr bool kEvenOdd = false;
  static void load_chunk(const T* p, __m256* out) {
    for (int v = 0; v < 4; ++v) out[v] = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i*)(p + 8 * v)));
  }
  static void load_chunk_partial(const T* p, int64_t count, __m256* out) {
    T tmp[32];
    avx2::copy_partial(tmp, p, count);
    load_chunk(tmp, out);
  }
  static __m256 load_vector(const T* p) { return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i*)p)); }
  static __m256 load_vector(const T* p, int64_t count) {
    T tmp[8];
    avx2::copy_partial(tmp, p, count);
    return load_vector(tmp);
  }
};

struct F32Loader {
  using T = float;
  static constexpr bool kEvenOdd = false;
  static void load_chunk(const T* p, __m256* out) {
    for (int v = 0; v < 4; ++v) out[v] = _mm256_loadu_ps(p + 8 * v);
  }
  static void load_chunk_partial(const T* p, int64_t count, __m256* out) {
    for (int v = 0; v < 4; ++v) out[v] = load_vector(p + 8 * v, count - 8 * v);
  }
  static __m256 load_vector(const T* p) { return _mm256_loadu_ps(p); }
  static __m256 load_vector(const T* p, int64_t count) { return _mm256_maskload_ps(p, avx2::first_lanes(count)); }
};

}  // namespace

MatmulKernels matmul_kernels_avx2() {
  return matmul_impl::make_matmul_kernels<Avx2, F32Loader, F16Loader, Bf16Loader>();
}

}  // namespace roofline::cpu
