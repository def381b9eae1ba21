// The CPU as a roofline: peak FLOP/s estimated from /proc/cpuinfo (cores x clock x SIMD lanes x FMA units
// x 2), and a deliberately conservative memory bandwidth default, since no file states the real one:
// `roofline calibrate` measures both.
#pragma once
#include <string>

#include "roofline/backend/cpu/cpu_features.h"
#include "roofline/perf/hardware.h"

namespace roofline::perf {

struct CpuDescription {
  std::string model;       // "model name" of /proc/cpuinfo
  int logical_cpus = 0;    // processors listed
  int physical_cores = 0;  // distinct (physical id, core id) pairs: SMT siblings share the FMA units
  double ghz = 0;          // the highest clock reported (cpufreq max when present, else "cpu MHz")
  CpuIsa isa = CpuIsa::Scalar;
  int f32_lanes = 1;       // per vector register: avx512 16, avx2 8, x86-64 baseline (SSE) 4
  int fma_units = 1;       // vector FMA pipes per core: 2 assumed for AVX2/AVX-512 server cores

  // FLOP/s: cores x clock x lanes x FMA units x 2 (a fused multiply-add is two FLOPs).
  double peak_f32_flops() const { return physical_cores * ghz * 1e9 * f32_lanes * fma_units * 2.0; }
};

// Parses /proc/cpuinfo text; max_freq_khz from cpufreq (0: unknown), usable_cpus caps the cores (affinity).
CpuDescription describe_cpu(const std::string& cpuinfo, CpuIsa isa, double max_freq_khz, int usable_cpus);
// This machine (the widest ISA it supports, whatever ROOFLINE_CPU_ISA says).
CpuDescription describe_this_cpu();

// Default when nothing is measured: 10 GB/s per core, at most 100 GB/s (bytes/s).
double default_cpu_memory_bandwidth(int cores);
// This machine as a HardwareSpec named "cpu" (source "estimated").
HardwareSpec estimated_cpu_hardware();

}  // namespace roofline::perf
