// Training flash-attention micro benchmark (train/cuda/flash_attention.h, Hopper): forward and backward time
// and TFLOP/s for B * T = 16k tokens, T = 1024, 2048, 4096, head_dim 64 (12 / 12 heads, the GPT-2 124M
// shape) and 128 (32 / 8 heads). q, k, v are column views of one fused [B*T, (Hq + 2 Hkv) D] projection
// output and the gradients go into one fused buffer, as the trainer calls them; random bf16 data.
// FLOPs (causal, half the square): forward 4 B Hq T^2 D / 2 (Q K^T and P V); backward 2.5x the forward
// (the usual count: 5 products where the forward has 2; our deterministic dQ pass recomputes 2 more, which
// the count does not credit). Times: CUDA events, warm-up, median of 11 samples. After each shape's defaults
// come the kernel lab's tile variants (train/cuda/flash_attention_lab.h), "lab" rows, on the same data: the
// wgmma forward (two warpgroups, 64 or 128 keys per block) as "wgmma_keys64/128" and the wgmma backward's
// ("bwd wgmma_dkdv_wgA_dq_wgB") among them; the default row's backward is the wgmma one
// (ROOFLINE_TRAIN_ATTN_BWD_WGMMA=0: mma.sync).
// Napkin math (H100 SXM, ~990 TFLOP/s dense bf16 peak; mma.sync reaches ~2/3 of it): T = 4096, D = 128:
// 137 GFLOP forward, ~0.4 ms at 330 TFLOP/s.
//   roofline_gpu_train_attention_bench [--json FILE] [--quick]
#include <cuda_runtime_api.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <fmt/format.h>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <vector>

#include "roofline/backend/cuda/cuda_check.h"
#include "roofline/backend/cuda/cuda_runtime_info.h"
#include "roofline/core/dtype.h"
#include "roofline/train/cuda/flash_attention.h"
#include "roofline/train/cuda/flash_attention_lab.h"

#include "gpu_bench_main.h"

