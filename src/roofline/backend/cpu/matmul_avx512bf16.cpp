// AVX-512 BF16 level, matmul: the AVX-512 kernels, deliberately.
//
// The BF16 dot-product instruction (vdpbf16ps) was measured against the convert + FMA path of
// matmul_kernels.h on the Sapphire Rapids dev box and lost everywhere, so it is not used:
//  - throughput: one vdpbf16ps zmm per 2 cycles versus two FMAs per cycle. Keeping the activations
//    accurate needs two of them per weight vector (x = hi + lo, hi = bf16(x), lo = bf16(x - hi), ~16
//    mantissa bits), so it does 1/4 of the FMA path's multiply-adds per cycle: hopeless for prefill.
//  - decode (M = 1, bf16 weights streamed from DRAM, one thread, GB/s per CPU second, same tiles and
//    prefetch): K=2048 N=8192: 13.6 (dot product) vs 14.5 (shift/mask + FMA); K=768 N=50304: 10.8 vs 12.3.
//    The bf16 -> f32 conversion is one shift or mask per vector, so the FMA path is not compute-bound
//    either, and it keeps x in full f32 (relative error ~1e-7 instead of ~3e-6).
#include "roofline/backend/cpu/kernels.h"

namespace roofline::cpu {

MatmulKernels matmul_kernels_avx512bf16() { return matmul_kernels_avx512(); }

}  // namespace roofline::cpu
