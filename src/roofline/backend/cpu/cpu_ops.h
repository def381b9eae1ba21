// The CPU op drivers behind CpuBackend (internal to backend/cpu): each checks dtypes and shapes (throwing
// roofline::Error naming the op), splits the work over the thread pool and calls the kernel table.
#pragma once
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>

#include "roofline/backend/backend.h"
#include "roofline/backend/cpu/kernels.h"
#include "roofline/core/tensor.h"
#include "roofline/core/thread_pool.h"

namespace roofline::cpu {

// A 64-byte aligned buffer that only grows, so steady-state calls do not allocate.
class AlignedBuffer {
 public:
  void* ensure(size_t bytes);

 private:
  std::unique_ptr<void, void (*)(void*)> data_{nullptr, [](void*) {}};
  size_t bytes_ = 0;
};

// What an op needs to run: the pool, the kernels of the chosen level and the backend's scratch memory.
// A backend runs one op at a time, so the workspace is not shared between concurrent ops.
struct CpuContext {
  ThreadPool& pool;
  const CpuKernels& kernels;
  AlignedBuffer& packed;   // matmul: packed copy of x
  AlignedBuffer& scratch;  // matmul: per-part weight / output tiles
};

void matmul(CpuContext& ctx, Tensor& out, const Tensor& x, const Tensor& w, const Tensor* bias);
void matmul_many(CpuContext& ctx, const Tensor& x, std::span<const MatmulTarget> targets);
void embedding(CpuContext& ctx, Tensor& out, const Tensor& table, const int32_t* ids, int64_t count);
void rms_norm(CpuContext& ctx, Tensor& out, const Tensor& x, const Tensor& weight, float eps);
void layer_norm(CpuContext& ctx, Tensor& out, const Tensor& x, const Tensor& weight, const Tensor& bias, float eps);
void add(CpuContext& ctx, Tensor& inout, const Tensor& x);
void add_row(CpuContext& ctx, Tensor& inout, int64_t t, const Tensor& table, int64_t row);
void rope(CpuContext& ctx, Tensor& x, const int32_t* positions, const Tensor& cos, const Tensor& sin, int rotary_dim);
void silu_mul(CpuContext& ctx, Tensor& out, const Tensor& gate, const Tensor& up);
void gelu_tanh(CpuContext& ctx, Tensor& x);
void attention(CpuContext& ctx, Tensor& out, const Tensor& q, const Tensor& k_cache, const Tensor& v_cache,
               const AttentionParams& params);
void paged_attention(CpuContext& ctx, Tensor& out, const Tensor& q, const Tensor& k_pool, const Tensor& v_pool,
                     const PagedAttentionBatch& batch);
void store_kv(CpuContext& ctx, Tensor& k_pool, Tensor& v_pool, const Tensor& k, const Tensor& v, const Tensor& slots,
              const KvScales& scales);

// Shared precondition helpers; `op` names the op in the message.
void check_cpu(const char* op, const Tensor& t, const char* what);
void check_f32(const char* op, const Tensor& t, const char* what);
void check_float_dtype(const char* op, const Tensor& t, const char* what);  // F32, F16 or BF16
// Rows of the last dimension: numel / dim(-1) (rank >= 1).
int64_t rows_of(const Tensor& t);

// Runs body(begin, end) over [0, rows) on the pool, in chunks of at least ~min_elements elements, so
// small ops stay on the calling thread.
void parallel_rows(ThreadPool& pool, int64_t rows, int64_t row_elements,
                   const std::function<void(int64_t, int64_t)>& body, int64_t min_elements = 32768);

}  // namespace roofline::cpu
