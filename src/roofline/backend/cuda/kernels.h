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
  Elem residual_type = Elem::BF16;  // the activation type, or F32 (a residual stream kept in f32)
  Elem out_type = Elem::BF16;       // act, or bf16 / f16 when act (x and residual) is F32
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
// Backend::rope_store_kv: rope (and head norm) on q[T, Hq, D] and k[T, Hkv, D], in place or q into q_out, k's
// rotated rows and v[T, Hkv, D] also written to pool row slots[t] (k_pool, v_pool: [pool_rows, Hkv, D] of
// out_type, or e4m3 codes with scales); a slot outside [0, pool_rows) skips the pool writes. One launch for
// what rope, rope and store_kv do.
struct RopeStoreKvArgs {
  RopeArgs q;                    // q's tensor and head norm; positions, tables, T, head_dim, rotary_dim shared
  void* k = nullptr;             // [T, kv_heads, head_dim]
  const void* k_norm = nullptr;  // [head_dim], of q.norm_type; set exactly when q.norm_weight is
  const void* v = nullptr;       // [T, kv_heads, head_dim]
  int64_t kv_heads = 0;
  void* k_pool = nullptr;
  void* v_pool = nullptr;
  // q, k, v are of q.act: the output type, or f32 straight from the projections (then rounded once).
  Elem out_type = Elem::BF16;  // of q_out, and of the pools unless kv_fp8
  void* q_out = nullptr;       // [T, Hq, head_dim] of out_type, or null: q (and k) rotated in place
  bool kv_fp8 = false;         // pools of e4m3 codes with k_scale, v_scale [pool_rows, kv_heads] (kv_fp8.cuh)
  float* k_scale = nullptr;
  float* v_scale = nullptr;
  int64_t pool_rows = 0;
  const int32_t* slots = nullptr;  // device [T]
};
void launch_rope_store_kv(const RopeStoreKvArgs& args, cudaStream_t stream);

// ---- paged_attention_decode.cu / paged_attention_prefill.cu ----------------------------------------------
// Causal attention of a batch of sequences against paged bf16 KV pools (Backend::paged_attention):
//   q, out: [T, Hq, D]; k_pool, v_pool: [num_blocks, block_size, Hkv, D]; query head h reads kv head h / (Hq / Hkv).
// Sequence b owns q rows query_start[b] .. query_start[b+1]-1 (n of them); its keys are positions
// 0 .. context_len[b]-1, position p in pool row block_table[b, p / block_size] * block_size + p % block_size.
// Query row i of b sits at position p = context_len[b] - n + i and sees keys (p - window, p] (window > 0) or [0, p].
// The launch geometry and workspace depend only on the host bounds (num_seqs, max_query_len, max_context_len,
// shapes); the kernels read the real lengths from the device arrays and skip work past them, so a recorded
// launch stays right for any lengths within the bounds (n <= max_query_len, context_len <= max_context_len).
// F8E4M3 pools (kv_fp8 set) hold e4m3 codes with k_scale, v_scale [pool rows, Hkv] f32 beside them (kv_fp8.cuh);
// the kernels dequantize on load.
struct PagedAttentionArgs {
  const void* q = nullptr;
  const void* k_pool = nullptr;
  const void* v_pool = nullptr;
  bool kv_fp8 = false;
  const float* k_scale = nullptr;
  const float* v_scale = nullptr;
  void* out = nullptr;  // may alias q
  int Hq = 0, Hkv = 0, D = 0;
  int num_seqs = 0, max_query_len = 0, max_context_len = 0;
  int block_size = 1;
  int window = 0;
  float scale = 1.0f;
  const int32_t* query_start = nullptr;  // device [num_seqs + 1]
  const int32_t* context_len = nullptr;  // device [num_seqs]
  const int32_t* block_table = nullptr;  // device [num_seqs, table_pitch]
  int table_pitch = 0;
  // One sequence without index arrays (a contiguous cache, Backend::attention): the three arrays are null,
  // num_seqs is 1, the sequence has fixed_query_rows rows and fixed_context_len keys, and position p is pool row p.
  int fixed_query_rows = 0, fixed_context_len = 0;
  // Kernel lab (bench/micro): 0 lets the prefill launcher choose its query rows per warp; 16 or 32 force them.
  int prefill_warp_rows = 0;
  // Kernel lab: which prefill kernel runs (PrefillKernel::Auto: the process default, set_prefill_kernel) and,
  // for the wgmma kernel, its keys per block (0: the launcher's choice; 64 or 128) and whether the softmax of
  // a block overlaps the previous block's P V (-1: the launcher's choice; 0 or 1).
  enum class PrefillKernel : uint8_t { Auto, MmaSync, Wgmma } prefill_kernel = PrefillKernel::Auto;
  int prefill_keys_per_block = 0;
  int prefill_overlap = -1;
};

