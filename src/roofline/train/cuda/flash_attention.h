// FlashAttention-style causal self-attention for training on Hopper: bf16 inputs, f32 accumulation, the
// score matrix never stored. Forward keeps each query row's log-sum-exp; backward recomputes the
// probabilities from q, k and lse. Grouped-query heads (Hq a multiple of Hkv), head_dim 64 or 128, an
// optional sliding window (a query at position i sees keys (i - window, i]), softmax scale 1/sqrt(D).
//
// Layout: token-major rows with a row stride, so q, k and v can be read straight out of one fused
// [B*T, (Hq + 2 Hkv) * D] projection output and dq, dk, dv written into one fused gradient buffer:
//   q[(b*T + t) * ld_q + h*D + d], k/v[(b*T + t) * ld_kv + h*D + d], out[(b*T + t) * ld_o + h*D + d].
// lse is [B, Hq, T] in f32.
#pragma once
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

namespace roofline::train::cuda {

struct FlashAttentionShape {
  int64_t B = 0, T = 0, Hq = 0, Hkv = 0, D = 0;
  int64_t window = 0;  // 0: full causal
  int64_t ld_q = 0, ld_kv = 0, ld_o = 0;  // row strides in elements; 0: dense (Hq*D, Hkv*D, Hq*D)
};

void flash_attention_forward(const FlashAttentionShape& s, const __nv_bfloat16* q, const __nv_bfloat16* k,
                             const __nv_bfloat16* v, __nv_bfloat16* out, float* lse, cudaStream_t stream);

// Scratch the backward needs (bytes), for the caller to allocate once per shape.
size_t flash_attention_backward_workspace(const FlashAttentionShape& s);

// dout and out use ld_o; dq uses ld_q; dk and dv use ld_kv. dq, dk, dv are written (not accumulated), and
// deterministically: the same inputs give the same bits on every run (exact training resume needs that).
void flash_attention_backward(const FlashAttentionShape& s, const __nv_bfloat16* q, const __nv_bfloat16* k,
                              const __nv_bfloat16* v, const __nv_bfloat16* out, const float* lse,
                              const __nv_bfloat16* dout, __nv_bfloat16* dq, __nv_bfloat16* dk, __nv_bfloat16* dv,
                              void* workspace, cudaStream_t stream);

}  // namespace roofline::train::cuda
