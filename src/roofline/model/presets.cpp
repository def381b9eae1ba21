#include "roofline/model/presets.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "roofline/core/error.h"
#include "roofline/core/thread_pool.h"

namespace roofline {

namespace {

ModelSpec llama_like(int64_t hidden, int64_t layers, int64_t heads, int64_t kv_heads, int64_t ffn, int64_t vocab,
                     bool tied) {
  ModelSpec s;
  s.architecture = "LlamaForCausalLM";
  s.model_type = "llama";
  s.hidden_size = hidden;
  s.num_layers = layers;
  s.num_heads = heads;
  s.num_kv_heads = kv_heads;
  s.head_dim = hidden / heads;
  s.intermediate_size = ffn;
  s.vocab_size = vocab;
  s.max_position_embeddings = 8192;
  s.norm_eps = 1e-5;
  s.rope_theta = 500000.0;
  s.tied_embeddings = tied;
  s.dtype = DType::BF16;
  return s;
}

struct Preset {
  const char* name;
  ModelSpec (*make)();
};

const Preset kPresets[] = {
    {"llama-134m", [] { return llama_like(768, 12, 12, 4, 2048, 32000, false); }},
    {"llama-1b", [] { return llama_like(2048, 16, 32, 8, 8192, 128256, true); }},
    {"llama-1b-v32k", [] { return llama_like(2048, 16, 32, 8, 8192, 32000, true); }},
    {"llama-8b", [] { return llama_like(4096, 32, 32, 8, 14336, 128256, false); }},
    {"gpt2-124m", [] {
       ModelSpec s;
       s.architecture = "GPT2LMHeadModel";
       s.model_type = "gpt2";
       s.hidden_size = 768;
       s.num_layers = 12;
       s.num_heads = 12;
       s.num_kv_heads = 12;
       s.head_dim = 64;
       s.intermediate_size = 3072;
       s.vocab_size = 50257;
       s.max_position_embeddings = 1024;
       s.norm = NormKind::LayerNorm;
       s.mlp = MlpKind::GeluTanh;
       s.position = PositionKind::Learned;
       s.tied_embeddings = true;
       s.qkv_bias = s.output_bias = s.mlp_bias = true;
       s.dtype = DType::BF16;
       return s;
     }},
};

// Counter-based: every 64k-element piece of a tensor draws from its own stream, seeded by (seed, tensor,
// piece), so the pieces fill in parallel and the values do not depend on the thread count. A 1B-parameter
// preset took ~45 s through one std::mt19937_64 and normal_distribution; 8B would take minutes of GPU time
// on the device box before the benchmark starts.
uint64_t splitmix64(uint64_t& state) {
  uint64_t z = (state += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

class RandomTensors {
 public:
  explicit RandomTensors(uint64_t seed) : seed_(seed) {}

  // N(mean, stddev) values (Box-Muller over 53-bit uniforms in (0, 1]), rounded to `dtype`.
  Tensor normal(DType dtype, Shape shape, float mean, float stddev) {
    Tensor out = Tensor::empty(dtype, std::move(shape));
    const uint64_t tensor = next_tensor_++;
    const size_t n = size_t(out.numel()), pieces = (n + kPiece - 1) / kPiece, elem = dtype_size(dtype);
    char* dst = static_cast<char*>(out.data());
    pool_.parallel_for(pieces, 1, [&](size_t begin, size_t end) {
      std::vector<float> values(kPiece);
      for (size_t piece = begin; piece < end; ++piece) {
        uint64_t state = seed_ * 0x2545F4914F6CDD1Dull ^ (tensor << 40) ^ piece;
        const size_t first = piece * kPiece, count = std::min(kPiece, n - first);
        for (size_t i = 0; i < count; i += 2) {
          const double u1 = double((splitmix64(state) >> 11) + 1) * 0x1.0p-53;  // (0, 1]: log(u1) is finite
          const double u2 = double(splitmix64(state) >> 11) * 0x1.0p-53;
          const double r = std::sqrt(-2.0 * std::log(u1)), angle = 6.283185307179586 * u2;
          values[i] = float(mean + stddev * r * std::cos(angle));
          if (i + 1 < count) values[i + 1] = float(mean + stddev * r * std::sin(angle));
        }
        convert_from_f32(dtype, values.data(), dst + first * elem, count);
      }
    });
    return out;
  }

 private:
  static constexpr size_t kPiece = size_t(1) << 16;
  uint64_t seed_;
  uint64_t next_tensor_ = 0;
  ThreadPool pool_;
};

}  // namespace

std::vector<std::string> preset_names() {
  std::vector<std::string> names;
  for (const Preset& p : kPresets) names.push_back(p.name);
  return names;
}

ModelSpec preset_spec(const std::string& name) {
  for (const Preset& p : kPresets)
    if (name == p.name) return p.make();
  std::string known;
  for (const std::string& n : preset_names()) known += (known.empty() ? "" : ", ") + n;
  fail("unknown preset '{}' (known presets: {})", name, known);
}

ModelWeights random_weights(const ModelSpec& s, DType dtype, uint64_t seed) {
  RandomTensors random(seed);
  auto mat = [&](int64_t rows, int64_t cols) { return random.normal(dtype, {rows, cols}, 0.0f, 0.02f); };
  auto vec = [&](int64_t n, float mean) { return random.normal(dtype, {n}, mean, 0.02f); };
  const int64_t H = s.hidden_size, F = s.intermediate_size;
  const bool gpt2 = s.norm == NormKind::LayerNorm;
  auto norm = [&](int64_t n) { return Norm{vec(n, 1.0f), gpt2 ? vec(n, 0.0f) : Tensor()}; };
  auto linear = [&](int64_t out, int64_t in, bool bias) { return Linear{mat(out, in), bias ? vec(out, 0.0f) : Tensor()}; };
  ModelWeights w;
  w.token_embedding = mat(s.vocab_size, H);
  if (s.position == PositionKind::Learned) w.position_embedding = mat(s.max_position_embeddings, H);
  for (int64_t l = 0; l < s.num_layers; ++l) {
    LayerWeights L;
    L.attn_norm = norm(H);
    L.q = linear(s.q_dim(), H, s.qkv_bias);
    L.k = linear(s.kv_dim(), H, s.qkv_bias);
    L.v = linear(s.kv_dim(), H, s.qkv_bias);
    L.o = linear(H, s.q_dim(), s.output_bias);
    if (s.qk_norm) {
      L.q_norm = norm(s.head_dim);
      L.k_norm = norm(s.head_dim);
    }
    L.mlp_norm = norm(H);
    if (s.mlp == MlpKind::GatedSiLU) L.gate = linear(F, H, s.mlp_bias);
    L.up = linear(F, H, s.mlp_bias);
    L.down = linear(H, F, s.mlp_bias);
    w.layers.push_back(std::move(L));
  }
  w.final_norm = norm(H);
  w.lm_head.weight = s.tied_embeddings ? w.token_embedding : mat(s.vocab_size, H);
  return w;
}

}  // namespace roofline
