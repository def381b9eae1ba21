// Measuring the CPU's real ceilings, for `roofline calibrate`: the FMA rate (register-blocked FMA chains on
// every thread, widest ISA), the streaming read bandwidth (backend/cpu/memory_bandwidth.h) and the rate of
// the engine's own matmul on bf16 weights (what prefill can reach). The results replace the estimates of
// cpu_hardware.h when stored under "cpu".
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

#include "roofline/perf/hardware.h"

namespace roofline {
class ThreadPool;
}

namespace roofline::perf {

struct CpuCalibrationOptions {
  int threads = 0;                           // 0: one per hardware thread
  size_t bandwidth_bytes = size_t(1) << 30;  // read buffer: well beyond any L3
  int64_t matmul_m = 512, matmul_n = 2048, matmul_k = 2048;  // x[M, K] f32 . w[N, K]^T bf16
  int matmul_repeats = 5;                    // timed runs after one warm-up; the median counts
  double fma_seconds = 0.2;                  // length of each timed FMA run
};

struct CpuCalibration {
  int threads = 0;
  std::string fma_isa;          // "avx512", "avx2" or "scalar": the FMA loop that ran
  double fma_flops = 0;         // FLOP/s, all threads
  double memory_bandwidth = 0;  // bytes/s, streaming read, all threads
  double matmul_flops = 0;      // FLOP/s of make_cpu_backend(threads)->matmul on the options' shape
  int64_t matmul_m = 0, matmul_n = 0, matmul_k = 0;
};

// FLOP/s of independent FMA chains on every thread of the pool (median of 3 runs of ~min_seconds each),
// with the widest FMA the CPU supports (AVX-512, AVX2, else plain C++), chosen at run time.
double measure_fma_rate(ThreadPool& pool, double min_seconds, std::string* isa_used = nullptr);

// Runs the three measurements (a few seconds with the default sizes).
CpuCalibration calibrate_cpu(const CpuCalibrationOptions& options);

// The "cpu" hardware entry from a calibration: peak = measured FMA rate, bandwidth = measured read
// bandwidth; the measurements (and the estimate they replace) are kept under "measured".
HardwareSpec calibrated_cpu_hardware(const CpuCalibration& calibration);

}  // namespace roofline::perf
