#include "roofline/train/ops/cross_entropy.h"

#include <algorithm>
#include <cmath>

#include "roofline/core/error.h"
#include "roofline/train/kernels/gemm.h"
#include "roofline/train/ops/fast_exp.h"
#include "roofline/train/ops/reduce.h"

namespace roofline::train {

int64_t lm_head_chunk_rows(int64_t M, int64_t V) {
  return std::clamp<int64_t>((int64_t(32) << 20) / (V * int64_t(sizeof(float))), 16, std::max<int64_t>(M, 16));
}

CrossEntropyResult lm_head_cross_entropy(ThreadPool& pool, const float* h, const float* W, const int32_t* targets,
                                         int64_t M, int64_t H, int64_t V, float grad_scale, float* dh, float* dW,
                                         std::vector<float>& scratch) {
  // About 32 MiB of logits per chunk (256 rows of a 32k vocabulary), at least 16 rows: big enough that the
  // three matmuls of a chunk stay efficient, a fraction of the whole batch's [M, V].
  const int64_t chunk = lm_head_chunk_rows(M, V);
  scratch.resize(size_t(chunk * V));
  std::vector<double> row_loss(static_cast<size_t>(M), 0.0);
  CrossEntropyResult result;
  for (int64_t m0 = 0; m0 < M; m0 += chunk) {
    const int64_t rows = std::min(chunk, M - m0);
    float* logits = scratch.data();
    matmul_nt(&pool, h + m0 * H, W, logits, rows, V, H);
    for_rows(pool, rows, 1, [&](int64_t r0, int64_t r1) {
      for (int64_t r = r0; r < r1; ++r) {
        float* l = logits + r * V;
        const int32_t target = targets[m0 + r];
        if (target >= V) fail("cross-entropy: target id {} is outside the vocabulary ({})", target, V);
        float mx = -INFINITY;
#pragma omp simd reduction(max : mx)
        for (int64_t j = 0; j < V; ++j) mx = std::max(mx, l[j]);
        const float target_logit = target >= 0 ? l[target] : 0.0f;
        // One pass of exp: l becomes exp(l - max), summed (in SIMD lanes).
        float sum = 0;
#pragma omp simd reduction(+ : sum)
        for (int64_t j = 0; j < V; ++j) {
          const float e = fast_exp(l[j] - mx);
          l[j] = e;
          sum += e;
        }
        const double lse = double(mx) + std::log(sum);
        if (target >= 0) row_loss[size_t(m0 + r)] = lse - double(target_logit);
        if (!dh) continue;
        if (target < 0) {
          std::fill(l, l + V, 0.0f);
          continue;
        }
        const float scale = float(double(grad_scale) / sum);
#pragma omp simd
        for (int64_t j = 0; j < V; ++j) l[j] *= scale;
        l[target] -= grad_scale;
      }
    });
    if (dh) {
      matmul_nn(&pool, logits, W, dh + m0 * H, rows, H, V);                 // dh[rows, H] = dlogits W
      matmul_tn(&pool, logits, h + m0 * H, dW, V, H, rows, /*accumulate=*/true);  // dW += dlogits^T h
    }
  }
  for (int64_t m = 0; m < M; ++m)
    if (targets[m] >= 0) {
      result.loss_sum += row_loss[size_t(m)];
      ++result.count;
    }
  return result;
}

}  // namespace roofline::train
