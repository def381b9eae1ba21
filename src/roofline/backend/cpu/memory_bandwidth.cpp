// Streaming read bandwidth: every thread of the pool reads chunks of one large buffer with the SIMD read
// kernel (wide loads summed into registers so nothing can be optimised away). The buffer is split into
// 16 chunks per thread taken dynamically, like the matmul's parts, so a thread that is descheduled for a
// moment does not leave the others idle at the end of a pass.
//
// Which read pattern is fastest depends on the machine: on two Sapphire Rapids VMs (two threads) one
// sequential stream per thread with a 4 KiB prefetch read 28.8 GB/s on one host, where eight streams
// without prefetch read 26.6, while on the other four or eight streams with a 1 KiB / 512 B prefetch
// were best. A roofline denominator must not be beaten by the kernels it judges, so each pattern is
// measured and the best median wins. A 4 GiB buffer measures the same as 1 GiB (no L3 effect).
#include "roofline/backend/cpu/memory_bandwidth.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <vector>

#include "roofline/backend/cpu/kernels.h"
#include "roofline/core/error.h"
#include "roofline/core/thread_pool.h"

namespace roofline {

double measure_memory_read_bandwidth(ThreadPool& pool, size_t bytes) {
  return measure_memory_read_bandwidth(pool, bytes, select_cpu_isa());
}

double measure_memory_read_bandwidth(ThreadPool& pool, size_t bytes, CpuIsa isa) {
  constexpr int kPasses = 5;
  const auto read_sum = cpu::cpu_kernels(isa).vector.read_sum;
  const size_t chunks = size_t(pool.size()) * 16;
  const size_t chunk = std::max<size_t>(bytes / chunks / 4096 * 4096, 4096);  // whole pages
  bytes = chunk * chunks;

  void* raw = std::aligned_alloc(4096, bytes);
  ROOFLINE_CHECK(raw != nullptr, "measure_memory_read_bandwidth: cannot allocate {} bytes", bytes);
  std::unique_ptr<void, void (*)(void*)> buffer(raw, [](void* p) { std::free(p); });
  auto* data = static_cast<uint8_t*>(raw);
  // Touch every page (from the threads that will read it) so the passes measure reads, not page faults.
  pool.parallel_for(chunks, 1, [&](size_t b, size_t e) {
    for (size_t c = b; c < e; ++c) std::memset(data + c * chunk, int(c & 0x7f) + 1, chunk);
  });

  std::atomic<uint64_t> sink{0};  // consumes the read kernel's results
  double best = 0;
  for (int streams : {1, 4, 8}) {
    std::vector<double> seconds;
    for (int pass = 0; pass <= kPasses; ++pass) {  // pass 0 warms up (and wakes the workers)
      const auto start = std::chrono::steady_clock::now();
      pool.parallel_for(chunks, 1, [&](size_t b, size_t e) {
        float sum = 0;
        for (size_t c = b; c < e; ++c) sum += read_sum(data + c * chunk, chunk, streams);
        if (sum != 0.0f) sink.fetch_add(1, std::memory_order_relaxed);
      });
      const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      if (pass > 0) seconds.push_back(s);
    }
    std::sort(seconds.begin(), seconds.end());
    best = std::max(best, double(bytes) / seconds[seconds.size() / 2]);
  }
  return best;
}

}  // namespace roofline
