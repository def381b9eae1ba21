#include "roofline/perf/cpu_hardware.h"

#include <sched.h>

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <set>
#include <sstream>
#include <utility>

#include <fmt/format.h>

#include "roofline/core/thread_pool.h"

namespace roofline::perf {

namespace {

std::string slurp(const char* path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string trim(const std::string& s) {
  size_t b = s.find_first_not_of(" \t"), e = s.find_last_not_of(" \t\r");
  return b == std::string::npos ? "" : s.substr(b, e - b + 1);
}

// CPUs this process may run on (cgroups and taskset shrink it below what /proc/cpuinfo lists).
int usable_cpus() {
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof(set), &set) == 0) return CPU_COUNT(&set);
  return ThreadPool::hardware_threads();
}

}  // namespace

CpuDescription describe_cpu(const std::string& cpuinfo, CpuIsa isa, double max_freq_khz, int usable) {
  CpuDescription d;
  d.isa = isa;
  std::set<std::pair<std::string, std::string>> cores;  // (physical id, core id)
  std::string physical_id;
  double mhz = 0;
  std::istringstream in(cpuinfo);
  std::string line;
  while (std::getline(in, line)) {
    const size_t colon = line.find(':');
    if (colon == std::string::npos) continue;
    const std::string key = trim(line.substr(0, colon)), value = trim(line.substr(colon + 1));
    if (key == "processor") {
      ++d.logical_cpus;
      physical_id.clear();
    } else if (key == "model name" && d.model.empty()) {
      d.model = value;
    } else if (key == "physical id") {
      physical_id = value;
    } else if (key == "core id") {
      cores.insert({physical_id, value});
    } else if (key == "cpu MHz") {
      mhz = std::max(mhz, std::atof(value.c_str()));
    }
  }
  d.physical_cores = cores.empty() ? d.logical_cpus : int(cores.size());
  if (usable > 0) d.physical_cores = std::min(d.physical_cores, usable);
  d.physical_cores = std::max(d.physical_cores, 1);
  d.ghz = max_freq_khz > 0 ? max_freq_khz / 1e6 : mhz / 1e3;
  switch (isa) {
    case CpuIsa::Avx512Bf16:  // the engine does not use vdpbf16ps (see matmul_avx512bf16.cpp): f32 FMA rate
    case CpuIsa::Avx512: d.f32_lanes = 16, d.fma_units = 2; break;
    case CpuIsa::Avx2: d.f32_lanes = 8, d.fma_units = 2; break;
    case CpuIsa::Scalar:
#if defined(__x86_64__)
      d.f32_lanes = 4;  // SSE2: separate multiply and add pipes, about one FMA's worth per cycle
#endif
      d.fma_units = 1;
      break;
  }
  return d;
}

CpuDescription describe_this_cpu() {
  double max_khz = std::atof(slurp("/sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq").c_str());
  return describe_cpu(slurp("/proc/cpuinfo"), detect_cpu_isa(), max_khz, usable_cpus());
}

double default_cpu_memory_bandwidth(int cores) { return std::min(10e9 * std::max(cores, 1), 100e9); }

HardwareSpec estimated_cpu_hardware() {
  const CpuDescription d = describe_this_cpu();
  HardwareSpec h;
  h.name = "cpu";
  h.source = "estimated";
  h.description = fmt::format(
      "{}, {} cores at {:.2f} GHz, {} (peak estimated from cores x clock x SIMD width; memory bandwidth is a "
      "conservative default: run `roofline calibrate` to measure both)",
      d.model.empty() ? "this CPU" : d.model, d.physical_cores, d.ghz, cpu_isa_to_string(d.isa));
  h.peak_bf16_flops = d.peak_f32_flops();
  if (h.peak_bf16_flops <= 0) h.peak_bf16_flops = 1e9 * d.physical_cores;  // no clock reported: 1 GFLOP/s a core
  h.memory_bandwidth = default_cpu_memory_bandwidth(d.physical_cores);
  std::istringstream meminfo(slurp("/proc/meminfo"));
  std::string key;
  double kib = 0;
  while (meminfo >> key >> kib) {
    if (key == "MemTotal:") h.memory_capacity = kib * 1024;
    meminfo.ignore(1 << 10, '\n');
  }
  return h;
}

}  // namespace roofline::perf
