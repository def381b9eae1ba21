// Shared pieces of the training flash-attention kernels (forward, backward): the resolved problem, strided
// tile copies into padded shared memory, mma.sync fragment loads and the visibility rule.
// Tiles in shared memory are row-major [rows][D + kPad] bf16; the 16-byte pad makes every ldmatrix of eight
// rows hit eight different bank groups. Fragment layouts are those of roofline/backend/cuda/device/mma.cuh.
#pragma once
#include <cuda_bf16.h>

#include <cstdint>

#include "roofline/backend/cuda/device/convert.cuh"
#include "roofline/backend/cuda/device/mma.cuh"
#include "roofline/backend/cuda/device/reduce.cuh"
#include "roofline/train/cuda/flash_attention.h"

namespace roofline::train::cuda::detail {

using bf16 = __nv_bfloat16;
namespace dev = ::roofline::cuda::device;

constexpr float kLog2e = 1.4426950408889634f;
constexpr int kPad = 8;  // bf16 of padding per shared row

// The shape with dense strides filled in and the softmax scale; checked by resolve() on the host.
struct Problem {
  int B, T, Hq, Hkv, D, window;
  int64_t ld_q, ld_kv, ld_o;
  float scale;       // 1 / sqrt(D)
  float scale_log2;  // scale * log2(e): scores go to exp2 with one FFMA
};

// Checks the shape and the pointers (16-byte aligned: rows are copied 16 bytes at a time) and fills in the
// strides. Throws roofline::Error naming what is wrong.
Problem resolve(const FlashAttentionShape& s, const char* op, const void* const* pointers, int num_pointers);

// The wgmma forward (flash_attention_forward_wgmma.cu, sm_90a): two warpgroups of 64 query rows per CTA,
// block_keys (64 or 128) keys per step; same out and lse as the mma.sync forward.
void launch_forward_wgmma(const Problem& p, const bf16* q, const bf16* k, const bf16* v, bf16* out, float* lse,
                          int block_keys, cudaStream_t stream);

// Is key position `key` visible from query position `query`: causal, and inside the window when there is one.
__device__ __forceinline__ bool visible(int query, int key, int window) {
  return key <= query && (window <= 0 || key > query - window);
}

// Copies rows row0 .. row0 + ROWS - 1 of one head (row r starts at base + r * ld) into tile[ROWS][D + kPad]
// with cp.async; rows >= row_end are zero-filled without being read.
template <int ROWS, int D, int THREADS>
__device__ __forceinline__ void load_tile_async(bf16* tile, const bf16* base, int64_t ld, int row0, int row_end) {
  constexpr int kChunks = D / 8, kStride = D + kPad;  // 16-byte chunks per row
  static_assert((ROWS * kChunks) % THREADS == 0, "tile copies split evenly over the threads");
#pragma unroll
  for (int i = 0; i < ROWS * kChunks / THREADS; ++i) {
    const int chunk = int(threadIdx.x) + i * THREADS;
    const int r = chunk / kChunks, col = (chunk % kChunks) * 8;
    const bool valid = row0 + r < row_end;
    dev::cp_async_16(tile + r * kStride + col, base + (valid ? int64_t(row0 + r) * ld + col : 0), valid);
  }
}

// A fragment of the 16 x 16 block at (row0, col0) of a row-major tile (rows = m, cols = k).
__device__ __forceinline__ void load_a(uint32_t (&a)[4], const bf16* tile, int stride, int row0, int col0) {
  const int lane = int(threadIdx.x) % 32;
  dev::ldmatrix_x4(a, tile + (row0 + lane % 16) * stride + col0 + (lane / 16) * 8);
}

// B fragments of two n8 tiles from a tile whose rows are n (n0 .. n0 + 15) and columns k (k0 .. k0 + 15),
// e.g. K in S = Q K^T: b[0], b[1] for n0 .. n0 + 7, b[2], b[3] for n0 + 8 .. n0 + 15.
__device__ __forceinline__ void load_b_n_rows(uint32_t (&b)[4], const bf16* tile, int stride, int n0, int k0) {
  const int lane = int(threadIdx.x) % 32;
  dev::ldmatrix_x4(b, tile + (n0 + (lane / 16) * 8 + lane % 8) * stride + k0 + ((lane / 8) % 2) * 8);
}

// The same from a tile whose rows are k (k0 .. k0 + 15) and columns n (n0 .. n0 + 15), e.g. V in O = P V.
__device__ __forceinline__ void load_b_k_rows(uint32_t (&b)[4], const bf16* tile, int stride, int k0, int n0) {
  const int lane = int(threadIdx.x) % 32;
  dev::ldmatrix_x4_trans(b, tile + (k0 + lane % 8 + ((lane / 8) % 2) * 8) * stride + n0 + (lane / 16) * 8);
}

// Accumulators of n8 tiles 2kk and 2kk + 1 (16 rows x 16 columns) are exactly the A fragment of the k16
// step kk of a following product: P in O = P V, dS in dQ = dS K.
__device__ __forceinline__ void accumulators_to_a(uint32_t (&a)[4], const float (&lo)[4], const float (&hi)[4]) {
  a[0] = dev::pack_bf16x2(lo[0], lo[1]);
  a[1] = dev::pack_bf16x2(lo[2], lo[3]);
  a[2] = dev::pack_bf16x2(hi[0], hi[1]);
  a[3] = dev::pack_bf16x2(hi[2], hi[3]);
}

// Stores accumulator rows (row g and g + 8 of an m16 tile, columns 2t, 2t + 1 of each n8 tile) times
// `factor` as bf16 pairs; rows >= row_end are skipped. dst points at row 0, column 0 of the m16 tile.
template <int NTILES>
__device__ __forceinline__ void store_rows(bf16* dst, int64_t ld, int row0, int row_end, const float (&acc)[NTILES][4],
                                           float factor) {
  const int lane = int(threadIdx.x) % 32, g = lane / 4, t4 = lane % 4;
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    const int row = row0 + g + 8 * r;
    if (row >= row_end) continue;
#pragma unroll
    for (int j = 0; j < NTILES; ++j)
      *reinterpret_cast<__nv_bfloat162*>(dst + int64_t(g + 8 * r) * ld + j * 8 + t4 * 2) =
          __floats2bfloat162_rn(acc[j][2 * r] * factor, acc[j][2 * r + 1] * factor);
  }
}

// The wgmma (sm_90a) dK/dV and dQ kernels of flash_attention_backward_wgmma.cu, after the delta kernel has
// written delta: dK/dV CTAs of dkdv_warpgroups x 64 keys, dQ CTAs of dq_warpgroups x 64 query rows; serial:
// each step's products waited together (no overlap of the exponentials with dP); dkdv_pipelined (lab, head_dim
// 64, 1 dK/dV warpgroup): 0 off, 2 or 3 the dK/dV kernel pipelined across steps at that many CTAs per
// multiprocessor. part (lab timing only): 1 launches only the dK/dV kernel, 2 only the dQ kernel, 0 both.
void launch_backward_wgmma(const Problem& p, const bf16* q, const bf16* k, const bf16* v, const bf16* dout,
                           const float* lse, const float* delta, bf16* dq, bf16* dk, bf16* dv, int dkdv_warpgroups,
                           int dq_warpgroups, bool serial, int dkdv_pipelined, int part, cudaStream_t stream);

}  // namespace roofline::train::cuda::detail
