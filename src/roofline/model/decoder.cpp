#include "roofline/model/decoder.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <numbers>

#include "roofline/backend/phase.h"
#include "roofline/core/env.h"
#include "roofline/core/error.h"

namespace roofline {

size_t KvPool::bytes_per_token() const {
  size_t total = 0;
  const size_t positions = size_t(std::max<int64_t>(k.empty() ? 1 : k[0].dim(0) * block_size, 1));
  for (size_t l = 0; l < k.size(); ++l) total += (k[l].nbytes() + v[l].nbytes()) / positions;
  for (size_t l = 0; l < k_scale.size(); ++l) total += (k_scale[l].nbytes() + v_scale[l].nbytes()) / positions;
  return total;
}

KvScales KvPool::scales(size_t layer) {
  if (dtype != DType::F8E4M3) return {};
  return {&k_scale[layer], &v_scale[layer]};
}

std::vector<double> rope_inverse_frequencies(const ModelSpec& spec) {
  const int64_t dim = spec.head_dim;
  std::vector<double> inv(size_t(dim / 2));
  for (int64_t i = 0; i < dim / 2; ++i) {
    // HF builds base ** (arange(0, dim, 2) / dim) in float32; mirror that rounding.
    float exponent = float(2 * i) / float(dim);
    inv[size_t(i)] = double(1.0f / std::pow(float(spec.rope_theta), exponent));
  }
  const RopeScaling& rs = spec.rope_scaling;
  if (rs.kind == RopeScalingKind::Linear) {
    for (double& f : inv) f /= rs.factor;
  } else if (rs.kind == RopeScalingKind::Llama3) {
    const double old_len = double(rs.original_max_position);
    const double low_wavelen = old_len / rs.low_freq_factor;
    const double high_wavelen = old_len / rs.high_freq_factor;
    for (double& f : inv) {
      const double wavelen = 2.0 * std::numbers::pi / f;
      if (wavelen > low_wavelen) {
        f /= rs.factor;  // low frequencies: fully interpolated
      } else if (wavelen >= high_wavelen) {
        // Medium frequencies: a smooth blend between interpolated and original.
        const double smooth = (old_len / wavelen - rs.low_freq_factor) / (rs.high_freq_factor - rs.low_freq_factor);
        f = (1.0 - smooth) * f / rs.factor + smooth * f;
      }
    }
  }
  return inv;
}

struct Decoder::StepShape {
  int64_t T = 0;              // tokens of the step
  int64_t B = 0;              // sequences
  int64_t logit_rows = 0;     // rows of logits produced
  bool all_logits = false;
  int max_query_len = 0;      // bounds handed to paged attention
  int max_context_len = 0;
  int leading_single_query = 0;  // sequences before the first with more than one token (PagedAttentionBatch)
};

Decoder::Decoder(const ModelSpec& spec, const ModelWeights& weights, Backend& backend)
    : Decoder(spec, weights, backend, backend.activation_dtype()) {}

Decoder::Decoder(const ModelSpec& spec, const ModelWeights& weights, Backend& backend, DType kv_cache_dtype)
    : spec_(spec),
      w_(weights),
      backend_(backend),
      act_(backend.activation_dtype()),
      matmul_in_(act_ == DType::BF16 && (weights.stored_dtype() == DType::F16 || weights.stored_dtype() == DType::F32)
                     ? weights.stored_dtype()
                     : act_),
      kv_dtype_(kv_cache_dtype),
      eps_(float(spec.norm_eps)) {
  ROOFLINE_CHECK(kv_dtype_ == act_ || kv_dtype_ == DType::F8E4M3,
                 "decoder: a KV cache of {} on the {} backend (it keeps {} or F8_E4M3)", dtype_name(kv_dtype_),
                 backend.name(), dtype_name(act_));
  ROOFLINE_CHECK(weights.token_embedding.device() == backend.device(),
                 "decoder: the weights are not on the {} backend's device (upload_weights them first)", backend.name());
  if (spec_.position == PositionKind::Rotary) inv_freq_ = rope_inverse_frequencies(spec_);
  // Rounding the projections to bf16 and then the rotated values again was the largest single term of the
  // bf16 error (bench/e2e/bf16_error_budget.py); f32 costs a few more bytes of activations per token.
  wide_qkv_ = spec_.position == PositionKind::Rotary && act_ != DType::F32 &&
              (kv_dtype_ == act_ || kv_dtype_ == DType::F8E4M3);
  fuse_norms_ = spec_.norm == NormKind::RMSNorm && env_switch("ROOFLINE_FUSED_NORM", true);
  // A mixed step's leading decode rows take the decode kernel (PagedAttentionBatch::leading_single_query_seqs)
  // instead of the prefill kernel. Measured on H100 (session 9, 8B serving, 1000 + 1000 tokens, burst 512, fp8
  // KV, budget 16384): 8,614 output tok/s against 8,131; steps with prompt tokens 391 ms against 496.
  // ROOFLINE_MIXED_DECODE_SPLIT=0 sends every row of a mixed step to the prefill kernel.
  split_mixed_decode_ = env_switch("ROOFLINE_MIXED_DECODE_SPLIT", true);
}

Decoder::~Decoder() = default;

KvPool Decoder::new_pool(int64_t num_blocks, int64_t block_size) const {
  ROOFLINE_CHECK(num_blocks > 0 && block_size > 0, "KV pool: {} blocks of {} positions (both must be positive)",
                 num_blocks, block_size);
  KvPool pool;
  pool.num_blocks = num_blocks;
  pool.block_size = block_size;
  pool.scratch_block = num_blocks;
  pool.dtype = kv_dtype_;
  const int64_t blocks = num_blocks + 1;
  for (int64_t l = 0; l < spec_.num_layers; ++l) {
    pool.k.push_back(backend_.alloc(kv_dtype_, {blocks, block_size, spec_.num_kv_heads, spec_.head_dim}));
    pool.v.push_back(backend_.alloc(kv_dtype_, {blocks, block_size, spec_.num_kv_heads, spec_.head_dim}));
    if (kv_dtype_ == DType::F8E4M3) {
      pool.k_scale.push_back(backend_.alloc(DType::F32, {blocks, block_size, spec_.num_kv_heads}));
      pool.v_scale.push_back(backend_.alloc(DType::F32, {blocks, block_size, spec_.num_kv_heads}));
    }
  }
  return pool;
}

KvCache Decoder::new_cache(int64_t capacity) const {
  ROOFLINE_CHECK(capacity > 0, "KV cache capacity must be positive (got {})", capacity);
  if (spec_.position == PositionKind::Learned && capacity > spec_.max_position_embeddings)
    capacity = spec_.max_position_embeddings;
  constexpr int64_t kBlock = 16;
  KvCache cache;
  cache.capacity = capacity;
  cache.pool = new_pool((capacity + kBlock - 1) / kBlock, kBlock);
  cache.blocks.resize(size_t(cache.pool.num_blocks));
  for (size_t i = 0; i < cache.blocks.size(); ++i) cache.blocks[i] = int32_t(i);
  return cache;
}

void Decoder::invalidate_recordings() { recordings_.clear(); }

// Sequences, blocks per sequence and logit rows grow to powers of two: growing re-lays out the step
// indices and drops every recording, and a batch whose longest context gains a block every 16 decode
// steps would otherwise re-record its steps that often. (Tokens grow exactly: their buffers are the big ones.)
namespace {
int64_t grown(int64_t needed, int64_t current, int64_t floor) {
  return needed <= current ? current : std::max(current, int64_t(std::bit_ceil(uint64_t(std::max(needed, floor)))));
}
}  // namespace

void Decoder::ensure_capacity(int64_t tokens, int64_t seqs, int64_t blocks_per_seq, int64_t logit_rows) {
  const ModelSpec& s = spec_;
  if (tokens > cap_tokens_) {
    cap_tokens_ = std::max<int64_t>(tokens, 16);
    const int64_t T = cap_tokens_;
    // The residual stream stays in f32 on every backend: in bf16 its rounding, repeated at every layer,
    // is the largest error of a bf16 forward pass (the adds are fused into the norms, so it costs one
    // f32 read and write per layer).
    x_ = backend_.alloc(DType::F32, {T, s.hidden_size});
    h_ = backend_.alloc(matmul_in_, {T, s.hidden_size});
    qkv_ = backend_.alloc(wide_qkv_ ? DType::F32 : act_, {T * (s.q_dim() + 2 * s.kv_dim())});
    attn_ = backend_.alloc(act_, {T, s.num_heads, s.head_dim});
    if (wide_qkv_) q_rotated_ = backend_.alloc(act_, {T, s.num_heads, s.head_dim});
    // The o and down projections write f32 (the GEMM accumulates in f32 anyway): they are added straight
    // into the residual, so rounding them to bf16 first would add error at every layer for no speed.
    proj_ = backend_.alloc(DType::F32, {T, s.hidden_size});
    gate_up_ = backend_.alloc(matmul_in_, {T * s.intermediate_size * (s.mlp == MlpKind::GatedSiLU ? 2 : 1)});
    meta_ = Tensor();  // re-laid out below
  }
  if (logit_rows > cap_logit_rows_) {
    cap_logit_rows_ = grown(logit_rows, cap_logit_rows_, 1);
    logits_ = backend_.alloc(DType::F32, {cap_logit_rows_, s.vocab_size});
    gathered_ = backend_.alloc(matmul_in_, {cap_logit_rows_, s.hidden_size});
  }
  if (seqs > cap_seqs_ || blocks_per_seq > cap_blocks_ || !meta_.defined()) {
    cap_seqs_ = grown(seqs, cap_seqs_, 8);
    cap_blocks_ = grown(blocks_per_seq, cap_blocks_, 16);
    const int64_t T = cap_tokens_, B = cap_seqs_;
    const int64_t total = 4 * T + 2 * B + 1 + B * cap_blocks_;
    meta_ = backend_.alloc(DType::I32, {total});
    host_meta_.assign(size_t(total), 0);
    int32_t* base = meta_.ptr<int32_t>();
    auto section = [&](int64_t offset, Shape shape) { return Tensor(DType::I32, std::move(shape), base + offset, meta_.device()); };
    ids_ = section(0, {T});
    positions_ = section(T, {T});
    slots_ = section(2 * T, {T});
    logit_rows_ = section(3 * T, {T});
    query_start_ = section(4 * T, {B + 1});
    context_len_ = section(4 * T + B + 1, {B});
    block_table_ = section(4 * T + 2 * B + 1, {B, cap_blocks_});
  } else {
    return;
  }
  invalidate_recordings();
}

void Decoder::ensure_rope_tables(int64_t positions) {
  if (inv_freq_.empty() || positions <= rope_positions_) return;
  const int64_t n = std::max<int64_t>({positions, 2 * rope_positions_, 4096});
  const int64_t half = int64_t(inv_freq_.size());
  Tensor cos = Tensor::empty(DType::F32, {n, half});
  Tensor sin = Tensor::empty(DType::F32, {n, half});
  for (int64_t p = 0; p < n; ++p)
    for (int64_t i = 0; i < half; ++i) {
      const double angle = double(p) * inv_freq_[size_t(i)];
      cos.ptr<float>()[p * half + i] = float(std::cos(angle));
      sin.ptr<float>()[p * half + i] = float(std::sin(angle));
    }
  rope_cos_ = backend_.upload(cos, DType::F32);
  rope_sin_ = backend_.upload(sin, DType::F32);
  rope_positions_ = n;
  invalidate_recordings();
}

void Decoder::norm(Tensor& out, const Tensor& x, const Norm& n) {
  if (spec_.norm == NormKind::RMSNorm)
    backend_.rms_norm(out, x, n.weight, eps_);
  else
    backend_.layer_norm(out, x, n.weight, n.bias, eps_);
}

void Decoder::add_norm(Tensor& residual, const Tensor& x, const Norm& n, Tensor& out) {
  if (spec_.norm == NormKind::RMSNorm)
    backend_.add_rms_norm(residual, x, n.weight, out, eps_);
  else
    backend_.add_layer_norm(residual, x, n.weight, n.bias, out, eps_);
}

void Decoder::attention_block(const LayerWeights& L, KvPool& pool, int layer, const StepShape& shape) {
  const ModelSpec& s = spec_;
  const int64_t T = shape.T;
  Tensor h = h_.rows(0, T);
  const int64_t nq = T * s.q_dim(), nkv = T * s.kv_dim();
  Tensor q = qkv_.rows(0, nq).reshape({T, s.num_heads, s.head_dim});
  Tensor k = qkv_.rows(nq, nq + nkv).reshape({T, s.num_kv_heads, s.head_dim});
  Tensor v = qkv_.rows(nq + nkv, nq + 2 * nkv).reshape({T, s.num_kv_heads, s.head_dim});
  Tensor q2 = q.reshape({T, s.q_dim()}), k2 = k.reshape({T, s.kv_dim()}), v2 = v.reshape({T, s.kv_dim()});
  const MatmulTarget qkv[] = {{&q2, &L.q.weight, L.q.bias_ptr()},
                              {&k2, &L.k.weight, L.k.bias_ptr()},
                              {&v2, &L.v.weight, L.v.bias_ptr()}};
  Tensor x = x_.rows(0, T);
  if (fuse_norms_)
    backend_.rms_norm_matmul_many({&x, &L.attn_norm.weight, eps_, &h}, qkv);
  else
    backend_.matmul_many(h, qkv);
  const Tensor positions = positions_.rows(0, T), slots = slots_.rows(0, T);
  const KvScales scales = pool.scales(size_t(layer));
  if (s.position == PositionKind::Rotary) {
    RotaryStep rotary;
    rotary.positions = &positions;
    rotary.cos = &rope_cos_;
    rotary.sin = &rope_sin_;
    rotary.rotary_dim = int(s.head_dim);
    rotary.q_norm = s.qk_norm ? &L.q_norm.weight : nullptr;
    rotary.k_norm = s.qk_norm ? &L.k_norm.weight : nullptr;
    rotary.eps = eps_;
    Tensor rotated_q = wide_qkv_ ? q_rotated_.rows(0, T) : Tensor();
    if (wide_qkv_) rotary.q_out = &rotated_q;
    backend_.rope_store_kv(q, k, v, rotary, pool.k[size_t(layer)], pool.v[size_t(layer)], slots, scales);
    if (wide_qkv_) q = rotated_q;
  } else {
    backend_.store_kv(pool.k[size_t(layer)], pool.v[size_t(layer)], k, v, slots, scales);
  }

  const Tensor query_start = query_start_.rows(0, shape.B + 1);
  const Tensor context_len = context_len_.rows(0, shape.B);
  const Tensor block_table = block_table_.rows(0, shape.B);
  PagedAttentionBatch batch;
  batch.num_seqs = int(shape.B);
  batch.max_query_len = shape.max_query_len;
  batch.max_context_len = shape.max_context_len;
  batch.block_size = int(pool.block_size);
  batch.sliding_window = int(s.sliding_window);
  batch.scale = float(1.0 / std::sqrt(double(s.head_dim)));
  batch.query_start = &query_start;
  batch.context_len = &context_len;
  batch.block_table = &block_table;
  batch.kv_scales = scales;
  batch.leading_single_query_seqs = split_mixed_decode_ ? shape.leading_single_query : 0;
  Tensor out = attn_.rows(0, T);
  backend_.paged_attention(out, q, pool.k[size_t(layer)], pool.v[size_t(layer)], batch);
  Tensor proj = proj_.rows(0, T);
  if (fuse_norms_)
    backend_.matmul_add(x, out.reshape({T, s.q_dim()}), L.o.weight, L.o.bias_ptr(), proj);
  else
    backend_.matmul(proj, out.reshape({T, s.q_dim()}), L.o.weight, L.o.bias_ptr());
}

void Decoder::mlp_block(const LayerWeights& L, int64_t T) {
  Tensor x = x_.rows(0, T), h = h_.rows(0, T);
  const RmsNormInput normed{&x, &L.mlp_norm.weight, eps_, &h};
  const int64_t F = spec_.intermediate_size;
  Tensor up = gate_up_.rows(0, T * F).reshape({T, F});
  if (spec_.mlp == MlpKind::GatedSiLU) {
    Tensor gate = up;
    up = gate_up_.rows(T * F, 2 * T * F).reshape({T, F});
    const MatmulTarget gate_target{&gate, &L.gate.weight, L.gate.bias_ptr()}, up_target{&up, &L.up.weight, L.up.bias_ptr()};
    if (fuse_norms_)
      backend_.rms_norm_matmul_swiglu(normed, gate_target, up_target);
    else
      backend_.matmul_swiglu(h, gate_target, up_target);
  } else {
    const MatmulTarget up_target{&up, &L.up.weight, L.up.bias_ptr()};
    if (fuse_norms_)
      backend_.rms_norm_matmul_many(normed, std::span<const MatmulTarget>(&up_target, 1));
    else
      backend_.matmul(up, h, L.up.weight, L.up.bias_ptr());
    backend_.gelu_tanh(up);
  }
  Tensor proj = proj_.rows(0, T);
  if (fuse_norms_)
    backend_.matmul_add(x, up, L.down.weight, L.down.bias_ptr(), proj);
  else
    backend_.matmul(proj, up, L.down.weight, L.down.bias_ptr());
}

void Decoder::run_layers(const StepShape& shape, KvPool& pool) {
  const ModelSpec& s = spec_;
  const int64_t T = shape.T;
  Tensor x = x_.rows(0, T), h = h_.rows(0, T), proj = proj_.rows(0, T);
  // The embeddings go straight into the f32 residual stream: an f16 or f32 table loses nothing to the
  // activation dtype there (bf16 would round every value before the first layer).
  backend_.embedding(x, w_.token_embedding, ids_.rows(0, T));
  if (s.position == PositionKind::Learned) backend_.add_rows(x, w_.position_embedding, positions_.rows(0, T));
  if (fuse_norms_) {
    // Each norm runs inside the projections after it and each residual add inside the projection before it;
    // only the final norm is an op of its own.
    for (size_t l = 0; l < w_.layers.size(); ++l) {
      attention_block(w_.layers[l], pool, int(l), shape);
      mlp_block(w_.layers[l], T);
    }
    norm(h, x, w_.final_norm);
  } else {
    // Each residual add is fused with the norm that follows it (the next layer's, at the end the final one).
    norm(h, x, w_.layers.front().attn_norm);
    for (size_t l = 0; l < w_.layers.size(); ++l) {
      const LayerWeights& L = w_.layers[l];
      attention_block(L, pool, int(l), shape);
      add_norm(x, proj, L.mlp_norm, h);
      mlp_block(L, T);
      add_norm(x, proj, l + 1 < w_.layers.size() ? w_.layers[l + 1].attn_norm : w_.final_norm, h);
    }
  }
  logits_view_ = logits_.rows(0, shape.logit_rows);
  if (shape.logit_rows == 0) return;
  if (shape.all_logits) {
    backend_.matmul(logits_view_, h, w_.lm_head.weight, w_.lm_head.bias_ptr());
  } else {
    Tensor rows = gathered_.rows(0, shape.logit_rows);
    backend_.gather_rows(rows, h, logit_rows_.rows(0, shape.logit_rows));
    backend_.matmul(logits_view_, rows, w_.lm_head.weight, w_.lm_head.bias_ptr());
  }
}

const char* step_phase(std::span<const SequenceStep> batch) {
  bool prefill = false, decode = false;
  for (const SequenceStep& q : batch) (q.tokens.size() == 1 && q.start > 0 ? decode : prefill) = true;
  return prefill && decode ? "mixed" : decode ? "decode" : "prefill";
}

const Tensor& Decoder::step(std::span<const SequenceStep> batch, KvPool& pool, bool all_logits) {
  const PhaseScope phase(step_phase(batch));
  const bool decode = !batch.empty() && std::ranges::all_of(batch, [](const SequenceStep& q) { return q.tokens.size() == 1; });
  const size_t n = batch.size();
  const size_t padded = n <= 4 ? std::bit_ceil(n) : (n + 7) / 8 * 8;
  if (!decode || all_logits || cannot_record_ || pool.scratch_block < 0 || padded == n)
    return step_unpadded(batch, pool, all_logits);
  // Padding rows run token 0 at position 0 into the scratch block (each writes the same values there) and
  // want logits, so the recording's key stays that of the padded size; their rows come last and are cut.
  static constexpr int32_t kPadToken = 0;
  scratch_table_.assign(1, int32_t(pool.scratch_block));
  padded_.assign(batch.begin(), batch.end());
  padded_.resize(padded, SequenceStep{std::span<const int32_t>(&kPadToken, 1), 0, scratch_table_, true});
  const int64_t rows = std::ranges::count_if(batch, &SequenceStep::wants_logits);
  step_unpadded(padded_, pool, false);
  logits_view_ = logits_.rows(0, rows);
  return logits_view_;
}

const Tensor& Decoder::step_unpadded(std::span<const SequenceStep> batch, KvPool& pool, bool all_logits) {
  const ModelSpec& s = spec_;
  ROOFLINE_CHECK(!batch.empty(), "decoder step: no sequences");
  ROOFLINE_CHECK(int64_t(pool.k.size()) == s.num_layers, "decoder step: the KV pool has {} layers, the model {}",
                 pool.k.size(), s.num_layers);
  ROOFLINE_CHECK(pool.dtype != DType::F8E4M3 || int64_t(pool.k_scale.size()) == s.num_layers,
                 "decoder step: an F8_E4M3 KV pool without the scales of its {} layers", s.num_layers);
  const int64_t bs = pool.block_size;
  StepShape shape;
  shape.B = int64_t(batch.size());
  shape.all_logits = all_logits;
  int64_t max_blocks = 0;
  bool leading = true;
  for (const SequenceStep& q : batch) {
    const int64_t n = int64_t(q.tokens.size()), end = q.start + n;
    leading = leading && n == 1;
    shape.leading_single_query += leading ? 1 : 0;
    ROOFLINE_CHECK(n > 0, "decoder step: a sequence has no tokens");
    ROOFLINE_CHECK(q.start >= 0 && int64_t(q.blocks.size()) * bs >= end,
                   "decoder step: the sequence needs {} positions but its {} blocks hold {}", end, q.blocks.size(),
                   int64_t(q.blocks.size()) * bs);
    ROOFLINE_CHECK(s.position != PositionKind::Learned || end <= s.max_position_embeddings,
                   "the sequence needs {} positions but the model has {} learned positions", end,
                   s.max_position_embeddings);
    for (int32_t id : q.tokens)
      ROOFLINE_CHECK(id >= 0 && id < s.vocab_size, "token id {} is outside the vocabulary [0, {})", id, s.vocab_size);
    for (int64_t b = 0; b < (end + bs - 1) / bs; ++b)
      ROOFLINE_CHECK(q.blocks[size_t(b)] >= 0 && (q.blocks[size_t(b)] < pool.num_blocks ||
                                                  q.blocks[size_t(b)] == pool.scratch_block),
                     "decoder step: block id {} is outside the pool of {} blocks", q.blocks[size_t(b)], pool.num_blocks);
    shape.T += n;
    shape.max_query_len = std::max(shape.max_query_len, int(n));
    shape.max_context_len = std::max(shape.max_context_len, int(end));
    max_blocks = std::max(max_blocks, (end + bs - 1) / bs);
    if (q.wants_logits) ++shape.logit_rows;
  }
  if (all_logits) shape.logit_rows = shape.T;
  ensure_capacity(shape.T, shape.B, max_blocks, std::max<int64_t>(shape.logit_rows, 1));
  ensure_rope_tables(shape.max_context_len);

  // The step's indices, laid out as meta_'s sections; one copy moves them up to the last table row used.
  const int64_t T = cap_tokens_, B = cap_seqs_;
  int32_t* m = host_meta_.data();
  int32_t *ids = m, *pos = m + T, *slots = m + 2 * T, *rows = m + 3 * T, *qstart = m + 4 * T;
  int32_t *ctx = qstart + B + 1, *table = ctx + B;
  int64_t t = 0, r = 0;
  qstart[0] = 0;
  for (size_t b = 0; b < batch.size(); ++b) {
    const SequenceStep& q = batch[b];
    for (size_t i = 0; i < q.tokens.size(); ++i, ++t) {
      const int64_t p = q.start + int64_t(i);
      ids[t] = q.tokens[i];
      pos[t] = int32_t(p);
      slots[t] = int32_t(int64_t(q.blocks[size_t(p / bs)]) * bs + p % bs);
    }
    if (q.wants_logits && !all_logits) rows[r++] = int32_t(t - 1);
    qstart[b + 1] = int32_t(t);
    const int64_t end = q.start + int64_t(q.tokens.size());
    ctx[b] = int32_t(end);
    std::memcpy(table + int64_t(b) * cap_blocks_, q.blocks.data(), size_t((end + bs - 1) / bs) * sizeof(int32_t));
  }
  const int64_t used = (table - m) + shape.B * cap_blocks_;
  Tensor used_meta(DType::I32, {used}, meta_.data(), meta_.device());
  backend_.copy_from_host(used_meta, m);

  // Decode steps (one token per sequence) are recorded at their second sighting and replayed after that,
  // with the context bound rounded up to a power of two so that one recording serves many steps.
  const bool decode = shape.T == shape.B;
  if (!decode || cannot_record_) {
    run_layers(shape, pool);
    return logits_view_;
  }
  int64_t bound = 256;
  while (bound < shape.max_context_len) bound *= 2;
  bound = std::min(bound, cap_blocks_ * bs);
  shape.max_context_len = int(std::max<int64_t>(bound, shape.max_context_len));
  Recording& rec = recordings_[std::make_tuple(shape.B, shape.logit_rows, int64_t(shape.max_context_len))];
  if (!rec.ops && rec.eager_runs++ == 0) {
    run_layers(shape, pool);  // the first run also grows every scratch buffer the recording will use
    return logits_view_;
  }
  if (!rec.ops) {
    rec.ops = backend_.record([&] { run_layers(shape, pool); });
    if (!rec.ops) {  // this backend cannot record: run eagerly from now on
      cannot_record_ = true;
      run_layers(shape, pool);
      return logits_view_;
    }
  }
  rec.ops->replay();
  ++replayed_steps_;
  logits_view_ = logits_.rows(0, shape.logit_rows);
  return logits_view_;
}

const Tensor& Decoder::forward(std::span<const int32_t> tokens, KvCache& cache, bool all_logits) {
  const SequenceStep seq{tokens, cache.length, cache.blocks, true};
  const PhaseScope phase(step_phase(std::span<const SequenceStep>(&seq, 1)));  // the logits' download is the step's
  const Tensor& logits = forward_on_device(tokens, cache, all_logits);
  if (backend_.device() == Device::CPU) return logits;
  if (!host_logits_.defined() || host_logits_.shape() != logits.shape())
    host_logits_ = Tensor::empty(DType::F32, logits.shape());
  backend_.download(logits, host_logits_);
  return host_logits_;
}

const Tensor& Decoder::forward_on_device(std::span<const int32_t> tokens, KvCache& cache, bool all_logits) {
  const int64_t T = int64_t(tokens.size());
  ROOFLINE_CHECK(T > 0, "forward: no tokens");
  ROOFLINE_CHECK(cache.length + T <= cache.capacity,
                 "the sequence needs {} positions but the context holds {} (prompt and generated tokens together)",
                 cache.length + T, cache.capacity);
  const SequenceStep seq{tokens, cache.length, cache.blocks, true};
  const Tensor& logits = step(std::span<const SequenceStep>(&seq, 1), cache.pool, all_logits);
  cache.length += T;
  return logits;
}

}  // namespace roofline
