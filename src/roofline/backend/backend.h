// The op interface every device implements. The decoder (model/decoder.cpp) is written once against it.
// Conventions, shared by every implementation:
//  - Activations are row-major; the last dimension is contiguous. On the CPU activations are f32.
//  - Weights stay in their stored dtype (f32, f16 or bf16) and are converted inside the kernel;
//    accumulation is always f32 or wider.
//  - `out` tensors are allocated by the caller with the right shape and dtype; ops never allocate on the
//    hot path. An op that a backend cannot run throws roofline::Error naming the op and the backend.
#pragma once
#include <cstdint>
#include <memory>
#include <span>
#include <string>

#include "roofline/core/tensor.h"

namespace roofline {

class ThreadPool;

// One projection of a shared input: *out = x · w^T (+ bias).
struct MatmulTarget {
  Tensor* out;
  const Tensor* w;
  const Tensor* bias;  // may be null
};

struct AttentionParams {
  int start_pos = 0;         // position of the first query row; queries are start_pos .. start_pos+T-1
  int sliding_window = 0;    // > 0: a query at position p sees keys in (p - window, p]; 0: all of [0, p]
  float scale = 1.0f;        // multiplies q·k before the softmax (usually 1/sqrt(head_dim))
};

class Backend {
 public:
  virtual ~Backend() = default;
  virtual std::string name() const = 0;
  virtual Device device() const = 0;

  // out[M, N] = x[M, K] · w[N, K]^T (+ bias[N]). w and bias in any float dtype; x and out f32.
  // x may have more dimensions ([..., K]: every leading index is a row; out is then [..., N]).
  // out must not alias x.
  virtual void matmul(Tensor& out, const Tensor& x, const Tensor& w, const Tensor* bias) = 0;

  // Several projections of the same x (q/k/v, gate/up) in one call, so a backend can run them as one
  // pass (one parallel region on the CPU). The default runs them one by one.
  virtual void matmul_many(const Tensor& x, std::span<const MatmulTarget> targets) {
    for (const MatmulTarget& t : targets) matmul(*t.out, x, *t.w, t.bias);
  }

  // out[T, H] = table[ids[t], :] converted to f32.
  virtual void embedding(Tensor& out, const Tensor& table, const int32_t* ids, int64_t count) = 0;

  // Row-wise over the last dimension: out = x / sqrt(mean(x^2) + eps) * weight. out may alias x.
  virtual void rms_norm(Tensor& out, const Tensor& x, const Tensor& weight, float eps) = 0;
  // Row-wise LayerNorm: out = (x - mean) / sqrt(var + eps) * weight + bias. out may alias x.
  virtual void layer_norm(Tensor& out, const Tensor& x, const Tensor& weight, const Tensor& bias, float eps) = 0;

  // inout += x (same shape, f32).
  virtual void add(Tensor& inout, const Tensor& x) = 0;
  // inout[t, :] += row (row: [N] in any float dtype), e.g. learned position embeddings.
  virtual void add_row(Tensor& inout, int64_t t, const Tensor& table, int64_t row) = 0;

  // Rotary embedding, "rotate half" layout (pairs i and i + rotary_dim/2 of each head), in place on
  // x[T, heads, head_dim]. cos/sin are tables [max_positions, rotary_dim/2] (f32); row positions[t] is used.
  virtual void rope(Tensor& x, const int32_t* positions, const Tensor& cos, const Tensor& sin, int rotary_dim) = 0;

  // out[T, F] = silu(gate[T, F]) * up[T, F].
  virtual void silu_mul(Tensor& out, const Tensor& gate, const Tensor& up) = 0;
  // In place GELU, tanh approximation (GPT-2's gelu_new).
  virtual void gelu_tanh(Tensor& x) = 0;

  // Causal attention of T query rows against a contiguous KV cache of one sequence.
  // q: [T, Hq, D]; k_cache, v_cache: [S_max, Hkv, D] f32 holding keys for positions
  // 0 .. start_pos+T-1; out: [T, Hq, D] (may alias q). Hq is a multiple of Hkv (grouped-query attention):
  // query head h reads kv head h / (Hq / Hkv).
  virtual void attention(Tensor& out, const Tensor& q, const Tensor& k_cache, const Tensor& v_cache,
                         const AttentionParams& params) = 0;
};

// The CPU backend. threads <= 0: one per hardware thread.
std::unique_ptr<Backend> make_cpu_backend(int threads = 0);

}  // namespace roofline
