// Memory-bound matrix products for small M (decode): out[M, N] = x[M, K] . w[N, K]^T (+ bias[N]), M <= 8,
// w and x bf16 or f16, f32 accumulation. The weight stream dominates, so both kernels are built around it:
// 16-byte loads of w (ld.global.nc, no L1 allocation, so x stays in L1), 8 of them in flight per lane
// before any is used; x (tiny) is read through L1. M < 4: a SIMT kernel, each warp owning 2 rows of w and
// walking K in steps of 32 chunks, reduced with warp shuffles. M >= 4: a tensor-core kernel (mma.sync
// m16n8k16, x padded to 8 rows), each warp owning 16 rows, so the FMA work stays off the critical path.
// When N gives too few warps to fill the GPU, kw_count warps of a CTA split one row group's K and combine
// in shared memory. No allocation, no synchronisation: CUDA-graph capturable.
// Chained launch (chained_launch.cuh): each CTA asks L2 for the first rows of its weight slice before it
// waits on the kernel before it, so the weights start streaming while that kernel drains; only x depends
// on earlier kernels.
// The SwiGLU variant (Gated = true) reads w = [gate; up] ([2F, K]) and writes silu(x.gate^T) * (x.up^T)
// ([M, F]): a warp's rows are the same output rows of gate and of up, so the product is its epilogue.
// Two more fusions save a decode step's norm kernels (Backend::rms_norm_matmul_*, Backend::matmul_add):
//  - Normed: x is the RMSNorm of an f32 residual row. Every CTA reads the row (L2-resident, a few KB), takes
//    its sum of squares and stages the normalised row, rounded to w's type, in shared memory; the main loop
//    reads x from there. The redundant per-CTA work is small next to the CTA's weight slice.
//  - accumulate: the f32 output is added to (out += product), the residual add as the epilogue; each output
//    element has exactly one writer (after the split-K combine), so no atomics and the sum is x + product in
//    f32, as the separate add computed it.
#include <nvtx3/nvtx3.hpp>

#include <algorithm>
#include <cstdlib>
#include <type_traits>

#include "roofline/backend/cuda/chained_launch.cuh"
#include "roofline/backend/cuda/cuda_check.h"
#include "roofline/backend/cuda/dispatch.cuh"
#include "roofline/backend/cuda/kernels.h"

