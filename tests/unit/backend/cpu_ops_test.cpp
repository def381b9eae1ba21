// Elementwise and row ops (embedding, rms_norm, layer_norm, add, add_row, rope, silu_mul, matmul_swiglu,
// the norm / residual-add fusions of the projections, gelu_tanh) on every ISA level x thread count, weights in every dtype, against float64 references.
#include <gtest/gtest.h>

#include <cmath>

#include "cpu_test_util.h"

namespace roofline::test {
namespace {

constexpr double kTol = 1e-6;

TEST(CpuOps, Embedding) {
  const int64_t vocab = 37, hidden = 67;
  const std::vector<int32_t> ids = {5, 0, 36, 5, 17};
  const auto count = int64_t(ids.size());
  for (const auto& config : cpu_configs())
    for (DType dtype : weight_dtypes()) {
      SCOPED_TRACE(config.name() + " " + std::string(dtype_name(dtype)));
      auto backend = make_backend(config);
      Stored table = random_stored(dtype, {vocab, hidden}, 3);
      Tensor out = Tensor::empty(DType::F32, {count, hidden});
      poison(out);
      backend->embedding(out, table.tensor, ids.data(), count);
      std::vector<double> ref;
      for (int32_t id : ids)
        for (int64_t i = 0; i < hidden; ++i) ref.push_back(table.values[size_t(id * hidden + i)]);
      EXPECT_EQ(count_not_finite(out), 0);
      EXPECT_EQ(rel_l2(values_of(out), ref), 0.0);  // a conversion, exact
    }
}

TEST(CpuOps, RmsNormAndAliasing) {
  const int64_t rows = 5, hidden = 67;
  const float eps = 1e-5f;
  const auto x = random_floats(size_t(rows * hidden), 4, -3.0f, 3.0f);
  for (const auto& config : cpu_configs())
    for (DType dtype : weight_dtypes()) {
      SCOPED_TRACE(config.name() + " " + std::string(dtype_name(dtype)));
      auto backend = make_backend(config);
      Stored w = random_stored(dtype, {hidden}, 5, 0.5f, 1.5f);
      std::vector<double> ref(x.size());
      for (int64_t r = 0; r < rows; ++r) {
        double ss = 0;
        for (int64_t i = 0; i < hidden; ++i) ss += double(x[size_t(r * hidden + i)]) * x[size_t(r * hidden + i)];
        const double scale = 1.0 / std::sqrt(ss / double(hidden) + eps);
        for (int64_t i = 0; i < hidden; ++i)
          ref[size_t(r * hidden + i)] = x[size_t(r * hidden + i)] * scale * w.values[size_t(i)];
      }
      Tensor xt = f32_tensor({rows, hidden}, x);
      Tensor out = Tensor::empty(DType::F32, {rows, hidden});
      poison(out);
      backend->rms_norm(out, xt, w.tensor, eps);
      EXPECT_EQ(count_not_finite(out), 0);
      EXPECT_LT(rel_l2(values_of(out), ref), kTol);
      backend->rms_norm(xt, xt, w.tensor, eps);  // in place
      EXPECT_LT(rel_l2(values_of(xt), ref), kTol);
    }
}

TEST(CpuOps, LayerNorm) {
  const int64_t rows = 3, hidden = 45;
  const float eps = 1e-5f;
  const auto x = random_floats(size_t(rows * hidden), 6, -2.0f, 4.0f);  // nonzero mean
  for (const auto& config : cpu_configs())
    for (DType dtype : weight_dtypes()) {
      SCOPED_TRACE(config.name() + " " + std::string(dtype_name(dtype)));
      auto backend = make_backend(config);
      Stored w = random_stored(dtype, {hidden}, 7, 0.5f, 1.5f);
      Stored b = random_stored(dtype, {hidden}, 8);
      std::vector<double> ref(x.size());
      for (int64_t r = 0; r < rows; ++r) {
        double mean = 0, var = 0;
        for (int64_t i = 0; i < hidden; ++i) mean += x[size_t(r * hidden + i)];
        mean /= double(hidden);
        for (int64_t i = 0; i < hidden; ++i) var += std::pow(x[size_t(r * hidden + i)] - mean, 2);
        var /= double(hidden);
        for (int64_t i = 0; i < hidden; ++i)
          ref[size_t(r * hidden + i)] =
              (x[size_t(r * hidden + i)] - mean) / std::sqrt(var + eps) * w.values[size_t(i)] + b.values[size_t(i)];
      }
      Tensor xt = f32_tensor({rows, hidden}, x);
      Tensor out = Tensor::empty(DType::F32, {rows, hidden});
      poison(out);
      backend->layer_norm(out, xt, w.tensor, b.tensor, eps);
      EXPECT_EQ(count_not_finite(out), 0);
      EXPECT_LT(rel_l2(values_of(out), ref), kTol);
      backend->layer_norm(xt, xt, w.tensor, b.tensor, eps);  // in place
      EXPECT_LT(rel_l2(values_of(xt), ref), kTol);
    }
}

TEST(CpuOps, AddAndAddRow) {
  const int64_t T = 4, N = 67;
  const auto a = random_floats(size_t(T * N), 9), b = random_floats(size_t(T * N), 10);
  for (const auto& config : cpu_configs())
    for (DType dtype : weight_dtypes()) {
      SCOPED_TRACE(config.name() + " " + std::string(dtype_name(dtype)));
      auto backend = make_backend(config);
      Tensor at = f32_tensor({T, N}, a);
      backend->add(at, f32_tensor({T, N}, b));
      std::vector<double> ref(a.size());
      for (size_t i = 0; i < a.size(); ++i) ref[i] = double(a[i]) + b[i];
      EXPECT_LT(rel_l2(values_of(at), ref), kTol);

      Stored table = random_stored(dtype, {11, N}, 11);  // e.g. learned position embeddings
      backend->add_row(at, 2, table.tensor, 7);
      for (int64_t i = 0; i < N; ++i) ref[size_t(2 * N + i)] += table.values[size_t(7 * N + i)];
      EXPECT_LT(rel_l2(values_of(at), ref), kTol);
    }
}

TEST(CpuOps, RopeRotateHalfWithPartialRotary) {
  const int64_t T = 3, heads = 4, head_dim = 20, max_pos = 16;
  const std::vector<int32_t> positions = {0, 9, 15};
  for (int rotary_dim : {20, 12}) {  // full and partial rotary
    const int64_t half = rotary_dim / 2;
    std::vector<float> cos_v(size_t(max_pos * half)), sin_v(cos_v.size());
    for (int64_t p = 0; p < max_pos; ++p)
      for (int64_t i = 0; i < half; ++i) {
        const double inv_freq = std::pow(10000.0, -2.0 * double(i) / double(rotary_dim));
        cos_v[size_t(p * half + i)] = float(std::cos(double(p) * inv_freq));
        sin_v[size_t(p * half + i)] = float(std::sin(double(p) * inv_freq));
      }
    const auto x = random_floats(size_t(T * heads * head_dim), 12);
    for (const auto& config : cpu_configs())
      for (DType dtype : weight_dtypes()) {
        SCOPED_TRACE(config.name() + " " + std::string(dtype_name(dtype)) + " rotary_dim=" + std::to_string(rotary_dim));
        auto backend = make_backend(config);
        Stored cos_t = make_stored(dtype, {max_pos, half}, cos_v), sin_t = make_stored(dtype, {max_pos, half}, sin_v);
        std::vector<double> ref(x.begin(), x.end());
        for (int64_t t = 0; t < T; ++t)
          for (int64_t h = 0; h < heads; ++h) {
            const size_t base = size_t((t * heads + h) * head_dim);
            for (int64_t i = 0; i < half; ++i) {
              const double c = cos_t.values[size_t(positions[size_t(t)] * half + i)];
              const double s = sin_t.values[size_t(positions[size_t(t)] * half + i)];
              const double x1 = x[base + size_t(i)], x2 = x[base + size_t(i + half)];
              ref[base + size_t(i)] = x1 * c - x2 * s;
              ref[base + size_t(i + half)] = x2 * c + x1 * s;
            }
          }
        Tensor xt = f32_tensor({T, heads, head_dim}, x);
        backend->rope(xt, positions.data(), cos_t.tensor, sin_t.tensor, rotary_dim);
        EXPECT_LT(rel_l2(values_of(xt), ref), kTol);
        // Beyond rotary_dim nothing changes, bit for bit.
        for (int64_t t = 0; t < T * heads; ++t)
          for (int64_t i = rotary_dim; i < head_dim; ++i)
            EXPECT_EQ(xt.ptr<float>()[t * head_dim + i], x[size_t(t * head_dim + i)]);
      }
  }
}

// Includes large |x| so the exp-based kernels see overflow and underflow of their exp argument.
std::vector<float> activation_inputs(size_t n, uint32_t seed) {
  auto v = random_floats(n, seed, -8.0f, 8.0f);
  const float extremes[] = {-120.0f, -90.0f, -50.0f, -20.0f, 20.0f, 50.0f, 90.0f, 120.0f};
  for (size_t i = 0; i < 8 && i < n; ++i) v[i * 7 % n] = extremes[i];
  return v;
}

TEST(CpuOps, SiluMul) {
  const int64_t T = 3, F = 83;
  const auto g = activation_inputs(size_t(T * F), 13);
  const auto u = random_floats(size_t(T * F), 14);
  std::vector<double> ref(g.size());
  for (size_t i = 0; i < g.size(); ++i) ref[i] = double(g[i]) / (1.0 + std::exp(-double(g[i]))) * u[i];
  for (const auto& config : cpu_configs()) {
    SCOPED_TRACE(config.name());
    auto backend = make_backend(config);
    Tensor out = Tensor::empty(DType::F32, {T, F});
    poison(out);
    Tensor gt = f32_tensor({T, F}, g);
    backend->silu_mul(out, gt, f32_tensor({T, F}, u));
    EXPECT_EQ(count_not_finite(out), 0);
    EXPECT_LT(rel_l2(values_of(out), ref), kTol);
    for (size_t i = 0; i < g.size(); ++i)  // elementwise too: a wrong tail lane would hide in the L2
      EXPECT_NEAR(out.ptr<float>()[i], ref[i], 1e-6 * (1 + std::fabs(ref[i]))) << i;
    backend->silu_mul(gt, gt, f32_tensor({T, F}, u));  // out aliases gate
    EXPECT_LT(rel_l2(values_of(gt), ref), kTol);
  }
}

// The Backend default of matmul_swiglu (matmul_many, then silu_mul) on the CPU, with biases.
TEST(CpuOps, MatmulSwiglu) {
  const int64_t T = 2, F = 37, K = 19;
  const auto x = random_floats(size_t(T * K), 21), gw = random_floats(size_t(F * K), 22);
  const auto uw = random_floats(size_t(F * K), 23), gb = random_floats(size_t(F), 24), ub = random_floats(size_t(F), 25);
  std::vector<double> ref(size_t(T * F));
  for (int64_t t = 0; t < T; ++t)
    for (int64_t n = 0; n < F; ++n) {
      double g = gb[size_t(n)], u = ub[size_t(n)];
      for (int64_t k = 0; k < K; ++k) {
        g += double(x[size_t(t * K + k)]) * gw[size_t(n * K + k)];
        u += double(x[size_t(t * K + k)]) * uw[size_t(n * K + k)];
      }
      ref[size_t(t * F + n)] = g / (1.0 + std::exp(-g)) * u;
    }
  for (const auto& config : cpu_configs()) {
    SCOPED_TRACE(config.name());
    auto backend = make_backend(config);
    Tensor gate = Tensor::empty(DType::F32, {T, F}), up = Tensor::empty(DType::F32, {T, F});
    poison(up);
    const Tensor gate_w = f32_tensor({F, K}, gw), up_w = f32_tensor({F, K}, uw);
    const Tensor gate_b = f32_tensor({F}, gb), up_b = f32_tensor({F}, ub);
    backend->matmul_swiglu(f32_tensor({T, K}, x), {&gate, &gate_w, &gate_b}, {&up, &up_w, &up_b});
    EXPECT_EQ(count_not_finite(up), 0);
    EXPECT_LT(rel_l2(values_of(up), ref), 1e-5);
  }
}

// The Backend defaults of the decode fusions on the CPU: rms_norm_matmul_many / rms_norm_matmul_swiglu
// (rms_norm into `normed`, then the projections) and matmul_add (matmul into scratch, then add).
TEST(CpuOps, NormedProjectionsAndMatmulAdd) {
  const int64_t T = 3, K = 19, N1 = 23, N2 = 5, F = 11;
  const float eps = 1e-5f;
  const auto r = random_floats(size_t(T * K), 31, -2.0f, 2.0f), nw = random_floats(size_t(K), 32, 0.5f, 1.5f);
  const auto w1 = random_floats(size_t(N1 * K), 33), w2 = random_floats(size_t(N2 * K), 34);
  const auto b1 = random_floats(size_t(N1), 35), gw = random_floats(size_t(F * K), 36), uw = random_floats(size_t(F * K), 37);
  const auto res = random_floats(size_t(T * N1), 38), xk = random_floats(size_t(T * K), 39);
  std::vector<double> xn(size_t(T * K));  // rms_norm(r) * nw
  for (int64_t t = 0; t < T; ++t) {
    double ss = 0;
    for (int64_t k = 0; k < K; ++k) ss += double(r[size_t(t * K + k)]) * r[size_t(t * K + k)];
    const double rstd = 1.0 / std::sqrt(ss / double(K) + eps);
    for (int64_t k = 0; k < K; ++k) xn[size_t(t * K + k)] = r[size_t(t * K + k)] * rstd * nw[size_t(k)];
  }
  auto dot = [&](const std::vector<double>& x, int64_t t, const std::vector<float>& w, int64_t n) {
    double acc = 0;
    for (int64_t k = 0; k < K; ++k) acc += x[size_t(t * K + k)] * w[size_t(n * K + k)];
    return acc;
  };
  std::vector<double> ref1(size_t(T * N1)), ref2(size_t(T * N2)), ref_swiglu(size_t(T * F)), ref_add(size_t(T * N1));
  const std::vector<double> xd(xk.begin(), xk.end());
  for (int64_t t = 0; t < T; ++t) {
    for (int64_t n = 0; n < N1; ++n) {
      ref1[size_t(t * N1 + n)] = dot(xn, t, w1, n) + b1[size_t(n)];
      ref_add[size_t(t * N1 + n)] = res[size_t(t * N1 + n)] + dot(xd, t, w1, n) + b1[size_t(n)];
    }
    for (int64_t n = 0; n < N2; ++n) ref2[size_t(t * N2 + n)] = dot(xn, t, w2, n);
    for (int64_t n = 0; n < F; ++n) {
      const double g = dot(xn, t, gw, n), u = dot(xn, t, uw, n);
      ref_swiglu[size_t(t * F + n)] = g / (1.0 + std::exp(-g)) * u;
    }
  }
  for (const auto& config : cpu_configs()) {
    SCOPED_TRACE(config.name());
    auto backend = make_backend(config);
    const Tensor residual = f32_tensor({T, K}, r), weight = f32_tensor({K}, nw);
    Tensor normed = Tensor::empty(DType::F32, {T, K});
    const RmsNormInput in{&residual, &weight, eps, &normed};
    const Tensor w1t = f32_tensor({N1, K}, w1), w2t = f32_tensor({N2, K}, w2), b1t = f32_tensor({N1}, b1);
    Tensor out1 = Tensor::empty(DType::F32, {T, N1}), out2 = Tensor::empty(DType::F32, {T, N2});
    poison(out1);
    poison(out2);
    const MatmulTarget targets[] = {{&out1, &w1t, &b1t}, {&out2, &w2t, nullptr}};
    backend->rms_norm_matmul_many(in, targets);
    EXPECT_EQ(count_not_finite(out1) + count_not_finite(out2), 0);
    EXPECT_LT(rel_l2(values_of(out1), ref1), 1e-5);
    EXPECT_LT(rel_l2(values_of(out2), ref2), 1e-5);
    EXPECT_LT(rel_l2(values_of(normed), xn), 1e-6);  // the default leaves x in `normed`

    const Tensor gwt = f32_tensor({F, K}, gw), uwt = f32_tensor({F, K}, uw);
    Tensor gate = Tensor::empty(DType::F32, {T, F}), up = Tensor::empty(DType::F32, {T, F});
    poison(up);
    backend->rms_norm_matmul_swiglu(in, {&gate, &gwt, nullptr}, {&up, &uwt, nullptr});
    EXPECT_EQ(count_not_finite(up), 0);
    EXPECT_LT(rel_l2(values_of(up), ref_swiglu), 1e-5);

    Tensor acc = f32_tensor({T, N1}, res), scratch = Tensor::empty(DType::F32, {T, N1});
    backend->matmul_add(acc, f32_tensor({T, K}, xk), w1t, &b1t, scratch);
    EXPECT_EQ(count_not_finite(acc), 0);
    EXPECT_LT(rel_l2(values_of(acc), ref_add), 1e-6);
  }
}

TEST(CpuOps, GeluTanh) {
  const auto x = activation_inputs(101, 15);
  std::vector<double> ref(x.size());
  for (size_t i = 0; i < x.size(); ++i) {
    const double v = x[i];
    ref[i] = 0.5 * v * (1.0 + std::tanh(std::sqrt(2.0 / M_PI) * (v + 0.044715 * v * v * v)));
  }
  for (const auto& config : cpu_configs()) {
    SCOPED_TRACE(config.name());
    auto backend = make_backend(config);
    Tensor xt = f32_tensor({101}, x);
    backend->gelu_tanh(xt);
    EXPECT_EQ(count_not_finite(xt), 0);
    EXPECT_LT(rel_l2(values_of(xt), ref), kTol);
    for (size_t i = 0; i < x.size(); ++i)
      EXPECT_NEAR(xt.ptr<float>()[i], ref[i], 1e-6 * (1 + std::fabs(ref[i]))) << "x=" << x[i];
  }
}

TEST(CpuOps, LargeRowCountsSplitAcrossThreads) {
  // Enough elements that the pool splits rows between threads.
  const int64_t rows = 300, hidden = 256;
  const auto x = random_floats(size_t(rows * hidden), 16, -3.0f, 3.0f);
  Stored w = random_stored(DType::BF16, {hidden}, 17);
  std::vector<float> expected;
  for (const auto& config : cpu_configs()) {
    auto backend = make_backend(config);
    Tensor out = Tensor::empty(DType::F32, {rows, hidden});
    poison(out);
    backend->rms_norm(out, f32_tensor({rows, hidden}, x), w.tensor, 1e-6f);
    EXPECT_EQ(count_not_finite(out), 0) << config.name();
    if (expected.empty()) expected = values_of(out);
    EXPECT_EQ(values_of(out), expected) << config.name();  // norms are plain C++: identical everywhere
    Tensor g = f32_tensor({rows, hidden}, x);
    backend->gelu_tanh(g);
    EXPECT_EQ(count_not_finite(g), 0) << config.name();
  }
}

TEST(CpuOps, RejectBadOperands) {
  auto backend = make_cpu_backend(1, CpuIsa::Scalar);
  Tensor x = Tensor::zeros(DType::F32, {2, 8});
  Tensor x_bf16 = Tensor::zeros(DType::BF16, {2, 8});
  Tensor w8 = Tensor::zeros(DType::F32, {8});
  Tensor w7 = Tensor::zeros(DType::F32, {7});
  Tensor w_int = Tensor::zeros(DType::I32, {8});
  Tensor out = Tensor::zeros(DType::F32, {2, 8});
  Tensor out_bad = Tensor::zeros(DType::F32, {2, 7});
  EXPECT_THROW(backend->rms_norm(out, x, w7, 1e-6f), Error);
  EXPECT_THROW(backend->rms_norm(out, x_bf16, w8, 1e-6f), Error);
  EXPECT_THROW(backend->rms_norm(out, x, w_int, 1e-6f), Error);
  EXPECT_THROW(backend->rms_norm(out_bad, x, w8, 1e-6f), Error);
  EXPECT_THROW(backend->layer_norm(out, x, w8, w7, 1e-6f), Error);
  EXPECT_THROW(backend->add(out, out_bad), Error);
  EXPECT_THROW(backend->add(x_bf16, x_bf16), Error);
  EXPECT_THROW(backend->silu_mul(out, x, out_bad), Error);
  EXPECT_THROW(backend->gelu_tanh(x_bf16), Error);

  Tensor table = Tensor::zeros(DType::BF16, {10, 8});
  const int32_t ids[] = {3, 10};
  const int32_t negative[] = {-1};
  EXPECT_THROW(backend->embedding(out, table, ids, 2), Error);  // id 10 out of range
  EXPECT_THROW(backend->embedding(out, table, negative, 1), Error);
  EXPECT_THROW(backend->embedding(out_bad, table, ids, 1), Error);
  EXPECT_THROW(backend->add_row(out, 2, table, 0), Error);   // t out of range
  EXPECT_THROW(backend->add_row(out, 0, table, 10), Error);  // table row out of range
  EXPECT_THROW(backend->add_row(out_bad, 0, table, 0), Error);

  Tensor q = Tensor::zeros(DType::F32, {2, 3, 8});
  Tensor cs = Tensor::zeros(DType::F32, {16, 4});
  Tensor cs_bad = Tensor::zeros(DType::F32, {16, 3});
  const int32_t pos[] = {0, 16};
  const int32_t pos_ok[] = {0, 15};
  EXPECT_THROW(backend->rope(q, pos, cs, cs, 8), Error);  // position 16 past the table
  EXPECT_THROW(backend->rope(q, pos_ok, cs_bad, cs_bad, 8), Error);
  EXPECT_THROW(backend->rope(q, pos_ok, cs, cs, 10), Error);  // rotary_dim > head_dim
  EXPECT_THROW(backend->rope(q, pos_ok, cs, cs, 7), Error);   // odd
  EXPECT_THROW(backend->rope(x, pos_ok, cs, cs, 8), Error);   // not [T, heads, head_dim]
  try {
    backend->rms_norm(out, x, w7, 1e-6f);
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("rms_norm"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace roofline::test
