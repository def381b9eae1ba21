// The shared-memory half of the Hopper flash-attention forward (wgmma_attention.cuh is the register half),
// shared by the inference prefill kernel (paged_attention_prefill_wgmma.cu) and the training forward
// (train/cuda/flash_attention_forward_wgmma.cu). The two differ only in where a tile's rows come from (pool rows
// through a block table, or strided token rows), so the layout, the copies, the descriptors and the products'
// issue live here, and each kernel says only which source row a tile row is. The training backward's kernels
// start their steps with the same await_tiles.
// A CTA is two warpgroups of 64 query rows. In shared memory, in the SW128 rows layout (wgmma.cuh): Q
// [kBlockM x D], K [BN x D] in two stages, V [BN x D] in kVStages (3 when S of block j is issued beside P V of
// block j - 1: V of j - 1 is still read while V of j + 1 lands). Every stage is a multiple of 8 KB, so each
// starts 1024-byte aligned once the base is.
#pragma once
#include <cstdint>

#include "roofline/backend/cuda/device/convert.cuh"
#include "roofline/backend/cuda/device/mma.cuh"
#include "roofline/backend/cuda/device/wgmma.cuh"
#include "roofline/backend/cuda/device/wgmma_attention.cuh"

namespace roofline::cuda::device {

constexpr int kForwardWarpGroups = 2;
constexpr int kForwardThreads = 128 * kForwardWarpGroups;

// Shared addresses of Q, K stage 0 and V stage 0.
struct ForwardTileAddresses {
  uint32_t q, k, v;
};

// Descriptors (wgmma.cuh) of stage 0: this warpgroup's Q rows and K are K-major, V is N-major with its 64-dim
// atoms BN * 128 bytes apart. Offsets are added in 16-byte units to the start-address field.
struct ForwardDescriptors {
  uint64_t q, k, v;
};

template <int D, int BN, int kVStagesOfLoop>
struct WgForwardTiles {
  static_assert(D == 64 || D == 128, "head_dim 64 or 128 (rows of one or two 128-byte swizzle atoms)");
  static_assert(BN == 64 || BN == 128, "64 or 128 keys per block");
  static constexpr int kBlockM = 64 * kForwardWarpGroups;         // query rows per CTA
  static constexpr int kChunks = D / 8;                           // 16-byte chunks per row
  static constexpr int kRowsPerPass = kForwardThreads / kChunks;  // rows one copy instruction of the CTA covers
  static constexpr int kQPasses = kBlockM / kRowsPerPass;
  static constexpr int kKvPasses = BN / kRowsPerPass;
  static constexpr uint32_t kQBytes = kBlockM * D * 2;
  static constexpr uint32_t kKvBytes = BN * D * 2;  // one K or V tile (one stage)
  static constexpr int kVStages = kVStagesOfLoop;
  static constexpr size_t kSmemBytes = kQBytes + (2 + kVStages) * size_t(kKvBytes) + 1024;  // + base alignment

  static __device__ __forceinline__ ForwardTileAddresses addresses(const unsigned char* smem_raw) {
    const uint32_t q = (smem_address(smem_raw) + 1023u) & ~1023u;
    return {q, q + kQBytes, q + kQBytes + 2 * kKvBytes};
  }

  // Every tile is copied by all threads, each copying chunk `chunk` of rows first_row + i * kRowsPerPass.
  // Q rows m0 .. of `q` (row pitch in elements); rows >= row_end are zero-filled without being read.
  static __device__ __forceinline__ void load_q(const ForwardTileAddresses& tiles, const bf16* q, int64_t pitch, int m0,
                                                int row_end, int first_row, int chunk) {
#pragma unroll
    for (int i = 0; i < kQPasses; ++i) {
      const int r = first_row + i * kRowsPerPass;
      const bool valid = m0 + r < row_end;
      cp_async_16(tiles.q + sw128_offset(kBlockM, r, chunk), q + (valid ? int64_t(m0 + r) * pitch + chunk * 8 : 0),
                  valid);
    }
  }

  // K and V of block j into K stage j % 2 and V stage j % kVStages, one commit group. source_row(i, r, row)
  // sets row to the source row of tile row r (pass i) and says whether to read it (false: zero-filled).
  template <typename SourceRow>
  static __device__ __forceinline__ void load_kv_block(const ForwardTileAddresses& tiles, int j, const bf16* k,
                                                       const bf16* v, int64_t pitch, int first_row, int chunk,
                                                       SourceRow&& source_row) {
    const uint32_t k_stage = tiles.k + (j % 2) * kKvBytes, v_stage = tiles.v + (j % kVStages) * kKvBytes;
#pragma unroll
    for (int i = 0; i < kKvPasses; ++i) {
      const int r = first_row + i * kRowsPerPass;
      const uint32_t at = sw128_offset(BN, r, chunk);
      int row;
      const bool valid = source_row(i, r, row);
      const int64_t from = valid ? int64_t(row) * pitch + chunk * 8 : 0;
      cp_async_16(k_stage + at, k + from, valid);
      cp_async_16(v_stage + at, v + from, valid);
    }
    cp_async_commit();
  }

  static __device__ __forceinline__ ForwardDescriptors descriptors(const ForwardTileAddresses& tiles,
                                                                   int warp_group) {
    return {sw128_descriptor(tiles.q + warp_group * 64 * 128, 16, 1024), sw128_descriptor(tiles.k, 16, 1024),
            sw128_descriptor(tiles.v, BN * 128, 1024)};
  }

  // S = Q K^T of block j, (64 x BN) per warpgroup: D / 16 k-steps; k-step kk is atom kk / 4, bytes (kk % 4) * 32.
  // Issued only: the caller commits and waits.
  static __device__ __forceinline__ void issue_scores(float (&s)[BN / 2], const ForwardDescriptors& desc, int j) {
#pragma unroll
    for (int kk = 0; kk < D / 16; ++kk) {
      const uint32_t q_at = (kk / 4) * kBlockM * 128 + (kk % 4) * 32;
      const uint32_t k_at = (j % 2) * kKvBytes + (kk / 4) * BN * 128 + (kk % 4) * 32;
      wgmma_scores<BN>(s, desc.q + (q_at >> 4), desc.k + (k_at >> 4), kk > 0);
    }
  }

  // O += P V of block j: BN / 16 k-steps of 16 keys, 2048 bytes of V each. Issued only.
  static __device__ __forceinline__ void issue_values(float (&o)[D / 2], const uint32_t (&pf)[BN / 16][4],
                                                      const ForwardDescriptors& desc, int j) {
#pragma unroll
    for (int kk = 0; kk < BN / 16; ++kk) {
      const uint32_t v_at = (j % kVStages) * kKvBytes + kk * 2048;
      wgmma_values<D>(o, pf[kk], desc.v + (v_at >> 4));
    }
  }
};

// Waits for this thread's copies, makes them visible to the async proxy (cp.async writes through the generic
// proxy, wgmma reads its operands through the async one), then a barrier: every thread's copies are in, and
// every warpgroup has left the tiles the next copies overwrite.
__device__ __forceinline__ void await_tiles() {
  cp_async_wait<0>();
  fence_proxy_async_shared();
  __syncthreads();
}

}  // namespace roofline::cuda::device
