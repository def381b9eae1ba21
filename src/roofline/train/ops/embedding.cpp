#include "roofline/train/ops/embedding.h"

#include "roofline/train/ops/reduce.h"

namespace roofline::train {

void embedding_forward(ThreadPool& pool, const int32_t* tokens, const float* wte, const float* wpe, float* out,
                       int64_t B, int64_t T, int64_t H) {
  for_rows(pool, B * T, 32, [&](int64_t m0, int64_t m1) {
    for (int64_t m = m0; m < m1; ++m) {
      const float* e = wte + int64_t(tokens[m]) * H;
      float* o = out + m * H;
      if (wpe) {
        const float* p = wpe + (m % T) * H;
        for (int64_t i = 0; i < H; ++i) o[i] = e[i] + p[i];
      } else {
        for (int64_t i = 0; i < H; ++i) o[i] = e[i];
      }
    }
  });
}

void embedding_backward(ThreadPool& pool, const int32_t* tokens, const float* dout, float* dwte, float* dwpe,
                        int64_t B, int64_t T, int64_t H) {
  // Columns split across threads; rows in order within each column range (deterministic).
  const int64_t grain = 64;
  for_rows(pool, (H + grain - 1) / grain, 1, [&](int64_t c0, int64_t c1) {
    const int64_t i0 = c0 * grain, i1 = std::min<int64_t>(H, c1 * grain);
    for (int64_t m = 0; m < B * T; ++m) {
      float* e = dwte + int64_t(tokens[m]) * H;
      const float* d = dout + m * H;
      for (int64_t i = i0; i < i1; ++i) e[i] += d[i];
      if (dwpe) {
        float* p = dwpe + (m % T) * H;
        for (int64_t i = i0; i < i1; ++i) p[i] += d[i];
      }
    }
  });
}

}  // namespace roofline::train
