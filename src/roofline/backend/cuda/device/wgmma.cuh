// Warpgroup tensor-core primitives for sm_90a (wgmma.mma_async), bf16 inputs, f32 accumulators. PTX ISA
// section "Asynchronous Warpgroup Level Matrix Multiply-Accumulate Instructions" (9.7.15 in ISA 8.x/9.0):
//
// A warpgroup is 4 consecutive warps starting at a warp index divisible by 4; warp w (0..3 within the group)
// owns rows 16w .. 16w + 15 of the m64 tile. With g = lane / 4 and t = lane % 4:
//   Accumulator D of m64nNk16, f32 (Figure "WGMMA .m64nNk16 register fragment layout for accumulator matrix D",
//   9.7.15.5.1.1.1): N / 2 registers per thread; d[4j + e] holds row 16w + g + 8 * (e / 2), column
//   8j + 2t + (e % 2), for n8 column tile j = 0 .. N / 8 - 1. Per n8 tile this is the m16n8 C fragment of
//   mma.sync (mma.cuh), repeated across N.
//   A in registers, bf16 (Figure "WGMMA .m64nNk16 register fragment layout for matrix A"): 4 registers of
//   bf16x2: a[0] row g, cols 2t..2t+1; a[1] row g + 8, cols 2t..; a[2] row g, cols 2t + 8..; a[3] row g + 8,
//   cols 2t + 8.. (rows within the warp's 16): the m16n8k16 A fragment of mma.sync. So the accumulators of n8
//   tiles 2k and 2k + 1, rounded to bf16 in pairs, are the A fragment of k-step k (FlashAttention's P).
//
// Shared-memory operands through matrix descriptors (9.7.15.5.1.2, "Matrix Descriptor Format"), 64 bits:
//   bits 0-13 start address >> 4, bits 16-29 leading dimension byte offset >> 4 (LBO), bits 32-45 stride
//   dimension byte offset >> 4 (SBO), bits 49-51 base offset (0: every swizzle pattern here starts 1024-byte
//   aligned), bits 62-63 swizzle mode (1 = 128-byte swizzle).
// The one layout used here, "SW128 rows": a tile of R rows of 64 bf16 (128 bytes) each, 1024-byte aligned,
// where the 16-byte chunk c (0..7) of row r sits at byte r * 128 + ((c ^ (r % 8)) * 16): the hardware's
// 128-byte swizzle (address bits 4-6 XOR bits 7-9). Wider rows are split into 64-column atoms stored one after
// another (atom a holds columns 64a .. 64a + 63 of all R rows, R * 128 bytes).
//   K-major operand (A = Q rows, or B = K rows: the reduction dim runs along the row): canonical layout
//   ((8, m), (8, 2)) : ((128 B, SBO), (1 elem, 16 B)) swizzled; SBO = 1024 (next 8 rows), LBO unused (1).
//   k-step kk (16 columns = 32 bytes) starts at atom kk / 4, byte (kk % 4) * 32: the swizzle is applied to
//   the final address, so advancing the start address inside the 128-byte row is exact.
//   N-major B (imm-trans-b = 1; B = V with rows = keys = the reduction dim, dims along the row): canonical
//   ((64 elem, n), (8, k)) : ((1, LBO), (128 B, SBO)) swizzled; LBO = R * 128 (next 64 dims: next atom),
//   SBO = 1024 (next 8 keys). k-step kk (16 keys) starts at byte kk * 2048.
//
// Ordering (9.7.15.6): wgmma.fence before the first wgmma that touches registers written by other
// instructions (the accumulators, A fragments); wgmma.commit_group closes a batch; wgmma.wait_group N blocks
// until at most N batches are pending; accumulators are read only after that. Shared memory written by the
// generic proxy (st.shared, cp.async) needs fence.proxy.async.shared::cta by the writing threads before the
// barrier that precedes the wgmma which reads it.
#pragma once
#include <cuda_runtime.h>

#include <cstdint>

