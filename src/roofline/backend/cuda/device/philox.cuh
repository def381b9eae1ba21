// Philox-4x32-10 (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3", SC'11): a counter-based
// generator, so any thread draws the numbers of any (key, counter) without shared state.
#pragma once
#include <cuda_runtime.h>

#include <cstdint>

namespace roofline::cuda::device {

__device__ __forceinline__ uint4 philox4x32_10(uint4 counter, uint2 key) {
  constexpr uint32_t kMul0 = 0xD2511F53u, kMul1 = 0xCD9E8D57u;
  constexpr uint32_t kWeyl0 = 0x9E3779B9u, kWeyl1 = 0xBB67AE85u;
#pragma unroll
  for (int round = 0; round < 10; ++round) {
    const uint32_t hi0 = __umulhi(kMul0, counter.x), lo0 = kMul0 * counter.x;
    const uint32_t hi1 = __umulhi(kMul1, counter.z), lo1 = kMul1 * counter.z;
    counter = make_uint4(hi1 ^ counter.y ^ key.x, lo1, hi0 ^ counter.w ^ key.y, lo0);
    key.x += kWeyl0;
    key.y += kWeyl1;
  }
  return counter;
}

// A uniform float in the open interval (0, 1) from 24 random bits.
__device__ __forceinline__ float uniform_open01(uint32_t bits) {
  return (float(bits >> 8) + 0.5f) * (1.0f / 16777216.0f);
}

}  // namespace roofline::cuda::device
