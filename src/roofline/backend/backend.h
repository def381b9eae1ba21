// The op interface every device implements. The decoder (model/decoder.cpp) is written once against it.
// Conventions, shared by every implementation:
//  - Activations are row-major; the last dimension is contiguous. On the CPU activations are f32.
//  - Weights stay in their stored dtype (f32, f16 or bf16) and are converted inside the kernel;
//    accumulation is always f32 or wider.
//  - `out` tensors are allocated by the caller with the right shape and dtype; ops never allocate on the
//    hot path. An op that a backend cannot run throws roofline::Error naming the op and the backend.
#pragma once
#include <cstdint>
#include <functional>
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

// The RMSNorm in front of projections (Backend::rms_norm_matmul_many / rms_norm_matmul_swiglu): they
// project x = rms_norm(residual) * weight, computed as rms_norm(*normed, *residual, *weight, eps) would.
struct RmsNormInput {
  const Tensor* residual = nullptr;  // [rows, K] (the f32 residual stream)
  const Tensor* weight = nullptr;    // [K]
  float eps = 1e-6f;
  Tensor* normed = nullptr;          // [rows, K] in the projections' input dtype: where the default writes x
                                     // (scratch; a backend that normalises inside the projection leaves it)
};

struct AttentionParams {
  int start_pos = 0;         // position of the first query row; queries are start_pos .. start_pos+T-1
  int sliding_window = 0;    // > 0: a query at position p sees keys in (p - window, p]; 0: all of [0, p]
  float scale = 1.0f;        // multiplies q·k before the softmax (usually 1/sqrt(head_dim))
};

// The scales of an F8E4M3 KV pool (the pools' dtype says which kind a pool is): k, v [num_blocks, block_size,
// Hkv] f32 on the pools' device, one per (pool row, kv head); a stored element is worth fp8 value * scale. They
// are set at store time from each (token, kv head) vector: scale = max |x| / 448, so the largest element maps to
// e4m3's largest finite value. Both null for a pool of float elements.
struct KvScales {
  Tensor* k = nullptr;
  Tensor* v = nullptr;
};

// One step's sequences for paged attention (see Backend::paged_attention). The tensors are I32 on the
// backend's device. The host-known bounds size the launch; kernels read the real lengths from the tensors,
// so work recorded for bounds (a captured graph) stays valid for any step within them and with the same
// leading_single_query_seqs (the decoder records decode steps only, where it is 0).
struct PagedAttentionBatch {
  int num_seqs = 0;
  int max_query_len = 0;      // >= every sequence's query rows this step
  int max_context_len = 0;    // >= every context_len
  int block_size = 16;        // positions per KV block
  int sliding_window = 0;     // > 0: a query at position p sees keys in (p - window, p]
  float scale = 1.0f;         // multiplies q·k before the softmax
  const Tensor* query_start = nullptr;  // [num_seqs + 1]: sequence b owns q rows query_start[b] .. query_start[b+1]-1
  const Tensor* context_len = nullptr;  // [num_seqs]: keys at positions 0 .. context_len[b]-1 exist (this step's
                                        // included); query row i of b (of n) sits at position context_len[b] - n + i
  const Tensor* block_table = nullptr;  // [num_seqs, max_blocks]: position p of b lives in block
                                        // block_table[b, p / block_size], row p % block_size
  KvScales kv_scales;                   // the layer's scales when its pools are F8E4M3 (read only)
  // The first n sequences have one query row each (the decode rows of a mixed serving step, set by the caller
  // that knows the lengths on the host): a backend may run them on its decode kernel and only the rest on its
  // prefill kernel. 0: no such promise.
  int leading_single_query_seqs = 0;
};

// The rotary step of an attention block (Backend::rope_store_kv): tables, positions and the optional
// per-head norms of q and k (Qwen3's q_norm / k_norm: both or neither).
struct RotaryStep {
  const Tensor* positions = nullptr;  // I32 [T] on the backend's device
  const Tensor* cos = nullptr;        // f32 [max_positions, rotary_dim / 2]
  const Tensor* sin = nullptr;
  int rotary_dim = 0;
  const Tensor* q_norm = nullptr;  // [head_dim] or null
  const Tensor* k_norm = nullptr;
  float eps = 1e-6f;
  // rope_store_kv only: the rotated q goes here, in this tensor's dtype, instead of back into q. With q, k and
  // v in f32 (the projections' accumulator), q, k and v are each rounded once, into q_out and the pools.
  Tensor* q_out = nullptr;
};

