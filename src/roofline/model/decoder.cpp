#include "roofline/model/decoder.h"

#include <cmath>
#include <numbers>

#include "roofline/core/error.h"

namespace roofline {

size_t KvCache::bytes_per_token() const {
  size_t total = 0;
  for (size_t l = 0; l < k.size(); ++l) total += (k[l].nbytes() + v[l].nbytes()) / size_t(std::max<int64_t>(capacity, 1));
  return total;
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

Decoder::Decoder(const ModelSpec& spec, const ModelWeights& weights, Backend& backend)
    : spec_(spec), w_(weights), backend_(backend) {
  if (spec_.position == PositionKind::Rotary) inv_freq_ = rope_inverse_frequencies(spec_);
}

KvCache Decoder::new_cache(int64_t capacity) const {
  ROOFLINE_CHECK(capacity > 0, "KV cache capacity must be positive (got {})", capacity);
  if (spec_.position == PositionKind::Learned && capacity > spec_.max_position_embeddings)
    capacity = spec_.max_position_embeddings;
  KvCache cache;
  cache.capacity = capacity;
  for (int64_t l = 0; l < spec_.num_layers; ++l) {
    cache.k.push_back(Tensor::empty(DType::F32, {capacity, spec_.num_kv_heads, spec_.head_dim}));
    cache.v.push_back(Tensor::empty(DType::F32, {capacity, spec_.num_kv_heads, spec_.head_dim}));
  }
  return cache;
}

void Decoder::ensure_scratch(int64_t T) {
  if (T <= scratch_rows_) return;
  const ModelSpec& s = spec_;
  x_ = Tensor::empty(DType::F32, {T, s.hidden_size});
  h_ = Tensor::empty(DType::F32, {T, s.hidden_size});
  q_ = Tensor::empty(DType::F32, {T, s.num_heads, s.head_dim});
  attn_ = Tensor::empty(DType::F32, {T, s.num_heads, s.head_dim});
  proj_ = Tensor::empty(DType::F32, {T, s.hidden_size});
  gate_ = Tensor::empty(DType::F32, {T, s.intermediate_size});
  up_ = Tensor::empty(DType::F32, {T, s.intermediate_size});
  logits_ = Tensor::empty(DType::F32, {T, s.vocab_size});
  scratch_rows_ = T;
}

void Decoder::ensure_rope_tables(int64_t positions) {
  if (inv_freq_.empty() || (rope_cos_.defined() && rope_cos_.dim(0) >= positions)) return;
  const int64_t half = int64_t(inv_freq_.size());
  rope_cos_ = Tensor::empty(DType::F32, {positions, half});
  rope_sin_ = Tensor::empty(DType::F32, {positions, half});
  for (int64_t p = 0; p < positions; ++p)
    for (int64_t i = 0; i < half; ++i) {
      double angle = double(p) * inv_freq_[size_t(i)];
      rope_cos_.ptr<float>()[p * half + i] = float(std::cos(angle));
      rope_sin_.ptr<float>()[p * half + i] = float(std::sin(angle));
    }
}

void Decoder::norm(Tensor& out, const Tensor& x, const Norm& n, float eps) {
  if (spec_.norm == NormKind::RMSNorm)
    backend_.rms_norm(out, x, n.weight, eps);
  else
    backend_.layer_norm(out, x, n.weight, n.bias, eps);
}

// Views of the first T rows of a scratch tensor, with the given trailing shape.
static Tensor first_rows(const Tensor& t, int64_t T) { return t.rows(0, T); }

void Decoder::attention_block(const LayerWeights& L, KvCache& cache, int layer, int64_t T) {
  const ModelSpec& s = spec_;
  const int64_t start = cache.length;
  Tensor h = first_rows(h_, T);
  Tensor q = first_rows(q_, T);
  Tensor q2 = q.reshape({T, s.q_dim()});
  // Keys and values are computed straight into their cache rows.
  Tensor k = cache.k[size_t(layer)].rows(start, start + T);
  Tensor v = cache.v[size_t(layer)].rows(start, start + T);
  Tensor k2 = k.reshape({T, s.kv_dim()});
  Tensor v2 = v.reshape({T, s.kv_dim()});
  const MatmulTarget qkv[] = {{&q2, &L.q.weight, L.q.bias_ptr()},
                              {&k2, &L.k.weight, L.k.bias_ptr()},
                              {&v2, &L.v.weight, L.v.bias_ptr()}};
  backend_.matmul_many(h, qkv);
  if (s.qk_norm) {
    Tensor qh = q.reshape({T * s.num_heads, s.head_dim});
    Tensor kh = k.reshape({T * s.num_kv_heads, s.head_dim});
    backend_.rms_norm(qh, qh, L.q_norm.weight, float(s.norm_eps));
    backend_.rms_norm(kh, kh, L.k_norm.weight, float(s.norm_eps));
  }
  if (s.position == PositionKind::Rotary) {
    backend_.rope(q, positions_.data(), rope_cos_, rope_sin_, int(s.head_dim));
    backend_.rope(k, positions_.data(), rope_cos_, rope_sin_, int(s.head_dim));
  }
  Tensor out = first_rows(attn_, T);
  AttentionParams params;
  params.start_pos = int(start);
  params.sliding_window = int(s.sliding_window);
  params.scale = float(1.0 / std::sqrt(double(s.head_dim)));
  backend_.attention(out, q, cache.k[size_t(layer)], cache.v[size_t(layer)], params);
  Tensor proj = first_rows(proj_, T);
  backend_.matmul(proj, out.reshape({T, s.q_dim()}), L.o.weight, L.o.bias_ptr());
  Tensor x = first_rows(x_, T);
  backend_.add(x, proj);
}

void Decoder::mlp_block(const LayerWeights& L, int64_t T) {
  Tensor h = first_rows(h_, T);
  Tensor up = first_rows(up_, T);
  if (spec_.mlp == MlpKind::GatedSiLU) {
    Tensor gate = first_rows(gate_, T);
    const MatmulTarget gate_up[] = {{&gate, &L.gate.weight, L.gate.bias_ptr()}, {&up, &L.up.weight, L.up.bias_ptr()}};
    backend_.matmul_many(h, gate_up);
    backend_.silu_mul(up, gate, up);
  } else {
    backend_.matmul(up, h, L.up.weight, L.up.bias_ptr());
    backend_.gelu_tanh(up);
  }
  Tensor proj = first_rows(proj_, T);
  backend_.matmul(proj, up, L.down.weight, L.down.bias_ptr());
  Tensor x = first_rows(x_, T);
  backend_.add(x, proj);
}

const Tensor& Decoder::forward(std::span<const int32_t> tokens, KvCache& cache, bool all_logits) {
  const ModelSpec& s = spec_;
  const int64_t T = int64_t(tokens.size());
  ROOFLINE_CHECK(T > 0, "forward: no tokens");
  ROOFLINE_CHECK(cache.length + T <= cache.capacity,
                 "the sequence needs {} positions but the context holds {} (prompt and generated tokens together)",
                 cache.length + T, cache.capacity);
  for (int32_t id : tokens)
    ROOFLINE_CHECK(id >= 0 && id < s.vocab_size, "token id {} is outside the vocabulary [0, {})", id, s.vocab_size);
  ensure_scratch(T);
  ensure_rope_tables(cache.length + T);
  positions_.resize(size_t(T));
  for (int64_t t = 0; t < T; ++t) positions_[size_t(t)] = int32_t(cache.length + t);

  Tensor x = first_rows(x_, T);
  backend_.embedding(x, w_.token_embedding, tokens.data(), T);
  if (s.position == PositionKind::Learned)
    for (int64_t t = 0; t < T; ++t) backend_.add_row(x, t, w_.position_embedding, cache.length + t);

  Tensor h = first_rows(h_, T);
  const float eps = float(s.norm_eps);
  for (size_t l = 0; l < w_.layers.size(); ++l) {
    const LayerWeights& L = w_.layers[l];
    norm(h, x, L.attn_norm, eps);
    attention_block(L, cache, int(l), T);
    norm(h, x, L.mlp_norm, eps);
    mlp_block(L, T);
  }
  cache.length += T;

  // Only the rows whose logits are wanted go through the final norm and the vocabulary projection.
  const int64_t first = all_logits ? 0 : T - 1;
  Tensor tail = x.rows(first, T);
  Tensor hn = h.rows(0, T - first);
  norm(hn, tail, w_.final_norm, eps);
  logits_view_ = logits_.rows(0, T - first);
  backend_.matmul(logits_view_, hn, w_.lm_head.weight, w_.lm_head.bias_ptr());
  return logits_view_;
}

}  // namespace roofline
