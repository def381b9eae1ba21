// The launchers of the CUDA kernels (internal to backend/cuda): one .cu per op family defines them, next
// to its kernels. They take raw device pointers; CudaBackend (cuda_backend.cpp) checks tensors, dtypes and
// shapes before calling them. Plain C++17 (the .cu files are compiled as C++17), so no tensor.h here.
// Every launcher opens an NVTX range and checks the launch (file:line) before returning; all run
// asynchronously on the given stream.
#pragma once
#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>

namespace roofline::cuda {

// Element types the kernels read and write (activations, weights, logits).
enum class Elem : uint8_t { F32, F16, BF16 };

// ---- elementwise.cu ------------------------------------------------------------------------------------
// out[n] = in[n] converted (rounded to nearest even).
void launch_convert(void* out, Elem out_type, const void* in, Elem in_type, int64_t n, cudaStream_t stream);
// inout[n] += x[n].
void launch_add(void* inout, const void* x, Elem type, int64_t n, cudaStream_t stream);
// out[n] = silu(gate[n]) * up[n]; out may alias gate or up.
void launch_silu_mul(void* out, const void* gate, const void* up, Elem type, int64_t n, cudaStream_t stream);
// x[n] = gelu_tanh(x[n]) in place.
void launch_gelu_tanh(void* x, Elem type, int64_t n, cudaStream_t stream);
// inout[t, :] += table[r(t), :] for t < rows, width columns; r(t) = row_ids[t] (device int32) when row_ids is
// not null, else fixed_row. A row id outside [0, table_rows) writes NaN into that row (visible, never silent).
void launch_add_rows(void* inout, Elem type, const void* table, Elem table_type, int64_t table_rows,
                     const int32_t* row_ids, int64_t fixed_row, int64_t rows, int64_t width, cudaStream_t stream);

// ---- embedding.cu --------------------------------------------------------------------------------------
// out[t, :] = table[ids[t], :] for t < count (ids: device int32 [count]; table: [vocab, width]). An id
// outside [0, vocab) yields a NaN row.
void launch_embedding(void* out, Elem out_type, const void* table, Elem table_type, int64_t vocab,
                      const int32_t* ids, int64_t count, int64_t width, cudaStream_t stream);

// ---- norm.cu -------------------------------------------------------------------------------------------
// Row-wise RMSNorm or LayerNorm over [rows, width], optionally fused with the residual add before it:
//   residual != null: residual += x (stored in the activation type); y = residual   else y = x
//   out = (y - mean) / sqrt(var + eps) * weight + bias   (LayerNorm)
//   out = y / sqrt(mean(y^2) + eps) * weight             (RMSNorm)
// x, residual and out share the activation type; weight and bias have weight_type. out may alias x.
struct NormArgs {
  void* out = nullptr;
  const void* x = nullptr;
  void* residual = nullptr;  // optional
  const void* weight = nullptr;
  const void* bias = nullptr;  // LayerNorm only
  Elem act = Elem::BF16, weight_type = Elem::BF16;
  int64_t rows = 0, width = 0;
  float eps = 1e-6f;
  bool layer_norm = false;
};
// The widest row one block holds in registers (width must also be a multiple of 8).
int64_t norm_max_width();
void launch_norm(const NormArgs& args, cudaStream_t stream);

// ---- rope.cu -------------------------------------------------------------------------------------------
// Rotary embedding, rotate-half layout, in place on x[T, heads, head_dim] (activation type):
//   y[i] = x[i] cos - x[i + half] sin,  y[i + half] = x[i + half] cos + x[i] sin,  i < half = rotary_dim / 2
// with cos/sin rows positions[t] of f32 tables [table_rows, half]. With norm_weight (Qwen3 q/k norm), each
// head row is first RMS-normalised over head_dim and scaled by norm_weight[head_dim]. A position outside
// [0, table_rows) writes NaN into that row.
struct RopeArgs {
  void* x = nullptr;
  Elem act = Elem::BF16;
  const int32_t* positions = nullptr;  // device [T]
  const float* cos = nullptr;
  const float* sin = nullptr;
  int64_t table_rows = 0;
  int64_t T = 0, heads = 0, head_dim = 0, rotary_dim = 0;
  const void* norm_weight = nullptr;  // optional [head_dim]
  Elem norm_type = Elem::BF16;
  float eps = 1e-6f;
};
int64_t rope_max_head_dim();
void launch_rope(const RopeArgs& args, cudaStream_t stream);

// ---- attention_prefill.cu / attention_decode.cu ----------------------------------------------------------
// Causal attention of T query rows of one sequence against its contiguous bf16 cache:
//   q, out: [T, Hq, D] bf16; k, v: [S_max, Hkv, D] bf16 holding positions 0 .. start_pos + T - 1.
// Query row t sits at position p = start_pos + t and sees keys (p - window, p] (window > 0) or [0, p].
struct AttentionArgs {
  const void* q = nullptr;
  const void* k = nullptr;
  const void* v = nullptr;
  void* out = nullptr;
  int T = 0, Hq = 0, Hkv = 0, D = 0;
  int start_pos = 0, window = 0;
  float scale = 1.0f;
};
// FlashAttention-2 style (tensor cores, online softmax); D in {64, 128}.
void launch_attention_prefill(const AttentionArgs& args, cudaStream_t stream);

// Flash-decoding: keys split in chunks over CTAs, partial results combined by a second kernel.
struct DecodePlan {
  int kv_begin = 0;    // first key any query row sees
  int chunk_len = 0;   // keys per CTA
  int num_chunks = 0;
  size_t workspace_bytes = 0;  // partial (max, sum, output) per (row, head, chunk)
};
constexpr int kDecodeMaxRows = 16;
// Splits the keys so that about two CTAs per multiprocessor run.
DecodePlan plan_attention_decode(const AttentionArgs& args, int multiprocessors);
// D in {64, 128}; T <= kDecodeMaxRows; workspace holds plan.workspace_bytes (16-byte aligned).
void launch_attention_decode(const AttentionArgs& args, const DecodePlan& plan, void* workspace,
                             cudaStream_t stream);

// ---- sampling.cu ---------------------------------------------------------------------------------------
// ids[r] = argmax_v logits[r, v] (the lowest index among equal maxima) for r < rows; logits f32/bf16/f16.
void launch_argmax(int32_t* ids, const void* logits, Elem type, int64_t rows, int64_t vocab, cudaStream_t stream);

// ids[r] = a draw from softmax(logits[r] / temperature) restricted by top-k, then top-p (on what top-k
// kept), then min-p (p >= min_p * p_max), as the CPU Sampler orders them. The draw uses Philox-4x32-10
// keyed by seed with counter (vocab index / 4, row, step), so the same (seed, step) gives the same ids.
struct SampleArgs {
  int32_t* ids = nullptr;  // device [rows]
  const void* logits = nullptr;
  Elem type = Elem::F32;
  int64_t rows = 0, vocab = 0;
  float temperature = 1.0f;  // > 0
  int top_k = 0;             // 0: off
  float top_p = 1.0f;        // 1: off
  float min_p = 0.0f;        // 0: off
  uint64_t seed = 0, step = 0;
};
void launch_sample(const SampleArgs& args, cudaStream_t stream);

}  // namespace roofline::cuda
