// AVX2 FMA loop (compiled with -mavx2 -mfma; entered only when the CPU has both). See fma_loop.h.
#include <immintrin.h>

#include "roofline/perf/fma_loop.h"

namespace roofline::perf::detail {

float fma_loop_avx2(int64_t iterations) {
  // acc -> acc * a + b converges to b / (1 - a): no overflow, no denormals, whatever the iteration count.
  const __m256 a = _mm256_set1_ps(0.9999f), b = _mm256_set1_ps(1e-4f);
  __m256 acc[kFmaChains];  // 12 of the 16 ymm registers
  for (int c = 0; c < kFmaChains; ++c) acc[c] = _mm256_set1_ps(float(c));
  for (int64_t i = 0; i < iterations; ++i)
    for (int c = 0; c < kFmaChains; ++c) acc[c] = _mm256_fmadd_ps(acc[c], a, b);
  __m256 sum = acc[0];
  for (int c = 1; c < kFmaChains; ++c) sum = _mm256_add_ps(sum, acc[c]);
  alignas(32) float lanes[8];
  _mm256_store_ps(lanes, sum);
  float total = 0;
  for (float v : lanes) total += v;
  return total;
}

}  // namespace roofline::perf::detail
