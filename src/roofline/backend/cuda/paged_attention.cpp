// CudaBackend attention and KV ops: preconditions (device, dtype, shape, alignment, bounds), then the launchers
// of kernels.h. One implementation serves both forms of attention: paged_attention reads every sequence's keys
// through its block table; attention / attention_prefill / attention_decode see a contiguous cache
// [S_max, Hkv, D] as one block of S_max rows (no index arrays: the kernels take the lengths as arguments).
// Launch geometry and workspace follow the host bounds only, so a recorded paged step replays right for any
// lengths within them; the workspace only grows (an eager call with the same bounds sizes it before recording).
#include <cuda_runtime_api.h>

#include <algorithm>
#include <cstdint>
#include <utility>

#include "roofline/backend/cuda/cuda_backend.h"
#include "roofline/backend/cuda/kernels.h"
#include "roofline/backend/cuda/tensor_checks.h"
#include "roofline/core/error.h"

namespace roofline::cuda {

namespace {

constexpr int64_t kContiguousDecodeRows = 4;  // attention(): up to this many query rows take the decode kernel

bool aligned16(const void* p) { return (reinterpret_cast<uintptr_t>(p) & 15u) == 0; }

// q, out [T, Hq, D] and the key/value storage ([..., Hkv, D] of rank kv_rank), all bf16: the fields of the
// arguments that do not depend on how keys are found.
PagedAttentionArgs qkv_args(const char* op, Tensor& out, const Tensor& q, const Tensor& k, const Tensor& v,
                            int kv_rank, const char* k_name, const char* v_name) {
  check_on_device(op, out, "out");
  check_on_device(op, q, "q");
  check_on_device(op, k, k_name);
  check_on_device(op, v, v_name);
  check_dtype(op, q, DType::BF16, "q");
  check_dtype(op, out, DType::BF16, "out");
  ROOFLINE_CHECK(k.dtype() == v.dtype() && (k.dtype() == DType::BF16 || k.dtype() == DType::F8E4M3),
                 "{}: {} must be BF16 or F8_E4M3 (and {} alike), got {} and {}", op, k_name, v_name,
                 dtype_name(k.dtype()), dtype_name(v.dtype()));
  ROOFLINE_CHECK(q.rank() == 3, "{}: q must be [T, Hq, D], got {}", op, shape_to_string(q.shape()));
  ROOFLINE_CHECK(k.rank() == kv_rank && v.shape() == k.shape(), "{}: {} {} and {} {} must both be {}", op, k_name,
                 shape_to_string(k.shape()), v_name, shape_to_string(v.shape()),
                 kv_rank == 4 ? "[num_blocks, block_size, Hkv, D]" : "[S_max, Hkv, D]");
  ROOFLINE_CHECK(out.shape() == q.shape(), "{}: out {} must have the shape of q {}", op, shape_to_string(out.shape()),
                 shape_to_string(q.shape()));
  const int64_t Hq = q.dim(1), D = q.dim(2), Hkv = k.dim(-2);
  ROOFLINE_CHECK(k.dim(-1) == D, "{}: head_dim of q ({}) and of {} ({}) differ", op, D, k_name, k.dim(-1));
  ROOFLINE_CHECK(D == 16 || D == 32 || D == 64 || D == 128,
                 "{}: head_dim {} has no CUDA kernel (16, 32, 64 and 128 do)", op, D);
  ROOFLINE_CHECK(Hkv > 0 && Hq % Hkv == 0, "{}: Hq {} must be a multiple of Hkv {}", op, Hq, Hkv);
  ROOFLINE_CHECK(aligned16(q.data()) && aligned16(out.data()) && aligned16(k.data()) && aligned16(v.data()),
                 "{}: q, out, {} and {} must start on 16-byte boundaries", op, k_name, v_name);
  PagedAttentionArgs a;
  a.q = q.data();
  a.k_pool = k.data();
  a.v_pool = v.data();
  a.kv_fp8 = k.dtype() == DType::F8E4M3;
  a.out = out.data();
  a.Hq = int(Hq);
  a.Hkv = int(Hkv);
  a.D = int(D);
  return a;
}

// A contiguous cache as one block of S_max rows holding one sequence.
PagedAttentionArgs contiguous_args(const char* op, Tensor& out, const Tensor& q, const Tensor& k_cache,
                                   const Tensor& v_cache, const AttentionParams& params) {
  PagedAttentionArgs a = qkv_args(op, out, q, k_cache, v_cache, 3, "k_cache", "v_cache");
  ROOFLINE_CHECK(!a.kv_fp8, "{}: a contiguous cache is BF16 (F8_E4M3 KV lives in paged pools: paged_attention)", op);
  const int64_t T = q.dim(0), S_max = k_cache.dim(0);
  ROOFLINE_CHECK(params.start_pos >= 0 && params.start_pos + T <= S_max,
                 "{}: positions {} .. {} do not fit the cache of {} rows", op, params.start_pos,
                 params.start_pos + T - 1, S_max);
  ROOFLINE_CHECK(params.sliding_window >= 0, "{}: sliding_window {} must be >= 0", op, params.sliding_window);
  a.num_seqs = 1;
  a.max_query_len = int(T);
  a.max_context_len = int(params.start_pos + T);
  a.block_size = int(std::max<int64_t>(S_max, 1));
  a.window = params.sliding_window;
  a.scale = params.scale;
  a.fixed_query_rows = int(T);
  a.fixed_context_len = int(params.start_pos + T);
  return a;
}

// The scales of an F8E4M3 pool of shape pool_shape: [num_blocks, block_size, Hkv] f32 on the device.
void check_scales(const char* op, const Tensor* scales, const Shape& pool_shape, const char* what) {
  ROOFLINE_CHECK(scales != nullptr, "{}: an F8_E4M3 pool needs its {} scales (KvScales)", op, what);
  check_on_device(op, *scales, what);
  check_dtype(op, *scales, DType::F32, what);
  ROOFLINE_CHECK(scales->rank() == 3 && pool_shape.size() == 4 && scales->dim(0) == pool_shape[0] &&
                     scales->dim(1) == pool_shape[1] && scales->dim(2) == pool_shape[2],
                 "{}: {} scales {} must be [num_blocks, block_size, Hkv] of the pool {}", op, what,
                 shape_to_string(scales->shape()), shape_to_string(pool_shape));
}

void check_index(const char* op, const Tensor* t, const char* what) {
  ROOFLINE_CHECK(t != nullptr, "{}: the batch has no {} tensor", op, what);
  check_on_device(op, *t, what);
  check_dtype(op, *t, DType::I32, what);
}

}  // namespace

// ---- paged KV ----

void CudaBackend::store_kv(Tensor& k_pool, Tensor& v_pool, const Tensor& k, const Tensor& v, const Tensor& slots,
                           const KvScales& scales) {
  const char* op = "store_kv";
  check_on_device(op, k_pool, "k_pool");
  check_on_device(op, v_pool, "v_pool");
  check_on_device(op, k, "k");
  check_on_device(op, v, "v");
  check_on_device(op, slots, "slots");
  check_dtype(op, slots, DType::I32, "slots");
  ROOFLINE_CHECK(k_pool.rank() == 4 && v_pool.shape() == k_pool.shape() && v_pool.dtype() == k_pool.dtype(),
                 "{}: k_pool {} and v_pool {} must both be [num_blocks, block_size, Hkv, D] of one dtype", op,
                 shape_to_string(k_pool.shape()), shape_to_string(v_pool.shape()));
  const bool fp8 = k_pool.dtype() == DType::F8E4M3;
  check_dtype(op, k, fp8 ? DType::BF16 : k_pool.dtype(), "k");
  check_dtype(op, v, fp8 ? DType::BF16 : k_pool.dtype(), "v");
  const int64_t row = k_pool.dim(2) * k_pool.dim(3), T = slots.numel();
  ROOFLINE_CHECK(k.numel() == T * row && v.numel() == T * row, "{}: k {} and v {} must be [{}, {}, {}] (one row per slot)",
                 op, shape_to_string(k.shape()), shape_to_string(v.shape()), T, k_pool.dim(2), k_pool.dim(3));
  if (fp8) {
    check_scales(op, scales.k, k_pool.shape(), "k");
    check_scales(op, scales.v, v_pool.shape(), "v");
    const int64_t D = k_pool.dim(3);
    ROOFLINE_CHECK(D % 8 == 0 && D / 8 <= 32 && 32 % (D / 8) == 0,
                   "{}: head_dim {} has no F8_E4M3 store kernel (8, 16, 32, 64, 128 or 256)", op, D);
    ROOFLINE_CHECK(aligned16(k.data()) && aligned16(v.data()) && reinterpret_cast<uintptr_t>(k_pool.data()) % 8 == 0 &&
                       reinterpret_cast<uintptr_t>(v_pool.data()) % 8 == 0,
                   "{}: k and v must start on 16-byte boundaries, the pools on 8", op);
    StoreKvFp8Args a;
    a.k_pool = k_pool.data();
    a.v_pool = v_pool.data();
    a.k_scale = scales.k->ptr<float>();
    a.v_scale = scales.v->ptr<float>();
    a.pool_rows = k_pool.dim(0) * k_pool.dim(1);
    a.k = k.data();
    a.v = v.data();
    a.slots = slots.ptr<int32_t>();
    a.T = T;
    a.Hkv = int(k_pool.dim(2));
    a.D = int(D);
    launch_store_kv_fp8(a, stream_);
    return;
  }
  launch_store_kv(k_pool.data(), v_pool.data(), k_pool.dim(0) * k_pool.dim(1), k.data(), v.data(),
                  slots.ptr<int32_t>(), T, row * int64_t(dtype_size(k_pool.dtype())), stream_);
}

void CudaBackend::rope_store_kv(Tensor& q, Tensor& k, const Tensor& v, const RotaryStep& r, Tensor& k_pool,
                                Tensor& v_pool, const Tensor& slots, const KvScales& scales) {
  const char* op = "rope_store_kv";
  const bool fp8 = k_pool.dtype() == DType::F8E4M3;
  ROOFLINE_CHECK(r.positions && r.cos && r.sin, "{}: positions, cos and sin are required", op);
  for (const auto& [t, what] : {std::pair<const Tensor*, const char*>{&q, "q"}, {&k, "k"}, {&v, "v"}, {&k_pool, "k_pool"},
                                {&v_pool, "v_pool"}, {&slots, "slots"}, {r.positions, "positions"}, {r.cos, "cos"},
                                {r.sin, "sin"}})
    check_on_device(op, *t, what);
  check_dtype(op, slots, DType::I32, "slots");
  check_dtype(op, *r.positions, DType::I32, "positions");
  check_dtype(op, *r.cos, DType::F32, "cos");
  check_dtype(op, *r.sin, DType::F32, "sin");
  ROOFLINE_CHECK(k_pool.rank() == 4 && v_pool.shape() == k_pool.shape() && v_pool.dtype() == k_pool.dtype(),
                 "{}: k_pool {} and v_pool {} must both be [num_blocks, block_size, Hkv, D] of one dtype", op,
                 shape_to_string(k_pool.shape()), shape_to_string(v_pool.shape()));
  const int64_t Hkv = k_pool.dim(2), D = k_pool.dim(3), T = slots.numel();
  ROOFLINE_CHECK(q.rank() == 3 && q.dim(0) == T && q.dim(2) == D, "{}: q {} must be [{}, Hq, {}]", op,
                 shape_to_string(q.shape()), T, D);
  ROOFLINE_CHECK(k.shape() == Shape({T, Hkv, D}) && v.shape() == k.shape(), "{}: k {} and v {} must be [{}, {}, {}]", op,
                 shape_to_string(k.shape()), shape_to_string(v.shape()), T, Hkv, D);
  // q, k, v of one float dtype; rounded into q_out's dtype and the pools' as they are written. A float pool
  // has the dtype attention reads q in (q_out's, or q's in place); an fp8 pool takes any.
  for (const auto& [t, what] : {std::pair<const Tensor*, const char*>{&k, "k"}, {&v, "v"}})
    check_dtype(op, *t, q.dtype(), what);
  const Tensor& rotated_q = r.q_out != nullptr ? *r.q_out : q;
  if (r.q_out != nullptr) {
    check_on_device(op, *r.q_out, "q_out");
    ROOFLINE_CHECK(r.q_out->shape() == q.shape(), "{}: q_out {} must have q's shape {}", op,
                   shape_to_string(r.q_out->shape()), shape_to_string(q.shape()));
    ROOFLINE_CHECK(q.dtype() == DType::F32 || q.dtype() == r.q_out->dtype(), "{}: q {} must be f32 or q_out's {}", op,
                   dtype_name(q.dtype()), dtype_name(r.q_out->dtype()));
  }
  if (!fp8) check_dtype(op, rotated_q, k_pool.dtype(), r.q_out != nullptr ? "q_out" : "q");
  ROOFLINE_CHECK(r.positions->numel() == T, "{}: {} positions for {} rows", op, r.positions->numel(), T);
  ROOFLINE_CHECK(r.rotary_dim > 0 && r.rotary_dim % 2 == 0 && r.rotary_dim <= D && D <= rope_max_head_dim(),
                 "{}: rotary_dim {} must be even, positive and <= head_dim {} (at most {})", op, r.rotary_dim, D,
                 rope_max_head_dim());
  ROOFLINE_CHECK(r.cos->rank() == 2 && r.cos->dim(1) == r.rotary_dim / 2 && r.sin->shape() == r.cos->shape(),
                 "{}: cos {} and sin {} must both be [max_positions, {}]", op, shape_to_string(r.cos->shape()),
                 shape_to_string(r.sin->shape()), r.rotary_dim / 2);
  ROOFLINE_CHECK((r.q_norm == nullptr) == (r.k_norm == nullptr), "{}: q_norm and k_norm come together or not at all",
                 op);
  RopeStoreKvArgs a;
  a.q.x = q.data();
  a.q.act = float_elem(op, q, "q");
  a.q.positions = r.positions->ptr<int32_t>();
  a.q.cos = r.cos->ptr<float>();
  a.q.sin = r.sin->ptr<float>();
  a.q.table_rows = r.cos->dim(0);
  a.q.T = T;
  a.q.heads = q.dim(1);
  a.q.head_dim = D;
  a.q.rotary_dim = r.rotary_dim;
  if (r.q_norm) {
    check_on_device(op, *r.q_norm, "q_norm");
    check_on_device(op, *r.k_norm, "k_norm");
    ROOFLINE_CHECK(r.q_norm->shape() == Shape({D}) && r.k_norm->shape() == Shape({D}) &&
                       r.k_norm->dtype() == r.q_norm->dtype(),
                   "{}: q_norm {} and k_norm {} must both be [{}] of one dtype", op, shape_to_string(r.q_norm->shape()),
                   shape_to_string(r.k_norm->shape()), D);
    a.q.norm_weight = r.q_norm->data();
    a.q.norm_type = float_elem(op, *r.q_norm, "q_norm");
    a.q.eps = r.eps;
    a.k_norm = r.k_norm->data();
  }
  a.k = k.data();
  a.v = v.data();
  a.kv_heads = Hkv;
  a.k_pool = k_pool.data();
  a.v_pool = v_pool.data();
  a.out_type = float_elem(op, rotated_q, r.q_out != nullptr ? "q_out" : "q");
  a.q_out = r.q_out != nullptr ? r.q_out->data() : nullptr;
  if (fp8) {
    check_scales(op, scales.k, k_pool.shape(), "k");
    check_scales(op, scales.v, v_pool.shape(), "v");
    a.kv_fp8 = true;
    a.k_scale = scales.k->ptr<float>();
    a.v_scale = scales.v->ptr<float>();
  }
  a.pool_rows = k_pool.dim(0) * k_pool.dim(1);
  a.slots = slots.ptr<int32_t>();
  launch_rope_store_kv(a, stream_);
}

void CudaBackend::gather_rows(Tensor& out, const Tensor& x, const Tensor& rows) {
  const char* op = "gather_rows";
  check_on_device(op, out, "out");
  check_on_device(op, x, "x");
  check_on_device(op, rows, "rows");
  check_dtype(op, rows, DType::I32, "rows");
  const int64_t count = rows.numel();
  ROOFLINE_CHECK(x.rank() >= 1 && out.rank() >= 1 && out.dtype() == x.dtype() && out.dim(0) == count &&
                     (count == 0 || (x.dim(0) > 0 && out.numel() / count == x.numel() / x.dim(0))),
                 "{}: out {} {} cannot hold {} rows of x {} {}", op, dtype_name(out.dtype()),
                 shape_to_string(out.shape()), count, dtype_name(x.dtype()), shape_to_string(x.shape()));
  if (count == 0) return;
  launch_gather_rows(out.data(), x.data(), x.dim(0), rows.ptr<int32_t>(), count, int64_t(x.nbytes()) / x.dim(0),
                     stream_);
}

void CudaBackend::paged_attention(Tensor& out, const Tensor& q, const Tensor& k_pool, const Tensor& v_pool,
                                  const PagedAttentionBatch& batch) {
  const char* op = "paged_attention";
  PagedAttentionArgs a = qkv_args(op, out, q, k_pool, v_pool, 4, "k_pool", "v_pool");
  const int64_t block_size = k_pool.dim(1);
  ROOFLINE_CHECK(block_size > 0 && block_size == batch.block_size, "{}: the pools' block size {} is not the batch's {}",
                 op, block_size, batch.block_size);
  const int B = batch.num_seqs;
  ROOFLINE_CHECK(B >= 0 && batch.max_query_len >= 0 && batch.max_context_len >= batch.max_query_len,
                 "{}: bounds num_seqs {}, max_query_len {}, max_context_len {} must be >= 0 with max_context_len >= "
                 "max_query_len",
                 op, B, batch.max_query_len, batch.max_context_len);
  ROOFLINE_CHECK(batch.sliding_window >= 0, "{}: sliding_window {} must be >= 0", op, batch.sliding_window);
  check_index(op, batch.query_start, "query_start");
  check_index(op, batch.context_len, "context_len");
  check_index(op, batch.block_table, "block_table");
  const Tensor& table = *batch.block_table;
  ROOFLINE_CHECK(batch.query_start->numel() == int64_t(B) + 1 && batch.context_len->numel() == B,
                 "{}: query_start {} and context_len {} must be [{}] and [{}]", op,
                 shape_to_string(batch.query_start->shape()), shape_to_string(batch.context_len->shape()), B + 1, B);
  ROOFLINE_CHECK(table.rank() == 2 && table.dim(0) == B && table.dim(1) * block_size >= batch.max_context_len,
                 "{}: block_table {} must be [{}, max_blocks] with max_blocks * block_size >= max_context_len {}", op,
                 shape_to_string(table.shape()), B, batch.max_context_len);
  a.num_seqs = B;
  a.max_query_len = batch.max_query_len;
  a.max_context_len = batch.max_context_len;
  a.block_size = int(block_size);
  a.window = batch.sliding_window;
  a.scale = batch.scale;
  a.query_start = batch.query_start->ptr<int32_t>();
  a.context_len = batch.context_len->ptr<int32_t>();
  a.block_table = table.ptr<int32_t>();
  a.table_pitch = int(table.dim(1));
  if (a.kv_fp8) {
    check_scales(op, batch.kv_scales.k, k_pool.shape(), "k");
    check_scales(op, batch.kv_scales.v, v_pool.shape(), "v");
    a.k_scale = batch.kv_scales.k->ptr<float>();
    a.v_scale = batch.kv_scales.v->ptr<float>();
  }
  if (B == 0 || a.max_query_len == 0 || q.dim(0) == 0) return;
  auto decode = [&](const PagedAttentionArgs& d) {
    const PagedDecodePlan plan = plan_paged_decode(d, multiprocessors_);
    void* workspace = plan.workspace_bytes > 0 ? paged_workspace_.ensure(plan.workspace_bytes) : nullptr;
    launch_paged_decode(d, plan, workspace, stream_);
  };
  if (a.max_query_len <= kPagedDecodeMaxQueryLen) return decode(a);
  // A mixed step: the leading one-row sequences take the decode kernel (the prefill kernel would give each a
  // 64-row tile and read its keys once per query head instead of once per KV head: 8B serving's mixed steps
  // cost ~150 ms more than their prefill), the rest the prefill kernel. Rows stay absolute (query_start is
  // indexed from the start of q), so the rest is the same arrays from sequence n on.
  ROOFLINE_CHECK(batch.leading_single_query_seqs >= 0 && batch.leading_single_query_seqs <= B,
                 "paged_attention: leading_single_query_seqs {} must be in [0, num_seqs {}]",
                 batch.leading_single_query_seqs, B);
  if (const int n = batch.leading_single_query_seqs; n > 0) {
    PagedAttentionArgs d = a;
    d.num_seqs = n;
    d.max_query_len = 1;
    decode(d);
    if (n == B) return;
    a.num_seqs = B - n;
    a.query_start += n;
    a.context_len += n;
    a.block_table += int64_t(n) * a.table_pitch;
  }
  launch_paged_prefill(a, multiprocessors_, stream_);
}

// ---- contiguous attention (one sequence, one block) ----

void CudaBackend::attention(Tensor& out, const Tensor& q, const Tensor& k_cache, const Tensor& v_cache,
                            const AttentionParams& params) {
  if (q.rank() == 3 && q.dim(0) <= kContiguousDecodeRows)
    attention_decode(out, q, k_cache, v_cache, params);
  else
    attention_prefill(out, q, k_cache, v_cache, params);
}

void CudaBackend::attention_prefill(Tensor& out, const Tensor& q, const Tensor& k_cache, const Tensor& v_cache,
                                    const AttentionParams& params) {
  const PagedAttentionArgs a = contiguous_args("attention_prefill", out, q, k_cache, v_cache, params);
  launch_paged_prefill(a, multiprocessors_, stream_);
}

void CudaBackend::attention_decode(Tensor& out, const Tensor& q, const Tensor& k_cache, const Tensor& v_cache,
                                   const AttentionParams& params) {
  const PagedAttentionArgs a = contiguous_args("attention_decode", out, q, k_cache, v_cache, params);
  ROOFLINE_CHECK(a.max_query_len <= kPagedDecodeMaxQueryLen,
                 "attention_decode: {} query rows, at most {} (use attention_prefill)", a.max_query_len,
                 kPagedDecodeMaxQueryLen);
  if (a.max_query_len == 0) return;
  const PagedDecodePlan plan = plan_paged_decode(a, multiprocessors_);
  void* workspace = plan.workspace_bytes > 0 ? attention_workspace_.ensure(plan.workspace_bytes) : nullptr;
  launch_paged_decode(a, plan, workspace, stream_);
}

}  // namespace roofline::cuda
