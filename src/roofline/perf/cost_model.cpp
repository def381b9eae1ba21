#include "roofline/perf/cost_model.h"

#include <limits>

#include "roofline/model/model_spec.h"
#include "roofline/perf/step_shapes.h"

namespace roofline::perf {

namespace {

// Arithmetic per element of the elementwise ops: approximate, and harmless, because these ops sit about
// two orders of magnitude below any ridge point (a few FLOPs per 4 bytes moved).
constexpr double kRmsNormFlops = 4;    // square, sum, scale, weight
constexpr double kLayerNormFlops = 8;  // mean, subtract, square, sum, scale, weight, bias
constexpr double kRopeFlops = 3;       // x*cos - y*sin per element
constexpr double kSiluMulFlops = 5;    // x*sigmoid(x) (exp counted as one) times up
constexpr double kGeluFlops = 8;       // tanh approximation
constexpr double kSoftmaxFlops = 5;    // max, subtract, exp, sum, scale per score or logit
// AdamW per parameter: moments, bias corrections, decay and update; bytes: read the bf16 gradient (2),
// read and write the fp32 master weight (8) and both fp32 moments (16), write the bf16 weight (2).
constexpr double kAdamFlops = 12;
constexpr double kAdamBytes = 28;
// The backward of an elementwise op reads its saved input and the incoming gradient and writes the outgoing
// gradient (1.5x the forward's read+write traffic) with about twice the arithmetic.
constexpr double kElementwiseBackwardFlops = 2;
constexpr double kElementwiseBackwardBytes = 1.5;
// Flash-attention backward: S = QK^T is recomputed, then dV = P^T dO, dP = dO V^T, dQ = dS K, dK = dS^T Q:
// five products against the forward's two. Split as scores (QK^T, dQ, dK: 3x) and values (dV, dP: 2x).
constexpr double kScoresBackwardProducts = 3;
constexpr double kValuesBackwardProducts = 2;

class Builder {
 public:
  Builder(const ModelSpec& spec, const Workload& w) : spec_(spec), w_(w), s_(step_shapes(spec, w)) {}

  std::vector<OpCost> build() {
    embedding();
    for (const OpCost& op : layer()) {  // per-layer ops, already multiplied by the layer count
      fwd_.push_back(op);
      if (w_.checkpointing) {
        OpCost again = op;
        again.phase = OpPhase::Recompute;
        recompute_.push_back(again);
      }
    }
    head();
    count_fused_kernels(fwd_);
    count_fused_kernels(recompute_);
    std::vector<OpCost> all = fwd_;
    all.insert(all.end(), recompute_.begin(), recompute_.end());
    all.insert(all.end(), bwd_.begin(), bwd_.end());
    if (training()) optimizer(all);
    return all;
  }

 private:
  bool training() const { return w_.kind == WorkloadKind::Train; }
  double norm_flops() const { return spec_.norm == NormKind::LayerNorm ? kLayerNormFlops : kRmsNormFlops; }
  double norm_weight_bytes() const {
    return (spec_.norm == NormKind::LayerNorm ? 2 : 1) * s_.hidden * s_.dense_weight_bytes;
  }

  static OpCost op(OpGroup group, OpPhase phase, std::string name, double repeats, double flops, double bytes) {
    OpCost c;
    c.name = std::move(name);
    c.group = group;
    c.phase = phase;
    c.repeats = repeats;
    c.flops = flops * repeats;
    c.bytes = bytes * repeats;
    c.kernels = repeats;
    return c;
  }

