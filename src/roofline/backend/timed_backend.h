// A Backend that forwards every op to another backend and adds the wall time of each call to a per-op
// total (steady clock; the CPU backend is synchronous, so host time is op time). Used by `bench --ops`
// and, later, the profiler, to say where a decode step's time goes.
#pragma once
#include <chrono>
#include <map>
#include <string>

#include "roofline/backend/backend.h"

namespace roofline {

struct OpTiming {
  double seconds = 0;
  int64_t calls = 0;
};

class TimedBackend final : public Backend {
 public:
  explicit TimedBackend(Backend& inner) : inner_(inner) {}

  std::string name() const override { return inner_.name() + "+timed"; }
  Device device() const override { return inner_.device(); }
  const std::map<std::string, OpTiming>& timings() const { return timings_; }
  void reset() { timings_.clear(); }

  DType activation_dtype() const override { return inner_.activation_dtype(); }
  Tensor alloc(DType dtype, Shape shape) override { return inner_.alloc(dtype, std::move(shape)); }
  Tensor upload(const Tensor& host, DType as) override { return inner_.upload(host, as); }
  void download(const Tensor& device, Tensor& host) override { inner_.download(device, host); }
  void copy_from_host(Tensor& dst, const void* src) override { inner_.copy_from_host(dst, src); }
  void synchronize() override { inner_.synchronize(); }
  // Timing needs each op to run eagerly, so nothing is recorded.
  std::unique_ptr<RecordedOps> record(const std::function<void()>&) override { return nullptr; }

  void matmul(Tensor& out, const Tensor& x, const Tensor& w, const Tensor* bias) override {
    Timer t(this, "matmul");
    inner_.matmul(out, x, w, bias);
  }
  void matmul_many(const Tensor& x, std::span<const MatmulTarget> targets) override {
    Timer t(this, "matmul");
    inner_.matmul_many(x, targets);
  }
  void embedding(Tensor& out, const Tensor& table, const int32_t* ids, int64_t count) override {
    Timer t(this, "embedding");
    inner_.embedding(out, table, ids, count);
  }
  void rms_norm(Tensor& out, const Tensor& x, const Tensor& weight, float eps) override {
    Timer t(this, "rms_norm");
    inner_.rms_norm(out, x, weight, eps);
  }
  void layer_norm(Tensor& out, const Tensor& x, const Tensor& weight, const Tensor& bias, float eps) override {
    Timer t(this, "layer_norm");
    inner_.layer_norm(out, x, weight, bias, eps);
  }
  void add(Tensor& inout, const Tensor& x) override {
    Timer t(this, "add");
    inner_.add(inout, x);
  }
  void add_row(Tensor& inout, int64_t row_index, const Tensor& table, int64_t row) override {
    Timer t(this, "add_row");
    inner_.add_row(inout, row_index, table, row);
  }
  void rope(Tensor& x, const int32_t* positions, const Tensor& cos, const Tensor& sin, int rotary_dim) override {
    Timer t(this, "rope");
    inner_.rope(x, positions, cos, sin, rotary_dim);
  }
  void silu_mul(Tensor& out, const Tensor& gate, const Tensor& up) override {
    Timer t(this, "silu_mul");
    inner_.silu_mul(out, gate, up);
  }
  void gelu_tanh(Tensor& x) override {
    Timer t(this, "gelu_tanh");
    inner_.gelu_tanh(x);
  }
  void attention(Tensor& out, const Tensor& q, const Tensor& k_cache, const Tensor& v_cache,
                 const AttentionParams& params) override {
    Timer t(this, "attention");
    inner_.attention(out, q, k_cache, v_cache, params);
  }
  void embedding(Tensor& out, const Tensor& table, const Tensor& ids) override {
    Timer t(this, "embedding");
    inner_.embedding(out, table, ids);
  }
  void add_rows(Tensor& inout, const Tensor& table, const Tensor& rows) override {
    Timer t(this, "add_row");
    inner_.add_rows(inout, table, rows);
  }
  void rope(Tensor& x, const Tensor& positions, const Tensor& cos, const Tensor& sin, int rotary_dim,
            const Tensor* head_norm, float eps) override {
    Timer t(this, "rope");
    inner_.rope(x, positions, cos, sin, rotary_dim, head_norm, eps);
  }
  void gather_rows(Tensor& out, const Tensor& x, const Tensor& rows) override {
    Timer t(this, "gather_rows");
    inner_.gather_rows(out, x, rows);
  }
  void add_rms_norm(Tensor& residual, const Tensor& x, const Tensor& weight, Tensor& out, float eps) override {
    Timer t(this, "add_rms_norm");
    inner_.add_rms_norm(residual, x, weight, out, eps);
  }
  void add_layer_norm(Tensor& residual, const Tensor& x, const Tensor& weight, const Tensor& bias, Tensor& out,
                      float eps) override {
    Timer t(this, "add_layer_norm");
    inner_.add_layer_norm(residual, x, weight, bias, out, eps);
  }
  void store_kv(Tensor& k_pool, Tensor& v_pool, const Tensor& k, const Tensor& v, const Tensor& slots) override {
    Timer t(this, "store_kv");
    inner_.store_kv(k_pool, v_pool, k, v, slots);
  }
  void paged_attention(Tensor& out, const Tensor& q, const Tensor& k_pool, const Tensor& v_pool,
                       const PagedAttentionBatch& batch) override {
    Timer t(this, "attention");
    inner_.paged_attention(out, q, k_pool, v_pool, batch);
  }

 private:
  struct Timer {
    Timer(TimedBackend* b, const char* op) : backend(b), name(op), start(std::chrono::steady_clock::now()) {}
    ~Timer() {
      backend->inner_.synchronize();  // a device backend's ops are asynchronous: time them to completion
      OpTiming& t = backend->timings_[name];
      t.seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      t.calls += 1;
    }
    TimedBackend* backend;
    const char* name;
    std::chrono::steady_clock::time_point start;
  };
  Backend& inner_;
  std::map<std::string, OpTiming> timings_;
};

}  // namespace roofline
