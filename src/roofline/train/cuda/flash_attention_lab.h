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
// What flash_attention_forward runs by default (ROOFLINE_TRAIN_ATTN_WGMMA=0: the mma.sync kernels instead).
inline constexpr ForwardVariant kForwardWgmma64{8, 16, 64, true}, kForwardWgmma128{8, 16, 128, true};

void flash_attention_forward(const FlashAttentionShape& s, const __nv_bfloat16* q, const __nv_bfloat16* k,
                             const __nv_bfloat16* v, __nv_bfloat16* out, float* lse, ForwardVariant variant,
                             cudaStream_t stream);

// The backward with the dK/dV kernel on dkdv_warps warps (16 keys each) and the dQ kernel on dq_warps warps
// (16 query rows each); 4 or 8 each, 0 for the default. With wgmma, the warpgroup kernels (sm_90a,
// flash_attention_backward_wgmma.cu) instead: dK/dV CTAs of dkdv_warpgroups x 64 keys (1, 2 or 3 at head_dim
// 64, 2 at 128) and dQ CTAs of dq_warpgroups x 64 query rows (2, or 3 at head_dim 64); 0: 1 and 2 at head_dim
// 64, 2 and 2 at 128 (the fastest measured). serial: each step's products waited together (no overlap of the
// exponentials with dP). flash_attention_backward (no variant) runs the wgmma pair, or the mma.sync pair when
// ROOFLINE_TRAIN_ATTN_BWD_WGMMA=0.
struct BackwardVariant {
  int dkdv_warps = 0, dq_warps = 0;
  bool wgmma = false;
  int dkdv_warpgroups = 0, dq_warpgroups = 0;
  bool serial = false;
  int part = 0;  // timing only (the gradients are then incomplete): 1 runs delta and dK/dV, 2 delta and dQ
  // wgmma, head_dim 64, 1 dK/dV warpgroup: the dK/dV kernel pipelined across steps (step n + 1's S^T and dP^T
  // queued behind step n's dK, three Q/dO stages) at 2 CTAs per multiprocessor, or 3 (P^T for dS^T from its
  // bf16 fragments, <= 168 registers). 0: off.
  int dkdv_pipelined = 0;
};
// The wgmma variants that exist, per head_dim.
inline constexpr BackwardVariant kWgmmaBackwardVariants64[] = {{0, 0, true, 1, 2}, {0, 0, true, 2, 2},
                                                               {0, 0, true, 3, 2}, {0, 0, true, 2, 3},
                                                               {0, 0, true, 3, 2, true},
                                                               {0, 0, true, 1, 2, false, 0, 2},
                                                               {0, 0, true, 1, 2, false, 0, 3}};
inline constexpr BackwardVariant kWgmmaBackwardVariants128[] = {{0, 0, true, 2, 2}, {0, 0, true, 2, 2, true}};
// Whether the wgmma kernels are the default: yes unless ROOFLINE_TRAIN_ATTN_BWD_WGMMA=0 (read once).
bool backward_wgmma_by_default();
// Whether the default head_dim-64 wgmma backward pipelines its dK/dV kernel (dkdv_pipelined = 2): yes unless
// ROOFLINE_TRAIN_ATTN_DKDV_PIPELINED=0 (read once).
bool dkdv_pipelined_by_default();
void flash_attention_backward(const FlashAttentionShape& s, const __nv_bfloat16* q, const __nv_bfloat16* k,
                              const __nv_bfloat16* v, const __nv_bfloat16* out, const float* lse,
                              const __nv_bfloat16* dout, __nv_bfloat16* dq, __nv_bfloat16* dk, __nv_bfloat16* dv,
                              void* workspace, BackwardVariant variant, cudaStream_t stream);

}  // namespace roofline::train::cuda::lab
