#include "roofline/model/weights.h"

#include <cstring>
#include <map>

#include "roofline/backend/backend.h"
#include "roofline/core/error.h"

namespace roofline {

namespace {

class Resolver {
 public:
  Resolver(const Checkpoint& checkpoint, std::string prefix) : checkpoint_(checkpoint), prefix_(std::move(prefix)) {}

  Tensor get(const std::string& name, const Shape& expected) const {
    std::string full = prefix_ + name;
    if (!checkpoint_.contains(full))
      fail("{}: weight '{}' is missing from the checkpoint", checkpoint_.dir(), full);
    Tensor t = checkpoint_.tensor(full);
    if (t.shape() != expected)
      fail("{}: weight '{}' has shape {}, expected {}", checkpoint_.dir(), full, shape_to_string(t.shape()),
           shape_to_string(expected));
    if (t.dtype() != DType::F32 && t.dtype() != DType::F16 && t.dtype() != DType::BF16)
      fail("{}: weight '{}' is stored as {}; supported weight dtypes are F32, F16 and BF16", checkpoint_.dir(), full,
           dtype_name(t.dtype()));
    return t;
  }
  bool has(const std::string& name) const { return checkpoint_.contains(prefix_ + name); }

 private:
  const Checkpoint& checkpoint_;
  std::string prefix_;
};

// GPT-2's Conv1D stores [in, out]; kernels want [out, in]. Columns [col0, col0 + cols) of the stored
// matrix become the rows of the result (this also splits the fused c_attn into q, k and v).
Tensor transpose_columns(const Tensor& stored, int64_t col0, int64_t cols) {
  int64_t in = stored.dim(0), out = stored.dim(1);
  size_t es = dtype_size(stored.dtype());
  Tensor t = Tensor::empty(stored.dtype(), {cols, in});
  auto* dst = static_cast<uint8_t*>(t.data());
  auto* src = static_cast<const uint8_t*>(stored.data());
  for (int64_t r = 0; r < in; ++r)
    for (int64_t c = 0; c < cols; ++c)
      std::memcpy(dst + size_t(c * in + r) * es, src + size_t(r * out + col0 + c) * es, es);
  return t;
}

Tensor slice_vector(const Tensor& v, int64_t begin, int64_t count) {
  Tensor t = Tensor::empty(v.dtype(), {count});
  size_t es = dtype_size(v.dtype());
  std::memcpy(t.data(), static_cast<const uint8_t*>(v.data()) + size_t(begin) * es, size_t(count) * es);
  return t;
}

ModelWeights load_llama_family(const ModelSpec& s, const Checkpoint& ckpt) {
  Resolver r(ckpt, "");
  const int64_t H = s.hidden_size, F = s.intermediate_size, D = s.head_dim;
  ModelWeights w;
  w.token_embedding = r.get("model.embed_tokens.weight", {s.vocab_size, H});
  for (int64_t i = 0; i < s.num_layers; ++i) {
    const std::string p = "model.layers." + std::to_string(i) + ".";
    LayerWeights L;
    L.attn_norm.weight = r.get(p + "input_layernorm.weight", {H});
    L.q.weight = r.get(p + "self_attn.q_proj.weight", {s.q_dim(), H});
    L.k.weight = r.get(p + "self_attn.k_proj.weight", {s.kv_dim(), H});
    L.v.weight = r.get(p + "self_attn.v_proj.weight", {s.kv_dim(), H});
    L.o.weight = r.get(p + "self_attn.o_proj.weight", {H, s.q_dim()});
    if (s.qkv_bias) {
      L.q.bias = r.get(p + "self_attn.q_proj.bias", {s.q_dim()});
      L.k.bias = r.get(p + "self_attn.k_proj.bias", {s.kv_dim()});
      L.v.bias = r.get(p + "self_attn.v_proj.bias", {s.kv_dim()});
    }
    if (s.output_bias) L.o.bias = r.get(p + "self_attn.o_proj.bias", {H});
    if (s.qk_norm) {
      L.q_norm.weight = r.get(p + "self_attn.q_norm.weight", {D});
      L.k_norm.weight = r.get(p + "self_attn.k_norm.weight", {D});
    }
    L.mlp_norm.weight = r.get(p + "post_attention_layernorm.weight", {H});
    L.gate.weight = r.get(p + "mlp.gate_proj.weight", {F, H});
    L.up.weight = r.get(p + "mlp.up_proj.weight", {F, H});
    L.down.weight = r.get(p + "mlp.down_proj.weight", {H, F});
    if (s.mlp_bias) {
      L.gate.bias = r.get(p + "mlp.gate_proj.bias", {F});
      L.up.bias = r.get(p + "mlp.up_proj.bias", {F});
      L.down.bias = r.get(p + "mlp.down_proj.bias", {H});
    }
    w.layers.push_back(std::move(L));
  }
  w.final_norm.weight = r.get("model.norm.weight", {H});
  // Some tied checkpoints still carry lm_head.weight; the tie decides.
  w.lm_head.weight = s.tied_embeddings ? w.token_embedding : r.get("lm_head.weight", {s.vocab_size, H});
  return w;
}

ModelWeights load_gpt2(const ModelSpec& s, const Checkpoint& ckpt) {
  // The hub's gpt2 checkpoint has bare names ("h.0.attn..."); save_pretrained writes "transformer.h.0...".
  Resolver r(ckpt, ckpt.contains("transformer.wte.weight") ? "transformer." : "");
  const int64_t H = s.hidden_size, F = s.intermediate_size;
  ModelWeights w;
  w.token_embedding = r.get("wte.weight", {s.vocab_size, H});
  w.position_embedding = r.get("wpe.weight", {s.max_position_embeddings, H});
  for (int64_t i = 0; i < s.num_layers; ++i) {
    const std::string p = "h." + std::to_string(i) + ".";
    LayerWeights L;
    L.attn_norm = {r.get(p + "ln_1.weight", {H}), r.get(p + "ln_1.bias", {H})};
    Tensor c_attn = r.get(p + "attn.c_attn.weight", {H, 3 * H});
    Tensor c_attn_bias = r.get(p + "attn.c_attn.bias", {3 * H});
    L.q = {transpose_columns(c_attn, 0, H), slice_vector(c_attn_bias, 0, H)};
    L.k = {transpose_columns(c_attn, H, H), slice_vector(c_attn_bias, H, H)};
    L.v = {transpose_columns(c_attn, 2 * H, H), slice_vector(c_attn_bias, 2 * H, H)};
    L.o = {transpose_columns(r.get(p + "attn.c_proj.weight", {H, H}), 0, H), r.get(p + "attn.c_proj.bias", {H})};
    L.mlp_norm = {r.get(p + "ln_2.weight", {H}), r.get(p + "ln_2.bias", {H})};
    L.up = {transpose_columns(r.get(p + "mlp.c_fc.weight", {H, F}), 0, F), r.get(p + "mlp.c_fc.bias", {F})};
    L.down = {transpose_columns(r.get(p + "mlp.c_proj.weight", {F, H}), 0, H), r.get(p + "mlp.c_proj.bias", {H})};
    w.layers.push_back(std::move(L));
  }
  w.final_norm = {r.get("ln_f.weight", {H}), r.get("ln_f.bias", {H})};
  w.lm_head.weight = w.token_embedding;  // GPT-2 always ties
  return w;
}

size_t bytes_of(const Tensor& t) { return t.defined() ? t.nbytes() : 0; }
size_t bytes_of(const Linear& l) { return bytes_of(l.weight) + bytes_of(l.bias); }
size_t bytes_of(const Norm& n) { return bytes_of(n.weight) + bytes_of(n.bias); }

}  // namespace

size_t ModelWeights::decode_bytes() const {
  size_t total = bytes_of(final_norm) + bytes_of(lm_head);
  for (const LayerWeights& L : layers)
    total += bytes_of(L.attn_norm) + bytes_of(L.q) + bytes_of(L.k) + bytes_of(L.v) + bytes_of(L.o) +
             bytes_of(L.q_norm) + bytes_of(L.k_norm) + bytes_of(L.mlp_norm) + bytes_of(L.gate) + bytes_of(L.up) +
             bytes_of(L.down);
  return total;
}

DType ModelWeights::stored_dtype() const {
  return layers.empty() ? token_embedding.dtype() : layers[0].q.weight.dtype();
}

ModelWeights load_weights(const ModelSpec& spec, const Checkpoint& checkpoint) {
  if (spec.mlp == MlpKind::GeluTanh && spec.position == PositionKind::Learned) return load_gpt2(spec, checkpoint);
  return load_llama_family(spec, checkpoint);
}

namespace {
// Uploads tensors of one dtype back to back in one allocation and returns views of it, one per part, so a
// backend can run projections of the same input as one GEMM (CudaBackend::matmul_many).
std::vector<Tensor> upload_adjacent(Backend& backend, const std::vector<const Tensor*>& parts, DType as) {
  Shape shape = parts[0]->shape();
  shape[0] = 0;
  for (const Tensor* p : parts) shape[0] += p->dim(0);
  const Tensor joined = backend.alloc(as, shape);
  std::vector<Tensor> views;
  int64_t row = 0;
  for (const Tensor* p : parts) {
    Tensor view = joined.rows(row, row + p->dim(0));
    backend.upload_into(view, *p);  // straight from the checkpoint: no joined host copy
    views.push_back(view);
    row += p->dim(0);
  }
  return views;
}

bool same_layout(const std::vector<const Tensor*>& parts) {
  for (const Tensor* p : parts)
    if (!p->defined() || p->dtype() != parts[0]->dtype() || p->rank() != parts[0]->rank() ||
        (p->rank() == 2 && p->dim(1) != parts[0]->dim(1)))
      return false;
  return true;
}
}  // namespace

ModelWeights upload_weights(const ModelWeights& host, Backend& backend, DType matrix_dtype) {
  if (backend.device() == Device::CPU) return host;
  const DType act = backend.activation_dtype();
  auto up = [&](const Tensor& t, DType as) { return t.defined() ? backend.upload(t, as) : Tensor(); };
  auto linear = [&](const Linear& l) { return Linear{up(l.weight, matrix_dtype), up(l.bias, act)}; };
  // q/k/v and gate/up side by side (weights, and biases when every one has one).
  auto adjacent = [&](std::vector<const Linear*> in, std::vector<Linear*> out) {
    std::vector<const Tensor*> w, b;
    for (const Linear* l : in) w.push_back(&l->weight), b.push_back(&l->bias);
    if (!same_layout(w)) {
      for (size_t i = 0; i < in.size(); ++i) *out[i] = linear(*in[i]);
      return;
    }
    const std::vector<Tensor> wv = upload_adjacent(backend, w, matrix_dtype);
    const bool biases = same_layout(b);
    const std::vector<Tensor> bv = biases ? upload_adjacent(backend, b, act) : std::vector<Tensor>();
    for (size_t i = 0; i < in.size(); ++i) *out[i] = Linear{wv[i], biases ? bv[i] : up(in[i]->bias, act)};
  };
  auto norm = [&](const Norm& n) { return Norm{up(n.weight, DType::F32), up(n.bias, DType::F32)}; };
  ModelWeights out;
  out.token_embedding = up(host.token_embedding, matrix_dtype);
  out.position_embedding = up(host.position_embedding, DType::F32);  // added to the f32 residual stream
  for (const LayerWeights& L : host.layers) {
    LayerWeights d;
    d.attn_norm = norm(L.attn_norm);
    adjacent({&L.q, &L.k, &L.v}, {&d.q, &d.k, &d.v});
    d.o = linear(L.o);
    d.q_norm = norm(L.q_norm);
    d.k_norm = norm(L.k_norm);
    d.mlp_norm = norm(L.mlp_norm);
    if (L.gate.weight.defined())
      adjacent({&L.gate, &L.up}, {&d.gate, &d.up});
    else
      d.up = linear(L.up);
    d.down = linear(L.down);
    out.layers.push_back(std::move(d));
  }
  out.final_norm = norm(host.final_norm);
  const bool tied = host.lm_head.weight.data() == host.token_embedding.data();
  out.lm_head = tied ? Linear{out.token_embedding, up(host.lm_head.bias, act)} : linear(host.lm_head);
  return out;
}

ModelWeights upload_weights(const ModelWeights& host, Backend& backend) {
  return upload_weights(host, backend, host.stored_dtype());
}

}  // namespace roofline
