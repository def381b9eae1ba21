// Portable multiply-add loop: the fallback where no FMA vector unit is known. See fma_loop.h.
#include "roofline/perf/fma_loop.h"

namespace roofline::perf::detail {

float fma_loop_scalar(int64_t iterations) {
  constexpr int kLanes = 8;  // 8 float lanes per chain: the compiler may vectorise them, which is the point
  const float a = 0.9999f, b = 1e-4f;
  float acc[kFmaChains][kLanes];
  for (int c = 0; c < kFmaChains; ++c)
    for (int l = 0; l < kLanes; ++l) acc[c][l] = float(c + l);
  for (int64_t i = 0; i < iterations; ++i)
    for (int c = 0; c < kFmaChains; ++c)
      for (int l = 0; l < kLanes; ++l) acc[c][l] = acc[c][l] * a + b;
  float total = 0;
  for (int c = 0; c < kFmaChains; ++c)
    for (int l = 0; l < kLanes; ++l) total += acc[c][l];
  return total;
}

}  // namespace roofline::perf::detail