namespace roofline::cuda {

namespace {

using device::bf16;
using device::f16;
using device::Pair;

constexpr int kThreads = 256;
constexpr int kWarps = kThreads / 32;
// Rows of w per warp and 16-byte steps per row in flight per lane: more rows for larger M, so that each x
// chunk read (and unpacked) from L1 serves more weight bytes; 8 weight loads in flight per lane either way.
template <int M> constexpr int kRowsFor = M >= 4 ? 4 : 2;
template <int M> constexpr int kUnrollFor = M >= 4 ? 2 : 4;  // (M >= kGemvMmaMinM takes the mma kernel)

__device__ __forceinline__ uint4 load_stream(const uint4* p) {
  uint4 r;
  asm("ld.global.nc.L1::no_allocate.v4.u32 {%0, %1, %2, %3}, [%4];"
      : "=r"(r.x), "=r"(r.y), "=r"(r.z), "=r"(r.w)
      : "l"(p));
  return r;
}

// Asks L2 for rows [first, first + rows) of w (row pitch `pitch` bytes, 16-byte multiple), in 4 KB pieces
// over the block's threads. A hint: no registers, no completion to wait for.
__device__ __forceinline__ void prefetch_rows_l2(const void* w, int64_t first, int64_t rows, int64_t pitch) {
  constexpr int64_t kPiece = 4096;
  if (rows <= 0) return;
  const char* base = static_cast<const char*>(w) + first * pitch;
  const int64_t bytes = rows * pitch;
  for (int64_t off = int64_t(threadIdx.x) * kPiece; off < bytes; off += int64_t(blockDim.x) * kPiece) {
    const uint32_t size = uint32_t(bytes - off < kPiece ? bytes - off : kPiece);
    asm volatile("cp.async.bulk.prefetch.L2.global [%0], %1;" ::"l"(base + off), "r"(size) : "memory");
  }
}

// The weight rows of a CTA (plain: rows_per_cta consecutive rows; gated: the same out rows of gate and up,
// rows_per_cta / 2 each), clipped to the matrix, prefetched into L2.
template <bool Gated>
__device__ __forceinline__ void prefetch_cta_rows(const void* w, int64_t N, int64_t rows_per_cta, int64_t pitch,
                                                  int64_t max_rows) {
  const int64_t per_part = Gated ? rows_per_cta / 2 : rows_per_cta;
  const int64_t first = int64_t(blockIdx.x) * per_part;
  int64_t rows = (first + per_part < N ? per_part : N - first);
  rows = rows < max_rows ? rows : max_rows;
  prefetch_rows_l2(w, first, rows, pitch);
  if (Gated) prefetch_rows_l2(w, N + first, rows, pitch);
}

__device__ __forceinline__ float silu(float g) { return g / (1.0f + __expf(-g)); }

template <typename T>
__device__ __forceinline__ void unpack8(const uint4& raw, float (&out)[8]) {
  const auto* pairs = reinterpret_cast<const typename Pair<T>::type*>(&raw);
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const float2 f = Pair<T>::unpack(pairs[i]);
    out[2 * i] = f.x, out[2 * i + 1] = f.y;
  }
}

__device__ __forceinline__ float load_any(const void* p, Elem type, int64_t i) {
  switch (type) {
    case Elem::F32: return static_cast<const float*>(p)[i];
    case Elem::F16: return __half2float(static_cast<const f16*>(p)[i]);
    default: return __bfloat162float(static_cast<const bf16*>(p)[i]);
  }
}

__device__ __forceinline__ void store_any(void* p, Elem type, int64_t i, float v) {
  switch (type) {
    case Elem::F32: static_cast<float*>(p)[i] = v; break;
    case Elem::F16: static_cast<f16*>(p)[i] = __float2half_rn(v); break;
    default: static_cast<bf16*>(p)[i] = __float2bfloat16_rn(v); break;
  }
}

// out[i] = v, or out[i] += v when accumulating (out f32: the launcher's caller checks).
__device__ __forceinline__ void store_out(void* p, Elem type, int64_t i, float v, bool accumulate) {
  if (accumulate)
    static_cast<float*>(p)[i] += v;
  else
    store_any(p, type, i, v);
}

// The RMSNorm in front of a normed gemv (GemvArgs::norm_residual).
struct NormIn {
  const float* residual;  // [M, K] f32
  const float* weight;    // [K] f32
  float eps;
};

// Row pitch (in 16-byte chunks) of x staged in shared memory: one chunk of padding, so that the mma kernel's
// lanes, which read the same chunk of 8 different rows, hit different banks.
__host__ __device__ constexpr int staged_pitch(int K) { return K / 8 + 1; }

// staged[m * staged_pitch(K) + c] = chunk c of rms_norm(residual[m]) * weight, rounded to T, for m < M: what
// rms_norm (norm.cu) stores into a tensor of type T (the same formula, x * rstd * weight with
// rstd = rsqrt(sum(x^2) / K + eps), in f32; only the order of the sum of squares differs). Every thread of
// the CTA calls it; it synchronises before returning. The residual is read through L1 (read-only: an
// earlier kernel wrote it), so the second pass finds it there.
template <typename T>
__device__ __forceinline__ void stage_rms_normed(const NormIn& norm, int M, int K, uint4* staged) {
  __shared__ float warp_sums[kWarps][kGemvMaxM];
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int chunks = K / 8, pitch = staged_pitch(K);
  const float4* residual = reinterpret_cast<const float4*>(norm.residual);  // row m: 2 * chunks float4
  const float4* weight = reinterpret_cast<const float4*>(norm.weight);
  float sum[kGemvMaxM];
#pragma unroll
  for (int m = 0; m < kGemvMaxM; ++m) {
    sum[m] = 0.0f;
    if (m >= M) continue;
    for (int c = threadIdx.x; c < chunks; c += kThreads) {
      const float4 a = __ldg(residual + (int64_t(m) * chunks + c) * 2), b = __ldg(residual + (int64_t(m) * chunks + c) * 2 + 1);
      sum[m] += a.x * a.x + a.y * a.y + a.z * a.z + a.w * a.w + b.x * b.x + b.y * b.y + b.z * b.z + b.w * b.w;
    }
#pragma unroll
    for (int off = 16; off > 0; off >>= 1) sum[m] += __shfl_xor_sync(0xffffffffu, sum[m], off);
    if (lane == 0) warp_sums[warp][m] = sum[m];
  }
  __syncthreads();
  const float inv_width = 1.0f / float(K);
#pragma unroll
  for (int m = 0; m < kGemvMaxM; ++m) {
    if (m >= M) continue;
    float total = 0.0f;
#pragma unroll
    for (int i = 0; i < kWarps; ++i) total += warp_sums[i][m];
    const float rstd = rsqrtf(total * inv_width + norm.eps);
    for (int c = threadIdx.x; c < chunks; c += kThreads) {
      const float4 a = __ldg(residual + (int64_t(m) * chunks + c) * 2), b = __ldg(residual + (int64_t(m) * chunks + c) * 2 + 1);
      const float4 wa = __ldg(weight + 2 * c), wb = __ldg(weight + 2 * c + 1);
      uint4 raw;
      auto* pairs = reinterpret_cast<typename Pair<T>::type*>(&raw);
      pairs[0] = Pair<T>::pack(a.x * rstd * wa.x, a.y * rstd * wa.y);
      pairs[1] = Pair<T>::pack(a.z * rstd * wa.z, a.w * rstd * wa.w);
      pairs[2] = Pair<T>::pack(b.x * rstd * wb.x, b.y * rstd * wb.y);
      pairs[3] = Pair<T>::pack(b.z * rstd * wb.z, b.w * rstd * wb.w);
      staged[m * pitch + c] = raw;
    }
  }
  __syncthreads();
}

// Warp w of the CTA: row group blockIdx.x * (kWarps / kw_count) + w / kw_count, K slice w % kw_count
// (16-byte chunks c with (c / 32) % kw_count == slice). A row group is kRows rows of w; gated, it is
// kRows / 2 out rows, its rows r < kRows / 2 in gate and the rest the same rows of up (w rows N + ...).
// Normed: x is staged from the norm's residual in shared memory (dynamic, M * staged_pitch(K) chunks).
// A CTA takes blocks blockIdx.x, + gridDim.x, ... < row_blocks (a normed launch may use fewer CTAs than
// blocks, so that fewer CTAs repeat the norm); otherwise one block, its own.
template <typename T, int M, bool Gated, bool Normed, int kRows = kRowsFor<M>, int kUnroll = kUnrollFor<M>>
__global__ void __launch_bounds__(kThreads) gemv_kernel(const T* __restrict__ x, const T* __restrict__ w,
                                                        void* __restrict__ out, Elem out_type,
                                                        const void* __restrict__ bias, Elem bias_type, int N,
                                                        int K, int kw_count, int prefetch_rows, NormIn norm,
                                                        bool accumulate, int row_blocks) {
  constexpr int kOutRows = Gated ? kRows / 2 : kRows;  // out rows per row group; N counts out rows
  static_assert(!Gated || kRows % 2 == 0, "a gated row group pairs gate and up rows");
  __shared__ float partial[kWarps][M * kRows];
  extern __shared__ uint4 staged_x[];  // Normed only: [M, staged_pitch(K)] chunks of x
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int slice = warp % kw_count;
  const int chunks = K / 8;
  prefetch_cta_rows<Gated>(w, N, int64_t(kWarps / kw_count) * kRows, int64_t(K) * int64_t(sizeof(T)), prefetch_rows);
  device::wait_for_prior_kernels();
  device::allow_next_kernel();
  if constexpr (Normed) stage_rms_normed<T>(norm, M, K, staged_x);

  for (int block = blockIdx.x; block < row_blocks; block += gridDim.x) {
  if (block != int(blockIdx.x)) __syncthreads();  // the slice-0 warps have read the last block's partial[]
  const int64_t n0 = (int64_t(block) * (kWarps / kw_count) + warp / kw_count) * kOutRows;
  const uint4* wrow[kRows];
  bool row_ok[kRows];
#pragma unroll
  for (int r = 0; r < kRows; ++r) {
    const int64_t out_row = n0 + r % kOutRows;
    const int64_t w_row = out_row + (r >= kOutRows ? N : 0);  // gated: rows kOutRows.. come from up
    row_ok[r] = out_row < N;
    wrow[r] = reinterpret_cast<const uint4*>(w) + (row_ok[r] ? w_row : 0) * int64_t(chunks);
  }
  [[maybe_unused]] const uint4* xv = reinterpret_cast<const uint4*>(x);

  float acc[M][kRows];
#pragma unroll
  for (int m = 0; m < M; ++m)
#pragma unroll
    for (int r = 0; r < kRows; ++r) acc[m][r] = 0.0f;

  const int stride = 32 * kw_count;
  for (int base = slice * 32 + lane; base < chunks; base += stride * kUnroll) {
    uint4 wv[kUnroll][kRows];
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      const int c = base + u * stride;
#pragma unroll
      for (int r = 0; r < kRows; ++r)
        wv[u][r] = (c < chunks && row_ok[r]) ? load_stream(wrow[r] + c) : make_uint4(0, 0, 0, 0);
    }
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      const int c = base + u * stride;
      if (c < chunks) {
        float wf[kRows][8];
#pragma unroll
        for (int r = 0; r < kRows; ++r) unpack8<T>(wv[u][r], wf[r]);
#pragma unroll
        for (int m = 0; m < M; ++m) {
          float xf[8];
          if constexpr (Normed)
            unpack8<T>(staged_x[m * staged_pitch(K) + c], xf);
          else
            unpack8<T>(__ldg(xv + int64_t(m) * chunks + c), xf);
#pragma unroll
          for (int r = 0; r < kRows; ++r)
#pragma unroll
            for (int i = 0; i < 8; ++i) acc[m][r] = fmaf(xf[i], wf[r][i], acc[m][r]);
        }
      }
    }
  }

#pragma unroll
  for (int m = 0; m < M; ++m)
#pragma unroll
    for (int r = 0; r < kRows; ++r)
#pragma unroll
      for (int off = 16; off > 0; off >>= 1) acc[m][r] += __shfl_xor_sync(0xffffffffu, acc[m][r], off);