  // Rows of a decode-sized step run through the CUDA decoder's GEMV path, which fuses k/v into q's kernel,
  // up into gate's and the SwiGLU into its epilogue, and (RMSNorm models) each layer's two norms into the
  // prologue of the GEMV after them; flash attention is one kernel for scores and values (two when decode
  // splits the context: partials, then their reduction); qk-norm runs inside RoPE.
  void count_fused_kernels(std::vector<OpCost>& ops) const {
    const bool gemv = s_.tokens <= kGemvMaxRows;
    for (OpCost& c : ops) {
      if (c.phase != OpPhase::Forward && c.phase != OpPhase::Recompute) continue;
      if (c.name == "attention_values" || c.name == "qk_norm") c.kernels = 0;
      if (c.name == "attention_scores" && !training() && s_.tokens == s_.sequences) c.kernels = 2 * c.repeats;
      if (gemv && (c.name == "k_proj" || c.name == "v_proj" || c.name == "silu_mul" ||
                   (c.name == "up_proj" && spec_.mlp == MlpKind::GatedSiLU) ||
                   (spec_.norm == NormKind::RMSNorm && (c.name == "attn_norm" || c.name == "mlp_norm"))))
        c.kernels = 0;
    }
  }

  // An elementwise op and, when training, its backward.
  void elementwise(std::vector<OpCost>& out, OpGroup group, std::string name, double repeats, double flops,
                   double bytes) {
    out.push_back(op(group, OpPhase::Forward, name, repeats, flops, bytes));
    if (training())
      bwd_.push_back(op(group, OpPhase::Backward, std::move(name), repeats, kElementwiseBackwardFlops * flops,
                        kElementwiseBackwardBytes * bytes));
  }

  // out[M, N] = x[M, K] . W[N, K]^T (+ bias); weight_bytes as stored. Backward: dX = dY W and dW = dY^T X.
  void matmul(std::vector<OpCost>& out, OpGroup group, std::string name, double repeats, double M, double N,
              double K, double weight_bytes, bool bias, bool quantized, double out_elem_bytes = 0) {
    if (out_elem_bytes == 0) out_elem_bytes = s_.activation_bytes;
    const double bias_bytes = bias ? N * s_.dense_weight_bytes : 0;
    OpCost f = op(group, OpPhase::Forward, name, repeats, 2 * M * N * K + (bias ? M * N : 0),
                  weight_bytes + bias_bytes + M * K * s_.activation_bytes + M * N * out_elem_bytes);
    f.matmul = true;
    f.fp8 = quantized && w_.weights == WeightDType::FP8;
    f.gemms = {{M, N, K}};
    out.push_back(f);
    if (!training()) return;
    // Reads W, the saved X and dY; writes dX and the bf16 gradient of W (and of the bias).
    OpCost b = op(group, OpPhase::Backward, std::move(name), repeats, 4 * M * N * K + (bias ? M * N : 0),
                  weight_bytes + bias_bytes + 2 * M * K * s_.activation_bytes + M * N * s_.activation_bytes +
                      N * K * 2 + bias_bytes);
    b.matmul = true;
    b.gemms = {{M, K, N}, {N, K, M}};  // dX[M, K] = dY[M, N] . W[N, K]; dW[N, K] = dY^T[N, M] . X[M, K]
    bwd_.push_back(b);
  }

  void embedding() {
    const double M = s_.tokens, H = s_.hidden;
    // A gather: read M rows of the table, write M activations (plus the learned position rows, added).
    const bool learned = spec_.position == PositionKind::Learned;
    fwd_.push_back(op(OpGroup::Embedding, OpPhase::Forward, "embedding", 1, learned ? M * H : 0,
                      (learned ? 3 : 2) * M * H * s_.activation_bytes));
    // Backward: scatter-add dY into the gradient rows (read dY, read and write the rows).
    if (training())
      bwd_.push_back(op(OpGroup::Embedding, OpPhase::Backward, "embedding", 1, M * H, 3 * M * H * s_.activation_bytes));
  }

