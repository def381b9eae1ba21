// The blocking, packing and threading of gemm(), shared by every ISA; each gemm_<isa>.cpp includes this
// with its own micro-kernel type:
//   struct Kernel { static constexpr int MR, NR;
//                   // acc[MR][NR] = sum_k a[k][0..MR) x b[k][0..NR), then C rows (ldc) = beta*C + acc
//                   static void run(int64_t kc, const float* a, const float* b, float* c, int64_t ldc, float beta,
//                                   int rows, int cols); };
// Packed layouts: A panel [KC][MR] (zero-padded rows), B panel [KC][NR] (zero-padded columns).
#pragma once
#include <algorithm>
#include <cstring>
#include <vector>

#include "roofline/core/thread_pool.h"
#include "roofline/train/kernels/gemm.h"

namespace roofline::train::detail {

inline constexpr int64_t kKC = 256;          // depth of one packed block

// Tiles of C one thread computes at a time: MC x NC, whole micro-tiles.
template <typename Kernel>
struct Blocking {
  static constexpr int64_t MC = (256 / Kernel::MR) * Kernel::MR, NC = (256 / Kernel::NR) * Kernel::NR;
};

template <typename Kernel>
GemmPacking packing() {
  return {size_t(Blocking<Kernel>::MC * kKC), size_t(Blocking<Kernel>::NC * kKC)};
}

template <typename Kernel>
void pack_b(const GemmArgs& g, int64_t k0, int64_t kc, int64_t n0, int64_t nc, float* dst) {
  constexpr int NR = Kernel::NR;
  for (int64_t p = 0; p < nc; p += NR) {
    const int64_t cols = std::min<int64_t>(NR, nc - p);
    float* out = dst + p * kc;
    if (!g.trans_b) {
      for (int64_t k = 0; k < kc; ++k) {
        const float* src = g.B + (k0 + k) * g.ldb + n0 + p;
        float* row = out + k * NR;
        for (int64_t j = 0; j < cols; ++j) row[j] = src[j];
        for (int64_t j = cols; j < NR; ++j) row[j] = 0.0f;
      }
    } else {
      // B^T: each column of the panel is a contiguous run of the stored row.
      for (int64_t j = 0; j < cols; ++j) {
        const float* src = g.B + (n0 + p + j) * g.ldb + k0;
        for (int64_t k = 0; k < kc; ++k) out[k * NR + j] = src[k];
      }
      for (int64_t j = cols; j < NR; ++j)
        for (int64_t k = 0; k < kc; ++k) out[k * NR + j] = 0.0f;
    }
  }
}

template <typename Kernel>
void pack_a(const GemmArgs& g, int64_t i0, int rows, int64_t k0, int64_t kc, float* dst) {
  constexpr int MR = Kernel::MR;
  if (!g.trans_a) {
    for (int i = 0; i < MR; ++i) {
      if (i < rows) {
        const float* src = g.A + (i0 + i) * g.lda + k0;
        for (int64_t k = 0; k < kc; ++k) dst[k * MR + i] = src[k];
      } else {
        for (int64_t k = 0; k < kc; ++k) dst[k * MR + i] = 0.0f;
      }
    }
  } else {
    for (int64_t k = 0; k < kc; ++k) {
      const float* src = g.A + (k0 + k) * g.lda + i0;
      float* out = dst + k * MR;
      for (int i = 0; i < rows; ++i) out[i] = src[i];
      for (int i = rows; i < MR; ++i) out[i] = 0.0f;
    }
  }
}

template <typename Kernel>
void gemm_blocked(ThreadPool* pool, const GemmArgs& g) {
  constexpr int MR = Kernel::MR, NR = Kernel::NR;
  if (g.M <= 0 || g.N <= 0) return;
  if (g.K <= 0) {  // empty sum
    for (int64_t i = 0; i < g.M; ++i)
      for (int64_t j = 0; j < g.N; ++j) g.C[i * g.ldc + j] = g.beta == 0.0f ? 0.0f : g.C[i * g.ldc + j];
    return;
  }
  // One parallel region per call: tiles of C (MC x NC), each looping over K in blocks of KC and packing its
  // own panels. Few regions matter more than the duplicated B packing (1/MC of the FMAs) on a busy CPU,
  // where every region waits for its slowest thread.
  constexpr int64_t MC = Blocking<Kernel>::MC, NC = Blocking<Kernel>::NC;
  const int64_t kc_max = std::min<int64_t>(kKC, g.K);
  const int64_t m_tiles = (g.M + MC - 1) / MC, n_tiles = (g.N + NC - 1) / NC;
  auto tile = [&](size_t b, size_t e) {
    thread_local std::vector<float> pa_buf, pb_buf;
    pa_buf.resize(packing<Kernel>().a_floats);
    pb_buf.resize(packing<Kernel>().b_floats);
    float* pa = pa_buf.data();
    float* pb = pb_buf.data();
    for (size_t t = b; t < e; ++t) {
      const int64_t m0 = int64_t(t) / n_tiles * MC, n0 = int64_t(t) % n_tiles * NC;
      const int64_t mc = std::min<int64_t>(MC, g.M - m0), nc = std::min<int64_t>(NC, g.N - n0);
      const int64_t m_panels = (mc + MR - 1) / MR, n_panels = (nc + NR - 1) / NR;
      for (int64_t k0 = 0; k0 < g.K; k0 += kc_max) {
        const int64_t kc = std::min<int64_t>(kc_max, g.K - k0);
        const float beta = k0 == 0 ? g.beta : 1.0f;
        for (int64_t p = 0; p < n_panels; ++p)
          pack_b<Kernel>(g, k0, kc, n0 + p * NR, std::min<int64_t>(NR, nc - p * NR), pb + p * NR * kc);
        for (int64_t mp = 0; mp < m_panels; ++mp)
          pack_a<Kernel>(g, m0 + mp * MR, int(std::min<int64_t>(MR, mc - mp * MR)), k0, kc, pa + mp * MR * kc);
        for (int64_t mp = 0; mp < m_panels; ++mp) {
          const int rows = int(std::min<int64_t>(MR, mc - mp * MR));
          for (int64_t p = 0; p < n_panels; ++p) {
            const int cols = int(std::min<int64_t>(NR, nc - p * NR));
            Kernel::run(kc, pa + mp * MR * kc, pb + p * NR * kc, g.C + (m0 + mp * MR) * g.ldc + n0 + p * NR, g.ldc,
                        beta, rows, cols);
          }
        }
      }
    }
  };
  const size_t tiles = size_t(m_tiles * n_tiles);
  const double flops = double(g.M) * double(g.N) * double(g.K);
  if (pool && tiles > 1 && flops > 1e5) pool->parallel_for(tiles, 1, tile);
  else tile(0, tiles);
}

}  // namespace roofline::train::detail
