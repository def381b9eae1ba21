// Kernel-lab entry points for bench/micro/gpu_train_attention_bench: the flash_attention.h kernels with a
// tile choice forced, so one benchmark run measures the alternatives the default heuristic picks between.
#pragma once
#include "roofline/train/cuda/flash_attention.h"

namespace roofline::train::cuda::lab {

// warp_rows: query rows per warp in the forward, 16 or 32 (0: the default choice).
void flash_attention_forward(const FlashAttentionShape& s, const __nv_bfloat16* q, const __nv_bfloat16* k,
                             const __nv_bfloat16* v, __nv_bfloat16* out, float* lse, int warp_rows,
                             cudaStream_t stream);

}  // namespace roofline::train::cuda::lab