// Token selection on the device (the device side of engine/sampler.h, without penalties).
struct TokenSampling {
  float temperature = 1.0f;  // <= 0: greedy (argmax)
  int top_k = 0;             // 0: off
  float top_p = 1.0f;        // 1: off
  float min_p = 0.0f;        // 0: off; keeps tokens with p >= min_p * p_max
  uint64_t seed = 0;         // same (seed, step) and logits: same ids
  uint64_t step = 0;         // e.g. the decode step; a new one gives fresh draws
};

// A recorded sequence of ops that can be replayed with the same tensors (a CUDA graph).
class RecordedOps {
 public:
  virtual ~RecordedOps() = default;
  virtual void replay() = 0;
};

class Backend {
 public:
  virtual ~Backend() = default;
  virtual std::string name() const = 0;
  virtual Device device() const = 0;

  // ---- memory ----
  // The dtype of activations and of the KV cache on this backend (CPU: F32; CUDA: BF16).
  virtual DType activation_dtype() const { return DType::F32; }
  // Uninitialised memory on this backend's device.
  virtual Tensor alloc(DType dtype, Shape shape) { return Tensor::empty(dtype, std::move(shape)); }
  // A device copy of a host tensor, converted to `as` (F32/F16/BF16 among themselves; I32 stays I32).
  virtual Tensor upload(const Tensor& host, DType as);
  // The same into an existing device tensor of the same element count (converted to its dtype).
  virtual void upload_into(Tensor& dst, const Tensor& host);
  // Device tensor -> host tensor of the same shape (converted to F32 when host is F32). Waits for pending ops.
  virtual void download(const Tensor& device, Tensor& host);
  // dst (device) <- dst.nbytes() bytes at src (host). Ordered with the ops; src may be reused on return.
  virtual void copy_from_host(Tensor& dst, const void* src);
  // Waits until every queued op has finished (a no-op where ops are synchronous).
  virtual void synchronize() {}
  // Runs body once while recording its ops and returns them for replay; nullptr where the backend cannot
  // record (then the caller simply calls body each time). body must not allocate or touch host memory.
  virtual std::unique_ptr<RecordedOps> record(const std::function<void()>& body) {
    (void)body;
    return nullptr;
  }

  // out[M, N] = x[M, K] · w[N, K]^T (+ bias[N]). w and bias in any float dtype; x and out f32.
  // x may have more dimensions ([..., K]: every leading index is a row; out is then [..., N]).
  // out must not alias x.
  virtual void matmul(Tensor& out, const Tensor& x, const Tensor& w, const Tensor* bias) = 0;

  // Several projections of the same x (q/k/v, gate/up) in one call, so a backend can run them as one
  // pass (one parallel region on the CPU). The default runs them one by one.
  virtual void matmul_many(const Tensor& x, std::span<const MatmulTarget> targets) {
    for (const MatmulTarget& t : targets) matmul(*t.out, x, *t.w, t.bias);
  }

  // The gated MLP's first half (SwiGLU): *up.out = silu(x · gate.w^T (+ bias)) * (x · up.w^T (+ bias)).
  // *gate.out (gate's output shape) is scratch: the default computes both projections (matmul_many) and
  // then silu_mul into *up.out; a backend that fuses the product into the projection may leave it unwritten.
  virtual void matmul_swiglu(const Tensor& x, const MatmulTarget& gate, const MatmulTarget& up);

