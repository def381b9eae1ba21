// GPU attention micro benchmark (CudaBackend, Hopper): prints a table and writes JSON.
//  - prefill: causal attention of one sequence of S rows, 32 query heads over 8 kv heads (GQA 4:1), head_dim
//    64 and 128, bf16. FLOPs = 2 * 2 * S * S / 2 * Hq * D (QK^T and PV, half the square under the mask).
//    Variants: the mma.sync kernel (the reference of d=), paged (block_size 16, shuffled blocks) as
//    CudaBackend::paged_attention runs it (cuda::prefill_kernel_for: wgmma at head_dim 64, mma.sync at 128), the wgmma
//    kernel with 64- and 128-key blocks forced, each with the softmax overlapping the previous block's P V and
//    without ("serial"), the mma.sync kernel's 16- and 32-row warps forced (not with --quick), and the
//    contiguous cache through CudaBackend::attention_prefill.
//  - decode: one query row per sequence against B sequences of ctx keys (paged, block_size 16, shuffled blocks),
//    timed as graph replays. Bytes = the K and V rows read, B * ctx * Hkv * D * 2 (K, V) * 2 bytes; the
//    fraction is of the measured device-to-device copy bandwidth (bytes read + written).
//  - fp8: the same decode shapes and prefill lengths over F8E4M3 pools (--kv-cache-dtype fp8: e4m3 codes plus
//    an f32 scale per row and kv head); decode bytes = B * ctx * Hkv * (D + 4) * 2. The "x" column is the
//    bf16 time over the fp8 time of the same shape.
// Napkin math (H200, ~4.3 TB/s copy): B = 64, ctx = 4096, hd 128: 1.07 GB of K+V, ~250 us at the copy rate.
// Prefill at S = 4096, hd 128: 137 GFLOP, ~0.5 ms at 275 TFLOP/s.
//   roofline_gpu_attention_bench [--json FILE] [--quick] [--decode-only | --prefill-only]
#include <cuda_runtime_api.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <functional>
#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "roofline/backend/cuda/cuda_backend.h"
#include "roofline/backend/cuda/cuda_check.h"
#include "roofline/backend/cuda/cuda_runtime_info.h"
#include "roofline/backend/cuda/kernels.h"
#include "roofline/core/dtype.h"
#include "roofline/core/error.h"

#include "gpu_bench_main.h"

