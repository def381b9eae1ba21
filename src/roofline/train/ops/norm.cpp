#include "roofline/train/ops/norm.h"

#include <cmath>

#include "roofline/train/ops/reduce.h"

namespace roofline::train {

void layernorm_forward(ThreadPool& pool, const float* x, const float* w, const float* b, float* y, float* mean,
                       float* rstd, int64_t rows, int64_t dim, float eps) {
  for_rows(pool, rows, 16, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const float* xr = x + r * dim;
      double sum = 0;
      for (int64_t i = 0; i < dim; ++i) sum += xr[i];
      const float mu = float(sum / double(dim));
      double var = 0;
      for (int64_t i = 0; i < dim; ++i) var += double(xr[i] - mu) * double(xr[i] - mu);
      const float rs = float(1.0 / std::sqrt(var / double(dim) + double(eps)));
      float* yr = y + r * dim;
      for (int64_t i = 0; i < dim; ++i) yr[i] = (xr[i] - mu) * rs * w[i] + b[i];
      mean[r] = mu;
      rstd[r] = rs;
    }
  });
}

// xhat = (x - mean) * rstd, g = dy * w:
//   dx = rstd * (g - mean(g) - xhat * mean(g * xhat)),  dw += dy * xhat,  db += dy
void layernorm_backward(ThreadPool& pool, const float* dy, const float* x, const float* w, const float* mean,
                        const float* rstd, float* dx, bool accumulate_dx, float* dw, float* db, int64_t rows,
                        int64_t dim) {
  for_rows(pool, rows, 16, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const float* xr = x + r * dim;
      const float* dyr = dy + r * dim;
      double sum_g = 0, sum_gx = 0;
      for (int64_t i = 0; i < dim; ++i) {
        const float xhat = (xr[i] - mean[r]) * rstd[r];
        const float g = dyr[i] * w[i];
        sum_g += g;
        sum_gx += double(g) * xhat;
      }
      const float mg = float(sum_g / double(dim)), mgx = float(sum_gx / double(dim));
      float* dxr = dx + r * dim;
      for (int64_t i = 0; i < dim; ++i) {
        const float xhat = (xr[i] - mean[r]) * rstd[r];
        const float v = rstd[r] * (dyr[i] * w[i] - mg - xhat * mgx);
        dxr[i] = accumulate_dx ? dxr[i] + v : v;
      }
    }
  });
  std::vector<float> both(size_t(2 * dim), 0.0f);
  reduce_rows(pool, rows, 2 * dim, both.data(), [&](int64_t r0, int64_t r1, float* part) {
    for (int64_t r = r0; r < r1; ++r)
      for (int64_t i = 0; i < dim; ++i) {
        const float d = dy[r * dim + i];
        part[i] += d * (x[r * dim + i] - mean[r]) * rstd[r];
        part[dim + i] += d;
      }
  });
  for (int64_t i = 0; i < dim; ++i) {
    dw[i] += both[size_t(i)];
    db[i] += both[size_t(dim + i)];
  }
}

void rmsnorm_forward(ThreadPool& pool, const float* x, const float* w, float* y, float* rstd, int64_t rows,
                     int64_t dim, float eps) {
  for_rows(pool, rows, 16, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const float* xr = x + r * dim;
      double ss = 0;
      for (int64_t i = 0; i < dim; ++i) ss += double(xr[i]) * xr[i];
      const float rs = float(1.0 / std::sqrt(ss / double(dim) + double(eps)));
      float* yr = y + r * dim;
      for (int64_t i = 0; i < dim; ++i) yr[i] = w[i] * (xr[i] * rs);
      rstd[r] = rs;
    }
  });
}

// xhat = x * rstd, g = dy * w:  dx = rstd * (g - xhat * mean(g * xhat)),  dw += dy * xhat
void rmsnorm_backward(ThreadPool& pool, const float* dy, const float* x, const float* w, const float* rstd,
                      float* dx, bool accumulate_dx, float* dw, int64_t rows, int64_t dim) {
  for_rows(pool, rows, 16, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const float* xr = x + r * dim;
      const float* dyr = dy + r * dim;
      double sum_gx = 0;
      for (int64_t i = 0; i < dim; ++i) sum_gx += double(dyr[i] * w[i]) * (xr[i] * rstd[r]);
      const float mgx = float(sum_gx / double(dim));
      float* dxr = dx + r * dim;
      for (int64_t i = 0; i < dim; ++i) {
        const float v = rstd[r] * (dyr[i] * w[i] - xr[i] * rstd[r] * mgx);
        dxr[i] = accumulate_dx ? dxr[i] + v : v;
      }
    }
  });
  reduce_rows(pool, rows, dim, dw, [&](int64_t r0, int64_t r1, float* part) {
    for (int64_t r = r0; r < r1; ++r)
      for (int64_t i = 0; i < dim; ++i) part[i] += dy[r * dim + i] * (x[r * dim + i] * rstd[r]);
  });
}

}  // namespace roofline::train