namespace roofline::cuda::device {

// Descriptor of an SW128 operand at shared address `smem` (1024-byte aligned pattern; see above).
__device__ __forceinline__ uint64_t sw128_descriptor(uint32_t smem, uint32_t lbo_bytes, uint32_t sbo_bytes) {
  return uint64_t((smem & 0x3FFFFu) >> 4) | (uint64_t((lbo_bytes >> 4) & 0x3FFFu) << 16) |
         (uint64_t((sbo_bytes >> 4) & 0x3FFFu) << 32) | (uint64_t(1) << 62);
}

// Byte offset of 16-byte chunk `chunk` (0 .. row_elems / 8 - 1) of row `row` in an SW128 tile of `rows` rows.
__host__ __device__ __forceinline__ constexpr uint32_t sw128_offset(int rows, int row, int chunk) {
  return uint32_t((chunk / 8) * rows * 128 + row * 128 + (((chunk % 8) ^ (row % 8)) * 16));
}

__device__ __forceinline__ void wgmma_fence() { asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory"); }
__device__ __forceinline__ void wgmma_commit() { asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory"); }
template <int pending>
__device__ __forceinline__ void wgmma_wait() {
  asm volatile("wgmma.wait_group.sync.aligned %0;\n" ::"n"(pending) : "memory");
}
__device__ __forceinline__ void fence_proxy_async_shared() {
  asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");
}

// Pins accumulator registers across wgmma issue / wait so that the compiler neither reads them while a
// wgmma is in flight nor moves them between registers (which would serialize the wgmma chain).
template <int N>
__device__ __forceinline__ void fence_registers(float (&d)[N]) {
#pragma unroll
  for (int i = 0; i < N; ++i) asm volatile("" : "+f"(d[i])::"memory");
}

// The same for A fragments held in registers ([N][4] words, as a P or dS operand of an rs product).
template <int N>
__device__ __forceinline__ void fence_fragments(uint32_t (&r)[N][4]) {
#pragma unroll
  for (int i = 0; i < N; ++i)
#pragma unroll
    for (int e = 0; e < 4; ++e) asm volatile("" : "+r"(r[i][e])::"memory");
}

// The accumulator operands of a wgmma asm statement, d[0] .. d[N - 1] read and written ("+f"), in the order
// the instruction's register list names them (%0 .. %N-1).
#define ROOFLINE_WGMMA_D8(d, i)                                                                               \
  "+f"(d[i]), "+f"(d[i + 1]), "+f"(d[i + 2]), "+f"(d[i + 3]), "+f"(d[i + 4]), "+f"(d[i + 5]), "+f"(d[i + 6]), \
      "+f"(d[i + 7])
#define ROOFLINE_WGMMA_D32(d) \
  ROOFLINE_WGMMA_D8(d, 0), ROOFLINE_WGMMA_D8(d, 8), ROOFLINE_WGMMA_D8(d, 16), ROOFLINE_WGMMA_D8(d, 24)
#define ROOFLINE_WGMMA_D64(d) \
  ROOFLINE_WGMMA_D32(d), ROOFLINE_WGMMA_D8(d, 32), ROOFLINE_WGMMA_D8(d, 40), ROOFLINE_WGMMA_D8(d, 48), \
      ROOFLINE_WGMMA_D8(d, 56)

// D[64 x 64] (+)= A[64 x 16] . B[16 x 64]: A and B from shared memory (descriptors), both K-major.
__device__ __forceinline__ void wgmma_m64n64k16_ss(float (&d)[32], uint64_t a_desc, uint64_t b_desc, bool accumulate) {
  asm volatile(
      "{\n.reg .pred p;\nsetp.ne.b32 p, %34, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16 {%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31}, %32, %33, p, 1, 1, 0, 0;\n}\n"
      : ROOFLINE_WGMMA_D32(d)
      : "l"(a_desc), "l"(b_desc), "r"(int(accumulate)));
}

// D[64 x 64] += A[64 x 16] . B[16 x 64]: A from registers (the m16n8k16 A fragment of the warp's 16 rows),
// B from shared memory, N-major (imm-trans-b = 1: rows of B are contiguous in N, like V's rows of dims).
__device__ __forceinline__ void wgmma_m64n64k16_rs_bt(float (&d)[32], const uint32_t (&a)[4], uint64_t b_desc) {
  asm volatile(
      "{\n.reg .pred p;\nsetp.ne.b32 p, %37, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16 {%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31}, {%32, %33, %34, %35}, %36, p, 1, 1, 1;\n}\n"
      : ROOFLINE_WGMMA_D32(d)
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(b_desc), "r"(1));
}

// D[64 x 128] (+)= A[64 x 16] . B[16 x 128]: A and B from shared memory (descriptors), both K-major.
__device__ __forceinline__ void wgmma_m64n128k16_ss(float (&d)[64], uint64_t a_desc, uint64_t b_desc, bool accumulate) {
  asm volatile(
      "{\n.reg .pred p;\nsetp.ne.b32 p, %66, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n128k16.f32.bf16.bf16 {%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, %32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, %48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63}, %64, %65, p, 1, 1, 0, 0;\n}\n"
      : ROOFLINE_WGMMA_D64(d)
      : "l"(a_desc), "l"(b_desc), "r"(int(accumulate)));
}

// D[64 x 128] += A[64 x 16] . B[16 x 128]: A from registers (the m16n8k16 A fragment of the warp's 16 rows),
// B from shared memory, N-major (imm-trans-b = 1: rows of B are contiguous in N, like V's rows of dims).
__device__ __forceinline__ void wgmma_m64n128k16_rs_bt(float (&d)[64], const uint32_t (&a)[4], uint64_t b_desc) {
  asm volatile(
      "{\n.reg .pred p;\nsetp.ne.b32 p, %69, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n128k16.f32.bf16.bf16 {%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, %32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, %48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63}, {%64, %65, %66, %67}, %68, p, 1, 1, 1;\n}\n"
      : ROOFLINE_WGMMA_D64(d)
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(b_desc), "r"(1));
}

}  // namespace roofline::cuda::device
