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

namespace {

// One validated projection: its problem and the kernel path that runs it.
struct MatmulJob {
  MatmulProblem p;
  const MatmulPath* path = nullptr;
  void* packed = nullptr;
  int64_t parts = 1;
};

// Checks one out = x · w^T (+ bias) and fills its problem; false when there is nothing to compute.
bool prepare(CpuContext& ctx, MatmulJob& job, Tensor& out, const Tensor& x, const Tensor& w, const Tensor* bias) {
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
  if (M == 0 || N == 0) return false;
  if (K == 0) {  // empty sum: out = bias (or 0)
    std::vector<float> b(size_t(N), 0.0f);
    if (bias) convert_to_f32(bias->dtype(), bias->data(), b.data(), size_t(N));
    for (int64_t m = 0; m < M; ++m) std::copy(b.begin(), b.end(), out.ptr<float>() + m * N);
    return false;
  }
  MatmulProblem& p = job.p;
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
  job.path = M <= kernels.gemv_max_rows ? &kernels.gemv[dtype_index] : &kernels.gemm[dtype_index];
  return true;
}

// Parts: contiguous ranges of n_align-row units, each ~256 KiB of weights, at least four per thread
// and at most max_part_rows rows. Threads take parts from one counter until none are left, so the
// time a thread waits for the other's last part is at most one small part. Several jobs (projections
// of the same x) share one parallel region: one wake-up and one tail instead of one per projection.
void run_jobs(CpuContext& ctx, std::vector<MatmulJob>& jobs) {
  // Pack x for every job that wants it (one buffer, consecutive regions).
  size_t packed_total = 0;
  std::vector<size_t> packed_offset(jobs.size(), 0);
  for (size_t j = 0; j < jobs.size(); ++j) {
    packed_offset[j] = packed_total;
    packed_total += (jobs[j].path->packed_x_bytes(jobs[j].p) + 63) / 64 * 64;
  }
  uint8_t* packed_base = packed_total ? static_cast<uint8_t*>(ctx.packed.ensure(packed_total)) : nullptr;
  for (size_t j = 0; j < jobs.size(); ++j) {
    MatmulJob& job = jobs[j];
    const size_t bytes = job.path->packed_x_bytes(job.p);
    if (bytes == 0) continue;
    job.packed = packed_base + packed_offset[j];
    const int64_t rows = job.path->pack_rows(job.p), blocks = (job.p.M + rows - 1) / rows;
    if (bytes < (size_t(1) << 20)) {  // a few rows (decode): not worth waking the pool
      job.path->pack_x(job.p, job.packed, 0, blocks);
    } else {
      ctx.pool.parallel_for(size_t(blocks), 1,
                            [&](size_t b, size_t e) { job.path->pack_x(job.p, job.packed, int64_t(b), int64_t(e)); });
    }
  }

  const int threads = ctx.pool.size();
  int64_t total_parts = 0;
  double total_work = 0;
  for (MatmulJob& job : jobs) {
    const MatmulProblem& p = job.p;
    const int64_t units = (p.N + job.path->n_align - 1) / job.path->n_align;
    const double weight_bytes = double(p.N) * double(p.K) * double(dtype_size(p.w_dtype));
    const double flops = 2.0 * double(p.N) * double(p.K) * double(p.M);
    total_work += weight_bytes + flops / 8;
    job.parts = std::max<int64_t>(1, int64_t(weight_bytes / (256.0 * 1024)));
    if (job.path->max_part_rows > 0) job.parts = std::max(job.parts, (p.N + job.path->max_part_rows - 1) / job.path->max_part_rows);
    job.parts = std::min(job.parts, units);
    total_parts += job.parts;
  }
  // Small work stays on the calling thread; otherwise at least four parts per thread overall.
  const bool parallel = total_work >= 256.0 * 1024;
  if (parallel && total_parts < int64_t(threads) * 4) {
    for (MatmulJob& job : jobs) {
      const int64_t units = (job.p.N + job.path->n_align - 1) / job.path->n_align;
      total_parts -= job.parts;
      job.parts = std::min(units, std::max(job.parts, (int64_t(threads) * 4 + int64_t(jobs.size()) - 1) / int64_t(jobs.size())));
      total_parts += job.parts;
    }
  }
  // (job, first part) so a global part index maps back to its job.
  std::vector<int64_t> first_part(jobs.size() + 1, 0);
  for (size_t j = 0; j < jobs.size(); ++j) first_part[j + 1] = first_part[j] + jobs[j].parts;

  // Scratch per running thread: each loop body takes a free slot (at most pool.size() run at once).
  size_t scratch_floats = 0;
  for (MatmulJob& job : jobs) scratch_floats = std::max(scratch_floats, (job.path->scratch_floats(job.p) + 15) / 16 * 16);
  ROOFLINE_CHECK(threads <= kMaxSlots, "matmul: {} threads, the cpu backend supports at most {}", threads, kMaxSlots);
  float* scratch = scratch_floats ? static_cast<float*>(ctx.scratch.ensure(size_t(threads) * scratch_floats * 4)) : nullptr;
  std::atomic<bool> busy[kMaxSlots] = {};
  std::atomic<int64_t> next_part{0};
  auto run_parts = [&](size_t, size_t) {
    int slot = 0;
    while (busy[slot].exchange(true, std::memory_order_acquire)) slot = (slot + 1) % threads;
    size_t j = 0;
    for (int64_t part; (part = next_part.fetch_add(1, std::memory_order_relaxed)) < total_parts;) {
      while (part >= first_part[j + 1]) ++j;  // parts are taken in increasing order
      const MatmulJob& job = jobs[j];
      const int64_t local = part - first_part[j];
      const int64_t units = (job.p.N + job.path->n_align - 1) / job.path->n_align;
      const int64_t n0 = std::min(job.p.N, units * local / job.parts * job.path->n_align);
      const int64_t n1 = std::min(job.p.N, units * (local + 1) / job.parts * job.path->n_align);
      if (n0 < n1) job.path->run(job.p, job.packed, scratch ? scratch + size_t(slot) * scratch_floats : nullptr, n0, n1);
    }
    busy[slot].store(false, std::memory_order_release);
  };
  if (!parallel || total_parts == 1) run_parts(0, 1);
  else ctx.pool.parallel_for(size_t(std::min<int64_t>(threads, total_parts)), 1, run_parts);
}

}  // namespace

void matmul(CpuContext& ctx, Tensor& out, const Tensor& x, const Tensor& w, const Tensor* bias) {
  std::vector<MatmulJob> jobs(1);
  if (prepare(ctx, jobs[0], out, x, w, bias)) run_jobs(ctx, jobs);
}

void matmul_many(CpuContext& ctx, const Tensor& x, std::span<const MatmulTarget> targets) {
  std::vector<MatmulJob> jobs;
  jobs.reserve(targets.size());
  for (const MatmulTarget& t : targets) {
    jobs.emplace_back();
    if (!prepare(ctx, jobs.back(), *t.out, x, *t.w, t.bias)) jobs.pop_back();
  }
  if (!jobs.empty()) run_jobs(ctx, jobs);
}

}  // namespace roofline::cpu