  // Lane j < M * kRows takes value j = m * kRows + r.
  float mine = 0.0f;
#pragma unroll
  for (int m = 0; m < M; ++m)
#pragma unroll
    for (int r = 0; r < kRows; ++r)
      if (lane == m * kRows + r) mine = acc[m][r];

  if (kw_count > 1) {
    if (lane < M * kRows) partial[warp][lane] = mine;
    __syncthreads();
    if (slice != 0) continue;  // whole warps: the shuffle below has every lane
    for (int j = 1; j < kw_count; ++j) mine += lane < M * kRows ? partial[warp + j][lane] : 0.0f;
  }
  const int m = lane / kRows, r = lane % kRows;
  const int64_t n = n0 + r % kOutRows;
  if (bias != nullptr && lane < M * kRows && n < N) mine += load_any(bias, bias_type, n + (r >= kOutRows ? N : 0));
  if constexpr (Gated) {
    const float up = __shfl_down_sync(0xffffffffu, mine, kOutRows);  // lane j + kOutRows: the same row of up
    if (lane < M * kRows && r < kOutRows && n < N)
      store_out(out, out_type, int64_t(m) * N + n, silu(mine) * up, accumulate);
  } else {
    if (lane < M * kRows && n < N) store_out(out, out_type, int64_t(m) * N + n, mine, accumulate);
  }
  }
}

