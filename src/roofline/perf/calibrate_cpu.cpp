// The CPU measurements of calibrate.h. FMA loops live in calibrate_cpu_<isa>.cpp (compiled per ISA).
#include "roofline/perf/calibrate.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <ctime>
#include <memory>
#include <random>
#include <vector>

#include <fmt/format.h>

#include "roofline/backend/backend.h"
#include "roofline/backend/cpu/memory_bandwidth.h"
#include "roofline/core/stats.h"
#include "roofline/core/error.h"
#include "roofline/core/tensor.h"
#include "roofline/core/thread_pool.h"
#include "roofline/perf/cpu_hardware.h"
#include "roofline/perf/fma_loop.h"

namespace roofline::perf {

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point start) { return std::chrono::duration<double>(Clock::now() - start).count(); }

struct FmaKernel {
  float (*run)(int64_t iterations);
  int lanes;
  const char* isa;
};

// The widest FMA the CPU (and the OS, for the AVX-512 register state) supports, checked at run time.
FmaKernel widest_fma_kernel() {
#if defined(__x86_64__)
  if (__builtin_cpu_supports("avx512f")) return {detail::fma_loop_avx512, 16, "avx512"};
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return {detail::fma_loop_avx2, 8, "avx2"};
#endif
  return {detail::fma_loop_scalar, 8, "scalar"};
}

// Current UTC time, ISO 8601.
std::string utc_now() {
  const std::time_t t = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

}  // namespace

double measure_fma_rate(ThreadPool& pool, double min_seconds, std::string* isa_used) {
  const FmaKernel kernel = widest_fma_kernel();
  if (isa_used) *isa_used = kernel.isa;
  const double flops_per_iteration = double(detail::kFmaChains) * kernel.lanes * 2;
  std::atomic<uint32_t> sink{0};  // consumes the loops' results
  const size_t chunks = size_t(pool.size()) * 4;  // a few chunks per thread: a late thread cannot stall the end
  auto run = [&](int64_t iterations) {
    const auto start = Clock::now();
    pool.parallel_for(chunks, 1, [&](size_t b, size_t e) {
      for (size_t c = b; c < e; ++c)
        if (kernel.run(iterations) == -1.0f) sink.fetch_add(1, std::memory_order_relaxed);
    });
    return seconds_since(start);
  };
  // Grow the iteration count until one run takes long enough to time (this also warms the clocks up).
  int64_t iterations = 1 << 12;
  while (run(iterations) < min_seconds / 4 && iterations < (int64_t(1) << 40)) iterations *= 4;
  std::vector<double> rates;
  for (int i = 0; i < 3; ++i) rates.push_back(double(chunks) * double(iterations) * flops_per_iteration / run(iterations));
  return median(rates);
}

CpuCalibration calibrate_cpu(const CpuCalibrationOptions& o) {
  ROOFLINE_CHECK(o.matmul_m > 0 && o.matmul_n > 0 && o.matmul_k > 0 && o.matmul_repeats > 0,
                 "calibrate: the matmul shape and repeats must be positive");
  CpuCalibration c;
  {
    ThreadPool pool(o.threads);
    c.threads = pool.size();
    c.fma_flops = measure_fma_rate(pool, o.fma_seconds, &c.fma_isa);
    c.memory_bandwidth = measure_memory_read_bandwidth(pool, o.bandwidth_bytes);
  }
  // The engine's matmul as prefill uses it: f32 activations, bf16 weights converted in the kernel.
  std::unique_ptr<Backend> backend = make_cpu_backend(c.threads);
  c.matmul_m = o.matmul_m, c.matmul_n = o.matmul_n, c.matmul_k = o.matmul_k;
  Tensor x = Tensor::empty(DType::F32, {o.matmul_m, o.matmul_k});
  Tensor w = Tensor::empty(DType::BF16, {o.matmul_n, o.matmul_k});
  Tensor out = Tensor::empty(DType::F32, {o.matmul_m, o.matmul_n});
  std::mt19937 rng(1);
  std::uniform_real_distribution<float> uniform(-1.0f, 1.0f);
  for (int64_t i = 0; i < x.numel(); ++i) x.ptr<float>()[i] = uniform(rng);
  for (int64_t i = 0; i < w.numel(); ++i) w.ptr<uint16_t>()[i] = f32_to_bf16(uniform(rng));
  backend->matmul(out, x, w, nullptr);  // warm-up: packs, faults pages in
  std::vector<double> seconds;
  for (int i = 0; i < o.matmul_repeats; ++i) {
    const auto start = Clock::now();
    backend->matmul(out, x, w, nullptr);
    seconds.push_back(seconds_since(start));
  }
  c.matmul_flops = 2.0 * double(o.matmul_m) * double(o.matmul_n) * double(o.matmul_k) / median(seconds);
  return c;
}

HardwareSpec calibrated_cpu_hardware(const CpuCalibration& c) {
  const HardwareSpec estimate = estimated_cpu_hardware();
  const CpuDescription d = describe_this_cpu();
  HardwareSpec h = estimate;
  h.source = "calibrated";
  h.description = fmt::format("{}, {} threads, measured by roofline calibrate", d.model.empty() ? "this CPU" : d.model,
                              c.threads);
  h.peak_bf16_flops = c.fma_flops;
  h.memory_bandwidth = c.memory_bandwidth;
  h.measured = {
      {"calibrated_at", utc_now()},
      {"device", "cpu"},
      {"threads", c.threads},
      {"fma_isa", c.fma_isa},
      {"fma_flops_per_s", c.fma_flops},
      {"memory_read_bytes_per_s", c.memory_bandwidth},
      {"matmul_flops_per_s", c.matmul_flops},
      {"matmul_shape", fmt::format("{}x{}x{} (x f32, weights bf16)", c.matmul_m, c.matmul_n, c.matmul_k)},
      {"matmul_fraction_of_fma_peak", c.matmul_flops / c.fma_flops},
      {"estimated_peak_flops_per_s", estimate.peak_bf16_flops},
      {"default_memory_bytes_per_s", estimate.memory_bandwidth},
  };
  return h;
}

}  // namespace roofline::perf