namespace roofline {
namespace {

using cuda::CudaBackend;

constexpr int kHq = 32, kHkv = 8, kBlockSize = 16;

// Fills a device tensor (bf16) with random values in [-1, 1): a 4 Mi-element random pattern, repeated.
void fill_random(Tensor& t, uint32_t seed) {
  const size_t n = size_t(t.numel()), chunk = std::min<size_t>(n, size_t(4) << 20);
  std::vector<float> f(chunk);
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  for (float& x : f) x = dist(rng);
  std::vector<uint16_t> b(chunk);
  convert_from_f32(DType::BF16, f.data(), b.data(), chunk);
  for (size_t at = 0; at < n; at += chunk) {
    const size_t count = std::min(chunk, n - at);
    ROOFLINE_CUDA_CHECK(cudaMemcpy(static_cast<uint16_t*>(t.data()) + at, b.data(), count * 2, cudaMemcpyHostToDevice));
  }
}

// An F8E4M3 pool: random finite e4m3 codes (never the NaN codes 0x7f / 0xff) and scales near 1/64.
void fill_random_fp8(CudaBackend& gpu, Tensor& codes, Tensor& scales, uint32_t seed) {
  const size_t n = size_t(codes.numel()), chunk = std::min<size_t>(n, size_t(16) << 20);
  std::mt19937 rng(seed);
  std::vector<uint8_t> bytes(chunk);
  for (uint8_t& b : bytes) {
    b = uint8_t(rng());
    if ((b & 0x7f) == 0x7f) b ^= 0x01;
  }
  for (size_t at = 0; at < n; at += chunk)
    ROOFLINE_CUDA_CHECK(cudaMemcpy(static_cast<uint8_t*>(codes.data()) + at, bytes.data(), std::min(chunk, n - at),
                                   cudaMemcpyHostToDevice));
  Tensor host = Tensor::empty(DType::F32, scales.shape());
  std::uniform_real_distribution<float> dist(0.5f / 64, 2.0f / 64);
  for (int64_t i = 0; i < host.numel(); ++i) host.ptr<float>()[i] = dist(rng);
  gpu.upload_into(scales, host);
}

Tensor upload_i32(CudaBackend& gpu, const std::vector<int32_t>& v, Shape shape) {
  Tensor host = Tensor::empty(DType::I32, std::move(shape));
  std::copy(v.begin(), v.end(), host.ptr<int32_t>());
  return gpu.upload(host, DType::I32);
}

// Median over `samples` of the mean time of `reps` back-to-back calls, in microseconds.
double time_us(CudaBackend& gpu, const std::function<void()>& body, int reps, int samples) {
  for (int i = 0; i < 3; ++i) body();
  gpu.synchronize();
  cudaEvent_t start, stop;
  ROOFLINE_CUDA_CHECK(cudaEventCreate(&start));
  ROOFLINE_CUDA_CHECK(cudaEventCreate(&stop));
  std::vector<double> us;
  for (int s = 0; s < samples; ++s) {
    ROOFLINE_CUDA_CHECK(cudaEventRecord(start, gpu.stream()));
    for (int r = 0; r < reps; ++r) body();
    ROOFLINE_CUDA_CHECK(cudaEventRecord(stop, gpu.stream()));
    ROOFLINE_CUDA_CHECK(cudaEventSynchronize(stop));
    float ms = 0;
    ROOFLINE_CUDA_CHECK(cudaEventElapsedTime(&ms, start, stop));
    us.push_back(double(ms) * 1e3 / reps);
  }
  cudaEventDestroy(start);
  cudaEventDestroy(stop);
  std::nth_element(us.begin(), us.begin() + samples / 2, us.end());
  return us[size_t(samples / 2)];
}

// A paged batch: B sequences of n query rows each at the end of ctx keys, shuffled blocks of kBlockSize.
struct PagedSetup {
  int B, n, ctx, D;
  Tensor q, out, k_pool, v_pool, query_start, context_len, block_table;
  Tensor k_scale, v_scale;  // F8E4M3 pools only
  PagedAttentionBatch batch;
};

PagedSetup make_paged(CudaBackend& gpu, int B, int n, int ctx, int D, uint32_t seed, bool fp8 = false) {
  PagedSetup s{B, n, ctx, D, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}};
  const int blocks_per_seq = (ctx + kBlockSize - 1) / kBlockSize, num_blocks = B * blocks_per_seq;
  s.q = gpu.alloc(DType::BF16, {int64_t(B) * n, kHq, D});
  s.out = gpu.alloc(DType::BF16, {int64_t(B) * n, kHq, D});
  const DType kv = fp8 ? DType::F8E4M3 : DType::BF16;
  s.k_pool = gpu.alloc(kv, {num_blocks, kBlockSize, kHkv, D});
  s.v_pool = gpu.alloc(kv, {num_blocks, kBlockSize, kHkv, D});
  fill_random(s.q, seed);
  if (fp8) {
    s.k_scale = gpu.alloc(DType::F32, {num_blocks, kBlockSize, kHkv});
    s.v_scale = gpu.alloc(DType::F32, {num_blocks, kBlockSize, kHkv});
    fill_random_fp8(gpu, s.k_pool, s.k_scale, seed + 1);
    fill_random_fp8(gpu, s.v_pool, s.v_scale, seed + 2);
    s.batch.kv_scales = KvScales{&s.k_scale, &s.v_scale};
  } else {
    fill_random(s.k_pool, seed + 1);
    fill_random(s.v_pool, seed + 2);
  }
  std::vector<int32_t> ids(static_cast<size_t>(num_blocks));
  std::iota(ids.begin(), ids.end(), 0);
  std::mt19937 rng(seed);
  std::shuffle(ids.begin(), ids.end(), rng);
  std::vector<int32_t> qs(size_t(B) + 1), lens(size_t(B), ctx);
  for (int b = 0; b <= B; ++b) qs[size_t(b)] = b * n;
  s.query_start = upload_i32(gpu, qs, {B + 1});
  s.context_len = upload_i32(gpu, lens, {B});
  s.block_table = upload_i32(gpu, ids, {B, blocks_per_seq});
  s.batch.num_seqs = B;
  s.batch.max_query_len = n;
  s.batch.max_context_len = ctx;
  s.batch.block_size = kBlockSize;
  s.batch.scale = float(1.0 / std::sqrt(double(D)));
  s.batch.query_start = &s.query_start;
  s.batch.context_len = &s.context_len;
  s.batch.block_table = &s.block_table;
  return s;
}

// The kernel-level arguments of a paged setup (for the kernel lab variants).
cuda::PagedAttentionArgs lab_args(const PagedSetup& s) {
  cuda::PagedAttentionArgs a;
  a.q = s.q.data();
  a.k_pool = s.k_pool.data();
  a.v_pool = s.v_pool.data();
  a.out = const_cast<void*>(s.out.data());
  a.Hq = kHq;
  a.Hkv = kHkv;
  a.D = s.D;
  a.num_seqs = s.B;
  a.max_query_len = s.n;
  a.max_context_len = s.ctx;
  a.block_size = kBlockSize;
  a.scale = s.batch.scale;
  a.query_start = s.query_start.ptr<int32_t>();
  a.context_len = s.context_len.ptr<int32_t>();
  a.block_table = s.block_table.ptr<int32_t>();
  a.table_pitch = int(s.block_table.dim(1));
  return a;
}

std::vector<float> download_f32(CudaBackend& gpu, const Tensor& t) {
  Tensor host = Tensor::empty(DType::F32, t.shape());
  gpu.download(t, host);
  return std::vector<float>(host.ptr<float>(), host.ptr<float>() + host.numel());
}

double relative_l2(const std::vector<float>& a, const std::vector<float>& b) {
  double num = 0, den = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    const double d = double(a[i]) - double(b[i]);
    num += d * d;
    den += double(b[i]) * b[i];
  }
  return std::isfinite(num) && den > 0 ? std::sqrt(num / den) : INFINITY;
}

