// Tensor-core and async-copy primitives for sm_80+ (used on Hopper before the wgmma versions):
//   mma_bf16_16816: D[16x8] += A[16x16] · B[16x8], bf16 inputs, f32 accumulators (mma.sync m16n8k16).
//   Fragment layouts, with g = lane / 4 and t = lane % 4:
//     A (4 regs of bf16x2): a0 (row g, cols 2t..2t+1), a1 (row g+8, cols 2t..), a2 (row g, cols 2t+8..),
//                           a3 (row g+8, cols 2t+8..)
//     B (2 regs):           b0 (k 2t..2t+1, col g), b1 (k 2t+8..2t+9, col g)
//     C/D (4 f32):          c0 c1 (row g, cols 2t, 2t+1), c2 c3 (row g+8, cols 2t, 2t+1)
//   ldmatrix_x4: four 8x8 bf16 matrices from shared memory; lanes 8i..8i+7 give the row addresses of
//   matrix i and each lane receives (row g, cols 2t..2t+1) of every matrix (transposed with _trans).
//   cp_async_16: 16-byte global -> shared copy that bypasses registers; zero-fills when !valid.
#pragma once
#include <cuda_runtime.h>

#include <cstdint>

namespace roofline::cuda::device {

__device__ __forceinline__ uint32_t smem_address(const void* p) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}

__device__ __forceinline__ void ldmatrix_x4(uint32_t (&r)[4], const void* smem_row) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(smem_address(smem_row)));
}

__device__ __forceinline__ void ldmatrix_x4_trans(uint32_t (&r)[4], const void* smem_row) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(smem_address(smem_row)));
}

__device__ __forceinline__ void mma_bf16_16816(float (&d)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
      "{%0, %1, %2, %3};\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

__device__ __forceinline__ void cp_async_16(void* smem, const void* global, bool valid) {
  const int src_bytes = valid ? 16 : 0;  // 0: nothing is read, the 16 bytes are zero-filled
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(smem_address(smem)), "l"(global),
               "r"(src_bytes));
}

// The same copy to a shared address already in 32-bit form (the wgmma kernels compute their swizzled tile
// addresses that way).
__device__ __forceinline__ void cp_async_16(uint32_t smem, const void* global, bool valid) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(smem), "l"(global), "r"(valid ? 16 : 0));
}

// 8- and 4-byte copies (through L1: .cg takes only 16 bytes), zero-filling when !valid.
__device__ __forceinline__ void cp_async_8(void* smem, const void* global, bool valid) {
  const int src_bytes = valid ? 8 : 0;
  asm volatile("cp.async.ca.shared.global [%0], [%1], 8, %2;\n" ::"r"(smem_address(smem)), "l"(global),
               "r"(src_bytes));
}
__device__ __forceinline__ void cp_async_4(void* smem, const void* global, bool valid) {
  const int src_bytes = valid ? 4 : 0;
  asm volatile("cp.async.ca.shared.global [%0], [%1], 4, %2;\n" ::"r"(smem_address(smem)), "l"(global),
               "r"(src_bytes));
}

__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::); }

// Waits until at most `pending` committed groups of this thread are still in flight.
template <int pending>
__device__ __forceinline__ void cp_async_wait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(pending));
}

}  // namespace roofline::cuda::device
