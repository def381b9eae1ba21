// A Backend that forwards every op to another backend and times each call. Two uses:
//  - `bench --ops`: per-op-name totals of wall time (timings(); per phase in phase_timings()); steady clock,
//    synchronising after each op so a device backend's asynchronous op is timed to completion.
//  - `roofline profile` / `report`: an OpListener attached to it receives every call with its work (FLOPs
//    and bytes from the tensor shapes, op_work below) and its host begin/end. A listener that times ops on
//    the device itself (CUDA events on the stream) says so, and then the TimedBackend does not synchronise.
// Recording (CUDA graphs) is off while timing: every op runs eagerly.
#pragma once
#include <algorithm>
#include <chrono>
#include <map>
#include <memory>
#include <string>

#include "roofline/backend/backend.h"
#include "roofline/backend/phase.h"

namespace roofline {

struct OpTiming {
  double seconds = 0;
  int64_t calls = 0;
};

// What a call is, for the profiler's bottleneck classes. Sync is a host wait (synchronize()), not an op.
enum class OpCategory : uint8_t { Compute, Copy, Collective, Sync };

// The work of one op call from its tensor shapes: FLOPs (a multiply-add counts 2; exp, rsqrt, tanh count 1)
// and compulsory bytes to and from memory (every input read once and every output written once, in their
// stored dtypes: a fused kernel, e.g. attention scores never leave the chip). `shape` is a short signature
// ("M=1 N=4096 K=4096 bf16") that tells apart calls of one op name with different shapes.
struct OpWork {
  double flops = 0;
  double bytes = 0;
  std::string shape;
};

// One call as a TimedBackend saw it. Times are steady-clock seconds (on a device backend whose listener
// times on the device: the host's enqueue span).
struct OpCall {
  const char* name = "";
  OpCategory category = OpCategory::Compute;
  const OpWork* work = nullptr;
  double host_begin = 0, host_end = 0;
  PhaseTag phase;  // current_phase() of the thread that ran it
};

// Receives every call of a TimedBackend it is attached to. Called on the thread that runs the op.
class OpListener {
 public:
  virtual ~OpListener() = default;
  // true: the listener times ops on the device (op_begin/op_end enqueue timestamps on the stream), so
  // the TimedBackend does not synchronise after each op.
  virtual bool times_on_device() const { return false; }
  // Just before the op is forwarded to the inner backend.
  virtual void op_begin(OpCategory) {}
  // Just after it returns (after synchronising unless times_on_device()).
  virtual void op_end(const OpCall& call) = 0;
  // The TimedBackend is being destroyed; its inner backend has been synchronised and is still alive.
  virtual void backend_closing() {}
};

namespace op_work {

inline double bytes_of(const Tensor& t) { return double(t.nbytes()); }
inline double rows_of(const Tensor& t) { return t.rank() == 0 ? 1.0 : double(t.numel() / t.dim(-1)); }
inline std::string dtype_tag(const Tensor& t) {
  std::string s(dtype_name(t.dtype()));
  for (char& c : s) c = char(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
  return s;
}
// Contexts in shape signatures are rounded up to a power of two, so decode steps group into a few shapes.
inline int64_t context_bucket(int64_t n) {
  int64_t b = 1;
  while (b < n) b *= 2;
  return b;
}

// out[M, N] = x[M, K] · w[N, K]^T (+ bias): 2·M·N·K FLOPs; x, w, bias read, out written.
inline OpWork matmul(const Tensor& out, const Tensor& x, const Tensor& w, const Tensor* bias) {
  const double m = rows_of(x), n = double(w.dim(0)), k = double(w.dim(1));
  OpWork r;
  r.flops = 2.0 * m * n * k + (bias ? m * n : 0.0);
  r.bytes = bytes_of(x) + bytes_of(w) + bytes_of(out) + (bias ? bytes_of(*bias) : 0.0);
  r.shape = "M=" + std::to_string(int64_t(m)) + " N=" + std::to_string(int64_t(n)) + " K=" +
            std::to_string(int64_t(k)) + " " + dtype_tag(w);
  return r;
}

// Several projections of one x: x is read once.
inline OpWork matmul_many(const Tensor& x, std::span<const MatmulTarget> targets) {
  OpWork r;
  r.bytes = bytes_of(x);
  int64_t n = 0;
  for (const MatmulTarget& t : targets) {
    OpWork one = matmul(*t.out, x, *t.w, t.bias);
    r.flops += one.flops;
    r.bytes += one.bytes - bytes_of(x);
    n += t.w->dim(0);
  }
  const Tensor* w0 = targets.empty() ? nullptr : targets[0].w;
  r.shape = "M=" + std::to_string(int64_t(rows_of(x))) + " N=" + std::to_string(n) + " K=" +
            std::to_string(x.rank() ? x.dim(-1) : 0) + (w0 ? " " + dtype_tag(*w0) : "") + " x" +
            std::to_string(targets.size());
  return r;
}

// Both projections of one x and silu(gate) * up (5 FLOPs per output); one output written, as when fused.
inline OpWork matmul_swiglu(const Tensor& x, const MatmulTarget& gate, const MatmulTarget& up) {
  const MatmulTarget both[] = {gate, up};
  OpWork r = matmul_many(x, both);
  r.flops += 5.0 * double(up.out->numel());
  r.bytes -= bytes_of(*gate.out);
  return r;
}

// The projections of x = rms_norm(residual) * weight (`projected`: their work with x as the input): the f32
// residual and the weight are read instead of x, and the norm's 4 FLOPs per element are added.
inline OpWork rms_norm_matmul(const RmsNormInput& in, OpWork projected) {
  projected.bytes += bytes_of(*in.residual) + bytes_of(*in.weight) - bytes_of(*in.normed);
  projected.flops += 4.0 * double(in.residual->numel());
  return projected;
}

// out[T, H] = table[ids]: rows gathered (read in the table's dtype) and written.
inline OpWork embedding(const Tensor& out, const Tensor& table, int64_t count) {
  OpWork r;
  const double row = double(table.dim(-1));
  r.bytes = double(count) * (row * double(dtype_size(table.dtype())) + 4.0) + bytes_of(out);
  r.shape = "T=" + std::to_string(count);
  return r;
}

// Row-wise norm over x[rows, H]: `per_element` FLOPs per element; x read, out written, the params read.
inline OpWork row_norm(const Tensor& out, const Tensor& x, double params_bytes, double per_element) {
  OpWork r;
  r.flops = per_element * double(x.numel());
  r.bytes = bytes_of(x) + bytes_of(out) + params_bytes;
  r.shape = "T=" + std::to_string(int64_t(rows_of(x)));
  return r;
}

// Elementwise over n outputs: `reads` input tensors of the output's size, one write.
inline OpWork elementwise(const Tensor& out, int reads, double per_element) {
  OpWork r;
  r.flops = per_element * double(out.numel());
  r.bytes = double(reads + 1) * bytes_of(out);
  r.shape = "T=" + std::to_string(int64_t(rows_of(out)));
  return r;
}

// x[T, heads, D] rotated in place over rotary_dim: 6 FLOPs per pair; x read and written, one cos and one
// sin row per token. With a head norm: 4 more FLOPs per element and the norm weights.
inline OpWork rope(const Tensor& x, int rotary_dim, const Tensor* head_norm) {
  OpWork r;
  const double t = double(x.dim(0)), heads = x.rank() >= 3 ? double(x.dim(1)) : 1.0;
  r.flops = 3.0 * t * heads * double(rotary_dim) + (head_norm ? 4.0 * double(x.numel()) : 0.0);
  r.bytes = 2.0 * bytes_of(x) + t * double(rotary_dim) * 4.0 + t * 4.0 + (head_norm ? bytes_of(*head_norm) : 0.0);
  r.shape = "T=" + std::to_string(int64_t(t));
  return r;
}

// Attention over `key_rows` (query, key) pairs per query head: 2·D FLOPs for q·k, 2·D for p·v, ~5 for the
// softmax; q read, out written, and each cached key and value (positions 0 .. context-1) read once.
inline OpWork attention_from(const Tensor& out, const Tensor& q, double pairs, double context_positions,
                             double kv_row_bytes) {
  OpWork r;
  const double hq = q.rank() >= 3 ? double(q.dim(1)) : 1.0, d = double(q.dim(-1));
  r.flops = hq * pairs * (4.0 * d + 5.0);
  r.bytes = bytes_of(q) + bytes_of(out) + 2.0 * context_positions * kv_row_bytes;
  return r;
}

// Contiguous cache of one sequence; query row t sits at position start_pos + t.
inline OpWork attention(const Tensor& out, const Tensor& q, const Tensor& k_cache, const AttentionParams& p) {
  const int64_t T = q.dim(0);
  double pairs = 0;
  for (int64_t t = 0; t < T; ++t) {
    const int64_t pos = p.start_pos + t;
    pairs += double(p.sliding_window > 0 ? std::min<int64_t>(pos + 1, p.sliding_window) : pos + 1);
  }
  const double context = double(p.start_pos + T);
  const double kv_row = double(k_cache.numel() / std::max<int64_t>(k_cache.dim(0), 1)) * double(dtype_size(k_cache.dtype()));
  OpWork r = attention_from(out, q, pairs, context, kv_row);
  r.shape = "T=" + std::to_string(T) + " ctx<=" + std::to_string(context_bucket(p.start_pos + T));
  return r;
}

// Paged: exact from the batch's tensors when they are in host memory, else bounded by max_context_len.
inline OpWork paged_attention(const Tensor& out, const Tensor& q, const Tensor& k_pool, const PagedAttentionBatch& b) {
  // Bytes of one pool row (every kv head), with the f32 scale per kv head of an F8E4M3 pool.
  const double kv_row = k_pool.rank() >= 2
                            ? double(k_pool.numel() / std::max<int64_t>(k_pool.dim(0) * k_pool.dim(1), 1)) *
                                      double(dtype_size(k_pool.dtype())) +
                                  (k_pool.dtype() == DType::F8E4M3 && k_pool.rank() == 4
                                       ? double(k_pool.dim(2)) * sizeof(float)
                                       : 0.0)
                            : 0.0;
  double pairs = 0, context = 0;
  const bool host = b.query_start && b.context_len && b.query_start->device() == Device::CPU &&
                    b.context_len->device() == Device::CPU;
  if (host) {
    const int32_t* qs = b.query_start->ptr<int32_t>();
    const int32_t* cl = b.context_len->ptr<int32_t>();
    for (int s = 0; s < b.num_seqs; ++s) {
      const int64_t n = qs[s + 1] - qs[s], len = cl[s];
      for (int64_t i = 0; i < n; ++i) {
        const int64_t pos = len - n + i;
        pairs += double(b.sliding_window > 0 ? std::min<int64_t>(pos + 1, b.sliding_window) : pos + 1);
      }
      context += double(len);
    }
  } else {
    pairs = double(q.dim(0)) * double(b.max_context_len);
    context = double(b.num_seqs) * double(b.max_context_len);
  }
  OpWork r = attention_from(out, q, pairs, context, kv_row);
  r.shape = "T=" + std::to_string(q.dim(0)) + " seqs=" + std::to_string(b.num_seqs) +
            " ctx<=" + std::to_string(context_bucket(b.max_context_len));
  return r;
}

// A copy of `bytes` (host-device transfer, or a gather/scatter on the device: read + write).
inline OpWork copy(double bytes, const std::string& shape) {
  OpWork r;
  r.bytes = bytes;
  r.shape = shape;
  return r;
}

}  // namespace op_work

class TimedBackend final : public Backend {
 public:
  explicit TimedBackend(Backend& inner, OpListener* listener = nullptr) : inner_(inner), listener_(listener) {}
  // Owns its inner backend (what the profiler's backend hook returns in place of the one it wraps).
  TimedBackend(std::unique_ptr<Backend> inner, OpListener* listener)
      : owned_(std::move(inner)), inner_(*owned_), listener_(listener) {}
  ~TimedBackend() override {
    if (listener_) {
      try {  // a destructor must not throw: a failing device leaves the listener with what it has
        inner_.synchronize();
        listener_->backend_closing();
      } catch (...) {
      }
    }
  }
  TimedBackend(const TimedBackend&) = delete;
  TimedBackend& operator=(const TimedBackend&) = delete;

