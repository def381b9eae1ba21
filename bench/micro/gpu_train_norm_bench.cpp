// Training norm micro benchmark (train/cuda/kernels.h norm_backward / layernorm_forward): time per call and
// the share of the device's copy bandwidth it reaches, counting the fewest bytes each call must move:
//   backward: dy f32, x f32, the residual gradient f32 read (when accumulated) and written, its bf16 copy
//             written, mean and rstd: 18 bytes an element accumulated, 14 written (GPT-2's final norm);
//   forward:  x f32 read, y bf16 written, mean and rstd: 6 bytes an element.
// The per-block partial sums (dweight, dbias, bias column sums) go through device memory twice more; they are
// not counted (GPT-2: 256 partial rows of 3 x 768 floats, 2.4 MB written and read back).
// Copy bandwidth: cuda::measure_copy_bandwidth over 1 GiB, read plus write. Times: CUDA events, warm-up, median
// of 11 samples of 10 back-to-back calls; every call moves ~226 MB, over 4x the L2, so the calls do not
// serve each other from cache. Uses only the public kernels.h interface, so the same source builds against
// any version of the library (main's, to compare).
//   roofline_gpu_train_norm_bench [--json FILE]
#include <cuda_bf16.h>
#include <cuda_runtime_api.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <vector>

#include "roofline/backend/cuda/cuda_check.h"
#include "roofline/backend/cuda/cuda_runtime_info.h"
#include "roofline/train/cuda/kernels.h"

#include "gpu_bench_main.h"

namespace roofline {
namespace {

namespace tc = train::cuda;

template <typename T>
struct Buffer {
  T* ptr = nullptr;
  size_t n = 0;
  explicit Buffer(size_t count) : n(count) { ROOFLINE_CUDA_CHECK(cudaMalloc(&ptr, std::max<size_t>(n, 1) * sizeof(T))); }
  ~Buffer() { cudaFree(ptr); }
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;
};

// Uniform in [lo, hi): a 4 Mi-element pattern of a seeded generator, repeated (fresh per buffer by seed).
void fill_random(Buffer<float>& b, uint32_t seed, float lo, float hi) {
  const size_t chunk = std::min<size_t>(b.n, size_t(4) << 20);
  std::vector<float> h(chunk);
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(lo, hi);
  for (float& v : h) v = dist(rng);
  for (size_t at = 0; at < b.n; at += chunk)
    ROOFLINE_CUDA_CHECK(cudaMemcpy(b.ptr + at, h.data(), std::min(chunk, b.n - at) * sizeof(float),
                                   cudaMemcpyHostToDevice));
}

// Median over 11 samples of the mean time of `reps` back-to-back calls, in microseconds.
double time_us(const std::function<void()>& body, int reps = 10) {
  for (int i = 0; i < 3; ++i) body();
  ROOFLINE_CUDA_CHECK(cudaDeviceSynchronize());
  cudaEvent_t start, stop;
  ROOFLINE_CUDA_CHECK(cudaEventCreate(&start));
  ROOFLINE_CUDA_CHECK(cudaEventCreate(&stop));
  std::vector<double> us;
  for (int s = 0; s < 11; ++s) {
    ROOFLINE_CUDA_CHECK(cudaEventRecord(start, nullptr));
    for (int r = 0; r < reps; ++r) body();
    ROOFLINE_CUDA_CHECK(cudaEventRecord(stop, nullptr));
    ROOFLINE_CUDA_CHECK(cudaEventSynchronize(stop));
    float ms = 0;
    ROOFLINE_CUDA_CHECK(cudaEventElapsedTime(&ms, start, stop));
    us.push_back(double(ms) * 1e3 / reps);
  }
  ROOFLINE_CUDA_CHECK(cudaGetLastError());
  cudaEventDestroy(start);
  cudaEventDestroy(stop);
  std::nth_element(us.begin(), us.begin() + 5, us.end());
  return us[5];
}

struct Row {
  std::string name;
  int64_t rows, dim;
  double us, bytes, gbps, share;
};

int run(int argc, char** argv) {
  std::string json_path;
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--json") && i + 1 < argc) json_path = argv[++i];
    else {
      std::fprintf(stderr, "usage: %s [--json FILE]\n", argv[0]);
      return 2;
    }
  }
  cudaDeviceProp prop{};
  ROOFLINE_CUDA_CHECK(cudaGetDeviceProperties(&prop, 0));
  const double copy_gbps = cuda::measure_copy_bandwidth(size_t(1) << 30, 11) * 1e-9;
  std::printf("device %s, %d SMs, copy %.0f GB/s (read + write)\n", prop.name, prop.multiProcessorCount, copy_gbps);
  std::printf("%-34s %7s %6s %9s %9s %8s %7s\n", "case", "rows", "dim", "us/call", "MB/call", "GB/s", "of copy");
  std::vector<Row> table;
  auto report = [&](const std::string& name, int64_t rows, int64_t dim, double us, double bytes) {
    const Row r{name, rows, dim, us, bytes, bytes / us * 1e-3, bytes / us * 1e-3 / copy_gbps};
    std::printf("%-34s %7lld %6lld %9.1f %9.1f %8.0f %6.0f%%\n", name.c_str(), (long long)rows, (long long)dim, us,
                bytes * 1e-6, r.gbps, 100.0 * r.share);
    std::fflush(stdout);
    table.push_back(r);
  };

