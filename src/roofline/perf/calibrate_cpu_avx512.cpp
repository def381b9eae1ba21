// AVX-512 FMA loop (compiled with -mavx512f; entered only when the CPU has it). See fma_loop.h.
#include <immintrin.h>

#include "roofline/perf/fma_loop.h"

namespace roofline::perf::detail {

float fma_loop_avx512(int64_t iterations) {
  // acc -> acc * a + b converges to b / (1 - a): no overflow, no denormals, whatever the iteration count.
  const __m512 a = _mm512_set1_ps(0.9999f), b = _mm512_set1_ps(1e-4f);
  __m512 acc[kFmaChains];
  for (int c = 0; c < kFmaChains; ++c) acc[c] = _mm512_set1_ps(float(c));
  for (int64_t i = 0; i < iterations; ++i)
    for (int c = 0; c < kFmaChains; ++c) acc[c] = _mm512_fmadd_ps(acc[c], a, b);
  __m512 sum = acc[0];
  for (int c = 1; c < kFmaChains; ++c) sum = _mm512_add_ps(sum, acc[c]);
  alignas(64) float lanes[16];  // (not _mm512_reduce_add_ps: GCC 12 warns inside it with -Werror)
  _mm512_store_ps(lanes, sum);
  float total = 0;
  for (float v : lanes) total += v;
  return total;
}

}  // namespace roofline::perf::detail
