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
// (row stride Hq*D for q/out, Hkv*D for k/v). S and P are [T, T] per task (thread-local).
struct HeadViews {
  const float* q;  // [T, D], row stride sq
  const float* k;  // [T, D], row stride skv
  const float* v;
  int64_t sq, skv;
};

// P[i, j] = exp(scale * q_i.k_j - lse_i) for visible j, else 0. Also returns lse when `lse_out`.
void probabilities(const AttentionShape& s, const HeadViews& h, float scale, float* P, const float* lse_in,
                   float* lse_out) {
  const int64_t T = s.T, D = s.D;
  gemm(nullptr, {false, true, T, T, D, h.q, h.sq, h.k, h.skv, 0.0f, P, T});  // S = Q K^T
  for (int64_t i = 0; i < T; ++i) {
    float* row = P + i * T;
    const int64_t j0 = first_key(s, i);
    float l;
    if (lse_out) {
      float mx = -INFINITY;
      for (int64_t j = j0; j <= i; ++j) mx = std::max(mx, row[j] * scale);
      float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
      for (int64_t j = j0; j <= i; ++j) {
        const float e = fast_exp(row[j] * scale - mx);
        row[j] = e;
        sum += e;
      }
      const float inv = 1.0f / sum;
#pragma omp simd
      for (int64_t j = j0; j <= i; ++j) row[j] *= inv;
      lse_out[i] = mx + std::log(sum);
    } else {
      l = lse_in[i];
#pragma omp simd
      for (int64_t j = j0; j <= i; ++j) row[j] = fast_exp(row[j] * scale - l);
    }
    std::fill(row, row + j0, 0.0f);
    std::fill(row + i + 1, row + T, 0.0f);
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
      probabilities(s, views, scale, P.data(), nullptr, lse + (b * s.Hq + h) * T);
      // O = P V
      gemm(nullptr, {false, false, T, D, T, P.data(), T, views.v, views.skv, 0.0f, out + (b * T * s.Hq + h) * D, s.Hq * D});
    }
  });
}

// P = exp(S - lse), dP = dO V^T, Delta_i = dO_i . O_i, dS = P (dP - Delta) scale:
//   dQ = dS K,  dK += dS^T Q,  dV += P^T dO
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
      for (int64_t h = kh * group; h < (kh + 1) * group; ++h) {
        const int64_t qoff = (b * T * s.Hq + h) * D;
        const HeadViews views{q + qoff, k + (b * T * s.Hkv + kh) * D, v + (b * T * s.Hkv + kh) * D, s.Hq * D, s.Hkv * D};
        probabilities(s, views, scale, P.data(), lse + (b * s.Hq + h) * T, nullptr);
        const float* dO = dout + qoff;
        const float* O = out + qoff;
        gemm(nullptr, {false, true, T, T, D, dO, s.Hq * D, views.v, views.skv, 0.0f, dP.data(), T});  // dP = dO V^T
        for (int64_t i = 0; i < T; ++i) {
          float delta = 0.0f;
#pragma omp simd reduction(+ : delta)
          for (int64_t d = 0; d < D; ++d) delta += dO[i * s.Hq * D + d] * O[i * s.Hq * D + d];
          float* ds = dP.data() + i * T;
          const float* p = P.data() + i * T;
#pragma omp simd
          for (int64_t j = 0; j < T; ++j) ds[j] = p[j] * (ds[j] - delta) * scale;
        }
        const bool first = h == kh * group;
        gemm(nullptr, {false, false, T, D, T, dP.data(), T, views.k, views.skv, 0.0f, dq + qoff, s.Hq * D});  // dQ
        gemm(nullptr, {true, false, T, D, T, dP.data(), T, views.q, s.Hq * D, first ? 0.0f : 1.0f, dk_h, s.Hkv * D});
        gemm(nullptr, {true, false, T, D, T, P.data(), T, dO, s.Hq * D, first ? 0.0f : 1.0f, dv_h, s.Hkv * D});
      }
    }
  });
}

}  // namespace roofline::train
