// The CPU backend: f32 activations, weights in their stored dtype (f32, f16, bf16), SIMD level chosen
// at construction (cpu_features.h), data-parallel ops on a ThreadPool owned by the backend.
// A CpuBackend runs one op at a time (its scratch memory is shared between ops); use one per thread of
// control.
#pragma once
#include <memory>
#include <string>

#include "roofline/backend/backend.h"
#include "roofline/backend/cpu/cpu_features.h"
#include "roofline/backend/cpu/cpu_ops.h"
#include "roofline/core/thread_pool.h"

namespace roofline {

class CpuBackend final : public Backend {
 public:
  // threads <= 0: one per hardware thread. The CPU must support isa (cpu_supports), else roofline::Error.
  CpuBackend(int threads, CpuIsa isa);

  std::string name() const override { return "cpu"; }
  Device device() const override { return Device::CPU; }
  CpuIsa isa() const { return kernels_.isa; }
  int threads() const { return pool_.size(); }
  ThreadPool& pool() { return pool_; }

  void matmul(Tensor& out, const Tensor& x, const Tensor& w, const Tensor* bias) override;
  void matmul_many(const Tensor& x, std::span<const MatmulTarget> targets) override;
  void embedding(Tensor& out, const Tensor& table, const int32_t* ids, int64_t count) override;
  void rms_norm(Tensor& out, const Tensor& x, const Tensor& weight, float eps) override;
  void layer_norm(Tensor& out, const Tensor& x, const Tensor& weight, const Tensor& bias, float eps) override;
  void add(Tensor& inout, const Tensor& x) override;
  void add_row(Tensor& inout, int64_t t, const Tensor& table, int64_t row) override;
  void rope(Tensor& x, const int32_t* positions, const Tensor& cos, const Tensor& sin, int rotary_dim) override;
  void silu_mul(Tensor& out, const Tensor& gate, const Tensor& up) override;
  void gelu_tanh(Tensor& x) override;
  void attention(Tensor& out, const Tensor& q, const Tensor& k_cache, const Tensor& v_cache,
                 const AttentionParams& params) override;
  void store_kv(Tensor& k_pool, Tensor& v_pool, const Tensor& k, const Tensor& v, const Tensor& slots,
                const KvScales& scales = {}) override;
  void paged_attention(Tensor& out, const Tensor& q, const Tensor& k_pool, const Tensor& v_pool,
                       const PagedAttentionBatch& batch) override;
  using Backend::embedding;
  using Backend::rope;

 private:
  cpu::CpuContext context() { return cpu::CpuContext{pool_, kernels_, packed_, scratch_}; }

  const cpu::CpuKernels& kernels_;  // first: an unsupported level throws before threads start
  ThreadPool pool_;
  cpu::AlignedBuffer packed_;
  cpu::AlignedBuffer scratch_;
};

// A CPU backend at a given SIMD level (tests and benchmarks compare levels).
std::unique_ptr<CpuBackend> make_cpu_backend(int threads, CpuIsa isa);

}  // namespace roofline
