// Causal attention of T query rows against one sequence's contiguous KV cache, with grouped-query heads
// and an optional sliding window.
//   q: [T, Hq, D], k_cache / v_cache: [S_max, Hkv, D], out: [T, Hq, D]; query head h reads kv head
//   h / (Hq / Hkv); query row t sits at position p = start_pos + t and sees keys (p - window, p] (or all
//   of [0, p] without a window).
// Online softmax in f32: keys go by in blocks of 64; per head a running max m, sum l and output acc are
// rescaled by exp(m_old - m_new) when the max grows, so no [S] score buffer is needed and every exp
// argument is <= 0. The query heads that share a kv head are processed together, so each block of keys
// and values is read from memory once and reused from L1 by the whole group.
// Work items are (t, kv head, group chunk), spread over the pool. out may alias q: an item copies its q
// rows (scaled) before it writes the same rows of out, and no other item reads them.
#include <algorithm>
#include <cmath>
#include <limits>

#include "roofline/backend/cpu/cpu_ops.h"
#include "roofline/core/error.h"

namespace roofline::cpu {

namespace {
constexpr int64_t kKeyBlock = 64;     // keys per online-softmax step
constexpr int64_t kMaxHeadDim = 512;  // bound for the per-item stack buffers
constexpr int64_t kMaxChunk = 8;      // query heads processed together per item
}  // namespace

void attention(CpuContext& ctx, Tensor& out, const Tensor& q, const Tensor& k_cache, const Tensor& v_cache,
               const AttentionParams& params) {
  const char* op = "attention";
  check_f32(op, q, "q");
  check_f32(op, k_cache, "k_cache");
  check_f32(op, v_cache, "v_cache");
  check_f32(op, out, "out");
  ROOFLINE_CHECK(q.rank() == 3, "attention: q must be [T, Hq, D], got {}", shape_to_string(q.shape()));
  ROOFLINE_CHECK(k_cache.rank() == 3 && v_cache.shape() == k_cache.shape(),
                 "attention: k_cache {} and v_cache {} must both be [S_max, Hkv, D]", shape_to_string(k_cache.shape()),
                 shape_to_string(v_cache.shape()));
  ROOFLINE_CHECK(out.shape() == q.shape(), "attention: out {} must have the shape of q {}", shape_to_string(out.shape()),
                 shape_to_string(q.shape()));
  const int64_t T = q.dim(0), Hq = q.dim(1), D = q.dim(2);
  const int64_t S_max = k_cache.dim(0), Hkv = k_cache.dim(1);
  ROOFLINE_CHECK(k_cache.dim(2) == D, "attention: head_dim of q ({}) and of the cache ({}) differ", D, k_cache.dim(2));
  ROOFLINE_CHECK(Hkv > 0 && Hq % Hkv == 0, "attention: {} query heads are not a multiple of {} kv heads", Hq, Hkv);
  ROOFLINE_CHECK(D > 0 && D <= kMaxHeadDim, "attention: head_dim {} must be in [1, {}]", D, kMaxHeadDim);
  ROOFLINE_CHECK(params.start_pos >= 0 && params.start_pos + T <= S_max,
                 "attention: rows at positions [{}, {}) do not fit the cache of {} positions", params.start_pos,
                 params.start_pos + T, S_max);
  ROOFLINE_CHECK(params.sliding_window >= 0, "attention: sliding_window {} is negative", params.sliding_window);
  if (T == 0 || Hq == 0) return;

  const int64_t group = Hq / Hkv;
  // Split each group into chunks when there are too few (t, kv head) items to occupy the pool.
  const int64_t want_items = 4 * int64_t(ctx.pool.size());
  int64_t chunks = std::clamp<int64_t>((want_items + T * Hkv - 1) / (T * Hkv), 1, group);
  chunks = std::max(chunks, (group + kMaxChunk - 1) / kMaxChunk);
  const int64_t chunk = (group + chunks - 1) / chunks;
  chunks = (group + chunk - 1) / chunk;

  const float* qd = q.ptr<float>();
  const float* kd = k_cache.ptr<float>();
  const float* vd = v_cache.ptr<float>();
  float* od = out.ptr<float>();
  const int64_t kv_stride = Hkv * D;  // floats between consecutive positions of one kv head
  const VectorKernels& vk = ctx.kernels.vector;

  auto run_item = [&](int64_t item) {
    const int64_t t = item / (Hkv * chunks), kvh = (item / chunks) % Hkv, c = item % chunks;
    const int64_t h0 = kvh * group + c * chunk, heads = std::min(chunk, group - c * chunk);
    const int64_t pos = params.start_pos + t;
    const int64_t first = params.sliding_window > 0 ? std::max<int64_t>(0, pos - params.sliding_window + 1) : 0;

    alignas(64) float qs[kMaxChunk][kMaxHeadDim];   // q rows pre-multiplied by the scale
    alignas(64) float acc[kMaxChunk][kMaxHeadDim];  // unnormalised outputs
    alignas(64) float s[kMaxChunk][kKeyBlock];      // scores, then probabilities, of one key block
    float m[kMaxChunk], l[kMaxChunk];
    for (int64_t g = 0; g < heads; ++g) {
      const float* qr = qd + (t * Hq + h0 + g) * D;
      for (int64_t i = 0; i < D; ++i) qs[g][i] = qr[i] * params.scale;
      std::fill(acc[g], acc[g] + D, 0.0f);
      m[g] = -std::numeric_limits<float>::infinity();
      l[g] = 0.0f;
    }
    for (int64_t j0 = first; j0 <= pos; j0 += kKeyBlock) {
      const int64_t count = std::min(kKeyBlock, pos + 1 - j0);
      const float* kb = kd + j0 * kv_stride + kvh * D;
      const float* vb = vd + j0 * kv_stride + kvh * D;
      for (int64_t g = 0; g < heads; ++g) {
        vk.dot_rows(s[g], qs[g], kb, kv_stride, count, D);
        const float block_max = *std::max_element(s[g], s[g] + count);
        const float m_new = std::max(m[g], block_max);
        if (m_new > m[g] && l[g] > 0.0f) {  // the max grew: rescale what was accumulated so far
          const float correction = std::exp(m[g] - m_new);
          l[g] *= correction;
          for (int64_t i = 0; i < D; ++i) acc[g][i] *= correction;
        }
        m[g] = m_new;
        l[g] += vk.exp_shifted(s[g], count, m_new);
        vk.axpy_rows(acc[g], s[g], vb, kv_stride, count, D);
      }
    }
    for (int64_t g = 0; g < heads; ++g) {
      float* o = od + (t * Hq + h0 + g) * D;
      const float inv = 1.0f / l[g];
      for (int64_t i = 0; i < D; ++i) o[i] = acc[g][i] * inv;
    }
  };

  const int64_t items = T * Hkv * chunks;
  ctx.pool.parallel_for(size_t(items), 1, [&](size_t b, size_t e) {
    for (size_t item = b; item < e; ++item) run_item(int64_t(item));
  });
}

}  // namespace roofline::cpu
