// The one decoder implementation: every architecture in ModelSpec runs through Decoder::step, written
// against the Backend op interface, on any backend (CPU: f32 activations; CUDA: bf16). A step runs a batch
// of sequences, each with any number of new tokens (prefill, chunked prefill and decode are the same call),
// against paged KV: every layer's keys and values live in a pool of fixed-size blocks and each sequence
// names its blocks in a block table (the serving scheduler's, or a private one for a single sequence).
// Decode steps (one token per sequence) are recorded once per batch shape and replayed (CUDA graphs).
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <span>
#include <tuple>
#include <vector>

#include "roofline/backend/backend.h"
#include "roofline/backend/phase.h"
#include "roofline/model/model_spec.h"
#include "roofline/model/weights.h"

namespace roofline {

// Paged KV of every layer: k[l], v[l] are [num_blocks, block_size, Hkv, D] in `dtype`: the backend's
// activation dtype, or F8E4M3 with k_scale[l], v_scale[l] [num_blocks, block_size, Hkv] f32 (KvScales in
// backend.h; empty otherwise).
struct KvPool {
  int64_t num_blocks = 0;     // blocks a block table may name: 0 .. num_blocks - 1
  int64_t block_size = 16;
  int64_t scratch_block = -1;  // one more block, never in a table: padding rows of a decode batch write it
  DType dtype = DType::F32;
  std::vector<Tensor> k, v;
  std::vector<Tensor> k_scale, v_scale;
  size_t bytes_per_token() const;
  // Layer l's scales for store_kv / paged_attention (null pointers for a float pool).
  KvScales scales(size_t layer);
};

// One sequence single-handed: a pool of its own with the identity block table.
struct KvCache {
  int64_t capacity = 0;
  int64_t length = 0;  // positions 0 .. length-1 are filled
  KvPool pool;
  std::vector<int32_t> blocks;
  size_t bytes_per_token() const { return pool.bytes_per_token(); }
};

// One sequence of a step.
struct SequenceStep {
  std::span<const int32_t> tokens;  // new tokens, at positions start .. start + tokens.size() - 1
  int64_t start = 0;                // positions before this already have KV in the sequence's blocks
  std::span<const int32_t> blocks;  // block table: covers at least positions 0 .. start + tokens.size() - 1
  bool wants_logits = true;         // return the logits after its last token
};

// The phase a step belongs to in a profile (PhaseScope): "prefill" when every sequence runs prompt tokens
// (several tokens, or one at position 0), "decode" when every sequence runs one generated token, "mixed"
// when a step has both (chunked serving). Decoder::step and forward open it; a caller that wants its
// sampling counted in the step opens it around both.
const char* step_phase(std::span<const SequenceStep> batch);

class Decoder {
 public:
  // weights must live on backend's device (upload_weights) and outlive the decoder. The KV cache is kept in
  // kv_cache_dtype: the backend's activation dtype (the default) or F8E4M3 (per-vector scaled, KvScales).
  Decoder(const ModelSpec& spec, const ModelWeights& weights, Backend& backend);
  Decoder(const ModelSpec& spec, const ModelWeights& weights, Backend& backend, DType kv_cache_dtype);
  ~Decoder();

  KvPool new_pool(int64_t num_blocks, int64_t block_size = 16) const;
  KvCache new_cache(int64_t capacity) const;

  // Runs one step and returns logits [rows, V] f32 on the backend's device: with all_logits one row per
  // token of the batch (in batch order), else one row per sequence that wants_logits (in batch order).
  // Owned by the decoder; valid until the next call.
  // Decode batches (one token per sequence) in a pool with a scratch block are padded to a few sizes
  // (1, 2, 4, then multiples of 8), so that a batch whose size changes every few steps, as serving's does,
  // replays a handful of recordings instead of recording each size it passes through.
  const Tensor& step(std::span<const SequenceStep> batch, KvPool& pool, bool all_logits = false);

  // A single sequence: runs `tokens` at positions cache.length .. cache.length + T - 1, appends their KV,
  // and returns HOST f32 logits: [T, V] when all_logits, else [1, V] for the last token.
  const Tensor& forward(std::span<const int32_t> tokens, KvCache& cache, bool all_logits);
  // The same, leaving the logits on the backend's device (no copy).
  const Tensor& forward_on_device(std::span<const int32_t> tokens, KvCache& cache, bool all_logits);