// ---- tensor-core variant, M >= kGemvMmaMinM ----
// out^T[16 rows of w, 8 rows of x] per warp with mma.sync m16n8k16 (f32 accumulators). Lane (g = lane / 4,
// q = lane % 4) loads 16-byte chunks q, q + 4, q + 8, q + 12 of each 16-chunk block from rows g and g + 8 of
// its row group, and the same chunks of x row g (zero when g >= M). The dot product does not care in which
// order k is summed, so the mma's k index is a permutation of the physical one, the same for A and B:
// step s of a chunk takes its elements 4s..4s+3 as logical k (2q, 2q+1, 2q+8, 2q+9), i.e. words 2s and
// 2s+1 of each operand. No shuffles: lane holds out rows 2q, 2q+1 for w rows g and g + 8.
constexpr int kGemvMmaMinM = 4;
constexpr int kMmaRows = 16;

template <typename T>
__device__ __forceinline__ void mma16816(float (&d)[4], uint32_t a0, uint32_t a1, uint32_t a2, uint32_t a3,
                                         uint32_t b0, uint32_t b1) {
  if constexpr (std::is_same_v<T, f16>) {
    asm("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
        "{%0, %1, %2, %3};\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
  } else {
    asm("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
        "{%0, %1, %2, %3};\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
  }
}

__device__ __forceinline__ uint32_t word(const uint4& v, int i) {
  return i == 0 ? v.x : i == 1 ? v.y : i == 2 ? v.z : v.w;
}

// Warp w of the CTA: row group blockIdx.x * (kWarps / kw_count) + w / kw_count (16 rows of w), blocks of 16
// chunks b with b % kw_count == w % kw_count. Gated, a row group is 8 out rows: rows g of gate (the mma's
// rows g) and rows g of up (its rows g + 8), so a lane holds gate and up of the same outputs.
template <typename T, bool Gated, bool Normed>
__global__ void __launch_bounds__(kThreads) gemv_mma_kernel(const T* __restrict__ x, const T* __restrict__ w,
                                                            void* __restrict__ out, Elem out_type,
                                                            const void* __restrict__ bias, Elem bias_type, int M,
                                                            int N, int K, int kw_count, int prefetch_rows,
                                                            NormIn norm, bool accumulate) {
  constexpr int kOutRows = Gated ? kMmaRows / 2 : kMmaRows;  // out rows per row group; N counts out rows
  __shared__ float partial[kWarps][4][32];
  extern __shared__ uint4 staged_x[];  // Normed only: [M, staged_pitch(K)] chunks of x
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, q = lane & 3;
  const int slice = warp % kw_count;
  const int64_t n0 = (int64_t(blockIdx.x) * (kWarps / kw_count) + warp / kw_count) * kOutRows;
  const int chunks = K / 8, nblocks = (chunks + 15) / 16;
  prefetch_cta_rows<Gated>(w, N, int64_t(kWarps / kw_count) * kMmaRows, int64_t(K) * int64_t(sizeof(T)),
                           prefetch_rows);
  device::wait_for_prior_kernels();
  device::allow_next_kernel();
  if constexpr (Normed) stage_rms_normed<T>(norm, M, K, staged_x);
  const int64_t row_a = n0 + g, row_b = Gated ? n0 + g : n0 + g + 8;  // out rows of the mma rows g, g + 8
  const bool ok_a = row_a < N, ok_b = row_b < N, ok_x = g < M;
  const int64_t w_row_b = Gated ? N + row_b : row_b;
  const uint4* wa = reinterpret_cast<const uint4*>(w) + (ok_a ? row_a : 0) * int64_t(chunks);
  const uint4* wb = reinterpret_cast<const uint4*>(w) + (ok_b ? w_row_b : 0) * int64_t(chunks);
  [[maybe_unused]] const uint4* xr = reinterpret_cast<const uint4*>(x) + (ok_x ? g : 0) * int64_t(chunks);
  float c[4] = {0.0f, 0.0f, 0.0f, 0.0f};
  const uint4 zero = make_uint4(0, 0, 0, 0);
  for (int b = slice; b < nblocks; b += kw_count) {
    uint4 va[4], vb[4], vx[4];
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      const int ci = b * 16 + j * 4 + q;
      const bool in = ci < chunks;
      va[j] = in && ok_a ? load_stream(wa + ci) : zero;
      vb[j] = in && ok_b ? load_stream(wb + ci) : zero;
      if constexpr (Normed)
        vx[j] = in && ok_x ? staged_x[g * staged_pitch(K) + ci] : zero;
      else
        vx[j] = in && ok_x ? __ldg(xr + ci) : zero;
    }
#pragma unroll
    for (int j = 0; j < 4; ++j)
#pragma unroll
      for (int s = 0; s < 2; ++s)
        mma16816<T>(c, word(va[j], 2 * s), word(vb[j], 2 * s), word(va[j], 2 * s + 1), word(vb[j], 2 * s + 1),
                    word(vx[j], 2 * s), word(vx[j], 2 * s + 1));
  }
  if (kw_count > 1) {
#pragma unroll
    for (int i = 0; i < 4; ++i) partial[warp][i][lane] = c[i];
    __syncthreads();
    if (slice != 0) return;
    for (int j = 1; j < kw_count; ++j)
#pragma unroll
      for (int i = 0; i < 4; ++i) c[i] += partial[warp + j][i][lane];
  }
  if (bias != nullptr) {
    if (ok_a) c[0] += load_any(bias, bias_type, row_a), c[1] += load_any(bias, bias_type, row_a);
    if (ok_b) c[2] += load_any(bias, bias_type, w_row_b), c[3] += load_any(bias, bias_type, w_row_b);
  }
  if constexpr (Gated) {
#pragma unroll
    for (int i = 0; i < 2; ++i) {
      const int m = 2 * q + i;
      if (m < M && ok_a) store_out(out, out_type, int64_t(m) * N + row_a, silu(c[i]) * c[i + 2], accumulate);
    }
  } else {
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      const int m = 2 * q + (i & 1);
      const int64_t n = i >= 2 ? row_b : row_a;
      if (m < M && n < N) store_out(out, out_type, int64_t(m) * N + n, c[i], accumulate);
    }
  }
}

