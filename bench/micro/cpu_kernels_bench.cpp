// CPU kernel micro benchmarks, every ISA level x 1 and 2 threads:
//  - the streaming read bandwidth (measure_memory_read_bandwidth), the decode roofline's denominator;
//  - matmul GEMV (M = 1, decode) with bf16 weights: weight GB/s and the fraction of the measured read
//    bandwidth. The weights rotate through copies totalling 1 GiB, so they stream from DRAM as in a real
//    decode step instead of sitting in the (large) L3;
//  - matmul prefill (M = 128): GFLOP/s.
// Napkin math: a bf16 GEMV moves 2*N*K bytes for 2*N*K flops (one flop per byte: memory-bound by far);
// K=2048, N=8192 is 32 MiB, ~1.1 ms at 30 GB/s. Prefill M=128 does 128 flops per weight byte.
#include <benchmark/benchmark.h>

#include <algorithm>
#include <chrono>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "roofline/backend/cpu/cpu_backend.h"
#include "roofline/backend/cpu/cpu_features.h"
#include "roofline/backend/cpu/memory_bandwidth.h"
#include "roofline/core/dtype.h"
#include "roofline/core/tensor.h"

namespace roofline {
namespace {

constexpr size_t kColdBytes = size_t(1) << 30;  // weight copies: 4x the L3 of the machine we tune on

// Read bandwidth per thread count, measured once per process.
double read_bandwidth(ThreadPool& pool) {
  static std::map<int, double> cache;
  auto it = cache.find(pool.size());
  if (it == cache.end()) it = cache.emplace(pool.size(), measure_memory_read_bandwidth(pool)).first;
  return it->second;
}

Tensor random_tensor(DType dtype, Shape shape, uint32_t seed) {
  const auto n = size_t(shape_numel(shape));
  std::vector<float> v(n);
  uint32_t s = seed;
  for (auto& x : v) {
    s = s * 1664525u + 1013904223u;
    x = float(int32_t(s >> 8) - (1 << 23)) / float(1 << 23);
  }
  Tensor t = Tensor::empty(dtype, std::move(shape));
  convert_from_f32(dtype, v.data(), t.data(), n);
  return t;
}

void BM_ReadBandwidth(benchmark::State& state, CpuIsa isa, int threads) {
  ThreadPool pool(threads);
  double bw = 0;
  for (auto _ : state) bw = measure_memory_read_bandwidth(pool, kColdBytes, isa);
  state.counters["GB/s"] = bw / 1e9;
}

void BM_Gemv(benchmark::State& state, CpuIsa isa, int threads, DType dtype, int64_t K, int64_t N) {
  auto backend = make_cpu_backend(threads, isa);
  const double bandwidth = read_bandwidth(backend->pool());
  const size_t weight_bytes = size_t(N * K) * dtype_size(dtype);
  const size_t copies = std::max<size_t>(2, kColdBytes / weight_bytes);
  std::vector<Tensor> weights;
  for (size_t i = 0; i < copies; ++i) weights.push_back(random_tensor(dtype, {N, K}, uint32_t(i + 1)));
  Tensor x = random_tensor(DType::F32, {1, K}, 99);
  Tensor out = Tensor::empty(DType::F32, {1, N});
  size_t i = 0;
  const auto start = std::chrono::steady_clock::now();
  for (auto _ : state) {
    backend->matmul(out, x, weights[i], nullptr);
    i = (i + 1) % copies;
    benchmark::DoNotOptimize(out.data());
  }
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  const double bytes_per_s = double(weight_bytes + size_t(K + N) * 4) * double(state.iterations()) / seconds;
  state.counters["GB/s"] = bytes_per_s / 1e9;
  state.counters["read_GB/s"] = bandwidth / 1e9;
  state.counters["frac"] = bytes_per_s / bandwidth;  // of the measured streaming read bandwidth
}

void BM_Prefill(benchmark::State& state, CpuIsa isa, int threads, DType dtype, int64_t M, int64_t K, int64_t N) {
  auto backend = make_cpu_backend(threads, isa);
  Tensor w = random_tensor(dtype, {N, K}, 1);
  Tensor x = random_tensor(DType::F32, {M, K}, 2);
  Tensor out = Tensor::empty(DType::F32, {M, N});
  for (auto _ : state) {
    backend->matmul(out, x, w, nullptr);
    benchmark::DoNotOptimize(out.data());
  }
  state.counters["GFLOP/s"] =
      benchmark::Counter(2.0 * double(M) * double(N) * double(K) * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
}

int register_all() {
  for (CpuIsa isa : supported_cpu_isas()) {
    const std::string level(cpu_isa_to_string(isa));
    for (int threads : {1, 2}) {
      const std::string suffix = "/" + level + "/threads:" + std::to_string(threads);
      benchmark::RegisterBenchmark(("ReadBandwidth" + suffix).c_str(), BM_ReadBandwidth, isa, threads)
          ->Iterations(1)->Unit(benchmark::kMillisecond)->UseRealTime();
      for (auto [K, N] : {std::pair<int64_t, int64_t>{2048, 8192}, {768, 50304}, {4096, 4096}}) {
        benchmark::RegisterBenchmark(
            ("GemvBf16/K:" + std::to_string(K) + "/N:" + std::to_string(N) + suffix).c_str(), BM_Gemv, isa, threads,
            DType::BF16, K, N)
            ->Unit(benchmark::kMicrosecond)->UseRealTime()->MinTime(0.5);
      }
      benchmark::RegisterBenchmark(("GemvF16/K:2048/N:8192" + suffix).c_str(), BM_Gemv, isa, threads, DType::F16,
                                   int64_t(2048), int64_t(8192))
          ->Unit(benchmark::kMicrosecond)->UseRealTime()->MinTime(0.5);
      if (isa != CpuIsa::Scalar) {
        for (DType dtype : {DType::BF16, DType::F32}) {
          benchmark::RegisterBenchmark(
              ("Prefill" + std::string(dtype_name(dtype)) + "/M:128/K:2048/N:2048" + suffix).c_str(), BM_Prefill, isa,
              threads, dtype, int64_t(128), int64_t(2048), int64_t(2048))
              ->Unit(benchmark::kMillisecond)->UseRealTime()->MinTime(0.5);
        }
      }
    }
  }
  return 0;
}

const int registered = register_all();

}  // namespace
}  // namespace roofline