  std::string name() const override { return inner_.name() + "+timed"; }
  Device device() const override { return inner_.device(); }
  // Every call, all phases together.
  const std::map<std::string, OpTiming>& timings() const { return timings_; }
  // The same per phase (PhaseTag::name; "" for ops outside any PhaseScope), then per op name.
  const std::map<std::string, std::map<std::string, OpTiming>>& phase_timings() const { return phase_timings_; }
  void reset() {
    timings_.clear();
    phase_timings_.clear();
  }
  Backend& inner() { return inner_; }

  DType activation_dtype() const override { return inner_.activation_dtype(); }
  Tensor alloc(DType dtype, Shape shape) override { return inner_.alloc(dtype, std::move(shape)); }
  Tensor upload(const Tensor& host, DType as) override {
    Timer t(this, "upload", OpCategory::Copy,
            [&] { return op_work::copy(double(host.nbytes()), std::to_string(host.nbytes()) + " B"); });
    return inner_.upload(host, as);
  }
  void upload_into(Tensor& dst, const Tensor& host) override {
    Timer t(this, "upload", OpCategory::Copy,
            [&] { return op_work::copy(double(host.nbytes()), std::to_string(host.nbytes()) + " B"); });
    inner_.upload_into(dst, host);
  }
  void download(const Tensor& device, Tensor& host) override {
    Timer t(this, "download", OpCategory::Copy,
            [&] { return op_work::copy(double(device.nbytes()), std::to_string(device.nbytes()) + " B"); });
    inner_.download(device, host);
  }
  void copy_from_host(Tensor& dst, const void* src) override {
    Timer t(this, "copy_from_host", OpCategory::Copy,
            [&] { return op_work::copy(double(dst.nbytes()), std::to_string(dst.nbytes()) + " B"); });
    inner_.copy_from_host(dst, src);
  }
  void synchronize() override {
    if (!listener_) {
      inner_.synchronize();
      return;
    }
    // A host wait: reported to the listener only (not an op of timings()).
    listener_->op_begin(OpCategory::Sync);
    const double begin = now();
    inner_.synchronize();
    OpWork none;
    listener_->op_end(OpCall{"synchronize", OpCategory::Sync, &none, begin, now(), current_phase()});
  }
  // Timing needs each op to run eagerly, so nothing is recorded.
  std::unique_ptr<RecordedOps> record(const std::function<void()>&) override { return nullptr; }