  // ---- projections fused with the residual stream around them (a decode step's norms and adds) ----
  // matmul_many of x = rms_norm(*in.residual) * weight. The default writes x to *in.normed, then projects it;
  // the GPU normalises inside the projection (no separate norm kernel).
  virtual void rms_norm_matmul_many(const RmsNormInput& in, std::span<const MatmulTarget> targets) {
    rms_norm(*in.normed, *in.residual, *in.weight, in.eps);
    matmul_many(*in.normed, targets);
  }
  // matmul_swiglu of the same x.
  virtual void rms_norm_matmul_swiglu(const RmsNormInput& in, const MatmulTarget& gate, const MatmulTarget& up) {
    rms_norm(*in.normed, *in.residual, *in.weight, in.eps);
    matmul_swiglu(*in.normed, gate, up);
  }
  // residual[M, N] += x[M, K] · w[N, K]^T (+ bias): the residual add after the o and down projections.
  // residual f32; scratch (residual's shape, f32) holds the product in the default (matmul, then add); the GPU
  // adds in the projection's epilogue and leaves it unwritten.
  virtual void matmul_add(Tensor& residual, const Tensor& x, const Tensor& w, const Tensor* bias, Tensor& scratch) {
    matmul(scratch, x, w, bias);
    add(residual, scratch);
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

  // out = in converted to out's dtype (F32/F16/BF16; same element count).
  virtual void convert(Tensor& out, const Tensor& in);

  // ---- ops taking device-resident indices (I32 tensors on this device), so a step can be recorded ----
  // out[T, H] = table[ids[t], :].
  virtual void embedding(Tensor& out, const Tensor& table, const Tensor& ids);
  // inout[t, :] += table[rows[t], :] (learned position embeddings).
  virtual void add_rows(Tensor& inout, const Tensor& table, const Tensor& rows);
  // Rope with positions[T]; with head_norm ([head_dim]) each head row is first RMS-normalised with eps and
  // scaled (Qwen3's q_norm / k_norm).
  virtual void rope(Tensor& x, const Tensor& positions, const Tensor& cos, const Tensor& sin, int rotary_dim,
                    const Tensor* head_norm, float eps);
  // out[i, :] = x[rows[i], :] (the rows whose logits are wanted).
  virtual void gather_rows(Tensor& out, const Tensor& x, const Tensor& rows);
  // residual += x; out = rms_norm(residual) * weight. (Fused on the GPU.)
  virtual void add_rms_norm(Tensor& residual, const Tensor& x, const Tensor& weight, Tensor& out, float eps) {
    add(residual, x);
    rms_norm(out, residual, weight, eps);
  }
  // residual += x; out = layer_norm(residual) * weight + bias.
  virtual void add_layer_norm(Tensor& residual, const Tensor& x, const Tensor& weight, const Tensor& bias,
                              Tensor& out, float eps) {
    add(residual, x);
    layer_norm(out, residual, weight, bias, eps);
  }

  // ---- token selection: logits [rows, V] (f32) -> ids I32 [rows] on the device ----
  // The lowest index among equal maxima.
  virtual void argmax(Tensor& ids, const Tensor& logits);
  // A draw per row from softmax(logits / temperature) after top-k, top-p, min-p. Backends without it throw.
  virtual void sample(Tensor& ids, const Tensor& logits, const TokenSampling& params);

  // ---- paged KV ----
  // A layer's KV lives in pools k_pool, v_pool: [num_blocks, block_size, Hkv, D], in the activation dtype or
  // F8E4M3 with scales (KvScales).
  // Writes k[t], v[t] ([T, Hkv, D], activation dtype) to pool row slots[t] (= block * block_size + offset);
  // slots[t] < 0 skips. Into an F8E4M3 pool each (t, kv head) vector is quantized with its own scale, which
  // goes to scales.k / scales.v at the same row.
  virtual void store_kv(Tensor& k_pool, Tensor& v_pool, const Tensor& k, const Tensor& v, const Tensor& slots,
                        const KvScales& scales = {}) = 0;
  // rope (with the head norms) on q [T, Hq, D] and k [T, Hkv, D] in place, then store_kv of k and v: one pass
  // on the GPU. The default makes the three calls.
  virtual void rope_store_kv(Tensor& q, Tensor& k, const Tensor& v, const RotaryStep& rotary, Tensor& k_pool,
                             Tensor& v_pool, const Tensor& slots, const KvScales& scales = {});
  // Causal attention of every sequence's query rows against its keys in the pools, read through its block
  // table. q, out: [T_total, Hq, D] (out may alias q); query head h reads kv head h / (Hq / Hkv). F8E4M3 pools
  // are read through batch.kv_scales (dequantized on load).
  virtual void paged_attention(Tensor& out, const Tensor& q, const Tensor& k_pool, const Tensor& v_pool,
                               const PagedAttentionBatch& batch) = 0;

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
