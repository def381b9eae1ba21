// LayerNorm and RMSNorm, forward and backward: f32 residual in, bf16 out (it feeds a GEMM), statistics kept
// per row for backward. Backward adds dx into the f32 residual gradient (and writes its bf16 copy) and
// accumulates dweight (and dbias) through per-block partial sums that one more kernel adds up in block order
// (no atomics). The same partials also give the column sums of the bf16 dx: the bias gradient of the linear
// layer whose output gradient dx is (the residual stream's next consumer in backward), for free.
// One warp per row: a row (768 floats for GPT-2) is 6 float4 per lane, so the row statistics need only warp
// shuffles, never a block barrier. Rows of float4s up to 1024 wide (backward: 2048) are held in registers
// (read from memory once); other rows go through the general kernels, whose re-reads in later passes mostly
// hit L1. kVec = 4 (float4 accesses) where dim % 4 == 0, else 1.
#include <cstdint>
#include <initializer_list>
#include <type_traits>

#include "roofline/backend/cuda/cuda_check.h"
#include "roofline/core/error.h"
#include "roofline/train/cuda/block_reduce.cuh"
#include "roofline/train/cuda/kernels.h"
#include "roofline/train/scratch_sizes.h"

namespace roofline::train::cuda {
namespace {

constexpr int kForwardWarps = 8;        // rows per forward block
constexpr int kBackwardWarps = 4;
constexpr int64_t kRowsPerBlock = kNormBackwardRowsPerBlock;  // backward: rows whose dweight contributions one block sums
// The register-row backward: 8 warps of 8 rows each per block (GPT-2's 16,384 rows: 256 partial rows).
constexpr int kRowWarps = 8;
constexpr int64_t kRowsPerRowBlock = 64;
constexpr int kMaxRegisterChunks = 8;   // forward: float4 chunks of 128 columns per lane, dim <= 1024
// Backward: dim <= 2048. Up to 6 chunks (768 wide) the residual gradient is loaded with the row; past that it
// comes in after the row statistics, kResidualGroup chunks at a time (x and dy alone take 128 registers at 2048).
constexpr int kMaxBackwardChunks = 16;
constexpr int kMaxPrefetchChunks = 6;
constexpr int kResidualGroup = 4;

template <int kVec>
struct Vec {
  float v[kVec];
  __device__ static Vec load(const float* p) {
    Vec r;
    if constexpr (kVec == 4) {
      const float4 f = *reinterpret_cast<const float4*>(p);
      r.v[0] = f.x, r.v[1] = f.y, r.v[2] = f.z, r.v[3] = f.w;
    } else {
      for (int k = 0; k < kVec; ++k) r.v[k] = p[k];
    }
    return r;
  }
  // Read once (x, dy, the residual gradient): evict first, keep L1 and L2 for what is read again.
  __device__ static Vec load_streaming(const float* p) {
    static_assert(kVec == 4);
    const float4 f = __ldcs(reinterpret_cast<const float4*>(p));
    return Vec{{f.x, f.y, f.z, f.w}};
  }
  __device__ void store_streaming(float* p) const {
    static_assert(kVec == 4);
    __stcs(reinterpret_cast<float4*>(p), make_float4(v[0], v[1], v[2], v[3]));
  }
  __device__ void store(float* p) const {
    if constexpr (kVec == 4) *reinterpret_cast<float4*>(p) = make_float4(v[0], v[1], v[2], v[3]);
    else
      for (int k = 0; k < kVec; ++k) p[k] = v[k];
  }
  __device__ void store_bf16(bf16* p) const {
    if constexpr (kVec == 4) {
      const __nv_bfloat162 lo = __floats2bfloat162_rn(v[0], v[1]), hi = __floats2bfloat162_rn(v[2], v[3]);
      uint2 packed;
      packed.x = *reinterpret_cast<const uint32_t*>(&lo);
      packed.y = *reinterpret_cast<const uint32_t*>(&hi);
      *reinterpret_cast<uint2*>(p) = packed;
    } else {
      for (int k = 0; k < kVec; ++k) p[k] = __float2bfloat16(v[k]);
    }
  }
};

// Warp w of the block normalises row blockIdx.x * kForwardWarps + w. mean_out == nullptr: RMSNorm.
template <int kVec>
__global__ void norm_forward_kernel(const float* x, const float* w, const float* b, bf16* y, float* mean_out,
                                    float* rstd_out, int64_t rows, int64_t dim, float eps) {
  const int lane = threadIdx.x % 32;
  const int64_t r = int64_t(blockIdx.x) * kForwardWarps + threadIdx.x / 32;
  if (r >= rows) return;
  const float* xr = x + r * dim;
  float mu = 0.0f;
  if (mean_out) {
    float s = 0.0f;
    for (int64_t i = lane * kVec; i < dim; i += 32 * kVec) {
      const auto xv = Vec<kVec>::load(xr + i);
      for (int k = 0; k < kVec; ++k) s += xv.v[k];
    }
    mu = warp_sum(s) / float(dim);
  }
  float ss = 0.0f;
  for (int64_t i = lane * kVec; i < dim; i += 32 * kVec) {
    const auto xv = Vec<kVec>::load(xr + i);
    for (int k = 0; k < kVec; ++k) ss += (xv.v[k] - mu) * (xv.v[k] - mu);
  }
  const float rs = rsqrtf(warp_sum(ss) / float(dim) + eps);
  bf16* yr = y + r * dim;
  for (int64_t i = lane * kVec; i < dim; i += 32 * kVec) {
    auto xv = Vec<kVec>::load(xr + i);
    const auto wv = Vec<kVec>::load(w + i);
    Vec<kVec> bv{};
    if (b) bv = Vec<kVec>::load(b + i);
    for (int k = 0; k < kVec; ++k) xv.v[k] = (xv.v[k] - mu) * rs * wv.v[k] + bv.v[k];
    xv.store_bf16(yr + i);
  }
  if (lane == 0) {
    if (mean_out) mean_out[r] = mu;
    rstd_out[r] = rs;
  }
}

// The same with the row in registers (float4 rows of dim <= 128 * kChunks), read from memory once instead of
// three times (the re-reads above mostly hit L1, but not all); the sums run in the same order as above.
template <int kChunks>
__global__ void norm_forward_rows_kernel(const float* x, const float* w, const float* b, bf16* y, float* mean_out,
                                         float* rstd_out, int64_t rows, int64_t dim, float eps) {
  const int lane = threadIdx.x % 32;
  const int64_t r = int64_t(blockIdx.x) * kForwardWarps + threadIdx.x / 32;
  if (r >= rows) return;
  const float* xr = x + r * dim;
  Vec<4> xv[kChunks];
#pragma unroll
  for (int j = 0; j < kChunks; ++j) {
    const int64_t i = 128 * j + 4 * lane;
    xv[j] = i < dim ? Vec<4>::load(xr + i) : Vec<4>{};
  }
  float mu = 0.0f;
  if (mean_out) {
    float s = 0.0f;
#pragma unroll
    for (int j = 0; j < kChunks; ++j)
      if (128 * j + 4 * lane < dim)
        for (int k = 0; k < 4; ++k) s += xv[j].v[k];
    mu = warp_sum(s) / float(dim);
  }
  float ss = 0.0f;
#pragma unroll
  for (int j = 0; j < kChunks; ++j)
    if (128 * j + 4 * lane < dim)
      for (int k = 0; k < 4; ++k) ss += (xv[j].v[k] - mu) * (xv[j].v[k] - mu);
  const float rs = rsqrtf(warp_sum(ss) / float(dim) + eps);
  bf16* yr = y + r * dim;
#pragma unroll
  for (int j = 0; j < kChunks; ++j) {
    const int64_t i = 128 * j + 4 * lane;
    if (i >= dim) continue;
    const auto wv = Vec<4>::load(w + i);
    Vec<4> bv{};
    if (b) bv = Vec<4>::load(b + i);
    for (int k = 0; k < 4; ++k) xv[j].v[k] = (xv[j].v[k] - mu) * rs * wv.v[k] + bv.v[k];
    xv[j].store_bf16(yr + i);
  }
  if (lane == 0) {
    if (mean_out) mean_out[r] = mu;
    rstd_out[r] = rs;
  }
}

// xhat = (x - mean) * rstd, g = dy * w:  dx = rstd * (g - mean(g) - xhat * mean(g * xhat))  (LayerNorm)
//                                         dx = rstd * (g - xhat * mean(g * xhat))            (RMSNorm)
// Each warp takes rows r0 + w, r0 + w + kBackwardWarps, ... of the block's kRowsPerBlock, summing its dy * xhat,
// dy and bf16(dx) columns in its own shared-memory row (a lane owns its columns: no races); the warps' rows are
// then added in warp order into partials [gridDim.x, 3 * dim]: this block's sums of dy * xhat, dy, bf16(dx).
template <int kVec>
__global__ void norm_backward_kernel(const float* dy, const float* x, const float* w, const float* mean,
                                     const float* rstd, float* dx, bool accumulate, bf16* dx_bf16, float* partials,
                                     int64_t rows, int64_t dim) {
  extern __shared__ float warp_sums[];  // [kBackwardWarps][3 * dim]
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  float* sums = warp_sums + int64_t(warp) * 3 * dim;
  for (int64_t i = lane; i < 3 * dim; i += 32) sums[i] = 0.0f;
  __syncwarp();  // the zeroing lanes are not the lanes that own those columns below
  const int64_t r0 = blockIdx.x * kRowsPerBlock, r1 = min(rows, r0 + kRowsPerBlock);
  for (int64_t r = r0 + warp; r < r1; r += kBackwardWarps) {
    const float* xr = x + r * dim;
    const float* dyr = dy + r * dim;
    const float mu = mean ? mean[r] : 0.0f, rs = rstd[r];
    float sg = 0.0f, sgx = 0.0f;
    for (int64_t i = lane * kVec; i < dim; i += 32 * kVec) {
      const auto xv = Vec<kVec>::load(xr + i), dyv = Vec<kVec>::load(dyr + i), wv = Vec<kVec>::load(w + i);
      auto sum_w = Vec<kVec>::load(sums + i), sum_b = Vec<kVec>::load(sums + dim + i);
      for (int k = 0; k < kVec; ++k) {
        const float xhat = (xv.v[k] - mu) * rs, g = dyv.v[k] * wv.v[k];
        sg += g;
        sgx += g * xhat;
        sum_w.v[k] += dyv.v[k] * xhat;
        sum_b.v[k] += dyv.v[k];
      }
      sum_w.store(sums + i);
      sum_b.store(sums + dim + i);
    }
    const float mg = mean ? warp_sum(sg) / float(dim) : 0.0f;
    const float mgx = warp_sum(sgx) / float(dim);
    float* dxr = dx + r * dim;
    for (int64_t i = lane * kVec; i < dim; i += 32 * kVec) {
      const auto xv = Vec<kVec>::load(xr + i), dyv = Vec<kVec>::load(dyr + i), wv = Vec<kVec>::load(w + i);
      Vec<kVec> out = accumulate ? Vec<kVec>::load(dxr + i) : Vec<kVec>{};
      auto sum_dx = Vec<kVec>::load(sums + 2 * dim + i);
      for (int k = 0; k < kVec; ++k) {
        const float xhat = (xv.v[k] - mu) * rs;
        out.v[k] += rs * (dyv.v[k] * wv.v[k] - mg - xhat * mgx);
        sum_dx.v[k] += __bfloat162float(__float2bfloat16(out.v[k]));
      }
      sum_dx.store(sums + 2 * dim + i);
      out.store(dxr + i);
      if (dx_bf16) out.store_bf16(dx_bf16 + r * dim + i);
    }
  }
  __syncthreads();
  float* out = partials + int64_t(blockIdx.x) * 3 * dim;
  for (int64_t i = threadIdx.x; i < 3 * dim; i += blockDim.x) {
    float s = 0.0f;
    for (int k = 0; k < kBackwardWarps; ++k) s += warp_sums[int64_t(k) * 3 * dim + i];
    out[i] = s;
  }
}

// The register-row backward (float4 rows of dim <= 128 * kChunks): one warp per row with the whole row (x, dy
// and the residual gradient it adds to) loaded into registers at once, before any arithmetic, so that each warp
// has its row's bytes in flight together (the kernel above re-reads x and dy). The warp's column sums of
// dy * xhat, dy and bf16(dx) over its rows r0 + warp, r0 + warp + kRowWarps, ... of the block's
// kRowsPerRowBlock live in the warp's own shared-memory row, each lane owning columns 128 j + 4 l .. + 3 (no
// races, no barrier until the end; kept in registers they would cost 72 more registers a thread at GPT-2's
// width and half the warps per SM). The block then adds its warps' sums in warp order into its partial row
// [3 * dim]. Up to 1024 wide: two blocks of 8 warps per SM (GPT-2's 16,384 rows: 256 blocks, one wave on 132
// SMs). Rows wider than 128 * kMaxPrefetchChunks load the residual gradient after the row statistics,
// kResidualGroup chunks at a time (all of it would not fit the registers); past 1024, one block per SM, each
// warp with its 16 KB of x and dy in flight at 2048 wide.
template <int kChunks>
__global__ void __launch_bounds__(32 * kRowWarps, kChunks <= 8 ? 2 : 1)
    norm_backward_rows_kernel(const float* __restrict__ dy, const float* __restrict__ x,
                              const float* __restrict__ w, const float* __restrict__ mean,
                              const float* __restrict__ rstd, float* __restrict__ dx, bool accumulate,
                              bf16* __restrict__ dx_bf16, float* __restrict__ partials, int64_t rows, int64_t dim) {
  extern __shared__ float warp_sums[];  // [kRowWarps][3 * dim]
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  float* sums = warp_sums + int64_t(warp) * 3 * dim;
#pragma unroll
  for (int j = 0; j < kChunks; ++j) {
    const int64_t i = 128 * j + 4 * lane;
    if (i >= dim) continue;
    Vec<4>{}.store(sums + i);
    Vec<4>{}.store(sums + dim + i);
    Vec<4>{}.store(sums + 2 * dim + i);
  }
  const int64_t r0 = int64_t(blockIdx.x) * kRowsPerRowBlock;
  const int64_t r1 = min(rows, r0 + kRowsPerRowBlock);
  for (int64_t r = r0 + warp; r < r1; r += kRowWarps) {
    const float* xr = x + r * dim;
    const float* dyr = dy + r * dim;
    float* dxr = dx + r * dim;
    constexpr bool kPrefetch = kChunks <= kMaxPrefetchChunks;
    constexpr int kHeld = kPrefetch ? kChunks : kResidualGroup;
    Vec<4> xhat[kChunks], g[kChunks], out[kHeld];  // x, then xhat; dy, then dy * w; dx in, then dx out
#pragma unroll
    for (int j = 0; j < kChunks; ++j) {
      const int64_t i = 128 * j + 4 * lane;
      xhat[j] = i < dim ? Vec<4>::load_streaming(xr + i) : Vec<4>{};
      g[j] = i < dim ? Vec<4>::load_streaming(dyr + i) : Vec<4>{};
      if constexpr (kPrefetch) out[j] = accumulate && i < dim ? Vec<4>::load_streaming(dxr + i) : Vec<4>{};
    }
    const float mu = mean ? mean[r] : 0.0f, rs = rstd[r];
    float sg = 0.0f, sgx = 0.0f;
#pragma unroll
    for (int j = 0; j < kChunks; ++j) {
      const int64_t i = 128 * j + 4 * lane;
      if (i >= dim) continue;  // columns past dim: zeros, and no sums to keep
      const auto wv = Vec<4>::load(w + i);
      auto sum_w = Vec<4>::load(sums + i), sum_b = Vec<4>::load(sums + dim + i);
#pragma unroll
      for (int k = 0; k < 4; ++k) {
        const float dyk = g[j].v[k];
        xhat[j].v[k] = (xhat[j].v[k] - mu) * rs;
        g[j].v[k] = dyk * wv.v[k];
        sg += g[j].v[k];
        sgx += g[j].v[k] * xhat[j].v[k];
        sum_w.v[k] += dyk * xhat[j].v[k];
        sum_b.v[k] += dyk;
      }
      sum_w.store(sums + i);
      sum_b.store(sums + dim + i);
    }
    const float mg = mean ? warp_sum(sg) / float(dim) : 0.0f;
    const float mgx = warp_sum(sgx) / float(dim);
#pragma unroll
    for (int j0 = 0; j0 < kChunks; j0 += kHeld) {
      if constexpr (!kPrefetch) {  // this group's residual gradient, all its loads in flight together
#pragma unroll
        for (int h = 0; h < kHeld; ++h) {
          const int64_t i = 128 * (j0 + h) + 4 * lane;
          out[h] = accumulate && i < dim ? Vec<4>::load_streaming(dxr + i) : Vec<4>{};
        }
      }
#pragma unroll
      for (int h = 0; h < kHeld; ++h) {
        const int j = j0 + h;
        const int64_t i = 128 * j + 4 * lane;
        if (i >= dim) continue;
        auto sum_dx = Vec<4>::load(sums + 2 * dim + i);
#pragma unroll
        for (int k = 0; k < 4; ++k) {
          out[h].v[k] += rs * (g[j].v[k] - mg - xhat[j].v[k] * mgx);
          sum_dx.v[k] += __bfloat162float(__float2bfloat16(out[h].v[k]));
        }
        sum_dx.store(sums + 2 * dim + i);
        out[h].store_streaming(dxr + i);
        if (dx_bf16) out[h].store_bf16(dx_bf16 + r * dim + i);
      }
    }
  }
  __syncthreads();
  float* block_out = partials + int64_t(blockIdx.x) * 3 * dim;
  for (int64_t i = threadIdx.x; i < 3 * dim; i += blockDim.x) {
    float s = 0.0f;
    for (int k = 0; k < kRowWarps; ++k) s += warp_sums[int64_t(k) * 3 * dim + i];
    block_out[i] = s;
  }
}

// float4 rows need dim % 4 == 0 and every base pointer 16-byte aligned (parameter slices need not be).
bool vectorizable(int64_t dim, std::initializer_list<const void*> pointers) {
  if (dim % 4 != 0) return false;
  for (const void* p : pointers)
    if (reinterpret_cast<uintptr_t>(p) % 16 != 0) return false;
  return true;
}

// float4 chunks of 128 columns per lane for a row of dim floats.
int register_chunks(int64_t dim) { return int((dim + 127) / 128); }

int64_t backward_blocks(int64_t rows) { return (rows + kRowsPerBlock - 1) / kRowsPerBlock; }

void launch_forward(const float* x, const float* w, const float* b, bf16* y, float* mean, float* rstd, int64_t rows,
                    int64_t dim, float eps, cudaStream_t stream) {
  const unsigned blocks = grid_for(rows, kForwardWarps);
  if (vectorizable(dim, {x, w, b, y}) && register_chunks(dim) <= kMaxRegisterChunks) {
    const int pairs = (register_chunks(dim) + 1) / 2;  // chunks rounded up to 2, 4, 6 or 8
    if (pairs == 1) norm_forward_rows_kernel<2><<<blocks, 32 * kForwardWarps, 0, stream>>>(x, w, b, y, mean, rstd, rows, dim, eps);
    else if (pairs == 2) norm_forward_rows_kernel<4><<<blocks, 32 * kForwardWarps, 0, stream>>>(x, w, b, y, mean, rstd, rows, dim, eps);
    else if (pairs == 3) norm_forward_rows_kernel<6><<<blocks, 32 * kForwardWarps, 0, stream>>>(x, w, b, y, mean, rstd, rows, dim, eps);
    else norm_forward_rows_kernel<8><<<blocks, 32 * kForwardWarps, 0, stream>>>(x, w, b, y, mean, rstd, rows, dim, eps);
  } else if (vectorizable(dim, {x, w, b, y}))
    norm_forward_kernel<4><<<blocks, 32 * kForwardWarps, 0, stream>>>(x, w, b, y, mean, rstd, rows, dim, eps);
  else
    norm_forward_kernel<1><<<blocks, 32 * kForwardWarps, 0, stream>>>(x, w, b, y, mean, rstd, rows, dim, eps);
  ROOFLINE_CUDA_CHECK_LAUNCH();
}

template <int kVec>
void launch_backward(const float* dy, const float* x, const float* w, const float* mean, const float* rstd, float* dx,
                     bool accumulate_dx, bf16* dx_bf16, float* partials, int64_t rows, int64_t dim,
                     cudaStream_t stream) {
  const size_t smem = size_t(kBackwardWarps) * size_t(3 * dim) * sizeof(float);
  if (smem > 48 * 1024)
    ROOFLINE_CUDA_CHECK(cudaFuncSetAttribute(norm_backward_kernel<kVec>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                             int(smem)));
  norm_backward_kernel<kVec><<<unsigned(backward_blocks(rows)), 32 * kBackwardWarps, smem, stream>>>(
      dy, x, w, mean, rstd, dx, accumulate_dx, dx_bf16, partials, rows, dim);
  ROOFLINE_CUDA_CHECK_LAUNCH();
}

// Whether the register-row backward takes these rows: float4 rows that fit kMaxBackwardChunks chunks per lane.
bool register_rows(int64_t dim, std::initializer_list<const void*> pointers) {
  return vectorizable(dim, pointers) && register_chunks(dim) <= kMaxBackwardChunks;
}

template <int kChunks>
void launch_backward_rows(const float* dy, const float* x, const float* w, const float* mean, const float* rstd,
                          float* dx, bool accumulate_dx, bf16* dx_bf16, float* partials, int64_t rows, int64_t dim,
                          cudaStream_t stream) {
  const size_t smem = size_t(kRowWarps) * size_t(3 * dim) * sizeof(float);
  if (smem > 48 * 1024)
    ROOFLINE_CUDA_CHECK(cudaFuncSetAttribute(norm_backward_rows_kernel<kChunks>,
                                             cudaFuncAttributeMaxDynamicSharedMemorySize, int(smem)));
  const unsigned blocks = unsigned((rows + kRowsPerRowBlock - 1) / kRowsPerRowBlock);
  norm_backward_rows_kernel<kChunks><<<blocks, 32 * kRowWarps, smem, stream>>>(
      dy, x, w, mean, rstd, dx, accumulate_dx, dx_bf16, partials, rows, dim);
  ROOFLINE_CUDA_CHECK_LAUNCH();
}

// Chunks per lane rounded up to an instantiated count: 2, 4, 6, 8, then 12 or 16 (whole residual groups).
void launch_backward_rows(const float* dy, const float* x, const float* w, const float* mean, const float* rstd,
                          float* dx, bool accumulate_dx, bf16* dx_bf16, float* partials, int64_t rows, int64_t dim,
                          cudaStream_t stream) {
  const auto launch = [&](auto chunks) {
    launch_backward_rows<decltype(chunks)::value>(dy, x, w, mean, rstd, dx, accumulate_dx, dx_bf16, partials, rows,
                                                  dim, stream);
  };
  const int chunks = register_chunks(dim);
  if (chunks <= 2) launch(std::integral_constant<int, 2>{});
  else if (chunks <= 4) launch(std::integral_constant<int, 4>{});
  else if (chunks <= 6) launch(std::integral_constant<int, 6>{});
  else if (chunks <= 8) launch(std::integral_constant<int, 8>{});
  else if (chunks <= 12) launch(std::integral_constant<int, 12>{});
  else launch(std::integral_constant<int, 16>{});
}

}  // namespace

void layernorm_forward(const float* x, const float* w, const float* b, bf16* y, float* mean, float* rstd,
                       int64_t rows, int64_t dim, float eps, cudaStream_t stream) {
  launch_forward(x, w, b, y, mean, rstd, rows, dim, eps, stream);
}

void rmsnorm_forward(const float* x, const float* w, bf16* y, float* rstd, int64_t rows, int64_t dim, float eps,
                     cudaStream_t stream) {
  launch_forward(x, w, nullptr, y, nullptr, rstd, rows, dim, eps, stream);
}

// Sized for the larger of the two backward kernels' partials (the register-row one has fewer blocks).
size_t norm_partials_floats(int64_t rows, int64_t dim) { return norm_backward_partials_floats(rows, dim); }

void norm_backward(const float* dy, const float* x, const float* w, const float* mean, const float* rstd, float* dx,
                   bool accumulate_dx, bf16* dx_bf16, float* dw, float* db, float* dx_column_sums,
                   float* partials, int64_t rows, int64_t dim, cudaStream_t stream) {
  ROOFLINE_CHECK(mean || !db, "norm_backward: RMSNorm has no bias");
  int64_t blocks = 0;
  if (register_rows(dim, {dy, x, w, dx, dx_bf16})) {
    launch_backward_rows(dy, x, w, mean, rstd, dx, accumulate_dx, dx_bf16, partials, rows, dim, stream);
    blocks = (rows + kRowsPerRowBlock - 1) / kRowsPerRowBlock;
  } else {
    if (vectorizable(dim, {dy, x, w, dx, dx_bf16}))
      launch_backward<4>(dy, x, w, mean, rstd, dx, accumulate_dx, dx_bf16, partials, rows, dim, stream);
    else
      launch_backward<1>(dy, x, w, mean, rstd, dx, accumulate_dx, dx_bf16, partials, rows, dim, stream);
    blocks = backward_blocks(rows);
  }
  add_column_partials3(partials, blocks, dim, 3 * dim, dw, db, dx_column_sums, stream);
}

}  // namespace roofline::train::cuda