  void matmul(Tensor& out, const Tensor& x, const Tensor& w, const Tensor* bias) override {
    Timer t(this, "matmul", OpCategory::Compute, [&] { return op_work::matmul(out, x, w, bias); });
    inner_.matmul(out, x, w, bias);
  }
  void matmul_many(const Tensor& x, std::span<const MatmulTarget> targets) override {
    Timer t(this, "matmul", OpCategory::Compute, [&] { return op_work::matmul_many(x, targets); });
    inner_.matmul_many(x, targets);
  }
  void matmul_swiglu(const Tensor& x, const MatmulTarget& gate, const MatmulTarget& up) override {
    Timer t(this, "matmul_swiglu", OpCategory::Compute, [&] { return op_work::matmul_swiglu(x, gate, up); });
    inner_.matmul_swiglu(x, gate, up);
  }
  void rms_norm_matmul_many(const RmsNormInput& in, std::span<const MatmulTarget> targets) override {
    Timer t(this, "norm_matmul", OpCategory::Compute, [&] { return op_work::rms_norm_matmul(in, op_work::matmul_many(*in.normed, targets)); });
    inner_.rms_norm_matmul_many(in, targets);
  }
  void rms_norm_matmul_swiglu(const RmsNormInput& in, const MatmulTarget& gate, const MatmulTarget& up) override {
    Timer t(this, "norm_matmul_swiglu", OpCategory::Compute,
            [&] { return op_work::rms_norm_matmul(in, op_work::matmul_swiglu(*in.normed, gate, up)); });
    inner_.rms_norm_matmul_swiglu(in, gate, up);
  }
  void matmul_add(Tensor& residual, const Tensor& x, const Tensor& w, const Tensor* bias, Tensor& scratch) override {
    Timer t(this, "matmul_add", OpCategory::Compute, [&] {
      OpWork r = op_work::matmul(residual, x, w, bias);
      r.flops += double(residual.numel());          // the add
      r.bytes += op_work::bytes_of(residual);       // the residual is read as well as written
      return r;
    });
    inner_.matmul_add(residual, x, w, bias, scratch);
  }
  void embedding(Tensor& out, const Tensor& table, const int32_t* ids, int64_t count) override {
    Timer t(this, "embedding", OpCategory::Compute, [&] { return op_work::embedding(out, table, count); });
    inner_.embedding(out, table, ids, count);
  }
  void rms_norm(Tensor& out, const Tensor& x, const Tensor& weight, float eps) override {
    Timer t(this, "rms_norm", OpCategory::Compute,
            [&] { return op_work::row_norm(out, x, op_work::bytes_of(weight), 4.0); });
    inner_.rms_norm(out, x, weight, eps);
  }
  void layer_norm(Tensor& out, const Tensor& x, const Tensor& weight, const Tensor& bias, float eps) override {
    Timer t(this, "layer_norm", OpCategory::Compute,
            [&] { return op_work::row_norm(out, x, op_work::bytes_of(weight) + op_work::bytes_of(bias), 7.0); });
    inner_.layer_norm(out, x, weight, bias, eps);
  }
  void add(Tensor& inout, const Tensor& x) override {
    Timer t(this, "add", OpCategory::Compute, [&] { return op_work::elementwise(inout, 2, 1.0); });
    inner_.add(inout, x);
  }
  void add_row(Tensor& inout, int64_t row_index, const Tensor& table, int64_t row) override {
    Timer t(this, "add_row", OpCategory::Compute, [&] {
      const double n = double(inout.dim(-1));
      OpWork r;
      r.flops = n;
      r.bytes = n * (8.0 + double(dtype_size(table.dtype())));
      r.shape = "T=1";
      return r;
    });
    inner_.add_row(inout, row_index, table, row);
  }
  void rope(Tensor& x, const int32_t* positions, const Tensor& cos, const Tensor& sin, int rotary_dim) override {
    Timer t(this, "rope", OpCategory::Compute, [&] { return op_work::rope(x, rotary_dim, nullptr); });
    inner_.rope(x, positions, cos, sin, rotary_dim);
  }
  void silu_mul(Tensor& out, const Tensor& gate, const Tensor& up) override {
    Timer t(this, "silu_mul", OpCategory::Compute, [&] { return op_work::elementwise(out, 2, 5.0); });
    inner_.silu_mul(out, gate, up);
  }
  void gelu_tanh(Tensor& x) override {
    Timer t(this, "gelu_tanh", OpCategory::Compute, [&] { return op_work::elementwise(x, 1, 8.0); });
    inner_.gelu_tanh(x);
  }
  void attention(Tensor& out, const Tensor& q, const Tensor& k_cache, const Tensor& v_cache,
                 const AttentionParams& params) override {
    Timer t(this, "attention", OpCategory::Compute, [&] { return op_work::attention(out, q, k_cache, params); });
    inner_.attention(out, q, k_cache, v_cache, params);
  }
  void embedding(Tensor& out, const Tensor& table, const Tensor& ids) override {
    Timer t(this, "embedding", OpCategory::Compute, [&] { return op_work::embedding(out, table, ids.numel()); });
    inner_.embedding(out, table, ids);
  }
  void add_rows(Tensor& inout, const Tensor& table, const Tensor& rows) override {
    Timer t(this, "add_row", OpCategory::Compute, [&] {
      OpWork r = op_work::elementwise(inout, 1, 1.0);
      r.bytes += double(rows.numel()) * (double(inout.dim(-1)) * double(dtype_size(table.dtype())) + 4.0);
      return r;
    });
    inner_.add_rows(inout, table, rows);
  }
  void rope(Tensor& x, const Tensor& positions, const Tensor& cos, const Tensor& sin, int rotary_dim,
            const Tensor* head_norm, float eps) override {
    Timer t(this, "rope", OpCategory::Compute, [&] { return op_work::rope(x, rotary_dim, head_norm); });
    inner_.rope(x, positions, cos, sin, rotary_dim, head_norm, eps);
  }
  void gather_rows(Tensor& out, const Tensor& x, const Tensor& rows) override {
    Timer t(this, "gather_rows", OpCategory::Compute, [&] {
      return op_work::copy(2.0 * op_work::bytes_of(out) + op_work::bytes_of(rows),
                           "T=" + std::to_string(rows.numel()));
    });
    inner_.gather_rows(out, x, rows);
  }
  void add_rms_norm(Tensor& residual, const Tensor& x, const Tensor& weight, Tensor& out, float eps) override {
    Timer t(this, "add_rms_norm", OpCategory::Compute, [&] {
      // residual read and written, x read, out written, weight read; the add and the norm per element.
      return op_work::row_norm(out, x, 2.0 * op_work::bytes_of(residual) + op_work::bytes_of(weight), 5.0);
    });
    inner_.add_rms_norm(residual, x, weight, out, eps);
  }
  void add_layer_norm(Tensor& residual, const Tensor& x, const Tensor& weight, const Tensor& bias, Tensor& out,
                      float eps) override {
    Timer t(this, "add_layer_norm", OpCategory::Compute, [&] {
      return op_work::row_norm(
          out, x, 2.0 * op_work::bytes_of(residual) + op_work::bytes_of(weight) + op_work::bytes_of(bias), 8.0);
    });
    inner_.add_layer_norm(residual, x, weight, bias, out, eps);
  }
  void convert(Tensor& out, const Tensor& in) override {
    Timer t(this, "convert", OpCategory::Copy, [&] { return op_work::elementwise(out, 1, 0.0); });
    inner_.convert(out, in);
  }
  void argmax(Tensor& ids, const Tensor& logits) override {
    Timer t(this, "argmax", OpCategory::Compute, [&] { return op_work::elementwise(logits, 0, 1.0); });
    inner_.argmax(ids, logits);
  }
  void sample(Tensor& ids, const Tensor& logits, const TokenSampling& params) override {
    // softmax with temperature, then the filters: a handful of FLOPs per logit, the logits read once.
    Timer t(this, "sample", OpCategory::Compute, [&] { return op_work::elementwise(logits, 0, 5.0); });
    inner_.sample(ids, logits, params);
  }
  void store_kv(Tensor& k_pool, Tensor& v_pool, const Tensor& k, const Tensor& v, const Tensor& slots,
                const KvScales& scales = {}) override {
    Timer t(this, "store_kv", OpCategory::Compute, [&] {
      // k and v read, written to the pools in the pool dtype (and their scales).
      const double written = double(k.numel() + v.numel()) * double(dtype_size(k_pool.dtype())) +
                             (scales.k ? 2.0 * double(slots.numel()) * double(k_pool.dim(2)) * sizeof(float) : 0.0);
      return op_work::copy(op_work::bytes_of(k) + op_work::bytes_of(v) + written + op_work::bytes_of(slots),
                           "T=" + std::to_string(k.dim(0)));
    });
    inner_.store_kv(k_pool, v_pool, k, v, slots, scales);
  }
  void rope_store_kv(Tensor& q, Tensor& k, const Tensor& v, const RotaryStep& r, Tensor& k_pool, Tensor& v_pool,
                     const Tensor& slots, const KvScales& scales = {}) override {
    Timer t(this, "rope_store_kv", OpCategory::Compute, [&] {
      // Both ropes, plus k and v written to the pools (k's rows are already read by its rope).
      OpWork w = op_work::rope(q, r.rotary_dim, r.q_norm);
      const OpWork wk = op_work::rope(k, r.rotary_dim, r.k_norm);
      w.flops += wk.flops;
      w.bytes += wk.bytes + op_work::bytes_of(v) + double(k.numel() + v.numel()) * double(dtype_size(k_pool.dtype()));
      return w;
    });
    inner_.rope_store_kv(q, k, v, r, k_pool, v_pool, slots, scales);
  }
  void paged_attention(Tensor& out, const Tensor& q, const Tensor& k_pool, const Tensor& v_pool,
                       const PagedAttentionBatch& batch) override {
    Timer t(this, "attention", OpCategory::Compute, [&] { return op_work::paged_attention(out, q, k_pool, batch); });
    inner_.paged_attention(out, q, k_pool, v_pool, batch);
  }