  std::vector<OpCost> layer() {
    std::vector<OpCost> ops;
    const double L = s_.layers, M = s_.tokens, H = s_.hidden, D = s_.head_dim, F = s_.ffn;
    const double Q = s_.q_dim, KV = s_.kv_dim;
    const WeightDType dt = w_.weights;
    // Residual add fused with the norm (as the CUDA backend's add_rms_norm): read x and the residual,
    // write the residual and the normalised activations.
    const double norm_bytes = 4 * M * H * s_.activation_bytes + norm_weight_bytes();
    const double norm_step_flops = M * H * (norm_flops() + 1);
    elementwise(ops, OpGroup::Layer, "attn_norm", L, norm_step_flops, norm_bytes);
    matmul(ops, OpGroup::Layer, "q_proj", L, M, Q, H, linear_weight_bytes(Q, H, dt), spec_.qkv_bias, true);
    matmul(ops, OpGroup::Layer, "k_proj", L, M, KV, H, linear_weight_bytes(KV, H, dt), spec_.qkv_bias, true);
    matmul(ops, OpGroup::Layer, "v_proj", L, M, KV, H, linear_weight_bytes(KV, H, dt), spec_.qkv_bias, true);
    if (spec_.qk_norm)
      elementwise(ops, OpGroup::Layer, "qk_norm", L, M * (Q + KV) * kRmsNormFlops,
                  2 * M * (Q + KV) * s_.activation_bytes + 4 * D);
    if (spec_.position == PositionKind::Rotary)
      elementwise(ops, OpGroup::Layer, "rope", L, M * (Q + KV) * kRopeFlops, 2 * M * (Q + KV) * s_.activation_bytes);
    attention(ops);
    matmul(ops, OpGroup::Layer, "o_proj", L, M, H, Q, linear_weight_bytes(H, Q, dt), spec_.output_bias, true);
    elementwise(ops, OpGroup::Layer, "mlp_norm", L, norm_step_flops, norm_bytes);
    const bool gated = spec_.mlp == MlpKind::GatedSiLU;
    if (gated) matmul(ops, OpGroup::Layer, "gate_proj", L, M, F, H, linear_weight_bytes(F, H, dt), spec_.mlp_bias, true);
    matmul(ops, OpGroup::Layer, "up_proj", L, M, F, H, linear_weight_bytes(F, H, dt), spec_.mlp_bias, true);
    if (gated)
      elementwise(ops, OpGroup::Layer, "silu_mul", L, M * F * kSiluMulFlops, 3 * M * F * s_.activation_bytes);
    else
      elementwise(ops, OpGroup::Layer, "gelu", L, M * F * kGeluFlops, 2 * M * F * s_.activation_bytes);
    matmul(ops, OpGroup::Layer, "down_proj", L, M, H, F, linear_weight_bytes(H, F, dt), spec_.mlp_bias, true);
    return ops;
  }

  // Fused (flash) attention, split in two rows so that the table shows both halves: the scores read Q and
  // the cached keys, the values read the cached values and write the output. Scores never reach memory.
  void attention(std::vector<OpCost>& ops) {
    const double L = s_.layers, M = s_.tokens, D = s_.head_dim, B = s_.sequences;
    const double pairs = B * s_.attended_pairs * s_.heads;  // scored (query, key) pairs on this device
    const double kv_bytes = B * s_.keys_read * s_.kv_dim * s_.kv_bytes;  // K (or V) read once per sequence
    const double q_bytes = M * s_.q_dim * s_.activation_bytes;
    OpCost scores = op(OpGroup::Layer, OpPhase::Forward, "attention_scores", L, 2 * pairs * D + kSoftmaxFlops * pairs,
                       q_bytes + kv_bytes);
    OpCost values = op(OpGroup::Layer, OpPhase::Forward, "attention_values", L, 2 * pairs * D, kv_bytes + q_bytes);
    // Per (sequence, head): S[T, keys] = Q[T, D] . K^T and O[T, D] = P[T, keys] . V; the causal mask halves the
    // FLOPs a kernel executes, not the shape its tiles cover.
    const double T = s_.tokens / B, keys = s_.keys_read, heads = B * s_.heads;
    const GemmShape qk{T, keys, D, heads}, pv{T, D, keys, heads};
    scores.gemms = {qk};
    values.gemms = {pv};
    ops.push_back(scores);
    ops.push_back(values);
    if (!training()) return;
    // Backward: scores read Q, K (and the saved row statistics) and write dQ, dK; values read V, O, dO and
    // write dV.
    OpCost scores_bwd = op(OpGroup::Layer, OpPhase::Backward, "attention_scores", L,
                           kScoresBackwardProducts * 2 * pairs * D + kSoftmaxFlops * pairs, 2 * q_bytes + 2 * kv_bytes);
    scores_bwd.gemms = {qk, {T, D, keys, heads}, {keys, D, T, heads}};  // S again, dQ = dS . K, dK = dS^T . Q
    OpCost values_bwd = op(OpGroup::Layer, OpPhase::Backward, "attention_values", L,
                           kValuesBackwardProducts * 2 * pairs * D, 2 * q_bytes + 2 * kv_bytes);
    values_bwd.gemms = {{keys, D, T, heads}, qk};  // dV = P^T . dO, dP = dO . V^T
    bwd_.push_back(scores_bwd);
    bwd_.push_back(values_bwd);
  }