// Flash-decoding: each query row's visible keys are cut into chunks of chunk_len keys over CTAs; a second
// kernel combines the partial softmax states. Sized from the bounds only.
struct PagedDecodePlan {
  int chunk_len = 0;
  int num_chunks = 1;
  size_t workspace_bytes = 0;  // partial (max, sum, output) per (sequence, row, head, chunk); 0 for one chunk
};
constexpr int kPagedDecodeMaxQueryLen = 16;  // the decode kernel takes batches with max_query_len up to this
PagedDecodePlan plan_paged_decode(const PagedAttentionArgs& args, int multiprocessors);
// D in {16, 32, 64, 128}; max_query_len <= kPagedDecodeMaxQueryLen; workspace holds plan.workspace_bytes
// (16-byte aligned).
void launch_paged_decode(const PagedAttentionArgs& args, const PagedDecodePlan& plan, void* workspace,
                         cudaStream_t stream);
// Varlen FlashAttention-2 (tensor cores, online softmax, scores never leave registers); D in {16, 32, 64, 128},
// scale > 0. The tile height follows the bounds and the multiprocessor count. The kernel is
// prefill_kernel_for(args): bf16 pools of head_dim 64 run on the Hopper wgmma kernel
// (paged_attention_prefill_wgmma.cu), everything else on the mma.sync kernel, unless a choice forces one.
void launch_paged_prefill(const PagedAttentionArgs& args, int multiprocessors, cudaStream_t stream);
// The process default for PrefillKernel::Auto: what set_prefill_kernel set (tests, A/B; it returns the
// previous setting), else the environment's ROOFLINE_PREFILL_WGMMA=0 (MmaSync) or 1 (Wgmma), read once,
// else Auto: the shape decides.
using PrefillKernel = PagedAttentionArgs::PrefillKernel;
PrefillKernel set_prefill_kernel(PrefillKernel kernel);
PrefillKernel prefill_kernel_default();
// The kernel that runs args: args.prefill_kernel, else the process default, else by shape (Wgmma for bf16
// pools of head_dim 64); Wgmma only where paged_prefill_wgmma_supported.
PrefillKernel prefill_kernel_for(const PagedAttentionArgs& args);
// The wgmma kernel alone: bf16 pools, D 64 or 128 (paged_prefill_wgmma_supported), scale > 0, keys_per_block
// 64 or 128; overlap: the softmax of each key block runs while the tensor cores finish the previous P V.
bool paged_prefill_wgmma_supported(const PagedAttentionArgs& args);
void launch_paged_prefill_wgmma(const PagedAttentionArgs& args, int keys_per_block, bool overlap,
                                cudaStream_t stream);
// Test probe of the wgmma kernel's shared-memory layout, descriptors and fragments on one plain product, one
// warpgroup: c [64, n] f32 = a [64, k] . b^T with b [n, k] (b_n_major false: both from shared memory, like
// S = Q K^T), or a . b with b [k, n] (true: a from registers, b N-major, like O = P V); a and b bf16 row-major,
// 16-byte aligned; n and k 64 or 128.
void launch_wgmma_layout_probe(float* c, const void* a, const void* b, int n, int k, bool b_n_major,
                               cudaStream_t stream);