struct Row {
  std::string op, variant;
  int D, B, seq;
  double us, rate;  // TFLOP/s (prefill) or GB/s (decode)
  double fraction;  // of the copy bandwidth (decode); 0 for prefill
  double rel_diff;  // against the first variant of the same shape (-1: the reference itself)
  double speedup = 0;  // fp8 decode: the bf16 time of the shape over this one
};

void print_row(const Row& r) {
  std::printf("%-8s %-22s %4d %4d %7d %11.1f %10.1f %s %9s\n", r.op.c_str(), r.variant.c_str(), r.D, r.B, r.seq, r.us,
              r.rate, r.op == "prefill" ? "TFLOP/s" : "GB/s   ",
              r.fraction > 0 ? fmt::format("{:.0f}%", 100 * r.fraction).c_str()
                             : (r.rel_diff >= 0 ? fmt::format("d={:.1e}", r.rel_diff).c_str() : ""));
  if (r.speedup > 0) std::printf("         x%.2f against bf16\n", r.speedup);
  std::fflush(stdout);
}

int run(int argc, char** argv) {
  std::string json_path;
  bool quick = false, decode_only = false, prefill_only = false;
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--json") && i + 1 < argc) json_path = argv[++i];
    else if (!std::strcmp(argv[i], "--quick")) quick = true;
    else if (!std::strcmp(argv[i], "--decode-only")) decode_only = true;
    else if (!std::strcmp(argv[i], "--prefill-only")) prefill_only = true;
    else {
      std::fprintf(stderr, "usage: %s [--json FILE] [--quick] [--decode-only | --prefill-only]\n", argv[0]);
      return 2;
    }
  }
  auto gpu_owner = cuda::make_cuda_backend(0);
  CudaBackend& gpu = *gpu_owner;
  const auto devices = cuda::list_devices();
  const std::string device = devices.empty() ? "?" : devices[0].name;
  const double copy_bw = cuda::measure_copy_bandwidth(size_t(2) << 30, 10);
  std::printf("device: %s, %d SMs, copy bandwidth %.0f GB/s (read + write)\n", device.c_str(), gpu.multiprocessors(),
              copy_bw / 1e9);
  std::printf("%-8s %-22s %4s %4s %7s %11s %10s\n", "op", "variant", "D", "B", "seq/ctx", "us", "rate");
  std::vector<Row> rows;
  std::vector<int> prefill_lengths = quick ? std::vector<int>{1024, 4096} : std::vector<int>{1024, 2048, 4096, 8192, 16384};
  if (decode_only) prefill_lengths.clear();

  for (int D : {64, 128}) {
    for (int S : prefill_lengths) {
      PagedSetup s = make_paged(gpu, 1, S, S, D, uint32_t(S + D));
      const double flops = 2.0 * 2.0 * double(S) * S / 2.0 * kHq * D;
      const int reps = std::max(1, int(2e12 / flops)), samples = quick ? 5 : 11;
      std::vector<float> reference;
      auto measure = [&](const std::string& variant, const std::function<void()>& body) {
        const double us = time_us(gpu, body, reps, samples);
        body();
        const std::vector<float> got = download_f32(gpu, s.out);
        const double diff = reference.empty() ? -1.0 : relative_l2(got, reference);
        if (reference.empty()) reference = got;
        rows.push_back({"prefill", variant, D, 1, S, us, flops / us * 1e-6, 0.0, diff});
        print_row(rows.back());
      };
      // The mma.sync kernel first: the reference the other variants' d= compares against.
      {
        cuda::PagedAttentionArgs a = lab_args(s);
        a.prefill_kernel = cuda::PrefillKernel::MmaSync;
        measure("paged bs16 mma.sync", [&gpu, a] { cuda::launch_paged_prefill(a, gpu.multiprocessors(), gpu.stream()); });
      }
      measure("paged bs16", [&] { gpu.paged_attention(s.out, s.q, s.k_pool, s.v_pool, s.batch); });
      for (int keys : {64, 128})
        for (int overlap : {1, 0}) {
          cuda::PagedAttentionArgs a = lab_args(s);
          a.prefill_kernel = cuda::PrefillKernel::Wgmma;
          a.prefill_keys_per_block = keys;
          a.prefill_overlap = overlap;
          measure(fmt::format("paged bs16 wgmma n{}{}", keys, overlap ? "" : " serial"),
                  [&gpu, a] { cuda::launch_paged_prefill(a, gpu.multiprocessors(), gpu.stream()); });
        }
      if (!quick)
        for (int warp_rows : {16, 32}) {
          cuda::PagedAttentionArgs a = lab_args(s);
          a.prefill_kernel = cuda::PrefillKernel::MmaSync;
          a.prefill_warp_rows = warp_rows;
          measure(fmt::format("paged bs16 warp{}", warp_rows), [&gpu, a] { cuda::launch_paged_prefill(a, gpu.multiprocessors(), gpu.stream()); });
        }
      // The contiguous form: a cache [S, Hkv, D] (the pool's bytes, as one block; its contents differ, so the
      // output is not compared).
      Tensor k_cache = s.k_pool.reshape({s.k_pool.dim(0) * kBlockSize, kHkv, D});
      Tensor v_cache = s.v_pool.reshape(k_cache.shape());
      AttentionParams params;
      params.scale = s.batch.scale;
      const double us = time_us(gpu, [&] { gpu.attention_prefill(s.out, s.q, k_cache, v_cache, params); }, reps, samples);
      rows.push_back({"prefill", "contiguous", D, 1, S, us, flops / us * 1e-6, 0.0, -1.0});
      print_row(rows.back());
      // F8E4M3 pools (other contents: not compared).
      PagedSetup f = make_paged(gpu, 1, S, S, D, uint32_t(S + D), true);
      const double fus = time_us(gpu, [&] { gpu.paged_attention(f.out, f.q, f.k_pool, f.v_pool, f.batch); }, reps, samples);
      rows.push_back({"prefill", "paged bs16 fp8", D, 1, S, fus, flops / fus * 1e-6, 0.0, -1.0});
      print_row(rows.back());
    }
  }

  struct DecodeShape {
    int B, ctx;
  };
  const std::vector<DecodeShape> decode_shapes =
      quick ? std::vector<DecodeShape>{{1, 32768}, {64, 512}, {64, 4096}}
            : std::vector<DecodeShape>{{1, 32768}, {1, 131072}, {64, 512}, {64, 1024}, {64, 2048}, {64, 4096}, {16, 8192}};
  std::vector<DecodeShape> shapes_with_serving = decode_shapes;
  shapes_with_serving.push_back({256, 1536});  // the 8B serving goal: 256 sequences of 1000 + 1000 tokens, mid-way
  if (prefill_only) shapes_with_serving.clear();
  for (int D : {128, 64}) {
    for (const DecodeShape& shape : shapes_with_serving) {
      if (D == 64 && shape.ctx != 512 && shape.ctx != 4096 && shape.ctx != 32768) continue;  // 512: the 1B batched step
      PagedSetup s = make_paged(gpu, shape.B, 1, shape.ctx, D, uint32_t(shape.B * 7 + shape.ctx + D));
      const double bytes = double(shape.B) * shape.ctx * kHkv * D * 2.0 * 2.0;
      gpu.paged_attention(s.out, s.q, s.k_pool, s.v_pool, s.batch);  // sizes the workspace before recording
      gpu.synchronize();
      auto graph = gpu.record([&] { gpu.paged_attention(s.out, s.q, s.k_pool, s.v_pool, s.batch); });
      const int reps = std::max(1, int(2e9 / bytes)), samples = quick ? 5 : 11;
      const double us = time_us(gpu, [&] { graph->replay(); }, reps, samples);
      const double gbs = bytes / us * 1e-3;
      rows.push_back({"decode", "paged bs16 graph", D, shape.B, shape.ctx, us, gbs, gbs * 1e9 / copy_bw, -1.0});
      print_row(rows.back());
      {
        PagedSetup f = make_paged(gpu, shape.B, 1, shape.ctx, D, uint32_t(shape.B * 7 + shape.ctx + D), true);
        const double fbytes = double(shape.B) * shape.ctx * kHkv * (D + 4.0) * 2.0;
        gpu.paged_attention(f.out, f.q, f.k_pool, f.v_pool, f.batch);
        gpu.synchronize();
        auto fgraph = gpu.record([&] { gpu.paged_attention(f.out, f.q, f.k_pool, f.v_pool, f.batch); });
        const double fus = time_us(gpu, [&] { fgraph->replay(); }, reps, samples);
        const double fgbs = fbytes / fus * 1e-3;
        rows.push_back({"decode", "paged bs16 graph fp8", D, shape.B, shape.ctx, fus, fgbs, fgbs * 1e9 / copy_bw, -1.0});
        rows.back().speedup = us / fus;
        print_row(rows.back());
      }
      if (shape.B == 1) {  // the contiguous form of one sequence
        Tensor k_cache = s.k_pool.reshape({int64_t(s.k_pool.dim(0)) * kBlockSize, kHkv, D});
        Tensor v_cache = s.v_pool.reshape(k_cache.shape());
        AttentionParams params;
        params.start_pos = shape.ctx - 1;
        params.scale = s.batch.scale;
        Tensor q1 = s.q.rows(0, 1), out1 = s.out.rows(0, 1);
        gpu.attention_decode(out1, q1, k_cache, v_cache, params);
        gpu.synchronize();
        auto contiguous = gpu.record([&] { gpu.attention_decode(out1, q1, k_cache, v_cache, params); });
        const double cus = time_us(gpu, [&] { contiguous->replay(); }, reps, samples);
        const double cgbs = bytes / cus * 1e-3;
        rows.push_back({"decode", "contiguous graph", D, 1, shape.ctx, cus, cgbs, cgbs * 1e9 / copy_bw, -1.0});
        print_row(rows.back());
      }
    }
  }

  if (!json_path.empty()) {
    nlohmann::json j;
    j["device"] = device;
    j["multiprocessors"] = gpu.multiprocessors();
    j["copy_bandwidth_gb_s"] = copy_bw / 1e9;
    j["Hq"] = kHq;
    j["Hkv"] = kHkv;
    j["block_size"] = kBlockSize;
    for (const Row& r : rows) {
      nlohmann::json o = {{"op", r.op}, {"variant", r.variant}, {"D", r.D}, {"B", r.B}, {"us", r.us}};
      if (r.op == "prefill") {
        o["seq"] = r.seq;
        o["tflop_s"] = r.rate;
        if (r.rel_diff >= 0) o["rel_l2_vs_paged"] = r.rel_diff;
      } else {
        o["ctx"] = r.seq;
        o["gb_s"] = r.rate;
        o["fraction_of_copy_bandwidth"] = r.fraction;
        if (r.speedup > 0) o["speedup_vs_bf16"] = r.speedup;
      }
      j["rows"].push_back(o);
    }
    std::ofstream(json_path) << j.dump(1) << "\n";
    std::printf("wrote %s\n", json_path.c_str());
  }
  return 0;
}

}  // namespace
}  // namespace roofline

int main(int argc, char** argv) {
  return roofline::bench_main("roofline_gpu_attention_bench", roofline::run, argc, argv);
}