// Dynamic shared memory of a launch: x staged for a normed one, none otherwise.
size_t staged_bytes(int64_t M, int64_t K, bool normed) {
  return normed ? size_t(M) * size_t(staged_pitch(int(K))) * sizeof(uint4) : 0;
}
// Past 48 KB a kernel must opt in to its dynamic shared memory.
template <typename Kernel>
void allow_shared(Kernel kernel, size_t bytes) {
  if (bytes > size_t(48) << 10)
    ROOFLINE_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(bytes)));
}

// blocks: row blocks (kWarps / kw_count row groups each); ctas <= blocks CTAs take them.
template <typename T, bool Gated, bool Normed>
void launch_simt(const GemvArgs& a, unsigned blocks, unsigned ctas, int kw_count, int prefetch_rows,
                 cudaStream_t stream) {
  const T* x = static_cast<const T*>(a.x);
  const T* w = static_cast<const T*>(a.w);
  const int N = int(a.N), K = int(a.K);
  const NormIn norm{a.norm_residual, a.norm_weight, a.norm_eps};
  auto kernel = a.M == 1 ? gemv_kernel<T, 1, Gated, Normed> : a.M == 2 ? gemv_kernel<T, 2, Gated, Normed>
                                                                       : gemv_kernel<T, 3, Gated, Normed>;
  const size_t smem = staged_bytes(a.M, a.K, Normed);
  allow_shared(kernel, smem);
  launch_chained(kernel, ctas, kThreads, smem, stream, x, w, a.out, a.out_type, a.bias, a.bias_type, N, K, kw_count,
                 prefetch_rows, norm, a.accumulate, int(blocks));
}