// ---- paged_kv.cu ---------------------------------------------------------------------------------------
// k_pool[slots[t], :] = k[t, :] and v_pool[slots[t], :] = v[t, :] for t < T, rows of row_bytes bytes (any
// dtype); a slot < 0 or >= pool_rows is skipped.
void launch_store_kv(void* k_pool, void* v_pool, int64_t pool_rows, const void* k, const void* v,
                     const int32_t* slots, int64_t T, int64_t row_bytes, cudaStream_t stream);
// The same into F8E4M3 pools: k, v [T, Hkv, D] bf16 (16-byte aligned); every (t, kv head) vector is quantized
// with its own scale (kv_fp8.cuh) into k_pool/v_pool [pool_rows, Hkv, D] and k_scale/v_scale [pool_rows, Hkv].
// D a multiple of 8 with D / 8 dividing 32.
struct StoreKvFp8Args {
  void* k_pool = nullptr;
  void* v_pool = nullptr;
  float* k_scale = nullptr;
  float* v_scale = nullptr;
  int64_t pool_rows = 0;
  const void* k = nullptr;
  const void* v = nullptr;
  const int32_t* slots = nullptr;
  int64_t T = 0;
  int Hkv = 0, D = 0;
};
void launch_store_kv_fp8(const StoreKvFp8Args& args, cudaStream_t stream);
// out[i, :] = x[rows[i], :] for i < count, rows of row_bytes bytes (any dtype); a row id outside [0, x_rows)
// fills out's row with 0xff bytes (NaN in the float types), visible rather than silent.
void launch_gather_rows(void* out, const void* x, int64_t x_rows, const int32_t* rows, int64_t count,
                        int64_t row_bytes, cudaStream_t stream);

// ---- gemv.cu -------------------------------------------------------------------------------------------
// Memory-bound product for small M (decode): out[M, N] = x[M, K] . w[N, K]^T (+ bias[N]), f32 accumulation.
// w and x share one type, bf16 or f16; out and bias (optional, [N]) any float type. Needs M <= kGemvMaxM,
// K a multiple of 8, x and w 16-byte aligned (gemv_supported); rows of x and w contiguous (pitch K).
constexpr int kGemvMaxM = 8;
struct GemvArgs {
  void* out = nullptr;
  Elem out_type = Elem::BF16;
  const void* x = nullptr;
  const void* w = nullptr;
  Elem w_type = Elem::BF16;  // also x's type
  const void* bias = nullptr;  // optional
  Elem bias_type = Elem::BF16;
  int64_t M = 0, N = 0, K = 0;
  // The RMSNorm in front of the product (Backend::rms_norm_matmul_*), optional: with norm_residual set, x is
  // not read; every CTA computes x = rms_norm(norm_residual[M, K]) * norm_weight[K] (both f32, 16-byte
  // aligned) itself, rounded to w's type as rms_norm into such a tensor would store it, and keeps it in
  // shared memory (gemv_norm_supported bounds M * K).
  const float* norm_residual = nullptr;
  const float* norm_weight = nullptr;
  float norm_eps = 1e-6f;
  // out += product instead of out = product (out f32): the residual add as the epilogue
  // (Backend::matmul_add). Each element has one writer, so no atomics.
  bool accumulate = false;
};
bool gemv_supported(Elem w_type, Elem x_type, int64_t M, int64_t N, int64_t K, const void* x, const void* w);
// Whether a gemv (gemv_supported) can also take the norm of GemvArgs::norm_residual for this M and K.
bool gemv_norm_supported(Elem w_type, int64_t M, int64_t K, const void* residual, const void* weight);
void launch_gemv(const GemvArgs& args, int multiprocessors, cudaStream_t stream);
// The gate/up projection with SwiGLU as its epilogue: w = [gate; up] ([2N, K], gate rows first), bias
// optional [2N]; out[M, N] = silu(x . gate^T + b_gate) * (x . up^T + b_up). Same requirements as launch_gemv
// (gemv_supported with 2N rows).
void launch_gemv_swiglu(const GemvArgs& args, int multiprocessors, cudaStream_t stream);

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
