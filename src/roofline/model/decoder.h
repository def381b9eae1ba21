// The one decoder implementation: every architecture in ModelSpec runs through Decoder::forward, written
// against the Backend op interface. Prefill and decode are the same call with T tokens.
#pragma once
#include <cstdint>
#include <span>
#include <vector>

#include "roofline/backend/backend.h"
#include "roofline/model/model_spec.h"
#include "roofline/model/weights.h"

namespace roofline {

// Keys and values of one sequence, contiguous per layer: k[l], v[l] are [capacity, Hkv, D] f32.
struct KvCache {
  int64_t capacity = 0;
  int64_t length = 0;  // positions 0 .. length-1 are filled
  std::vector<Tensor> k, v;
  size_t bytes_per_token() const;
};

class Decoder {
 public:
  Decoder(const ModelSpec& spec, const ModelWeights& weights, Backend& backend);

  KvCache new_cache(int64_t capacity) const;

  // Runs `tokens` at positions cache.length .. cache.length + T - 1, appends their keys and values to
  // the cache, and returns logits: [T, V] when all_logits, else [1, V] for the last token. The returned
  // tensor is owned by the decoder and valid until the next call.
  const Tensor& forward(std::span<const int32_t> tokens, KvCache& cache, bool all_logits);

  const ModelSpec& spec() const { return spec_; }

 private:
  void ensure_scratch(int64_t T);
  void ensure_rope_tables(int64_t positions);
  void attention_block(const LayerWeights& L, KvCache& cache, int layer, int64_t T);
  void mlp_block(const LayerWeights& L, int64_t T);
  void norm(Tensor& out, const Tensor& x, const Norm& n, float eps);

  const ModelSpec& spec_;
  const ModelWeights& w_;
  Backend& backend_;
  std::vector<double> inv_freq_;  // [rotary_dim / 2]
  Tensor rope_cos_, rope_sin_;    // [positions, rotary_dim / 2]

  int64_t scratch_rows_ = 0;
  Tensor x_, h_, q_, attn_, proj_, gate_, up_, logits_;  // x_: residual stream [T, hidden]
  Tensor logits_view_;  // the rows of logits_ the last forward produced
  std::vector<int32_t> positions_;
};

// Inverse frequencies of rotary embedding for the spec's head_dim, theta and scaling (default, linear,
// llama3), computed as Hugging Face does (float32 base frequencies, scaling in double).
std::vector<double> rope_inverse_frequencies(const ModelSpec& spec);

}  // namespace roofline