template <typename F>
void dispatch_w(Elem type, F&& body) {
  if (type == Elem::F16)
    body(f16{});
  else
    body(bf16{});
}

}  // namespace

bool gemv_supported(Elem w_type, Elem x_type, int64_t M, int64_t N, int64_t K, const void* x, const void* w) {
  return (w_type == Elem::BF16 || w_type == Elem::F16) && x_type == w_type && M >= 1 && M <= kGemvMaxM &&
         N >= 1 && K >= 8 && K % 8 == 0 && N < (int64_t(1) << 30) && K < (int64_t(1) << 30) && aligned16(x) &&
         aligned16(w);
}

namespace {
// Shared memory a normed launch may stage x in: 72 KB (8 rows of 4096 bf16 and their padding, or 4 of 8192)
// still lets three CTAs share an SM.
constexpr size_t kMaxStagedBytes = size_t(72) << 10;
}  // namespace

bool gemv_norm_supported(Elem w_type, int64_t M, int64_t K, const void* residual, const void* weight) {
  return (w_type == Elem::BF16 || w_type == Elem::F16) && M >= 1 && M <= kGemvMaxM && K >= 8 && K % 8 == 0 &&
         K < (int64_t(1) << 24) && staged_bytes(M, K, true) <= kMaxStagedBytes && aligned16(residual) &&
         aligned16(weight);
}

