// Finite-difference checks of every op's backward on small random inputs: for a random projection
// L = sum(r * f(x)), the analytic dL/dx (and parameter gradients) must match central differences taken in
// double around the f32 forward (step 1e-2 on values ~1, tolerance relative to the gradient's norm).
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <random>

#include "roofline/train/kernels/gemm.h"
#include "roofline/train/ops/activations.h"
#include "roofline/train/ops/attention.h"
#include "roofline/train/ops/cross_entropy.h"
#include "roofline/train/ops/embedding.h"
#include "roofline/train/ops/linear.h"
#include "roofline/train/ops/norm.h"
#include "roofline/train/ops/rope.h"

namespace roofline::train {
namespace {

std::vector<float> random_vector(size_t n, uint64_t seed, float scale = 1.0f, float offset = 0.0f) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  std::vector<float> v(n);
  for (float& x : v) x = offset + scale * u(rng);
  return v;
}

double dot(const std::vector<float>& a, const std::vector<float>& b) {
  double s = 0;
  for (size_t i = 0; i < a.size(); ++i) s += double(a[i]) * b[i];
  return s;
}

// Checks analytic gradient `grad` of loss(x) w.r.t. the vector x, by central differences on a sample of
// coordinates (all when small).
void expect_gradient(const char* what, std::vector<float>& x, const std::vector<float>& grad,
                     const std::function<double()>& loss, double eps = 1e-2, double tol = 2e-3) {
  ASSERT_EQ(x.size(), grad.size());
  double norm = 0;
  for (float g : grad) norm += double(g) * g;
  norm = std::sqrt(norm / double(grad.size())) + 1e-6;
  const size_t stride = std::max<size_t>(1, x.size() / 64);
  double worst = 0;
  for (size_t i = 0; i < x.size(); i += stride) {
    const float saved = x[i];
    x[i] = saved + float(eps);
    const double up = loss();
    x[i] = saved - float(eps);
    const double down = loss();
    x[i] = saved;
    const double numeric = (up - down) / (2 * eps);
    worst = std::max(worst, std::abs(numeric - grad[i]) / norm);
  }
  EXPECT_LT(worst, tol) << what;
}

struct Fixture {
  ThreadPool pool{2};
};

TEST(TrainOps, GemmMatchesReferenceInAllTransposes) {
  ThreadPool pool(2);
  for (bool ta : {false, true})
    for (bool tb : {false, true})
      for (auto [M, N, K] : {std::tuple<int64_t, int64_t, int64_t>{1, 1, 1}, {7, 13, 5}, {37, 70, 300}, {64, 33, 17}}) {
        std::vector<float> A = random_vector(static_cast<size_t>(M * K), 1), B = random_vector(static_cast<size_t>(K * N), 2);
        std::vector<float> C = random_vector(static_cast<size_t>(M * N), 3), ref = C;
        for (int64_t i = 0; i < M; ++i)
          for (int64_t j = 0; j < N; ++j) {
            double s = ref[static_cast<size_t>(i * N + j)];
            for (int64_t k = 0; k < K; ++k)
              s += double(ta ? A[static_cast<size_t>(k * M + i)] : A[static_cast<size_t>(i * K + k)]) * (tb ? B[static_cast<size_t>(j * K + k)] : B[static_cast<size_t>(k * N + j)]);
            ref[static_cast<size_t>(i * N + j)] = float(s);
          }
        gemm(&pool, {ta, tb, M, N, K, A.data(), ta ? M : K, B.data(), tb ? K : N, 1.0f, C.data(), N});
        for (size_t i = 0; i < C.size(); ++i) ASSERT_NEAR(C[i], ref[i], 1e-4 * (1 + std::abs(ref[i]))) << ta << tb << M << N << K;
      }
}

TEST(TrainOps, LinearBackward) {
  Fixture f;
  const int64_t M = 5, in = 7, out = 6;
  auto x = random_vector(static_cast<size_t>(M * in), 1), w = random_vector(static_cast<size_t>(out * in), 2), b = random_vector(static_cast<size_t>(out), 3);
  auto r = random_vector(static_cast<size_t>(M * out), 4);
  std::vector<float> y(static_cast<size_t>(M * out));
  auto loss = [&] {
    linear_forward(f.pool, x.data(), w.data(), b.data(), y.data(), M, in, out);
    return dot(y, r);
  };
  std::vector<float> dx(x.size()), dw(w.size(), 0.0f), db(b.size(), 0.0f);
  linear_backward(f.pool, r.data(), x.data(), w.data(), dx.data(), false, dw.data(), db.data(), M, in, out);
  expect_gradient("linear dx", x, dx, loss);
  expect_gradient("linear dw", w, dw, loss);
  expect_gradient("linear db", b, db, loss);
}

TEST(TrainOps, NormBackward) {
  Fixture f;
  const int64_t rows = 4, dim = 12;
  auto x = random_vector(static_cast<size_t>(rows * dim), 1), w = random_vector(static_cast<size_t>(dim), 2, 0.3f, 1.0f);
  auto b = random_vector(static_cast<size_t>(dim), 3), r = random_vector(static_cast<size_t>(rows * dim), 4);
  std::vector<float> y(x.size()), mean(static_cast<size_t>(rows)), rstd(static_cast<size_t>(rows));
  for (bool layer : {true, false}) {
    auto loss = [&] {
      if (layer) layernorm_forward(f.pool, x.data(), w.data(), b.data(), y.data(), mean.data(), rstd.data(), rows, dim, 1e-5f);
      else rmsnorm_forward(f.pool, x.data(), w.data(), y.data(), rstd.data(), rows, dim, 1e-5f);
      return dot(y, r);
    };
    loss();
    std::vector<float> dx(x.size()), dw(w.size(), 0.0f), db(b.size(), 0.0f);
    if (layer) layernorm_backward(f.pool, r.data(), x.data(), w.data(), mean.data(), rstd.data(), dx.data(), false, dw.data(), db.data(), rows, dim);
    else rmsnorm_backward(f.pool, r.data(), x.data(), w.data(), rstd.data(), dx.data(), false, dw.data(), rows, dim);
    expect_gradient(layer ? "layernorm dx" : "rmsnorm dx", x, dx, loss);
    expect_gradient(layer ? "layernorm dw" : "rmsnorm dw", w, dw, loss);
    if (layer) expect_gradient("layernorm db", b, db, loss);
  }
}

TEST(TrainOps, ActivationsBackward) {
  Fixture f;
  const int64_t n = 40;
  auto x = random_vector(static_cast<size_t>(n), 1, 3.0f), u = random_vector(static_cast<size_t>(n), 2, 2.0f), r = random_vector(static_cast<size_t>(n), 3);
  std::vector<float> y(static_cast<size_t>(n));
  auto gelu_loss = [&] {
    gelu_forward(f.pool, x.data(), y.data(), n);
    return dot(y, r);
  };
  std::vector<float> dx(static_cast<size_t>(n)), du(static_cast<size_t>(n));
  gelu_backward(f.pool, r.data(), x.data(), dx.data(), n);
  expect_gradient("gelu", x, dx, gelu_loss, 1e-3);
  auto swiglu_loss = [&] {
    swiglu_forward(f.pool, x.data(), u.data(), y.data(), n);
    return dot(y, r);
  };
  swiglu_backward(f.pool, r.data(), x.data(), u.data(), dx.data(), du.data(), n);
  expect_gradient("swiglu gate", x, dx, swiglu_loss, 1e-3);
  expect_gradient("swiglu up", u, du, swiglu_loss, 1e-3);
}

TEST(TrainOps, RopeBackward) {
  Fixture f;
  ModelSpec spec;
  spec.head_dim = 8;
  spec.rope_theta = 100.0;
  spec.rope_scaling.kind = RopeScalingKind::Llama3;
  spec.rope_scaling.factor = 4;
  spec.rope_scaling.original_max_position = 8;
  const int64_t B = 2, T = 5, heads = 3, D = 8;
  RopeTables tables = make_rope_tables(spec, T);
  auto x = random_vector(static_cast<size_t>(B * T * heads * D), 1), r = random_vector(x.size(), 2);
  auto loss = [&] {
    std::vector<float> y = x;
    rope_forward(f.pool, y.data(), tables, B, T, heads, D);
    return dot(y, r);
  };
  std::vector<float> dx = r;
  rope_backward(f.pool, dx.data(), tables, B, T, heads, D);
  expect_gradient("rope", x, dx, loss);
}

TEST(TrainOps, AttentionBackward) {
  Fixture f;
  for (int64_t window : {int64_t(0), int64_t(3)}) {
    const AttentionShape s{2, 6, 4, 2, 8, window};
    const size_t nq = static_cast<size_t>(s.B * s.T * s.Hq * s.D), nk = static_cast<size_t>(s.B * s.T * s.Hkv * s.D);
    auto q = random_vector(nq, 1), k = random_vector(nk, 2), v = random_vector(nk, 3), r = random_vector(nq, 4);
    std::vector<float> out(nq), lse(static_cast<size_t>(s.B * s.Hq * s.T));
    auto loss = [&] {
      attention_forward(f.pool, s, q.data(), k.data(), v.data(), out.data(), lse.data());
      return dot(out, r);
    };
    loss();
    std::vector<float> dq(nq), dk(nk), dv(nk);
    attention_backward(f.pool, s, q.data(), k.data(), v.data(), out.data(), lse.data(), r.data(), dq.data(), dk.data(), dv.data());
    expect_gradient("attention dq", q, dq, loss);
    expect_gradient("attention dk", k, dk, loss);
    expect_gradient("attention dv", v, dv, loss);
  }
}

// Sequences longer than one tile of query rows (kAttentionRowTile): a partial last tile, a window that spans tiles,
// grouped heads, two sequences; forward and backward against a direct float64 evaluation.
TEST(TrainOps, AttentionTilesMatchFloat64) {
  Fixture f;
  const int64_t T = 2 * kAttentionRowTile + 22;
  for (int64_t window : {int64_t(0), kAttentionRowTile + 6}) {
    SCOPED_TRACE(window);
    const AttentionShape s{2, T, 4, 2, 16, window};
    const int64_t group = s.Hq / s.Hkv;
    const size_t nq = size_t(s.B * T * s.Hq * s.D), nk = size_t(s.B * T * s.Hkv * s.D);
    const auto q = random_vector(nq, 11), k = random_vector(nk, 12), v = random_vector(nk, 13),
               dout = random_vector(nq, 14);
    std::vector<float> out(nq), lse(size_t(s.B * s.Hq * T)), dq(nq), dk(nk, 7.0f), dv(nk, 7.0f);  // dk, dv: written
    attention_forward(f.pool, s, q.data(), k.data(), v.data(), out.data(), lse.data());
    attention_backward(f.pool, s, q.data(), k.data(), v.data(), out.data(), lse.data(), dout.data(), dq.data(),
                       dk.data(), dv.data());

    std::vector<double> ref_out(nq), ref_dq(nq), ref_dk(nk), ref_dv(nk), ref_lse(lse.size());
    const double scale = 1.0 / std::sqrt(double(s.D));
    auto qi = [&](int64_t b, int64_t i, int64_t h) { return size_t(((b * T + i) * s.Hq + h) * s.D); };
    auto ki = [&](int64_t b, int64_t j, int64_t h) { return size_t(((b * T + j) * s.Hkv + h) * s.D); };
    for (int64_t b = 0; b < s.B; ++b)
      for (int64_t h = 0; h < s.Hq; ++h) {
        const int64_t kh = h / group;
        for (int64_t i = 0; i < T; ++i) {
          const int64_t j0 = window > 0 ? std::max<int64_t>(0, i - window + 1) : 0;
          std::vector<double> p(size_t(i + 1), 0.0);
          double mx = -INFINITY, sum = 0;
          for (int64_t j = j0; j <= i; ++j) {
            double d = 0;
            for (int64_t e = 0; e < s.D; ++e) d += double(q[qi(b, i, h) + e]) * k[ki(b, j, kh) + e];
            p[size_t(j)] = d * scale;
            mx = std::max(mx, p[size_t(j)]);
          }
          for (int64_t j = j0; j <= i; ++j) sum += (p[size_t(j)] = std::exp(p[size_t(j)] - mx));
          ref_lse[size_t((b * s.Hq + h) * T + i)] = mx + std::log(sum);
          double delta = 0;
          std::vector<double> o(size_t(s.D), 0.0);
          for (int64_t j = j0; j <= i; ++j) {
            p[size_t(j)] /= sum;
            for (int64_t e = 0; e < s.D; ++e) o[size_t(e)] += p[size_t(j)] * v[ki(b, j, kh) + e];
          }
          for (int64_t e = 0; e < s.D; ++e) {
            ref_out[qi(b, i, h) + size_t(e)] = o[size_t(e)];
            delta += double(dout[qi(b, i, h) + e]) * o[size_t(e)];
          }
          for (int64_t j = j0; j <= i; ++j) {
            double dp = 0;
            for (int64_t e = 0; e < s.D; ++e) dp += double(dout[qi(b, i, h) + e]) * v[ki(b, j, kh) + e];
            const double ds = p[size_t(j)] * (dp - delta) * scale;
            for (int64_t e = 0; e < s.D; ++e) {
              ref_dq[qi(b, i, h) + size_t(e)] += ds * k[ki(b, j, kh) + e];
              ref_dk[ki(b, j, kh) + size_t(e)] += ds * q[qi(b, i, h) + e];
              ref_dv[ki(b, j, kh) + size_t(e)] += p[size_t(j)] * dout[qi(b, i, h) + e];
            }
          }
        }
      }
    auto expect_close = [](const char* what, const std::vector<float>& got, const std::vector<double>& want) {
      double worst = 0, norm = 0;
      for (size_t i = 0; i < got.size(); ++i) {
        worst = std::max(worst, std::abs(got[i] - want[i]));
        norm = std::max(norm, std::abs(want[i]));
      }
      EXPECT_LT(worst, 1e-5 * norm + 1e-6) << what << " (largest |value| " << norm << ")";
    };
    expect_close("out", out, ref_out);
    expect_close("lse", lse, ref_lse);
    expect_close("dq", dq, ref_dq);
    expect_close("dk", dk, ref_dk);
    expect_close("dv", dv, ref_dv);
  }
}

TEST(TrainOps, EmbeddingBackward) {
  Fixture f;
  const int64_t B = 2, T = 3, H = 4, V = 5;
  std::vector<int32_t> tokens = {1, 3, 1, 0, 4, 1};
  auto wte = random_vector(static_cast<size_t>(V * H), 1), wpe = random_vector(static_cast<size_t>(T * H), 2), r = random_vector(static_cast<size_t>(B * T * H), 3);
  std::vector<float> out(r.size());
  auto loss = [&] {
    embedding_forward(f.pool, tokens.data(), wte.data(), wpe.data(), out.data(), B, T, H);
    return dot(out, r);
  };
  std::vector<float> dwte(wte.size(), 0.0f), dwpe(wpe.size(), 0.0f);
  embedding_backward(f.pool, tokens.data(), r.data(), dwte.data(), dwpe.data(), B, T, H);
  expect_gradient("embedding wte", wte, dwte, loss);
  expect_gradient("embedding wpe", wpe, dwpe, loss);
}

TEST(TrainOps, FusedCrossEntropyBackward) {
  Fixture f;
  const int64_t M = 6, H = 5, V = 11;
  auto h = random_vector(static_cast<size_t>(M * H), 1), W = random_vector(static_cast<size_t>(V * H), 2);
  std::vector<int32_t> targets = {3, 0, 10, -1, 7, 7};
  std::vector<float> scratch;
  auto loss = [&] {
    return lm_head_cross_entropy(f.pool, h.data(), W.data(), targets.data(), M, H, V, 0.0f, nullptr, nullptr, scratch).loss_sum;
  };
  std::vector<float> dh(h.size()), dW(W.size(), 0.0f);
  CrossEntropyResult r = lm_head_cross_entropy(f.pool, h.data(), W.data(), targets.data(), M, H, V, 1.0f, dh.data(), dW.data(), scratch);
  EXPECT_EQ(r.count, 5);
  EXPECT_NEAR(r.loss_sum, loss(), 1e-9);
  expect_gradient("cross-entropy dh", h, dh, loss);
  expect_gradient("cross-entropy dW", W, dW, loss);
}

}  // namespace
}  // namespace roofline::train