  void head() {
    const double M = s_.head_tokens, H = s_.hidden, V = s_.vocab;
    elementwise(fwd_, OpGroup::Head, "final_norm", 1, M * H * norm_flops(),
                2 * M * H * s_.activation_bytes + norm_weight_bytes());
    // A tied lm_head reads the embedding table; an untied one is stored like the other linear weights.
    const bool tied = spec_.tied_embeddings;
    const double w_bytes = tied ? V * H * s_.dense_weight_bytes : linear_weight_bytes(V, H, w_.weights);
    matmul(fwd_, OpGroup::Head, "lm_head", 1, M, V, H, w_bytes, false, !tied, kLogitBytes);
    if (training()) {
      // Softmax and loss over the f32 logits; the backward writes bf16 dlogits (one fused pass, as llm.c).
      fwd_.push_back(op(OpGroup::Head, OpPhase::Forward, "cross_entropy", 1, kSoftmaxFlops * M * V, M * V * kLogitBytes));
      bwd_.push_back(op(OpGroup::Head, OpPhase::Backward, "cross_entropy", 1, 2 * M * V, M * V * s_.activation_bytes));
    } else {
      // Softmax (or argmax) over each row of logits, then one draw.
      fwd_.push_back(op(OpGroup::Head, OpPhase::Forward, "sampling", 1, kSoftmaxFlops * M * V, M * V * kLogitBytes));
    }
  }

  void optimizer(std::vector<OpCost>& all) {
    double params = 0;
    for (const WeightTensor& t : device_weight_tensors(spec_, w_.tp)) params += t.elements * t.repeats;
    if (w_.zero >= 1) params /= w_.dp;  // each rank updates only its shard of the optimizer state
    all.push_back(op(OpGroup::Optimizer, OpPhase::Update, "adamw", 1, kAdamFlops * params, kAdamBytes * params));
  }

  const ModelSpec& spec_;
  const Workload& w_;
  const StepShapes s_;
  std::vector<OpCost> fwd_, recompute_, bwd_;
};

}  // namespace

double OpCost::intensity() const { return bytes > 0 ? flops / bytes : std::numeric_limits<double>::infinity(); }

std::string_view to_string(OpGroup group) {
  switch (group) {
    case OpGroup::Embedding: return "embedding";
    case OpGroup::Layer: return "layer";
    case OpGroup::Head: return "head";
    case OpGroup::Optimizer: return "optimizer";
  }
  return "?";
}

std::string_view to_string(OpPhase phase) {
  switch (phase) {
    case OpPhase::Forward: return "forward";
    case OpPhase::Backward: return "backward";
    case OpPhase::Recompute: return "recompute";
    case OpPhase::Update: return "update";
  }
  return "?";
}

std::vector<OpCost> step_costs(const ModelSpec& spec, const Workload& workload) {
  validate(workload, spec);
  return Builder(spec, workload).build();
}

double total_flops(const std::vector<OpCost>& ops) {
  double sum = 0;
  for (const OpCost& op : ops) sum += op.flops;
  return sum;
}

double total_bytes(const std::vector<OpCost>& ops) {
  double sum = 0;
  for (const OpCost& op : ops) sum += op.bytes;
  return sum;
}

}  // namespace roofline::perf