namespace {
// Bytes of its weight slice (per part: gate and up each) a CTA asks L2 for before it waits on the kernel
// before it. Measured on H100, 1B shape (vocab 32000) at batch 1, context 128 (docs/performance.md,
// 2026-11-22 session 3), tok/s by bytes per CTA: whole slice 851, 32 KB 881, 16 KB 930-939, 8 KB 960,
// none 909. A small head start covers the wait; whole slices of the large matrices (gate/up 64 MB) run ahead
// of the demand loads and lose lines from L2 before they are used.
// ROOFLINE_GEMV_PREFETCH_KB in the environment overrides it (a measurement knob; 0 turns it off).
int64_t prefetch_bytes_per_cta() {
  static const int64_t bytes = [] {
    const char* v = std::getenv("ROOFLINE_GEMV_PREFETCH_KB");
    return (v ? std::max<int64_t>(0, std::atoll(v)) : int64_t(8)) * 1024;
  }();
  return bytes;
}

// Warps per multiprocessor below which a launch splits K over more warps (kw_count). 16 by default
// (measured on H100, 1B v32k batch 1 ctx 128 with the fused norms: 16 gives 983 tok/s, 32 gives 945).
// ROOFLINE_GEMV_SPLIT_WARPS_PER_SM in the environment overrides it (a measurement knob; read once).
int64_t split_warps_per_multiprocessor() {
  static const int64_t warps = [] {
    const char* v = std::getenv("ROOFLINE_GEMV_SPLIT_WARPS_PER_SM");
    return v ? std::max<int64_t>(1, std::atoll(v)) : int64_t(16);
  }();
  return warps;
}

// a.N counts out rows (gated: rows of gate, the same number of up).
template <bool Gated>
void launch_any(const GemvArgs& a, int multiprocessors, cudaStream_t stream) {
  if (a.M <= 0 || a.N <= 0) return;
  const bool mma = a.M >= kGemvMmaMinM;
  const int rows = mma ? kMmaRows : a.M >= 4 ? kRowsFor<4> : kRowsFor<1>;
  const int out_rows = Gated ? rows / 2 : rows;
  const int64_t groups = (a.N + out_rows - 1) / out_rows;
  const int64_t chunks = a.K / 8;
  // K steps a warp takes: 32 chunks (simt), blocks of 16 chunks (mma). Split K over up to 8 warps while the
  // row groups alone give too few warps to fill the GPU, keeping >= 2 steps per warp.
  const int64_t steps = mma ? (chunks + 15) / 16 : (chunks + 31) / 32;
  const int64_t want_warps = split_warps_per_multiprocessor() * std::max(multiprocessors, 1);
  // Rows per part a CTA prefetches: at least one whenever prefetching is on.
  const int64_t row_bytes = a.K * 2, prefetch = prefetch_bytes_per_cta();
  const int prefetch_rows = prefetch == 0 ? 0 : int(std::clamp<int64_t>(prefetch / row_bytes, 1, 1 << 20));
  int kw_count = 1;
  while (kw_count < kWarps && groups * kw_count < want_warps && steps >= int64_t(4) * kw_count) kw_count *= 2;
  const int64_t groups_per_block = kWarps / kw_count;
  const auto blocks = unsigned((groups + groups_per_block - 1) / groups_per_block);
  const NormIn norm{a.norm_residual, a.norm_weight, a.norm_eps};
  const bool normed = a.norm_residual != nullptr;
  dispatch_w(a.w_type, [&](auto tag) {
    using T = decltype(tag);
    if (mma) {
      auto kernel = normed ? gemv_mma_kernel<T, Gated, true> : gemv_mma_kernel<T, Gated, false>;
      const size_t smem = staged_bytes(a.M, a.K, normed);
      allow_shared(kernel, smem);
      launch_chained(kernel, blocks, kThreads, smem, stream, static_cast<const T*>(a.x), static_cast<const T*>(a.w),
                     a.out, a.out_type, a.bias, a.bias_type, int(a.M), int(a.N), int(a.K), kw_count, prefetch_rows,
                     norm, a.accumulate);
    } else if (normed) {
      // One CTA per row block, as unnormed: capping the CTAs (each then taking several row blocks for one
      // norm, fewer redundant residual reads) measured slower on H100 (1B v32k batch 1: 983 tok/s uncapped,
      // 965 at 4 CTAs per SM, 943 at 2; 8B 175.2 -> 166.3 at 2).
      launch_simt<T, Gated, true>(a, blocks, blocks, kw_count, prefetch_rows, stream);
    } else {
      launch_simt<T, Gated, false>(a, blocks, blocks, kw_count, prefetch_rows, stream);
    }
  });
}
}  // namespace

void launch_gemv(const GemvArgs& a, int multiprocessors, cudaStream_t stream) {
  nvtx3::scoped_range range("cuda::gemv");
  launch_any<false>(a, multiprocessors, stream);
}

void launch_gemv_swiglu(const GemvArgs& a, int multiprocessors, cudaStream_t stream) {
  nvtx3::scoped_range range("cuda::gemv_swiglu");
  launch_any<true>(a, multiprocessors, stream);
}

}  // namespace roofline::cuda