  const ModelSpec& spec() const { return spec_; }
  DType kv_cache_dtype() const { return kv_dtype_; }
  Backend& backend() { return backend_; }
  // Steps replayed from a recording (decode steps after the first of their shape).
  int64_t replayed_steps() const { return replayed_steps_; }

 private:
  struct StepShape;
  const Tensor& step_unpadded(std::span<const SequenceStep> batch, KvPool& pool, bool all_logits);
  void ensure_capacity(int64_t tokens, int64_t seqs, int64_t blocks_per_seq, int64_t logit_rows);
  void ensure_rope_tables(int64_t positions);
  void run_layers(const StepShape& shape, KvPool& pool);
  void attention_block(const LayerWeights& L, KvPool& pool, int layer, const StepShape& shape);
  void mlp_block(const LayerWeights& L, int64_t T);
  void norm(Tensor& out, const Tensor& x, const Norm& n);
  void add_norm(Tensor& residual, const Tensor& x, const Norm& n, Tensor& out);
  void invalidate_recordings();

  const ModelSpec& spec_;
  const ModelWeights& w_;
  Backend& backend_;
  DType act_;
  // The dtype of what the projections read (normed activations, the MLP's hidden, the lm_head rows): the
  // checkpoint's own f16 or f32 where the activation dtype is bf16, so nothing is rounded below the
  // weights' precision and the GEMMs need no conversion of their input; the activation dtype otherwise.
  DType matmul_in_;
  DType kv_dtype_;
  // The q/k/v projections write f32 where RoPE + KV store can round them once into the pools (and the
  // rotated query buffer): the activation dtype below f32, a KV cache in it or in fp8, rotary positions.
  bool wide_qkv_ = false;
  float eps_;
  // RMSNorm models run each norm inside the projection after it and each residual add inside the projection
  // before it (Backend::rms_norm_matmul_*, matmul_add): on the GPU a decode layer is then two kernels fewer.
  // ROOFLINE_FUSED_NORM=0 in the environment keeps the separate add + norm ops (to measure what it buys).
  bool fuse_norms_ = false;
  bool split_mixed_decode_ = false;  // mixed steps' leading decode rows on the decode kernel (PagedAttentionBatch)
  std::vector<double> inv_freq_;  // [rotary_dim / 2]
  Tensor rope_cos_, rope_sin_;    // [positions, rotary_dim / 2] f32, on the device
  int64_t rope_positions_ = 0;

  // Capacities of the buffers below; they only grow (and growing drops the recordings).
  int64_t cap_tokens_ = 0, cap_seqs_ = 0, cap_blocks_ = 0, cap_logit_rows_ = 0;
  // q|k|v and gate|up each share one buffer, laid out per step back to back ([T, q] then [T, k] ...), so a
  // one-token step's projections are adjacent and a backend can run them as one GEMM.
  Tensor x_, h_, qkv_, attn_, proj_, gate_up_, gathered_, logits_;
  Tensor q_rotated_;  // with wide_qkv_: the rotated query in the activation dtype, as attention reads it
  // Step indices, one I32 buffer on the device with fixed sections (so recorded steps keep their
  // addresses): ids | positions | slots | logit rows [cap_tokens] each, query_start [cap_seqs + 1],
  // context_len [cap_seqs], block_table [cap_seqs, cap_blocks]. host_meta_ is its host image.
  Tensor meta_;
  std::vector<int32_t> host_meta_;
  Tensor ids_, positions_, slots_, logit_rows_, query_start_, context_len_, block_table_;
  Tensor logits_view_;
  Tensor host_logits_;  // forward()'s copy when the backend is not the CPU

  // Decode-step recordings keyed by (sequences, logit rows, context bound): run eagerly once, then
  // recorded and replayed.
  struct Recording {
    int eager_runs = 0;
    std::unique_ptr<RecordedOps> ops;
  };
  std::map<std::tuple<int64_t, int64_t, int64_t>, Recording> recordings_;
  bool cannot_record_ = false;  // the backend returned no recording: every step runs eagerly
  int64_t replayed_steps_ = 0;
  std::vector<SequenceStep> padded_;     // a decode batch and its padding rows
  std::vector<int32_t> scratch_table_;  // the padding rows' block table: the pool's scratch block
};

// Inverse frequencies of rotary embedding for the spec's head_dim, theta and scaling (default, linear,
// llama3), computed as Hugging Face does (float32 base frequencies, scaling in double).
std::vector<double> rope_inverse_frequencies(const ModelSpec& spec);

}  // namespace roofline