 private:
  static double now() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

  // Times one call: the work is computed (from the shapes, before the op runs) only for a listener.
  struct Timer {
    template <typename WorkFn>
    Timer(TimedBackend* b, const char* op, OpCategory c, WorkFn&& work_of) : backend(b), name(op), category(c) {
      if (backend->listener_) {
        work = work_of();
        backend->listener_->op_begin(category);
      }
      start = now();
    }
    ~Timer() {
      OpListener* listener = backend->listener_;
      // A device backend's ops are asynchronous: time them to completion, unless the listener times them
      // on the device.
      if (!listener || !listener->times_on_device()) backend->inner_.synchronize();
      const double end = now();
      const PhaseTag phase = current_phase();
      for (OpTiming* t : {&backend->timings_[name], &backend->phase_timings_[phase.name][name]}) {
        t->seconds += end - start;
        t->calls += 1;
      }
      if (listener) listener->op_end(OpCall{name, category, &work, start, end, phase});
    }
    TimedBackend* backend;
    const char* name;
    OpCategory category;
    OpWork work;
    double start = 0;
  };
  std::unique_ptr<Backend> owned_;  // set only by the owning constructor; declared before inner_
  Backend& inner_;
  OpListener* listener_ = nullptr;
  std::map<std::string, OpTiming> timings_;
  std::map<std::string, std::map<std::string, OpTiming>> phase_timings_;
};

}  // namespace roofline
