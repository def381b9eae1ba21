// matmul driver: out[M, N] = x[M, K] · w[N, K]^T (+ bias[N]).
// Picks the gemv path (few rows: memory-bound, decode) or the gemm path (many rows: compute-bound,
// prefill), packs x once if the path wants it, then splits N over the pool: into parts that are
// contiguous ranges of weight rows, so every thread streams its own part of w, taken dynamically so a
// thread that runs slower (or is descheduled) does not hold the others up.
#include <algorithm>
#include <atomic>
#include <vector>

#include "roofline/backend/cpu/cpu_ops.h"
#include "roofline/core/error.h"

namespace roofline::cpu {

namespace {
constexpr int kMaxSlots = 256;  // scratch slots: threads of one pool

bool overlaps(const Tensor& a, const Tensor& b) {
  auto a0 = static_cast<const uint8_t*>(a.data()), b0 = static_cast<const uint8_t*>(b.data());
  return a0 < b0 + b.nbytes() && b0 < a0 + a.nbytes();
}
}  // namespace

void matmul(CpuContext& ctx, Tensor& out, const Tensor& x, const Tensor& w, const Tensor* bias) {
  const char* op = "matmul";
  check_cpu(op, out, "out");
  check_cpu(op, x, "x");
  check_cpu(op, w, "w");
  check_f32(op, x, "x");
  check_f32(op, out, "out");
  check_float_dtype(op, w, "w");
  ROOFLINE_CHECK(w.rank() == 2, "matmul: w must be [N, K], got {}", shape_to_string(w.shape()));
  const int64_t N = w.dim(0), K = w.dim(1);
  ROOFLINE_CHECK(x.rank() >= 1 && x.dim(-1) == K, "matmul: x {} does not match w {} (last dimension must be K = {})",
                 shape_to_string(x.shape()), shape_to_string(w.shape()), K);
  const int64_t M = rows_of(x);
  ROOFLINE_CHECK(out.rank() >= 1 && out.dim(-1) == N && rows_of(out) == M,
                 "matmul: out {} must hold [{}, {}] for x {} and w {}", shape_to_string(out.shape()), M, N,
                 shape_to_string(x.shape()), shape_to_string(w.shape()));
  if (bias) {
    check_cpu(op, *bias, "bias");
    check_float_dtype(op, *bias, "bias");
    ROOFLINE_CHECK(bias->rank() == 1 && bias->dim(0) == N, "matmul: bias {} must be [{}]",
                   shape_to_string(bias->shape()), N);
  }
  ROOFLINE_CHECK(!overlaps(out, x), "matmul: out must not alias x");
  if (M == 0 || N == 0) return;
  if (K == 0) {  // empty sum: out = bias (or 0)
    std::vector<float> b(size_t(N), 0.0f);
    if (bias) convert_to_f32(bias->dtype(), bias->data(), b.data(), size_t(N));
    for (int64_t m = 0; m < M; ++m) std::copy(b.begin(), b.end(), out.ptr<float>() + m * N);
    return;
  }

  MatmulProblem p;
  p.x = x.ptr<float>();
  p.w = w.data();
  p.bias = bias ? bias->data() : nullptr;
  p.out = out.ptr<float>();
  p.M = M;
  p.N = N;
  p.K = K;
  p.w_dtype = w.dtype();
  p.bias_dtype = bias ? bias->dtype() : DType::F32;

  const MatmulKernels& kernels = ctx.kernels.matmul;
  const int dtype_index = weight_dtype_index(w.dtype());
  const MatmulPath& path = M <= kernels.gemv_max_rows ? kernels.gemv[dtype_index] : kernels.gemm[dtype_index];

  void* packed = nullptr;
  if (size_t bytes = path.packed_x_bytes(p); bytes > 0) {
    packed = ctx.packed.ensure(bytes);
    const int64_t rows = path.pack_rows(p), blocks = (M + rows - 1) / rows;
    if (bytes < (size_t(1) << 20)) {  // a few rows (decode): not worth waking the pool
      path.pack_x(p, packed, 0, blocks);
    } else {
      ctx.pool.parallel_for(size_t(blocks), 1, [&](size_t b, size_t e) { path.pack_x(p, packed, int64_t(b), int64_t(e)); });
    }
  }

  // Parts: contiguous ranges of n_align-row units, each ~256 KiB of weights, at least four per thread
  // and at most max_part_rows rows. Threads take parts from one counter until none are left, so the
  // time a thread waits for the other's last part is at most one small part. (The pool hands out only
  // ~4 chunks per thread; a chunk here is a thread's whole share of the loop.)
  const int64_t units = (N + path.n_align - 1) / path.n_align;
  const int threads = ctx.pool.size();
  const double weight_bytes = double(N) * double(K) * double(dtype_size(w.dtype()));
  const double flops = 2.0 * double(N) * double(K) * double(M);
  int64_t parts = 1;  // small matmuls stay on the calling thread
  if (weight_bytes + flops / 8 >= 256.0 * 1024) {
    parts = std::max<int64_t>(int64_t(threads) * 4, int64_t(weight_bytes / (256.0 * 1024)));
    if (path.max_part_rows > 0) parts = std::max(parts, (N + path.max_part_rows - 1) / path.max_part_rows);
    parts = std::min(parts, units);
  }

  // Scratch per running thread: each loop body takes a free slot (at most pool.size() run at once).
  const size_t scratch_floats = (path.scratch_floats(p) + 15) / 16 * 16;  // slots on separate cache lines
  ROOFLINE_CHECK(threads <= kMaxSlots, "matmul: {} threads, the cpu backend supports at most {}", threads, kMaxSlots);
  float* scratch = scratch_floats ? static_cast<float*>(ctx.scratch.ensure(size_t(threads) * scratch_floats * 4)) : nullptr;
  std::atomic<bool> busy[kMaxSlots] = {};
  std::atomic<int64_t> next_part{0};
  auto run_parts = [&](size_t, size_t) {
    int slot = 0;
    while (busy[slot].exchange(true, std::memory_order_acquire)) slot = (slot + 1) % threads;
    for (int64_t part; (part = next_part.fetch_add(1, std::memory_order_relaxed)) < parts;) {
      const int64_t n0 = std::min(N, units * part / parts * path.n_align);
      const int64_t n1 = std::min(N, units * (part + 1) / parts * path.n_align);
      if (n0 < n1) path.run(p, packed, scratch ? scratch + size_t(slot) * scratch_floats : nullptr, n0, n1);
    }
    busy[slot].store(false, std::memory_order_release);
  };
  if (parts == 1) run_parts(0, 1);
  else ctx.pool.parallel_for(size_t(std::min<int64_t>(threads, parts)), 1, run_parts);
}

}  // namespace roofline::cpu