namespace roofline {
namespace {

using train::cuda::FlashAttentionShape;

struct DeviceBuffer {
  void* ptr = nullptr;
  explicit DeviceBuffer(size_t bytes) { ROOFLINE_CUDA_CHECK(cudaMalloc(&ptr, std::max<size_t>(bytes, 16))); }
  ~DeviceBuffer() { cudaFree(ptr); }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  __nv_bfloat16* bf16(size_t offset = 0) const { return static_cast<__nv_bfloat16*>(ptr) + offset; }
};

// Random bf16 in [-2, 2): a 4 Mi-element pattern, repeated.
void fill_random(const DeviceBuffer& buf, size_t n, uint32_t seed) {
  const size_t chunk = std::min<size_t>(n, size_t(4) << 20);
  std::vector<float> f(chunk);
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(-2.0f, 2.0f);
  for (float& x : f) x = dist(rng);
  std::vector<uint16_t> b(chunk);
  convert_from_f32(DType::BF16, f.data(), b.data(), chunk);
  for (size_t at = 0; at < n; at += chunk)
    ROOFLINE_CUDA_CHECK(
        cudaMemcpy(buf.bf16(at), b.data(), std::min(chunk, n - at) * 2, cudaMemcpyHostToDevice));
}

// Median over 11 samples of the mean time of `reps` back-to-back calls, in microseconds.
double time_us(cudaStream_t stream, const std::function<void()>& body, int reps) {
  for (int i = 0; i < 3; ++i) body();
  ROOFLINE_CUDA_CHECK(cudaStreamSynchronize(stream));
  cudaEvent_t start, stop;
  ROOFLINE_CUDA_CHECK(cudaEventCreate(&start));
  ROOFLINE_CUDA_CHECK(cudaEventCreate(&stop));
  std::vector<double> us;
  for (int s = 0; s < 11; ++s) {
    ROOFLINE_CUDA_CHECK(cudaEventRecord(start, stream));
    for (int r = 0; r < reps; ++r) body();
    ROOFLINE_CUDA_CHECK(cudaEventRecord(stop, stream));
    ROOFLINE_CUDA_CHECK(cudaEventSynchronize(stop));
    float ms = 0;
    ROOFLINE_CUDA_CHECK(cudaEventElapsedTime(&ms, start, stop));
    us.push_back(double(ms) * 1e3 / reps);
  }
  cudaEventDestroy(start);
  cudaEventDestroy(stop);
  std::nth_element(us.begin(), us.begin() + 5, us.end());
  return us[5];
}

// A kernel-lab variant's timing (train/cuda/flash_attention_lab.h).
struct Variant {
  std::string op, name;
  double us, tflops;
};

struct Row {
  int D, Hq, Hkv, B, T;
  double fwd_us, bwd_us, fwd_tflops, bwd_tflops;  // the defaults (flash_attention.h)
  std::vector<Variant> variants;
};

int run(int argc, char** argv) {
  std::string json_path;
  bool quick = false;
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--json") && i + 1 < argc) json_path = argv[++i];
    else if (!std::strcmp(argv[i], "--quick")) quick = true;
    else {
      std::fprintf(stderr, "usage: %s [--json FILE] [--quick]\n", argv[0]);
      return 2;
    }
  }
  const auto devices = cuda::list_devices();
  const std::string device = devices.empty() ? "?" : devices[0].name;
  cudaStream_t stream;
  ROOFLINE_CUDA_CHECK(cudaStreamCreate(&stream));
  std::printf("device: %s; causal, bf16, B * T = 16384 tokens, fused qkv layout\n", device.c_str());
  std::printf("%4s %3s %3s %3s %5s %10s %10s %10s %10s\n", "D", "Hq", "Hkv", "B", "T", "fwd us", "fwd TF/s", "bwd us",
              "bwd TF/s");
  std::vector<Row> rows;
  struct Heads {
    int D, Hq, Hkv;
  };
  const std::vector<int> lengths = quick ? std::vector<int>{1024, 4096} : std::vector<int>{1024, 2048, 4096};
  for (const Heads& h : {Heads{64, 12, 12}, Heads{128, 32, 8}}) {
    for (int T : lengths) {
      const int B = 16384 / T;
      FlashAttentionShape s;
      s.B = B, s.T = T, s.Hq = h.Hq, s.Hkv = h.Hkv, s.D = h.D;
      const int64_t tokens = int64_t(B) * T, qw = int64_t(h.Hq) * h.D, kvw = int64_t(h.Hkv) * h.D;
      s.ld_q = s.ld_kv = qw + 2 * kvw;
      s.ld_o = qw;
      const size_t fused = size_t(tokens * (qw + 2 * kvw));
      DeviceBuffer qkv(fused * 2), grads(fused * 2), out(size_t(tokens * qw) * 2), dout(size_t(tokens * qw) * 2);
      DeviceBuffer lse(size_t(B) * h.Hq * T * sizeof(float));
      DeviceBuffer workspace(train::cuda::flash_attention_backward_workspace(s));
      fill_random(qkv, fused, uint32_t(T + h.D));
      fill_random(dout, size_t(tokens * qw), uint32_t(T + h.D + 1));
      auto forward = [&] {
        train::cuda::flash_attention_forward(s, qkv.bf16(), qkv.bf16(size_t(qw)), qkv.bf16(size_t(qw + kvw)),
                                             out.bf16(), static_cast<float*>(lse.ptr), stream);
      };
      auto backward = [&] {
        train::cuda::flash_attention_backward(s, qkv.bf16(), qkv.bf16(size_t(qw)), qkv.bf16(size_t(qw + kvw)),
                                              out.bf16(), static_cast<float*>(lse.ptr), dout.bf16(), grads.bf16(),
                                              grads.bf16(size_t(qw)), grads.bf16(size_t(qw + kvw)), workspace.ptr,
                                              stream);
      };
      const double fwd_flops = 4.0 * B * h.Hq * double(T) * T * h.D / 2.0, bwd_flops = 2.5 * fwd_flops;
      const int reps = std::max(1, int(2e12 / fwd_flops));
      forward();  // out and lse for the backward
      const double fwd_us = time_us(stream, forward, reps);
      const double bwd_us = time_us(stream, backward, reps);
      ROOFLINE_CUDA_CHECK(cudaStreamSynchronize(stream));
      rows.push_back(
          {h.D, h.Hq, h.Hkv, B, T, fwd_us, bwd_us, fwd_flops / fwd_us * 1e-6, bwd_flops / bwd_us * 1e-6, {}});
      Row& r = rows.back();
      std::printf("%4d %3d %3d %3d %5d %10.1f %10.1f %10.1f %10.1f\n", r.D, r.Hq, r.Hkv, r.B, r.T, r.fwd_us,
                  r.fwd_tflops, r.bwd_us, r.bwd_tflops);
      // The kernel lab: every forward and backward tile variant on the same data.
      namespace lab = train::cuda::lab;
      const auto& fwd_variants = h.D == 64 ? std::vector<lab::ForwardVariant>(std::begin(lab::kForwardVariants64),
                                                                              std::end(lab::kForwardVariants64))
                                           : std::vector<lab::ForwardVariant>(std::begin(lab::kForwardVariants128),
                                                                              std::end(lab::kForwardVariants128));
      for (const lab::ForwardVariant& fv : fwd_variants) {
        const double us = time_us(stream, [&] {
          lab::flash_attention_forward(s, qkv.bf16(), qkv.bf16(size_t(qw)), qkv.bf16(size_t(qw + kvw)), out.bf16(),
                                       static_cast<float*>(lse.ptr), fv, stream);
        }, reps);
        r.variants.push_back({"fwd", fv.wgmma ? fmt::format("wgmma_keys{}", fv.block_keys)
                                       : fmt::format("warps{}_rows{}_keys{}", fv.warps, fv.warp_rows, fv.block_keys), us,
                              fwd_flops / us * 1e-6});
      }
      // A backward lab variant's time on this shape's data.
      auto time_backward = [&](const lab::BackwardVariant& bv) {
        return time_us(stream, [&] {
          lab::flash_attention_backward(s, qkv.bf16(), qkv.bf16(size_t(qw)), qkv.bf16(size_t(qw + kvw)), out.bf16(),
                                        static_cast<float*>(lse.ptr), dout.bf16(), grads.bf16(),
                                        grads.bf16(size_t(qw)), grads.bf16(size_t(qw + kvw)), workspace.ptr, bv,
                                        stream);
        }, reps);
      };
      for (int dkdv_warps : {4, 8})
        for (int dq_warps : {4, 8}) {
          const double us = time_backward({dkdv_warps, dq_warps});
          r.variants.push_back({"bwd", fmt::format("dkdv_warps{}_dq_warps{}", dkdv_warps, dq_warps), us,
                                bwd_flops / us * 1e-6});
        }
      // The wgmma backward (sm_90a; the default row runs it unless ROOFLINE_TRAIN_ATTN_BWD_WGMMA=0).
      const auto wgmma_variants =
          h.D == 64 ? std::vector<lab::BackwardVariant>(std::begin(lab::kWgmmaBackwardVariants64),
                                                        std::end(lab::kWgmmaBackwardVariants64))
                    : std::vector<lab::BackwardVariant>(std::begin(lab::kWgmmaBackwardVariants128),
                                                        std::end(lab::kWgmmaBackwardVariants128));
      for (const lab::BackwardVariant& bv : wgmma_variants) {
        const double us = time_backward(bv);
        r.variants.push_back({"bwd",
                              fmt::format("wgmma_dkdv_wg{}_dq_wg{}{}{}", bv.dkdv_warpgroups, bv.dq_warpgroups,
                                          bv.serial ? "_serial" : "",
                                          bv.dkdv_pipelined ? fmt::format("_pipe{}", bv.dkdv_pipelined) : ""),
                              us, bwd_flops / us * 1e-6});
      }
      // Where the time goes: delta + the dK/dV kernel alone, delta + the dQ kernel alone (lab "part"; the
      // gradients are then incomplete), for the mma.sync default (4/4 warps) and the default wgmma shape; at
      // head_dim 64 also delta + each pipelined dK/dV kernel alone.
      for (const bool wgmma : {false, true})
        for (const int part : {1, 2}) {
          lab::BackwardVariant bv;
          bv.wgmma = wgmma, bv.part = part;
          const double us = time_backward(bv);
          // Products: dK/dV 4 of the 5 credited, dQ 3 (1 credited + the 2 recomputed).
          const double flops = bwd_flops / 5.0 * (part == 1 ? 4.0 : 3.0);
          r.variants.push_back({"bwd", fmt::format("{}_{}", wgmma ? "wgmma_default" : "mma_sync_default",
                                                   part == 1 ? "delta+dkdv_only" : "delta+dq_only"),
                                us, flops / us * 1e-6});
        }
      if (h.D == 64)
        for (const int pipelined : {2, 3}) {
          lab::BackwardVariant bv;
          bv.wgmma = true, bv.dkdv_warpgroups = 1, bv.dq_warpgroups = 2, bv.dkdv_pipelined = pipelined, bv.part = 1;
          const double us = time_us(stream, [&] {
            lab::flash_attention_backward(s, qkv.bf16(), qkv.bf16(size_t(qw)), qkv.bf16(size_t(qw + kvw)), out.bf16(),
                                          static_cast<float*>(lse.ptr), dout.bf16(), grads.bf16(),
                                          grads.bf16(size_t(qw)), grads.bf16(size_t(qw + kvw)), workspace.ptr, bv,
                                          stream);
          }, reps);
          const double flops = bwd_flops / 5.0 * 4.0;
          r.variants.push_back({"bwd", fmt::format("wgmma_pipe{}_delta+dkdv_only", pipelined), us, flops / us * 1e-6});
        }
      for (const Variant& v : r.variants)
        std::printf("      lab %-3s %-24s %10.1f us %8.1f TFLOP/s\n", v.op.c_str(), v.name.c_str(), v.us, v.tflops);
      std::fflush(stdout);
    }
  }
  ROOFLINE_CUDA_CHECK(cudaStreamDestroy(stream));
  if (!json_path.empty()) {
    nlohmann::json j;
    j["device"] = device;
    j["layout"] = "fused qkv rows";
    for (const Row& r : rows)
      j["rows"].push_back({{"D", r.D}, {"Hq", r.Hq}, {"Hkv", r.Hkv}, {"B", r.B}, {"T", r.T}, {"fwd_us", r.fwd_us},
                           {"bwd_us", r.bwd_us}, {"fwd_tflop_s", r.fwd_tflops}, {"bwd_tflop_s", r.bwd_tflops}});
    for (size_t i = 0; i < rows.size(); ++i)
      for (const Variant& v : rows[i].variants)
        j["rows"][i]["variants"].push_back({{"op", v.op}, {"variant", v.name}, {"us", v.us}, {"tflop_s", v.tflops}});
    std::ofstream(json_path) << j.dump(1) << "\n";
    std::printf("wrote %s\n", json_path.c_str());
  }
  return 0;
}

}  // namespace
}  // namespace roofline

int main(int argc, char** argv) {
  return roofline::bench_main("roofline_gpu_train_attention_bench", roofline::run, argc, argv);
}
