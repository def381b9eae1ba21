// Register-blocked FMA loops, one per instruction set (calibrate_cpu_<isa>.cpp, compiled with that ISA's flags and
// only entered after a run-time check). Each runs kFmaChains independent accumulator chains so that the FMA
// pipes stay full despite the FMA latency (4 cycles x 2 pipes needs 8 chains in flight; 12 leaves margin).
#pragma once
#include <cstdint>

namespace roofline::perf::detail {

constexpr int kFmaChains = 12;

// Each runs `iterations` rounds of kFmaChains vector FMAs (acc = acc * a + b) and returns a sum of the
// accumulators, which the caller must consume so the loop cannot be removed.
// FLOPs = iterations * kFmaChains * lanes * 2, lanes = 16 (avx512), 8 (avx2), 8 (scalar: 8 float chains).
float fma_loop_avx512(int64_t iterations);
float fma_loop_avx2(int64_t iterations);
float fma_loop_scalar(int64_t iterations);

}  // namespace roofline::perf::detail
