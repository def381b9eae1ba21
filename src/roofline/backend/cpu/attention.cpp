// Causal attention with grouped-query heads and an optional sliding window, over paged KV: every
// sequence of a batch reads its keys through its block table (Backend::paged_attention). The contiguous
// single-sequence form (Backend::attention) is the same loop with the whole cache as one block.
//   q, out: [T, Hq, D]; pools [num_blocks, block_size, Hkv, D]; query head h reads kv head h / (Hq / Hkv);
//   a query at position p sees keys (p - window, p] (or all of [0, p] without a window).
// Online softmax in f32: keys go by in blocks of 64; per head a running max m, sum l and output acc are
// rescaled by exp(m_old - m_new) when the max grows, so no [S] score buffer is needed and every exp
// argument is <= 0. The query heads that share a kv head are processed together, so each block of keys
// and values is read from memory once and reused from L1 by the whole group.
// Work items are (t, kv head, group chunk), spread over the pool. out may alias q: an item copies its q
// rows (scaled) before it writes the same rows of out, and no other item reads them.
#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "roofline/backend/cpu/cpu_ops.h"
#include "roofline/backend/kv_quant.h"
#include "roofline/core/error.h"

namespace roofline::cpu {

namespace {
constexpr int64_t kKeyBlock = 64;     // keys per online-softmax step
constexpr int64_t kMaxHeadDim = 512;  // bound for the per-item stack buffers
constexpr int64_t kMaxChunk = 8;      // query heads processed together per item
}  // namespace

namespace {

// Where one sequence's keys live: position p is row p % block_size of block blocks[p / block_size].
struct SequenceKeys {
  const int32_t* blocks;
  int64_t block_size;
  int64_t row(int64_t p) const { return int64_t(blocks[p / block_size]) * block_size + p % block_size; }
};

// One work item's query rows: query row `t` (global) at position `pos` of a sequence.
struct AttentionGeometry {
  int64_t Hq, Hkv, D, group, chunk, chunks;
  float scale;
  int64_t window;
};

void attend_item(const CpuContext& ctx, const AttentionGeometry& g, const float* qd, const float* kd, const float* vd,
                 float* od, int64_t t, int64_t kvh, int64_t c, int64_t pos, const SequenceKeys& keys) {
  const int64_t D = g.D, Hq = g.Hq, kv_stride = g.Hkv * D;
  const int64_t h0 = kvh * g.group + c * g.chunk, heads = std::min(g.chunk, g.group - c * g.chunk);
  const int64_t first = g.window > 0 ? std::max<int64_t>(0, pos - g.window + 1) : 0;
  const VectorKernels& vk = ctx.kernels.vector;

  alignas(64) float qs[kMaxChunk][kMaxHeadDim];   // q rows pre-multiplied by the scale
  alignas(64) float acc[kMaxChunk][kMaxHeadDim];  // unnormalised outputs
  alignas(64) float s[kMaxChunk][kKeyBlock];      // scores, then probabilities, of one key block
  float m[kMaxChunk], l[kMaxChunk];
  for (int64_t h = 0; h < heads; ++h) {
    const float* qr = qd + (t * Hq + h0 + h) * D;
    for (int64_t i = 0; i < D; ++i) qs[h][i] = qr[i] * g.scale;
    std::fill(acc[h], acc[h] + D, 0.0f);
    m[h] = -std::numeric_limits<float>::infinity();
    l[h] = 0.0f;
  }
  for (int64_t j0 = first; j0 <= pos; j0 += kKeyBlock) {
    const int64_t count = std::min(kKeyBlock, pos + 1 - j0);
    // The block's keys as runs of consecutive rows (a run never crosses a KV block).
    int64_t run_start[kKeyBlock], run_row[kKeyBlock], runs = 0;
    for (int64_t j = 0; j < count;) {
      const int64_t p = j0 + j, len = std::min(count - j, keys.block_size - p % keys.block_size);
      run_start[runs] = j;
      run_row[runs++] = keys.row(p);
      j += len;
    }
    run_start[runs] = count;
    for (int64_t h = 0; h < heads; ++h) {
      for (int64_t r = 0; r < runs; ++r)
        vk.dot_rows(s[h] + run_start[r], qs[h], kd + run_row[r] * kv_stride + kvh * D, kv_stride,
                    run_start[r + 1] - run_start[r], D);
      const float block_max = *std::max_element(s[h], s[h] + count);
      const float m_new = std::max(m[h], block_max);
      if (m_new > m[h] && l[h] > 0.0f) {  // the max grew: rescale what was accumulated so far
        const float correction = std::exp(m[h] - m_new);
        l[h] *= correction;
        for (int64_t i = 0; i < D; ++i) acc[h][i] *= correction;
      }
      m[h] = m_new;
      l[h] += vk.exp_shifted(s[h], count, m_new);
      for (int64_t r = 0; r < runs; ++r)
        vk.axpy_rows(acc[h], s[h] + run_start[r], vd + run_row[r] * kv_stride + kvh * D, kv_stride,
                     run_start[r + 1] - run_start[r], D);
    }
  }
  for (int64_t h = 0; h < heads; ++h) {
    float* o = od + (t * Hq + h0 + h) * D;
    const float inv = 1.0f / l[h];
    for (int64_t i = 0; i < D; ++i) o[i] = acc[h][i] * inv;
  }
}

AttentionGeometry geometry(const CpuContext& ctx, int64_t T, int64_t Hq, int64_t Hkv, int64_t D, float scale,
                           int64_t window) {
  const int64_t group = Hq / Hkv;
  // Split each group into chunks when there are too few (t, kv head) items to occupy the pool.
  const int64_t want_items = 4 * int64_t(ctx.pool.size());
  int64_t chunks = std::clamp<int64_t>((want_items + T * Hkv - 1) / (T * Hkv), 1, group);
  chunks = std::max(chunks, (group + kMaxChunk - 1) / kMaxChunk);
  const int64_t chunk = (group + chunks - 1) / chunks;
  chunks = (group + chunk - 1) / chunk;
  return {Hq, Hkv, D, group, chunk, chunks, scale, window};
}

void check_qkv(const char* op, const Tensor& out, const Tensor& q, const Tensor& k, const Tensor& v, int kv_rank) {
  check_f32(op, q, "q");
  check_f32(op, k, "k");
  check_f32(op, v, "v");
  check_f32(op, out, "out");
  ROOFLINE_CHECK(q.rank() == 3, "{}: q must be [T, Hq, D], got {}", op, shape_to_string(q.shape()));
  ROOFLINE_CHECK(k.rank() == kv_rank && v.shape() == k.shape(), "{}: k {} and v {} must have the same rank-{} shape",
                 op, shape_to_string(k.shape()), shape_to_string(v.shape()), kv_rank);
  ROOFLINE_CHECK(out.shape() == q.shape(), "{}: out {} must have the shape of q {}", op, shape_to_string(out.shape()),
                 shape_to_string(q.shape()));
  const int64_t Hq = q.dim(1), D = q.dim(2), Hkv = k.dim(-2);
  ROOFLINE_CHECK(k.dim(-1) == D, "{}: head_dim of q ({}) and of the cache ({}) differ", op, D, k.dim(-1));
  ROOFLINE_CHECK(Hkv > 0 && Hq % Hkv == 0, "{}: {} query heads are not a multiple of {} kv heads", op, Hq, Hkv);
  ROOFLINE_CHECK(D > 0 && D <= kMaxHeadDim, "{}: head_dim {} must be in [1, {}]", op, D, kMaxHeadDim);
}

}  // namespace

void attention(CpuContext& ctx, Tensor& out, const Tensor& q, const Tensor& k_cache, const Tensor& v_cache,
               const AttentionParams& params) {
  check_qkv("attention", out, q, k_cache, v_cache, 3);
  const int64_t T = q.dim(0), S_max = k_cache.dim(0);
  ROOFLINE_CHECK(params.start_pos >= 0 && params.start_pos + T <= S_max,
                 "attention: rows at positions [{}, {}) do not fit the cache of {} positions", params.start_pos,
                 params.start_pos + T, S_max);
  ROOFLINE_CHECK(params.sliding_window >= 0, "attention: sliding_window {} is negative", params.sliding_window);
  if (T == 0 || q.dim(1) == 0) return;
  const AttentionGeometry g =
      geometry(ctx, T, q.dim(1), k_cache.dim(1), q.dim(2), params.scale, params.sliding_window);
  const int32_t only_block = 0;
  const SequenceKeys keys{&only_block, S_max};
  const int64_t items = T * g.Hkv * g.chunks;
  ctx.pool.parallel_for(size_t(items), 1, [&](size_t b, size_t e) {
    for (size_t item = b; item < e; ++item) {
      const int64_t i = int64_t(item);
      const int64_t t = i / (g.Hkv * g.chunks);
      attend_item(ctx, g, q.ptr<float>(), k_cache.ptr<float>(), v_cache.ptr<float>(), out.ptr<float>(), t,
                  (i / g.chunks) % g.Hkv, i % g.chunks, params.start_pos + t, keys);
    }
  });
}

namespace {

void paged_attention_f32(CpuContext& ctx, Tensor& out, const Tensor& q, const Tensor& k_pool, const Tensor& v_pool,
                         const PagedAttentionBatch& batch) {
  const char* op = "paged_attention";
  check_qkv(op, out, q, k_pool, v_pool, 4);
  ROOFLINE_CHECK(batch.query_start && batch.context_len && batch.block_table, "{}: the batch lacks its index tensors",
                 op);
  const Tensor& qs = *batch.query_start;
  const Tensor& lens = *batch.context_len;
  const Tensor& table = *batch.block_table;
  const int64_t B = batch.num_seqs, T = q.dim(0), num_blocks = k_pool.dim(0), bs = k_pool.dim(1);
  ROOFLINE_CHECK(bs == batch.block_size, "{}: the pool's block size {} is not the batch's {}", op, bs, batch.block_size);
  ROOFLINE_CHECK(qs.dtype() == DType::I32 && qs.numel() == B + 1 && lens.dtype() == DType::I32 && lens.numel() == B &&
                     table.dtype() == DType::I32 && table.rank() == 2 && table.dim(0) == B,
                 "{}: query_start [{}], context_len [{}] and block_table [{}, *] must be I32", op, B + 1, B, B);
  const int32_t* qsd = qs.ptr<int32_t>();
  const int32_t* lend = lens.ptr<int32_t>();
  const int64_t max_blocks = table.dim(1);
  ROOFLINE_CHECK(B == 0 || (qsd[0] == 0 && qsd[B] == T), "{}: query_start must run from 0 to {} rows", op, T);
  std::vector<int32_t> seq_of_row(static_cast<size_t>(T));
  for (int64_t b = 0; b < B; ++b) {
    const int64_t n = qsd[b + 1] - qsd[b];
    ROOFLINE_CHECK(n >= 0 && lend[b] >= n && lend[b] <= max_blocks * bs,
                   "{}: sequence {} has {} queries and {} keys (its table holds {} positions)", op, b, n, lend[b],
                   max_blocks * bs);
    for (int64_t blk = 0; blk < (lend[b] + bs - 1) / bs; ++blk) {
      const int32_t id = table.ptr<int32_t>()[b * max_blocks + blk];
      ROOFLINE_CHECK(id >= 0 && id < num_blocks, "{}: sequence {} block {} is {}, outside the pool of {}", op, b, blk,
                     id, num_blocks);
    }
    for (int64_t r = qsd[b]; r < qsd[b + 1]; ++r) seq_of_row[size_t(r)] = int32_t(b);
  }
  if (T == 0 || q.dim(1) == 0) return;
  const AttentionGeometry g = geometry(ctx, T, q.dim(1), k_pool.dim(2), q.dim(2), batch.scale, batch.sliding_window);
  const int64_t items = T * g.Hkv * g.chunks;
  ctx.pool.parallel_for(size_t(items), 1, [&](size_t b0, size_t e) {
    for (size_t item = b0; item < e; ++item) {
      const int64_t i = int64_t(item);
      const int64_t t = i / (g.Hkv * g.chunks);
      const int64_t b = seq_of_row[size_t(t)];
      const int64_t pos = lend[b] - (qsd[b + 1] - qsd[b]) + (t - qsd[b]);
      const SequenceKeys keys{table.ptr<int32_t>() + b * max_blocks, bs};
      attend_item(ctx, g, q.ptr<float>(), k_pool.ptr<float>(), v_pool.ptr<float>(), out.ptr<float>(), t,
                  (i / g.chunks) % g.Hkv, i % g.chunks, pos, keys);
    }
  });
}

// The scales of an F8E4M3 pool: [num_blocks, block_size, Hkv] f32 on the CPU, for pools of `pool_shape`.
void check_scales(const char* op, const Tensor* scales, const Shape& pool_shape, const char* what) {
  ROOFLINE_CHECK(scales != nullptr, "{}: an F8E4M3 pool needs its {} scales (KvScales)", op, what);
  check_f32(op, *scales, what);
  ROOFLINE_CHECK(scales->rank() == 3 && pool_shape.size() == 4 && scales->dim(0) == pool_shape[0] &&
                     scales->dim(1) == pool_shape[1] && scales->dim(2) == pool_shape[2],
                 "{}: {} scales {} must be [num_blocks, block_size, Hkv] of the pool {}", op, what,
                 shape_to_string(scales->shape()), shape_to_string(pool_shape));
}

// An F8E4M3 pool read as f32: the blocks the batch's sequences reach are dequantized into a compact pool
// (block i of the copy is the i-th distinct block met), the block tables renamed to match, and the f32 path
// runs on that. Cost O(keys read) per call, once per layer; the CPU serves correctness here, not speed.
void paged_attention_fp8(CpuContext& ctx, Tensor& out, const Tensor& q, const Tensor& k_pool, const Tensor& v_pool,
                         const PagedAttentionBatch& batch) {
  const char* op = "paged_attention";
  ROOFLINE_CHECK(v_pool.dtype() == DType::F8E4M3 && v_pool.shape() == k_pool.shape(),
                 "{}: k_pool (F8E4M3 {}) and v_pool ({} {}) must share dtype and shape", op,
                 shape_to_string(k_pool.shape()), dtype_name(v_pool.dtype()), shape_to_string(v_pool.shape()));
  check_cpu(op, k_pool, "k_pool");
  check_cpu(op, v_pool, "v_pool");
  check_scales(op, batch.kv_scales.k, k_pool.shape(), "k");
  check_scales(op, batch.kv_scales.v, k_pool.shape(), "v");
  ROOFLINE_CHECK(batch.context_len && batch.block_table && batch.context_len->dtype() == DType::I32 &&
                     batch.block_table->dtype() == DType::I32 && batch.block_table->rank() == 2 &&
                     batch.context_len->numel() == batch.num_seqs && batch.block_table->dim(0) == batch.num_seqs,
                 "{}: context_len [{}] and block_table [{}, *] must be I32", op, batch.num_seqs, batch.num_seqs);
  const int64_t B = batch.num_seqs, num_blocks = k_pool.dim(0), bs = k_pool.dim(1), Hkv = k_pool.dim(2),
                D = k_pool.dim(3), max_blocks = batch.block_table->dim(1);
  const int32_t* lens = batch.context_len->ptr<int32_t>();
  const int32_t* table = batch.block_table->ptr<int32_t>();
  Tensor renamed = Tensor::empty(DType::I32, {B, max_blocks});
  std::fill_n(renamed.ptr<int32_t>(), B * max_blocks, 0);
  std::vector<int32_t> compact_of(size_t(num_blocks), -1), used;
  for (int64_t b = 0; b < B; ++b) {
    const int64_t blocks = std::min<int64_t>((std::max(lens[b], 0) + bs - 1) / bs, max_blocks);
    for (int64_t i = 0; i < blocks; ++i) {
      const int32_t id = table[b * max_blocks + i];
      ROOFLINE_CHECK(id >= 0 && id < num_blocks, "{}: sequence {} block {} is {}, outside the pool of {}", op, b, i, id,
                     num_blocks);
      if (compact_of[size_t(id)] < 0) compact_of[size_t(id)] = int32_t(used.size()), used.push_back(id);
      renamed.ptr<int32_t>()[b * max_blocks + i] = compact_of[size_t(id)];
    }
  }
  const int64_t n = std::max<int64_t>(int64_t(used.size()), 1);
  Tensor k = Tensor::empty(DType::F32, {n, bs, Hkv, D}), v = Tensor::empty(DType::F32, {n, bs, Hkv, D});
  ctx.pool.parallel_for(used.size() * size_t(bs * Hkv), 64, [&](size_t begin, size_t end) {
    for (size_t item = begin; item < end; ++item) {
      const int64_t i = int64_t(item) / (bs * Hkv), row_head = int64_t(item) % (bs * Hkv);
      const int64_t from = int64_t(used[size_t(i)]) * bs * Hkv + row_head, to = i * bs * Hkv + row_head;
      dequantize_kv_vector(k_pool.ptr<uint8_t>() + from * D, batch.kv_scales.k->ptr<float>()[from], D,
                           k.ptr<float>() + to * D);
      dequantize_kv_vector(v_pool.ptr<uint8_t>() + from * D, batch.kv_scales.v->ptr<float>()[from], D,
                           v.ptr<float>() + to * D);
    }
  });
  PagedAttentionBatch compact = batch;
  compact.block_table = &renamed;
  compact.kv_scales = {};
  paged_attention_f32(ctx, out, q, k, v, compact);
}

}  // namespace

void paged_attention(CpuContext& ctx, Tensor& out, const Tensor& q, const Tensor& k_pool, const Tensor& v_pool,
                     const PagedAttentionBatch& batch) {
  if (k_pool.dtype() == DType::F8E4M3)
    paged_attention_fp8(ctx, out, q, k_pool, v_pool, batch);
  else
    paged_attention_f32(ctx, out, q, k_pool, v_pool, batch);
}

void store_kv(CpuContext& ctx, Tensor& k_pool, Tensor& v_pool, const Tensor& k, const Tensor& v, const Tensor& slots,
              const KvScales& scales) {
  const char* op = "store_kv";
  const bool fp8 = k_pool.dtype() == DType::F8E4M3;
  if (fp8) {
    ROOFLINE_CHECK(v_pool.dtype() == DType::F8E4M3, "{}: k_pool is F8E4M3, v_pool {}", op, dtype_name(v_pool.dtype()));
    check_cpu(op, k_pool, "k_pool");
    check_cpu(op, v_pool, "v_pool");
    check_scales(op, scales.k, k_pool.shape(), "k");
    check_scales(op, scales.v, v_pool.shape(), "v");
  } else {
    check_f32(op, k_pool, "k_pool");
    check_f32(op, v_pool, "v_pool");
  }
  check_f32(op, k, "k");
  check_f32(op, v, "v");
  check_cpu(op, slots, "slots");
  ROOFLINE_CHECK(k_pool.rank() == 4 && v_pool.shape() == k_pool.shape(), "{}: pools {} and {} must be [N, bs, Hkv, D]",
                 op, shape_to_string(k_pool.shape()), shape_to_string(v_pool.shape()));
  const int64_t row = k_pool.dim(2) * k_pool.dim(3), pool_rows = k_pool.dim(0) * k_pool.dim(1);
  const int64_t T = slots.numel();
  ROOFLINE_CHECK(slots.dtype() == DType::I32 && k.numel() == T * row && v.numel() == T * row,
                 "{}: k {} / v {} must be [{}, {}, {}] with I32 slots", op, shape_to_string(k.shape()),
                 shape_to_string(v.shape()), T, k_pool.dim(2), k_pool.dim(3));
  (void)ctx;
  for (int64_t t = 0; t < T; ++t) {
    const int32_t slot = slots.ptr<int32_t>()[t];
    if (slot < 0) continue;
    ROOFLINE_CHECK(slot < pool_rows, "{}: slot {} is outside the pool of {} rows", op, slot, pool_rows);
    if (fp8) {
      const int64_t Hkv = k_pool.dim(2), D = k_pool.dim(3);
      for (int64_t h = 0; h < Hkv; ++h) {
        const int64_t at = int64_t(slot) * Hkv + h;
        scales.k->ptr<float>()[at] = quantize_kv_vector(k.ptr<float>() + (t * Hkv + h) * D, D, k_pool.ptr<uint8_t>() + at * D);
        scales.v->ptr<float>()[at] = quantize_kv_vector(v.ptr<float>() + (t * Hkv + h) * D, D, v_pool.ptr<uint8_t>() + at * D);
      }
      continue;
    }
    std::copy_n(k.ptr<float>() + t * row, row, k_pool.ptr<float>() + int64_t(slot) * row);
    std::copy_n(v.ptr<float>() + t * row, row, v_pool.ptr<float>() + int64_t(slot) * row);
  }
}

}  // namespace roofline::cpu
