// Kernel-lab entry points for bench/micro/gpu_train_attention_bench: the flash_attention.h kernels with a
// tile choice forced, so one benchmark run measures the alternatives the default heuristic picks between.
#pragma once
#include "roofline/train/cuda/flash_attention.h"

namespace roofline::train::cuda::lab {

// Tile choices: `warps` warps per CTA, `warp_rows` query rows per warp (16 or 32), `block_keys` keys per
// step. All zero: the default. wgmma: the Hopper warpgroup kernel (flash_attention_forward_wgmma.cu), always
// 8 warps of 16 rows (two warpgroups of 64), 64 or 128 keys per step.
struct ForwardVariant {
  int warps = 0, warp_rows = 0, block_keys = 0;
  bool wgmma = false;
};
// The kernels that exist, per head_dim.
inline constexpr ForwardVariant kForwardVariants64[] = {{4, 16, 64},       {4, 16, 128},      {4, 32, 64},
                                                        {8, 16, 64},       {8, 16, 128},      {8, 32, 64},
                                                        {8, 16, 64, true}, {8, 16, 128, true}};
inline constexpr ForwardVariant kForwardVariants128[] = {{4, 16, 64},       {4, 32, 32}, {8, 16, 64}, {8, 32, 32},
                                                         {8, 16, 64, true}, {8, 16, 128, true}};
// What ROOFLINE_TRAIN_ATTN_WGMMA=1 makes flash_attention_forward run (opt-in, not yet the default).
inline constexpr ForwardVariant kForwardWgmma64{8, 16, 64, true}, kForwardWgmma128{8, 16, 128, true};

void flash_attention_forward(const FlashAttentionShape& s, const __nv_bfloat16* q, const __nv_bfloat16* k,
                             const __nv_bfloat16* v, __nv_bfloat16* out, float* lse, ForwardVariant variant,
                             cudaStream_t stream);

// The backward with the dK/dV kernel on dkdv_warps warps (16 keys each) and the dQ kernel on dq_warps warps
// (16 query rows each); 4 or 8 each, 0 for the default.
struct BackwardVariant {
  int dkdv_warps = 0, dq_warps = 0;
};
void flash_attention_backward(const FlashAttentionShape& s, const __nv_bfloat16* q, const __nv_bfloat16* k,
                              const __nv_bfloat16* v, const __nv_bfloat16* out, const float* lse,
                              const __nv_bfloat16* dout, __nv_bfloat16* dq, __nv_bfloat16* dk, __nv_bfloat16* dv,
                              void* workspace, BackwardVariant variant, cudaStream_t stream);

}  // namespace roofline::train::cuda::lab