  struct Case {
    int64_t rows, dim;
    bool layernorm;
  };
  // GPT-2 124M (16 x 1024 tokens, 768 wide), GPT-2 medium's width, and Llama 3.2 1B's (RMSNorm, 2048 wide).
  for (const Case c : {Case{16384, 768, true}, Case{16384, 1024, true}, Case{16384, 2048, false}}) {
    const size_t n = size_t(c.rows * c.dim);
    Buffer<float> x(n), dy(n), dres(n), w(size_t(c.dim)), b(size_t(c.dim)), dw(size_t(c.dim)), db(size_t(c.dim)),
        dsum(size_t(c.dim)), mean(size_t(c.rows)), rstd(size_t(c.rows)),
        partials(tc::norm_partials_floats(c.rows, c.dim));
    Buffer<__nv_bfloat16> y(n), dres_bf16(n);
    fill_random(x, 1, -2, 3);
    fill_random(dy, 2, -1, 1);
    fill_random(dres, 3, -1, 1);
    fill_random(w, 4, 0.5, 1.5);
    fill_random(b, 5, -1, 1);
    fill_random(dw, 6, -1, 1);
    fill_random(db, 7, -1, 1);
    fill_random(dsum, 8, -1, 1);
    const float* m = c.layernorm ? mean.ptr : nullptr;
    const std::string kind = c.layernorm ? "layernorm" : "rmsnorm";
    const double elems = double(n), stats = double(c.rows) * (c.layernorm ? 8.0 : 4.0);
    const double us_fwd = time_us([&] {
      if (c.layernorm) tc::layernorm_forward(x.ptr, w.ptr, b.ptr, y.ptr, mean.ptr, rstd.ptr, c.rows, c.dim, 1e-5f, nullptr);
      else tc::rmsnorm_forward(x.ptr, w.ptr, y.ptr, rstd.ptr, c.rows, c.dim, 1e-5f, nullptr);
    });
    report(kind + " fwd", c.rows, c.dim, us_fwd, 6.0 * elems + stats);
    const double us_acc = time_us([&] {
      tc::norm_backward(dy.ptr, x.ptr, w.ptr, m, rstd.ptr, dres.ptr, true, dres_bf16.ptr, dw.ptr,
                        c.layernorm ? db.ptr : nullptr, dsum.ptr, partials.ptr, c.rows, c.dim, nullptr);
    });
    report(kind + " bwd (accumulate, all sums)", c.rows, c.dim, us_acc, 18.0 * elems + stats);
    const double us_set = time_us([&] {
      tc::norm_backward(dy.ptr, x.ptr, w.ptr, m, rstd.ptr, dres.ptr, false, dres_bf16.ptr, dw.ptr,
                        c.layernorm ? db.ptr : nullptr, dsum.ptr, partials.ptr, c.rows, c.dim, nullptr);
    });
    report(kind + " bwd (write, all sums)", c.rows, c.dim, us_set, 14.0 * elems + stats);
  }
  if (!json_path.empty()) {
    nlohmann::json j = {{"device", prop.name}, {"copy_gbps", copy_gbps}, {"rows", nlohmann::json::array()}};
    for (const Row& r : table)
      j["rows"].push_back({{"case", r.name}, {"rows", r.rows}, {"dim", r.dim}, {"us", r.us}, {"bytes", r.bytes},
                           {"gbps", r.gbps}, {"share_of_copy", r.share}});
    std::ofstream(json_path) << j.dump(1) << "\n";
    std::printf("wrote %s\n", json_path.c_str());
  }
  return 0;
}

}  // namespace
}  // namespace roofline

int main(int argc, char** argv) {
  return roofline::bench_main("roofline_gpu_train_norm_bench", roofline::run, argc, argv);
}
