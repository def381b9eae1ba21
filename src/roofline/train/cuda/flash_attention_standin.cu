// STAND-IN for the training flash attention (flash_attention.h), until the real kernels land from the
// train-attn branch: simple and correct, not fast. One warp per query row (forward, dq) or per key row
// (dk, dv), head vectors spread over the lanes (head_dim <= 128), online softmax in f32, lse kept; backward
// recomputes p = exp(s - lse). Deterministic: every sum has a fixed order, no atomics.
// Delete this file when flash_attention.cu is merged.
#include <cmath>

#include "roofline/backend/cuda/cuda_check.h"
#include "roofline/core/error.h"
#include "roofline/train/cuda/block_reduce.cuh"
#include "roofline/train/cuda/flash_attention.h"

namespace roofline::train::cuda {
namespace {

constexpr int kMaxPerLane = 4;  // head_dim <= 128
constexpr int kWarpsPerBlock = 4;

struct Dims {
  int64_t B, T, Hq, Hkv, D, window, ld_q, ld_kv, ld_o;
  float scale;
};

Dims dims_of(const FlashAttentionShape& s) {
  return Dims{s.B, s.T, s.Hq, s.Hkv, s.D, s.window,
              s.ld_q ? s.ld_q : s.Hq * s.D, s.ld_kv ? s.ld_kv : s.Hkv * s.D, s.ld_o ? s.ld_o : s.Hq * s.D,
              float(1.0 / std::sqrt(double(s.D)))};
}

__device__ inline void load_row(const __nv_bfloat16* p, int64_t D, float* r) {
  for (int k = 0; k < kMaxPerLane; ++k) {
    const int64_t d = threadIdx.x % 32 + 32 * k;
    r[k] = d < D ? __bfloat162float(p[d]) : 0.0f;
  }
}

__device__ inline float dot_row(const float* a, const __nv_bfloat16* p, int64_t D) {
  float s = 0.0f;
  for (int k = 0; k < kMaxPerLane; ++k) {
    const int64_t d = threadIdx.x % 32 + 32 * k;
    if (d < D) s += a[k] * __bfloat162float(p[d]);
  }
  return warp_sum(s);
}

__device__ inline int64_t first_key(const Dims& s, int64_t i) { return s.window > 0 ? max(int64_t(0), i - s.window + 1) : 0; }

// Warp per (b, h, i).
__global__ void forward_kernel(Dims s, const __nv_bfloat16* q, const __nv_bfloat16* k, const __nv_bfloat16* v,
                               __nv_bfloat16* out, float* lse) {
  const int64_t row = int64_t(blockIdx.x) * kWarpsPerBlock + threadIdx.x / 32;
  if (row >= s.B * s.Hq * s.T) return;
  const int64_t i = row % s.T, h = (row / s.T) % s.Hq, b = row / (s.T * s.Hq);
  const int64_t kvh = h / (s.Hq / s.Hkv);
  float qr[kMaxPerLane], acc[kMaxPerLane] = {};
  load_row(q + (b * s.T + i) * s.ld_q + h * s.D, s.D, qr);
  float m = -INFINITY, l = 0.0f;
  for (int64_t j = first_key(s, i); j <= i; ++j) {
    const int64_t kv_row = (b * s.T + j) * s.ld_kv + kvh * s.D;
    const float score = dot_row(qr, k + kv_row, s.D) * s.scale;
    const float m_new = fmaxf(m, score);
    const float correction = expf(m - m_new), p = expf(score - m_new);
    l = l * correction + p;
    for (int kk = 0; kk < kMaxPerLane; ++kk) {
      const int64_t d = threadIdx.x % 32 + 32 * kk;
      acc[kk] = acc[kk] * correction + (d < s.D ? p * __bfloat162float(v[kv_row + d]) : 0.0f);
    }
    m = m_new;
  }
  __nv_bfloat16* o = out + (b * s.T + i) * s.ld_o + h * s.D;
  for (int kk = 0; kk < kMaxPerLane; ++kk) {
    const int64_t d = threadIdx.x % 32 + 32 * kk;
    if (d < s.D) o[d] = __float2bfloat16(acc[kk] / l);
  }
  if (threadIdx.x % 32 == 0) lse[(b * s.Hq + h) * s.T + i] = m + logf(l);
}

// delta[b, h, i] = dout_i . out_i
__global__ void delta_kernel(Dims s, const __nv_bfloat16* out, const __nv_bfloat16* dout, float* delta) {
  const int64_t row = int64_t(blockIdx.x) * kWarpsPerBlock + threadIdx.x / 32;
  if (row >= s.B * s.Hq * s.T) return;
  const int64_t i = row % s.T, h = (row / s.T) % s.Hq, b = row / (s.T * s.Hq);
  float o[kMaxPerLane];
  load_row(out + (b * s.T + i) * s.ld_o + h * s.D, s.D, o);
  const float d = dot_row(o, dout + (b * s.T + i) * s.ld_o + h * s.D, s.D);
  if (threadIdx.x % 32 == 0) delta[(b * s.Hq + h) * s.T + i] = d;
}

// Warp per query row: dq_i = scale * sum_j p_ij (dout_i . v_j - delta_i) k_j.
__global__ void dq_kernel(Dims s, const __nv_bfloat16* q, const __nv_bfloat16* k, const __nv_bfloat16* v,
                          const float* lse, const float* delta, const __nv_bfloat16* dout, __nv_bfloat16* dq) {
  const int64_t row = int64_t(blockIdx.x) * kWarpsPerBlock + threadIdx.x / 32;
  if (row >= s.B * s.Hq * s.T) return;
  const int64_t i = row % s.T, h = (row / s.T) % s.Hq, b = row / (s.T * s.Hq);
  const int64_t kvh = h / (s.Hq / s.Hkv);
  float qr[kMaxPerLane], dor[kMaxPerLane], acc[kMaxPerLane] = {};
  load_row(q + (b * s.T + i) * s.ld_q + h * s.D, s.D, qr);
  load_row(dout + (b * s.T + i) * s.ld_o + h * s.D, s.D, dor);
  const float row_lse = lse[(b * s.Hq + h) * s.T + i], row_delta = delta[(b * s.Hq + h) * s.T + i];
  for (int64_t j = first_key(s, i); j <= i; ++j) {
    const int64_t kv_row = (b * s.T + j) * s.ld_kv + kvh * s.D;
    const float p = expf(dot_row(qr, k + kv_row, s.D) * s.scale - row_lse);
    const float ds = p * (dot_row(dor, v + kv_row, s.D) - row_delta);
    for (int kk = 0; kk < kMaxPerLane; ++kk) {
      const int64_t d = threadIdx.x % 32 + 32 * kk;
      if (d < s.D) acc[kk] += ds * __bfloat162float(k[kv_row + d]);
    }
  }
  __nv_bfloat16* o = dq + (b * s.T + i) * s.ld_q + h * s.D;
  for (int kk = 0; kk < kMaxPerLane; ++kk) {
    const int64_t d = threadIdx.x % 32 + 32 * kk;
    if (d < s.D) o[d] = __float2bfloat16(acc[kk] * s.scale);
  }
}

// Warp per key row (b, kv head, j), summing over the query heads of its group and the queries i >= j:
// dv_j = sum p_ij dout_i, dk_j = scale * sum ds_ij q_i.
__global__ void dkv_kernel(Dims s, const __nv_bfloat16* q, const __nv_bfloat16* k, const __nv_bfloat16* v,
                           const float* lse, const float* delta, const __nv_bfloat16* dout, __nv_bfloat16* dk,
                           __nv_bfloat16* dv) {
  const int64_t row = int64_t(blockIdx.x) * kWarpsPerBlock + threadIdx.x / 32;
  if (row >= s.B * s.Hkv * s.T) return;
  const int64_t j = row % s.T, kvh = (row / s.T) % s.Hkv, b = row / (s.T * s.Hkv);
  const int64_t group = s.Hq / s.Hkv;
  const int64_t kv_row = (b * s.T + j) * s.ld_kv + kvh * s.D;
  float kr[kMaxPerLane], vr[kMaxPerLane], dk_acc[kMaxPerLane] = {}, dv_acc[kMaxPerLane] = {};
  load_row(k + kv_row, s.D, kr);
  load_row(v + kv_row, s.D, vr);
  const int64_t last = s.window > 0 ? min(s.T - 1, j + s.window - 1) : s.T - 1;
  for (int64_t h = kvh * group; h < (kvh + 1) * group; ++h)
    for (int64_t i = j; i <= last; ++i) {
      const __nv_bfloat16* qi = q + (b * s.T + i) * s.ld_q + h * s.D;
      const __nv_bfloat16* di = dout + (b * s.T + i) * s.ld_o + h * s.D;
      const float p = expf(dot_row(kr, qi, s.D) * s.scale - lse[(b * s.Hq + h) * s.T + i]);
      const float ds = p * (dot_row(vr, di, s.D) - delta[(b * s.Hq + h) * s.T + i]);
      for (int kk = 0; kk < kMaxPerLane; ++kk) {
        const int64_t d = threadIdx.x % 32 + 32 * kk;
        if (d < s.D) {
          dv_acc[kk] += p * __bfloat162float(di[d]);
          dk_acc[kk] += ds * __bfloat162float(qi[d]);
        }
      }
    }
  for (int kk = 0; kk < kMaxPerLane; ++kk) {
    const int64_t d = threadIdx.x % 32 + 32 * kk;
    if (d < s.D) {
      dk[(b * s.T + j) * s.ld_kv + kvh * s.D + d] = __float2bfloat16(dk_acc[kk] * s.scale);
      dv[(b * s.T + j) * s.ld_kv + kvh * s.D + d] = __float2bfloat16(dv_acc[kk]);
    }
  }
}

void check_shape(const FlashAttentionShape& s) {
  ROOFLINE_CHECK(s.D > 0 && s.D <= 32 * kMaxPerLane, "attention stand-in: head_dim {} not in 1..128", s.D);
  ROOFLINE_CHECK(s.Hkv > 0 && s.Hq % s.Hkv == 0, "attention: heads {} not a multiple of kv heads {}", s.Hq, s.Hkv);
}

unsigned blocks_for(int64_t rows) { return unsigned((rows + kWarpsPerBlock - 1) / kWarpsPerBlock); }

}  // namespace

void flash_attention_forward(const FlashAttentionShape& shape, const __nv_bfloat16* q, const __nv_bfloat16* k,
                             const __nv_bfloat16* v, __nv_bfloat16* out, float* lse, cudaStream_t stream) {
  check_shape(shape);
  const Dims s = dims_of(shape);
  forward_kernel<<<blocks_for(s.B * s.Hq * s.T), 32 * kWarpsPerBlock, 0, stream>>>(s, q, k, v, out, lse);
  ROOFLINE_CUDA_CHECK_LAUNCH();
}

size_t flash_attention_backward_workspace(const FlashAttentionShape& s) {
  return size_t(s.B * s.Hq * s.T) * sizeof(float);
}

void flash_attention_backward(const FlashAttentionShape& shape, const __nv_bfloat16* q, const __nv_bfloat16* k,
                              const __nv_bfloat16* v, const __nv_bfloat16* out, const float* lse,
                              const __nv_bfloat16* dout, __nv_bfloat16* dq, __nv_bfloat16* dk, __nv_bfloat16* dv,
                              void* workspace, cudaStream_t stream) {
  check_shape(shape);
  const Dims s = dims_of(shape);
  float* delta = static_cast<float*>(workspace);
  const unsigned threads = 32 * kWarpsPerBlock;
  delta_kernel<<<blocks_for(s.B * s.Hq * s.T), threads, 0, stream>>>(s, out, dout, delta);
  ROOFLINE_CUDA_CHECK_LAUNCH();
  dq_kernel<<<blocks_for(s.B * s.Hq * s.T), threads, 0, stream>>>(s, q, k, v, lse, delta, dout, dq);
  ROOFLINE_CUDA_CHECK_LAUNCH();
  dkv_kernel<<<blocks_for(s.B * s.Hkv * s.T), threads, 0, stream>>>(s, q, k, v, lse, delta, dout, dk, dv);
  ROOFLINE_CUDA_CHECK_LAUNCH();
}

}  // namespace roofline::train::cuda
