#include "roofline/train/ops/attention.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "roofline/train/kernels/gemm.h"
#include "roofline/train/ops/fast_exp.h"
#include "roofline/train/ops/reduce.h"

namespace roofline::train {
namespace {

inline int64_t first_key(const AttentionShape& s, int64_t i) {
  return s.window > 0 ? std::max<int64_t>(0, i - s.window + 1) : 0;
}

// Each (batch, head) is a task; inside it the products are single-threaded gemm calls over strided views
// (row stride Hq*D for q/out, Hkv*D for k/v), one tile of query rows at a time.
struct HeadViews {
  const float* q;  // [T, D], row stride sq
  const float* k;  // [T, D], row stride skv
  const float* v;
  int64_t sq, skv;
};

// Query rows [i0, i1) see keys [j0, i1) at most (causal, and the window's first key for row i0): the scores of a
// tile are [i1 - i0, i1 - j0], so keys no row of the tile sees are never multiplied.
struct RowTile {
  int64_t i0, i1, j0;
  int64_t rows() const { return i1 - i0; }
  int64_t keys() const { return i1 - j0; }
};

RowTile row_tile(const AttentionShape& s, int64_t i0) {
  const int64_t i1 = std::min(s.T, i0 + kAttentionRowTile);
  return {i0, i1, first_key(s, i0)};
}

// P[r, c] = exp(scale * q_(i0+r).k_(j0+c) - lse_(i0+r)) for visible keys, else 0; P is [rows, keys], row stride
// keys. lse is indexed by query row: read from `lse_in`, or computed into `lse_out` (the forward).
void probabilities(const AttentionShape& s, const HeadViews& h, const RowTile& t, float scale, float* P,
                   const float* lse_in, float* lse_out) {
  const int64_t D = s.D, n = t.keys();
  gemm(nullptr, {false, true, t.rows(), n, D, h.q + t.i0 * h.sq, h.sq, h.k + t.j0 * h.skv, h.skv, 0.0f, P, n});
  for (int64_t i = t.i0; i < t.i1; ++i) {
    float* row = P + (i - t.i0) * n;
    const int64_t c0 = first_key(s, i) - t.j0, c1 = i - t.j0 + 1;  // visible columns [c0, c1)
    if (lse_out) {
      float mx = -INFINITY;
      for (int64_t c = c0; c < c1; ++c) mx = std::max(mx, row[c] * scale);
      float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
      for (int64_t c = c0; c < c1; ++c) {
        const float e = fast_exp(row[c] * scale - mx);
        row[c] = e;
        sum += e;
      }
      const float inv = 1.0f / sum;
#pragma omp simd
      for (int64_t c = c0; c < c1; ++c) row[c] *= inv;
      lse_out[i] = mx + std::log(sum);
    } else {
      const float l = lse_in[i];
#pragma omp simd
      for (int64_t c = c0; c < c1; ++c) row[c] = fast_exp(row[c] * scale - l);
    }
    std::fill(row, row + c0, 0.0f);
    std::fill(row + c1, row + n, 0.0f);
  }
}

}  // namespace

void attention_forward(ThreadPool& pool, const AttentionShape& s, const float* q, const float* k, const float* v,
                       float* out, float* lse) {
  const int64_t D = s.D, T = s.T, group = s.Hq / s.Hkv;
  const float scale = 1.0f / std::sqrt(float(D));
  for_rows(pool, s.B * s.Hq, 1, [&](int64_t t0, int64_t t1) {
    thread_local std::vector<float> P;
    P.resize(attention_scores_floats(T));
    for (int64_t task = t0; task < t1; ++task) {
      const int64_t b = task / s.Hq, h = task % s.Hq, kh = h / group;
      const HeadViews views{q + (b * T * s.Hq + h) * D, k + (b * T * s.Hkv + kh) * D, v + (b * T * s.Hkv + kh) * D,
                            s.Hq * D, s.Hkv * D};
      float* o = out + (b * T * s.Hq + h) * D;
      for (int64_t i0 = 0; i0 < T; i0 += kAttentionRowTile) {
        const RowTile t = row_tile(s, i0);
        probabilities(s, views, t, scale, P.data(), nullptr, lse + (b * s.Hq + h) * T);
        // O = P V
        gemm(nullptr, {false, false, t.rows(), D, t.keys(), P.data(), t.keys(), views.v + t.j0 * views.skv,
                       views.skv, 0.0f, o + t.i0 * s.Hq * D, s.Hq * D});
      }
    }
  });
}

// P = exp(S - lse), dP = dO V^T, Delta_i = dO_i . O_i, dS = P (dP - Delta) scale:
//   dQ = dS K,  dK += dS^T Q,  dV += P^T dO
// A tile of query rows adds to the dK and dV of the keys it sees: they start at zero and every tile accumulates.
void attention_backward(ThreadPool& pool, const AttentionShape& s, const float* q, const float* k, const float* v,
                        const float* out, const float* lse, const float* dout, float* dq, float* dk, float* dv) {
  const int64_t D = s.D, T = s.T, group = s.Hq / s.Hkv;
  const float scale = 1.0f / std::sqrt(float(D));
  for_rows(pool, s.B * s.Hkv, 1, [&](int64_t t0, int64_t t1) {
    thread_local std::vector<float> P, dP;
    P.resize(attention_scores_floats(T));
    dP.resize(attention_scores_floats(T));
    for (int64_t task = t0; task < t1; ++task) {
      const int64_t b = task / s.Hkv, kh = task % s.Hkv;
      float* dk_h = dk + (b * T * s.Hkv + kh) * D;
      float* dv_h = dv + (b * T * s.Hkv + kh) * D;
      for (int64_t i = 0; i < T; ++i) {
        std::fill(dk_h + i * s.Hkv * D, dk_h + i * s.Hkv * D + D, 0.0f);
        std::fill(dv_h + i * s.Hkv * D, dv_h + i * s.Hkv * D + D, 0.0f);
      }
      for (int64_t h = kh * group; h < (kh + 1) * group; ++h) {
        const int64_t qoff = (b * T * s.Hq + h) * D, sq = s.Hq * D;
        const HeadViews views{q + qoff, k + (b * T * s.Hkv + kh) * D, v + (b * T * s.Hkv + kh) * D, sq, s.Hkv * D};
        for (int64_t i0 = 0; i0 < T; i0 += kAttentionRowTile) {
          const RowTile t = row_tile(s, i0);
          const int64_t n = t.keys();
          probabilities(s, views, t, scale, P.data(), lse + (b * s.Hq + h) * T, nullptr);
          const float* dO = dout + qoff + t.i0 * sq;
          const float* O = out + qoff + t.i0 * sq;
          const float* k_t = views.k + t.j0 * views.skv;
          gemm(nullptr, {false, true, t.rows(), n, D, dO, sq, views.v + t.j0 * views.skv, views.skv, 0.0f, dP.data(),
                         n});  // dP = dO V^T
          for (int64_t r = 0; r < t.rows(); ++r) {
            float delta = 0.0f;
#pragma omp simd reduction(+ : delta)
            for (int64_t d = 0; d < D; ++d) delta += dO[r * sq + d] * O[r * sq + d];
            float* ds = dP.data() + r * n;
            const float* p = P.data() + r * n;
#pragma omp simd
            for (int64_t c = 0; c < n; ++c) ds[c] = p[c] * (ds[c] - delta) * scale;
          }
          gemm(nullptr, {false, false, t.rows(), D, n, dP.data(), n, k_t, views.skv, 0.0f, dq + qoff + t.i0 * sq, sq});
          gemm(nullptr, {true, false, n, D, t.rows(), dP.data(), n, views.q + t.i0 * sq, sq, 1.0f,
                         dk_h + t.j0 * s.Hkv * D, s.Hkv * D});
          gemm(nullptr, {true, false, n, D, t.rows(), P.data(), n, dO, sq, 1.0f, dv_h + t.j0 * s.Hkv * D, s.Hkv * D});
        }
      }
    }
  });
}

}  // namespace roofline::train
