#include "roofline/backend/cpu/cpu_backend.h"

namespace roofline {

CpuBackend::CpuBackend(int threads, CpuIsa isa) : kernels_(cpu::cpu_kernels(isa)), pool_(threads) {}

void CpuBackend::matmul(Tensor& out, const Tensor& x, const Tensor& w, const Tensor* bias) {
  auto ctx = context();
  cpu::matmul(ctx, out, x, w, bias);
}
void CpuBackend::matmul_many(const Tensor& x, std::span<const MatmulTarget> targets) {
  auto ctx = context();
  cpu::matmul_many(ctx, x, targets);
}
void CpuBackend::embedding(Tensor& out, const Tensor& table, const int32_t* ids, int64_t count) {
  auto ctx = context();
  cpu::embedding(ctx, out, table, ids, count);
}
void CpuBackend::rms_norm(Tensor& out, const Tensor& x, const Tensor& weight, float eps) {
  auto ctx = context();
  cpu::rms_norm(ctx, out, x, weight, eps);
}
void CpuBackend::layer_norm(Tensor& out, const Tensor& x, const Tensor& weight, const Tensor& bias, float eps) {
  auto ctx = context();
  cpu::layer_norm(ctx, out, x, weight, bias, eps);
}
void CpuBackend::add(Tensor& inout, const Tensor& x) {
  auto ctx = context();
  cpu::add(ctx, inout, x);
}
void CpuBackend::add_row(Tensor& inout, int64_t t, const Tensor& table, int64_t row) {
  auto ctx = context();
  cpu::add_row(ctx, inout, t, table, row);
}
void CpuBackend::rope(Tensor& x, const int32_t* positions, const Tensor& cos, const Tensor& sin, int rotary_dim) {
  auto ctx = context();
  cpu::rope(ctx, x, positions, cos, sin, rotary_dim);
}
void CpuBackend::silu_mul(Tensor& out, const Tensor& gate, const Tensor& up) {
  auto ctx = context();
  cpu::silu_mul(ctx, out, gate, up);
}
void CpuBackend::gelu_tanh(Tensor& x) {
  auto ctx = context();
  cpu::gelu_tanh(ctx, x);
}
void CpuBackend::attention(Tensor& out, const Tensor& q, const Tensor& k_cache, const Tensor& v_cache,
                           const AttentionParams& params) {
  auto ctx = context();
  cpu::attention(ctx, out, q, k_cache, v_cache, params);
}

void CpuBackend::store_kv(Tensor& k_pool, Tensor& v_pool, const Tensor& k, const Tensor& v, const Tensor& slots,
                          const KvScales& scales) {
  auto ctx = context();
  cpu::store_kv(ctx, k_pool, v_pool, k, v, slots, scales);
}
void CpuBackend::paged_attention(Tensor& out, const Tensor& q, const Tensor& k_pool, const Tensor& v_pool,
                                 const PagedAttentionBatch& batch) {
  auto ctx = context();
  cpu::paged_attention(ctx, out, q, k_pool, v_pool, batch);
}

std::unique_ptr<CpuBackend> make_cpu_backend(int threads, CpuIsa isa) {
  return std::make_unique<CpuBackend>(threads, isa);
}

std::unique_ptr<Backend> make_cpu_backend(int threads) { return make_cpu_backend(threads, select_cpu_isa()); }

}  // namespace roofline
