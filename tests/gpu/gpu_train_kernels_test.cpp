// The CUDA training kernels, each against a float64 reference on random inputs at odd sizes: norms,
// activations, RoPE, the cross-entropy rows, embedding gradients, the training GEMM forms, attention
// (through the flash_attention.h interface, q/k/v strided inside one fused row), AdamW and the grad norm.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <tuple>
#include <vector>

#include "gpu_test_util.h"
#include "roofline/train/cuda/device_array.h"
#include "roofline/train/cuda/flash_attention.h"
#include "roofline/backend/cuda/lt_gemm.h"
#include "roofline/core/error.h"
#include "roofline/train/cuda/kernels.h"

namespace roofline::train::cuda {
namespace {

using ::roofline::cuda::GemmGelu;  // the cuBLASLt wrapper of backend/cuda
using ::roofline::cuda::GemmOperand;
using ::roofline::cuda::LtGemm;
using ::roofline::GemmAlgorithmTable;

using test::random_floats;
using test::relative_l2;

double round_bf16(float x) { return double(__bfloat162float(__float2bfloat16(x))); }

// Device copies of host values, and the exact values a bf16 copy holds.
DeviceArray<float> to_device(const std::vector<float>& v) {
  DeviceArray<float> d(v.size());
  EXPECT_EQ(cudaMemcpy(d.get(), v.data(), d.bytes(), cudaMemcpyHostToDevice), cudaSuccess);
  return d;
}
DeviceArray<bf16> to_device_bf16(const std::vector<float>& v, std::vector<double>* exact = nullptr) {
  std::vector<bf16> h(v.size());
  for (size_t i = 0; i < v.size(); ++i) h[i] = __float2bfloat16(v[i]);
  if (exact) {
    exact->resize(v.size());
    for (size_t i = 0; i < v.size(); ++i) (*exact)[i] = double(__bfloat162float(h[i]));
  }
  DeviceArray<bf16> d(v.size());
  EXPECT_EQ(cudaMemcpy(d.get(), h.data(), d.bytes(), cudaMemcpyHostToDevice), cudaSuccess);
  return d;
}
std::vector<double> download(const DeviceArray<float>& d) {
  std::vector<float> h(d.size());
  EXPECT_EQ(cudaMemcpy(h.data(), d.get(), d.bytes(), cudaMemcpyDeviceToHost), cudaSuccess);
  return std::vector<double>(h.begin(), h.end());
}
std::vector<double> download(const DeviceArray<bf16>& d) {
  std::vector<bf16> h(d.size());
  EXPECT_EQ(cudaMemcpy(h.data(), d.get(), d.bytes(), cudaMemcpyDeviceToHost), cudaSuccess);
  std::vector<double> out(h.size());
  for (size_t i = 0; i < h.size(); ++i) out[i] = double(__bfloat162float(h[i]));
  return out;
}

class GpuTrainKernels : public test::GpuTest {};

TEST_F(GpuTrainKernels, LayerNormAndRmsNormForwardBackward) {
  // 75 rows: backward blocks of 16 and of 64 rows, the last one partial (its warps with 1 or 2 rows); 1,000 and
  // 4,100 rows: 15 and 64 full blocks of 64 and a partial one (several partial rows per reduction group).
  // Widths: float4 rows in registers with whole and partial chunks of 128 columns (4, 200, 300, 768 as
  // GPT-2's, 1000, 1024), and past 1024 with the residual gradient loaded in groups after the row statistics
  // (1100: 9 chunks of the 12-chunk kernel; 2048 as Llama 3.2 1B's); rows of an odd number of float pairs
  // (202) and float4 rows too wide for registers (2100), both through the shared-memory kernel.
  for (auto [rows, dim] : {std::pair<int64_t, int64_t>{75, 4}, {75, 200}, {75, 202}, {75, 300}, {75, 768},
                           {75, 1000}, {75, 1100}, {75, 2048}, {75, 2100}, {4100, 768}, {1000, 1024},
                           {1000, 2048}, {1000, 202}})
  for (bool layernorm : {true, false}) {
    const auto x = random_floats(size_t(rows * dim), 1, -2, 3), w = random_floats(static_cast<size_t>(dim), 2, 0.5, 1.5),
               b = random_floats(static_cast<size_t>(dim), 3), dy = random_floats(size_t(rows * dim), 4);
    const auto dres0 = random_floats(size_t(rows * dim), 5), dw0 = random_floats(static_cast<size_t>(dim), 6),
               db0 = random_floats(static_cast<size_t>(dim), 7);
    auto dx_ = to_device(x), dw_ = to_device(w), db_ = to_device(b), ddy = to_device(dy);
    const auto dsum0 = random_floats(static_cast<size_t>(dim), 8);
    auto ddx = to_device(dres0), ddw = to_device(dw0), ddb = to_device(db0), ddsum = to_device(dsum0);
    DeviceArray<bf16> y(size_t(rows * dim)), dx_bf16(size_t(rows * dim));
    DeviceArray<float> mean(static_cast<size_t>(rows)), rstd(static_cast<size_t>(rows)), partials(norm_partials_floats(rows, dim));
    if (layernorm) layernorm_forward(dx_.get(), dw_.get(), db_.get(), y.get(), mean.get(), rstd.get(), rows, dim, 1e-5f, nullptr);
    else rmsnorm_forward(dx_.get(), dw_.get(), y.get(), rstd.get(), rows, dim, 1e-5f, nullptr);
    norm_backward(ddy.get(), dx_.get(), dw_.get(), layernorm ? mean.get() : nullptr, rstd.get(), ddx.get(), true,
                  dx_bf16.get(), ddw.get(), layernorm ? ddb.get() : nullptr, ddsum.get(), partials.get(), rows, dim,
                  nullptr);
    std::vector<double> ry(size_t(rows * dim)), rdx(size_t(rows * dim)), rdw(dw0.begin(), dw0.end()),
        rdb(db0.begin(), db0.end());
    for (int64_t r = 0; r < rows; ++r) {
      double mu = 0, var = 0;
      if (layernorm)
        for (int64_t i = 0; i < dim; ++i) mu += x[size_t(r * dim + i)] / double(dim);
      for (int64_t i = 0; i < dim; ++i) var += (x[size_t(r * dim + i)] - mu) * (x[size_t(r * dim + i)] - mu) / double(dim);
      const double rs = 1.0 / std::sqrt(var + 1e-5);
      double mg = 0, mgx = 0;
      for (int64_t i = 0; i < dim; ++i) {
        const size_t k = size_t(r * dim + i);
        const double xhat = (x[k] - mu) * rs, g = double(dy[k]) * w[static_cast<size_t>(i)];
        ry[k] = xhat * w[static_cast<size_t>(i)] + (layernorm ? b[static_cast<size_t>(i)] : 0.0);
        mg += g / double(dim);
        mgx += g * xhat / double(dim);
        rdw[static_cast<size_t>(i)] += dy[k] * xhat;
        rdb[static_cast<size_t>(i)] += dy[k];
      }
      for (int64_t i = 0; i < dim; ++i) {
        const size_t k = size_t(r * dim + i);
        const double xhat = (x[k] - mu) * rs;
        rdx[k] = dres0[k] + rs * (double(dy[k]) * w[static_cast<size_t>(i)] - (layernorm ? mg : 0.0) - xhat * mgx);
      }
    }
    EXPECT_LT(relative_l2(download(y), ry), 5e-3) << layernorm << " " << rows << " x " << dim;
    EXPECT_LT(relative_l2(download(ddx), rdx), 1e-5) << layernorm << " " << rows << " x " << dim;
    const std::vector<double> dx_f32 = download(ddx), dx_b16 = download(dx_bf16);
    for (size_t k = 0; k < dx_f32.size(); ++k)  // the bf16 copy is the f32 result rounded
      ASSERT_EQ(dx_b16[k], round_bf16(float(dx_f32[k]))) << k;
    std::vector<double> rsum(dsum0.begin(), dsum0.end());  // plus the column sums of that bf16 copy
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t i = 0; i < dim; ++i) rsum[size_t(i)] += dx_b16[size_t(r * dim + i)];
    EXPECT_LT(relative_l2(download(ddsum), rsum), 1e-5) << layernorm << " " << rows << " x " << dim;
    EXPECT_LT(relative_l2(download(ddw), rdw), 1e-5) << layernorm << " " << rows << " x " << dim;
    if (layernorm) EXPECT_LT(relative_l2(download(ddb), rdb), 1e-5);
    // A second run from the same state gives the same bits (the partial sums are added in a fixed order).
    auto ddx2 = to_device(dres0), ddw2 = to_device(dw0), ddb2 = to_device(db0), ddsum2 = to_device(dsum0);
    DeviceArray<bf16> dx_bf16_2(size_t(rows * dim));
    norm_backward(ddy.get(), dx_.get(), dw_.get(), layernorm ? mean.get() : nullptr, rstd.get(), ddx2.get(), true,
                  dx_bf16_2.get(), ddw2.get(), layernorm ? ddb2.get() : nullptr, ddsum2.get(), partials.get(), rows,
                  dim, nullptr);
    EXPECT_EQ(download(ddx2), dx_f32) << layernorm << " " << rows << " x " << dim;
    EXPECT_EQ(download(dx_bf16_2), dx_b16) << layernorm << " " << rows << " x " << dim;
    EXPECT_EQ(download(ddw2), download(ddw)) << layernorm << " " << rows << " x " << dim;
    EXPECT_EQ(download(ddb2), download(ddb)) << layernorm << " " << rows << " x " << dim;
    EXPECT_EQ(download(ddsum2), download(ddsum)) << layernorm << " " << rows << " x " << dim;
  }
}

// The final norm's backward: dx written, not accumulated (accumulate_dx false), without the optional outputs.
TEST_F(GpuTrainKernels, NormBackwardWritesDxWithoutOptionalOutputs) {
  for (auto [rows, dim] : {std::pair<int64_t, int64_t>{1, 768}, {33, 128}, {70, 2048}, {70, 2100}, {1000, 768}}) {
    const auto x = random_floats(size_t(rows * dim), 21, -2, 3), w = random_floats(size_t(dim), 22, 0.5, 1.5),
               dy = random_floats(size_t(rows * dim), 23), dw0 = random_floats(size_t(dim), 24),
               stale = random_floats(size_t(rows * dim), 25);
    auto dx_ = to_device(x), dw_ = to_device(w), ddy = to_device(dy), ddw = to_device(dw0), ddx = to_device(stale);
    DeviceArray<bf16> y(size_t(rows * dim));
    DeviceArray<float> rstd(static_cast<size_t>(rows)), partials(norm_partials_floats(rows, dim));
    rmsnorm_forward(dx_.get(), dw_.get(), y.get(), rstd.get(), rows, dim, 1e-5f, nullptr);
    norm_backward(ddy.get(), dx_.get(), dw_.get(), nullptr, rstd.get(), ddx.get(), false, nullptr, ddw.get(), nullptr,
                  nullptr, partials.get(), rows, dim, nullptr);
    std::vector<double> rdx(size_t(rows * dim)), rdw(dw0.begin(), dw0.end());
    for (int64_t r = 0; r < rows; ++r) {
      double ms = 0, mgx = 0;
      for (int64_t i = 0; i < dim; ++i) ms += double(x[size_t(r * dim + i)]) * x[size_t(r * dim + i)] / double(dim);
      const double rs = 1.0 / std::sqrt(ms + 1e-5);
      for (int64_t i = 0; i < dim; ++i) {
        const size_t k = size_t(r * dim + i);
        mgx += double(dy[k]) * w[size_t(i)] * (x[k] * rs) / double(dim);
        rdw[size_t(i)] += dy[k] * (x[k] * rs);
      }
      for (int64_t i = 0; i < dim; ++i) {
        const size_t k = size_t(r * dim + i);
        rdx[k] = rs * (double(dy[k]) * w[size_t(i)] - x[k] * rs * mgx);
      }
    }
    EXPECT_LT(relative_l2(download(ddx), rdx), 1e-5) << rows << " x " << dim;
    EXPECT_LT(relative_l2(download(ddw), rdw), 1e-5) << rows << " x " << dim;
  }
}

TEST_F(GpuTrainKernels, BiasGradAddsColumnSums) {
  // Odd widths (one column per thread) and multiples of 8 (16-byte rows); partial row chunks too.
  for (auto [rows, cols] : {std::pair<int64_t, int64_t>{200, 77}, {64, 300}, {1000, 3}, {130, 200}, {67, 2064}}) {
    std::vector<double> exact;
    const auto dy = random_floats(size_t(rows * cols), 11, -2, 2), db0 = random_floats(size_t(cols), 12);
    auto ddy = to_device_bf16(dy, &exact);
    auto ddb = to_device(db0);
    DeviceArray<float> partials(bias_grad_partials_floats(rows, cols));
    bias_grad(ddy.get(), rows, cols, partials.get(), ddb.get(), nullptr);
    std::vector<double> ref(db0.begin(), db0.end());
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t c = 0; c < cols; ++c) ref[size_t(c)] += exact[size_t(r * cols + c)];
    const std::vector<double> got = download(ddb);
    EXPECT_LT(relative_l2(got, ref), 1e-5) << rows << " x " << cols;
    auto ddb2 = to_device(db0);  // a second run gives the same bits
    bias_grad(ddy.get(), rows, cols, partials.get(), ddb2.get(), nullptr);
    EXPECT_EQ(download(ddb2), got);
  }
}

TEST_F(GpuTrainKernels, GeluAndSwigluForwardBackward) {
  const int64_t rows = 13, F = 77;
  std::vector<double> in, up;
  const auto x = random_floats(size_t(rows * 2 * F), 9, -3, 3), dh = random_floats(size_t(rows * F), 10);
  auto dx = to_device_bf16(x, &in);
  std::vector<double> dh_exact;
  auto ddh = to_device_bf16(dh, &dh_exact);
  DeviceArray<bf16> h(size_t(rows * F)), dgu(size_t(rows * 2 * F)), gh(size_t(rows * 2 * F)), gdx(size_t(rows * 2 * F));
  swiglu_forward(dx.get(), h.get(), rows, F, nullptr);
  swiglu_backward(ddh.get(), dx.get(), dgu.get(), rows, F, nullptr);
  gelu_forward(dx.get(), gh.get(), rows * 2 * F, nullptr);
  auto dy2 = to_device_bf16(x);  // any gradient: x itself
  gelu_backward(dy2.get(), dx.get(), gdx.get(), rows * 2 * F, nullptr);
  std::vector<double> rh(size_t(rows * F)), rdgu(size_t(rows * 2 * F)), rgh(in.size()), rgdx(in.size());
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < F; ++c) {
      const double g = in[size_t(r * 2 * F + c)], u = in[size_t(r * 2 * F + F + c)], d = dh_exact[size_t(r * F + c)];
      const double sig = 1 / (1 + std::exp(-g));
      rh[size_t(r * F + c)] = g * sig * u;
      rdgu[size_t(r * 2 * F + c)] = d * u * sig * (1 + g * (1 - sig));
      rdgu[size_t(r * 2 * F + F + c)] = d * g * sig;
    }
  for (size_t i = 0; i < in.size(); ++i) {
    const double v = in[i], k = std::sqrt(2 / M_PI), t = std::tanh(k * (v + 0.044715 * v * v * v));
    rgh[i] = 0.5 * v * (1 + t);
    rgdx[i] = v * (0.5 * (1 + t) + 0.5 * v * (1 - t * t) * k * (1 + 3 * 0.044715 * v * v));
  }
  EXPECT_LT(relative_l2(download(h), rh), 8e-3);
  EXPECT_LT(relative_l2(download(dgu), rdgu), 8e-3);
  EXPECT_LT(relative_l2(download(gh), rgh), 8e-3);
  EXPECT_LT(relative_l2(download(gdx), rgdx), 8e-3);
}

TEST_F(GpuTrainKernels, RopeRotatesStridedHeadsAndBackwardInverts) {
  const int64_t B = 2, T = 19, heads = 3, D = 64, ld = heads * D + 32;  // padded rows, as inside a fused qkv row
  const int64_t half = D / 2;
  std::vector<float> cos(size_t(T * half)), sin(size_t(T * half));
  for (int64_t t = 0; t < T; ++t)
    for (int64_t i = 0; i < half; ++i) {
      const double a = double(t) * std::pow(10000.0, -2.0 * double(i) / double(D));
      cos[size_t(t * half + i)] = float(std::cos(a));
      sin[size_t(t * half + i)] = float(std::sin(a));
    }
  std::vector<double> x;
  auto dx = to_device_bf16(random_floats(size_t(B * T * ld), 12), &x);
  auto dcos = to_device(cos), dsin = to_device(sin);
  rope_rotate(dx.get(), ld, dcos.get(), dsin.get(), B, T, heads, D, 1.0f, nullptr);
  std::vector<double> ref = x;
  for (int64_t m = 0; m < B * T; ++m)
    for (int64_t h = 0; h < heads; ++h)
      for (int64_t i = 0; i < half; ++i) {
        const size_t k = size_t(m * ld + h * D + i);
        const double c = cos[size_t((m % T) * half + i)], s = sin[size_t((m % T) * half + i)];
        ref[k] = x[k] * c - x[k + static_cast<size_t>(half)] * s;
        ref[k + static_cast<size_t>(half)] = x[k + static_cast<size_t>(half)] * c + x[k] * s;
      }
  EXPECT_LT(relative_l2(download(dx), ref), 5e-3);
  const auto rotated = download(dx);
  for (int64_t m = 0; m < B * T; ++m)  // the padding after the heads is untouched
    for (int64_t c = heads * D; c < ld; ++c) EXPECT_EQ(rotated[size_t(m * ld + c)], x[size_t(m * ld + c)]);
  rope_rotate(dx.get(), ld, dcos.get(), dsin.get(), B, T, heads, D, -1.0f, nullptr);
  EXPECT_LT(relative_l2(download(dx), x), 1e-2);
}

TEST_F(GpuTrainKernels, CrossEntropyRowsLossAndGradient) {
  // 1003: the two-pass kernel; 1008 and GPT-2's 50304 (a multiple of 8): the row cached in shared memory.
  for (int64_t V : {1003, 1008, 50304}) {
  SCOPED_TRACE(V);
  const int64_t rows = 7;
  std::vector<double> logits;
  auto d = to_device_bf16(random_floats(size_t(rows * V), 13, -4, 4), &logits);
  std::vector<int32_t> targets = {5, 1002, -1, 0, 77, 500, int32_t(V - 1)};
  DeviceArray<int32_t> dt(targets.size());
  ASSERT_EQ(cudaMemcpy(dt.get(), targets.data(), dt.bytes(), cudaMemcpyHostToDevice), cudaSuccess);
  DeviceArray<float> losses(static_cast<size_t>(rows));
  DeviceArray<double> sum(1);
  const float scale = 0.25f;
  cross_entropy_rows(d.get(), dt.get(), losses.get(), rows, V, scale, true, nullptr);
  sum_in_order(losses.get(), rows, sum.get(), nullptr);
  std::vector<double> rl(static_cast<size_t>(rows)), rd(size_t(rows * V));
  double rsum = 0;
  for (int64_t r = 0; r < rows; ++r) {
    double mx = -1e300, se = 0;
    for (int64_t i = 0; i < V; ++i) mx = std::max(mx, logits[size_t(r * V + i)]);
    for (int64_t i = 0; i < V; ++i) se += std::exp(logits[size_t(r * V + i)] - mx);
    const double lse = mx + std::log(se);
    const int32_t t = targets[static_cast<size_t>(r)];
    rl[static_cast<size_t>(r)] = t >= 0 ? lse - logits[size_t(r * V + t)] : 0.0;
    rsum += rl[static_cast<size_t>(r)];
    for (int64_t i = 0; i < V; ++i)
      rd[size_t(r * V + i)] = t >= 0 ? (std::exp(logits[size_t(r * V + i)] - lse) - (i == t)) * scale : 0.0;
  }
  EXPECT_LT(relative_l2(download(losses), rl), 1e-5);
  EXPECT_LT(relative_l2(download(d), rd), 8e-3);
  double got = 0;
  ASSERT_EQ(cudaMemcpy(&got, sum.get(), sizeof(double), cudaMemcpyDeviceToHost), cudaSuccess);
  EXPECT_NEAR(got, rsum, 1e-5 * rsum);
  }
}

TEST_F(GpuTrainKernels, EmbeddingForwardAndDeterministicBackward) {
  const int64_t B = 2, T = 9, H = 40, V = 11;
  std::vector<int32_t> tokens = {3, 3, 0, 10, 3, 5, 5, 0, 1, 2, 3, 4, 10, 10, 9, 8, 3, 0};
  // CSR of rows by token, as the model builds it.
  std::vector<int32_t> unique, starts, rows;
  for (int32_t v = 0; v < V; ++v) {
    bool first = true;
    for (int32_t m = 0; m < int32_t(tokens.size()); ++m)
      if (tokens[static_cast<size_t>(m)] == v) {
        if (first) unique.push_back(v), starts.push_back(int32_t(rows.size())), first = false;
        rows.push_back(m);
      }
  }
  starts.push_back(int32_t(rows.size()));
  auto upload = [](const std::vector<int32_t>& v) {
    DeviceArray<int32_t> d(v.size());
    EXPECT_EQ(cudaMemcpy(d.get(), v.data(), d.bytes(), cudaMemcpyHostToDevice), cudaSuccess);
    return d;
  };
  auto dtok = upload(tokens), du = upload(unique), ds = upload(starts), dr = upload(rows);
  const auto wte = random_floats(size_t(V * H), 14), wpe = random_floats(size_t(T * H), 15),
             dout = random_floats(size_t(B * T * H), 16), g0 = random_floats(size_t(V * H), 17),
             p0 = random_floats(size_t(T * H), 18);
  auto dwte = to_device(wte), dwpe = to_device(wpe), ddout = to_device(dout), gwte = to_device(g0), gwpe = to_device(p0);
  DeviceArray<float> out(size_t(B * T * H));
  embedding_forward(dtok.get(), dwte.get(), dwpe.get(), out.get(), B, T, H, nullptr);
  embedding_backward(ddout.get(), du.get(), ds.get(), dr.get(), int64_t(unique.size()), gwte.get(), gwpe.get(), B, T,
                     H, nullptr);
  std::vector<double> rout(out.size()), rg(g0.begin(), g0.end()), rp(p0.begin(), p0.end());
  for (int64_t m = 0; m < B * T; ++m)
    for (int64_t i = 0; i < H; ++i) {
      rout[size_t(m * H + i)] = double(wte[size_t(tokens[static_cast<size_t>(m)] * H + i)]) + wpe[size_t((m % T) * H + i)];
      rg[size_t(tokens[static_cast<size_t>(m)] * H + i)] += dout[size_t(m * H + i)];
      rp[size_t((m % T) * H + i)] += dout[size_t(m * H + i)];
    }
  EXPECT_LT(relative_l2(download(out), rout), 1e-7);
  EXPECT_LT(relative_l2(download(gwte), rg), 1e-6);
  EXPECT_LT(relative_l2(download(gwpe), rp), 1e-6);
}

// The operands of one linear layer (x [M, K], W [N, K], dy [M, N] in bf16; bias, residual and the initial
// weight gradient in f32), random from `seed`, with float64 references of its products.
struct LinearLayerCase {
  int64_t M, N, K;
  std::vector<double> x, w, dy;
  std::vector<float> bias, resid, g0;
  DeviceArray<bf16> dx_in, dw_in, ddy;
  DeviceArray<float> dbias, dres;
  std::vector<double> ref_y_bias, ref_y, ref_dx, ref_dw;  // x W^T + b; + residual; dy W; g0 + dy^T x

  LinearLayerCase(int64_t m, int64_t n, int64_t k, uint32_t seed)
      : M(m), N(n), K(k), bias(random_floats(static_cast<size_t>(n), seed + 3)),
        resid(random_floats(size_t(m * n), seed + 4)), g0(random_floats(size_t(n * k), seed + 5)),
        dx_in(to_device_bf16(random_floats(size_t(m * k), seed), &x)),
        dw_in(to_device_bf16(random_floats(size_t(n * k), seed + 1), &w)),
        ddy(to_device_bf16(random_floats(size_t(m * n), seed + 2), &dy)), dbias(to_device(bias)),
        dres(to_device(resid)) {
    ref_y_bias.assign(size_t(M * N), 0.0);
    ref_y.assign(size_t(M * N), 0.0);
    ref_dx.assign(size_t(M * K), 0.0);
    ref_dw.assign(g0.begin(), g0.end());
    for (int64_t i = 0; i < M; ++i)
      for (int64_t j = 0; j < N; ++j) {
        double acc = bias[static_cast<size_t>(j)];
        for (int64_t c = 0; c < K; ++c) acc += x[size_t(i * K + c)] * w[size_t(j * K + c)];
        ref_y_bias[size_t(i * N + j)] = acc;
        ref_y[size_t(i * N + j)] = acc + resid[size_t(i * N + j)];
        for (int64_t c = 0; c < K; ++c) {
          ref_dx[size_t(i * K + c)] += dy[size_t(i * N + j)] * w[size_t(j * K + c)];
          ref_dw[size_t(j * K + c)] += dy[size_t(i * N + j)] * x[size_t(i * K + c)];
        }
      }
  }
  // The three products the trainer runs: y = x W^T + b + residual (f32), dx = dy W (f32), dw = g0 + dy^T x.
  void forward_residual(LtGemm& gemm, DeviceArray<float>& y) const {
    gemm.run(M, N, K, {dx_in.get(), K, false}, {dw_in.get(), K, true}, y.get(), CUDA_R_32F, N, 1.0f, dres.get(),
             dbias.get(), CUDA_R_32F);
  }
  void input_gradient(LtGemm& gemm, DeviceArray<float>& dx) const {
    gemm.run(M, K, N, {ddy.get(), N, false}, {dw_in.get(), K, false}, dx.get(), CUDA_R_32F, K);
  }
  DeviceArray<float> weight_gradient(LtGemm& gemm) const {
    auto dw = to_device(g0);
    gemm.run(N, K, M, {ddy.get(), N, true}, {dx_in.get(), K, false}, dw.get(), CUDA_R_32F, K, 1.0f);
    return dw;
  }
};

TEST_F(GpuTrainKernels, GemmFormsOfALinearLayer) {
  const LinearLayerCase c(37, 40, 72, 19);
  DeviceArray<float> y(size_t(c.M * c.N)), dx(size_t(c.M * c.K));
  LtGemm gemm(nullptr, 1 << 20);
  c.forward_residual(gemm, y);
  c.input_gradient(gemm, dx);
  const DeviceArray<float> dw = c.weight_gradient(gemm);
  EXPECT_LT(relative_l2(download(y), c.ref_y), 1e-5);
  EXPECT_LT(relative_l2(download(dx), c.ref_dx), 1e-5);
  EXPECT_LT(relative_l2(download(dw), c.ref_dw), 1e-5);
}

// The weight-gradient product with its bias gradient in the epilogue (BGRADB): dW += dy^T x and
// db = the column sums of dy (written, not accumulated), as the trainer's q|k|v and MLP-in layers use it; odd
// row counts (the reduction), twice for the same bits.
TEST_F(GpuTrainKernels, WeightGradientGemmWritesBiasGradient) {
  for (auto [M, N, K] : {std::tuple<int64_t, int64_t, int64_t>{301, 136, 72}, {1037, 48, 40}, {64, 2304, 8}}) {
    std::vector<double> x, dy;
    auto dxx = to_device_bf16(random_floats(size_t(M * K), 31), &x);
    auto ddy = to_device_bf16(random_floats(size_t(M * N), 32, -2, 2), &dy);
    const auto g0 = random_floats(size_t(N * K), 33), db0 = random_floats(size_t(N), 34);
    auto dg = to_device(g0), ddb = to_device(db0);
    LtGemm gemm(nullptr, 1 << 20);
    try {
      gemm.run(N, K, M, {ddy.get(), N, true}, {dxx.get(), K, false}, dg.get(), CUDA_R_32F, K, 1.0f, nullptr, nullptr,
               CUDA_R_32F, {}, ddb.get());
    } catch (const Error& e) {
      GTEST_SKIP() << "cuBLASLt has no BGRADB algorithm here (the trainer falls back to its own kernel): " << e.what();
    }
    std::vector<double> rg(g0.begin(), g0.end()), rdb(size_t(N), 0.0);
    for (int64_t m = 0; m < M; ++m)
      for (int64_t n = 0; n < N; ++n) {
        rdb[size_t(n)] += dy[size_t(m * N + n)];
        for (int64_t k = 0; k < K; ++k) rg[size_t(n * K + k)] += dy[size_t(m * N + n)] * x[size_t(m * K + k)];
      }
    const std::vector<double> got_g = download(dg), got_db = download(ddb);
    EXPECT_LT(relative_l2(got_g, rg), 1e-5) << M << " " << N << " " << K;
    EXPECT_LT(relative_l2(got_db, rdb), 1e-5) << M << " " << N << " " << K;
    auto dg2 = to_device(g0), ddb2 = to_device(db0);
    gemm.run(N, K, M, {ddy.get(), N, true}, {dxx.get(), K, false}, dg2.get(), CUDA_R_32F, K, 1.0f, nullptr, nullptr,
             CUDA_R_32F, {}, ddb2.get());
    EXPECT_EQ(download(dg2), got_g);
    EXPECT_EQ(download(ddb2), got_db);
  }
}

// Tuned cuBLASLt choices (LtGemm::enable_tuning): every form still computes its product (float64 reference);
// the kept table has one entry per form, made here; a second instance given that table repeats the tuned
// instance's outputs bit for bit (what --resume and --gemm-algorithms FILE rely on); a table made elsewhere is
// refused, and a table comes before the first product or not at all.
TEST_F(GpuTrainKernels, TunedGemmChoicesAreKeptAndRepeatExactly) {
  const LinearLayerCase c(256, 1152, 384, 41);
  // A bf16 output takes a bf16 bias (as the trainer's forward: cuBLASLt wants the bias in the output's type).
  std::vector<double> bias16;
  const auto dbias16 = to_device_bf16(c.bias, &bias16);
  std::vector<double> ref_y_bias16 = c.ref_y_bias;
  for (int64_t m = 0; m < c.M; ++m)
    for (int64_t n = 0; n < c.N; ++n)
      ref_y_bias16[size_t(m * c.N + n)] += bias16[size_t(n)] - double(c.bias[size_t(n)]);
  struct Outputs {
    std::vector<double> y, y_bias, dx, dw;
  };
  auto run_all = [&](LtGemm& gemm) {
    DeviceArray<float> y(size_t(c.M * c.N)), dx(size_t(c.M * c.K));
    DeviceArray<bf16> y_bias(size_t(c.M * c.N));
    c.forward_residual(gemm, y);
    gemm.run(c.M, c.N, c.K, {c.dx_in.get(), c.K, false}, {c.dw_in.get(), c.K, true}, y_bias.get(), CUDA_R_16BF, c.N,
             0.0f, nullptr, dbias16.get(), CUDA_R_16BF);  // bf16 out, bias epilogue
    c.input_gradient(gemm, dx);
    const DeviceArray<float> dw = c.weight_gradient(gemm);
    EXPECT_EQ(cudaDeviceSynchronize(), cudaSuccess);
    return Outputs{download(y), download(y_bias), download(dx), download(dw)};
  };

  LtGemm tuned(nullptr, 32 << 20);
  tuned.enable_tuning();
  const Outputs a = run_all(tuned);
  EXPECT_LT(relative_l2(a.y, c.ref_y), 1e-5);
  EXPECT_LT(relative_l2(a.y_bias, ref_y_bias16), 8e-3);
  EXPECT_LT(relative_l2(a.dx, c.ref_dx), 1e-5);
  EXPECT_LT(relative_l2(a.dw, c.ref_dw), 1e-5);

  const GemmAlgorithmTable table = tuned.algorithms();
  EXPECT_EQ(table.library, LtGemm::library_id());
  EXPECT_EQ(table.device, LtGemm::device_id());
  ASSERT_EQ(table.choices.size(), 4u);
  for (const auto& [form, choice] : table.choices) {
    EXPECT_EQ(choice.algorithm.size(), 2 * sizeof(cublasLtMatmulAlgo_t)) << form;
    EXPECT_GT(choice.heuristic_ms, 0.0) << form;
    EXPECT_GT(choice.ms, 0.0) << form;
    std::printf("tuned %s: %.4f ms (heuristic's first %.4f ms)\n", form.c_str(), choice.ms, choice.heuristic_ms);
  }

  LtGemm repeat(nullptr, 32 << 20);
  ASSERT_TRUE(repeat.use_algorithms(GemmAlgorithmTable::from_json(table.to_json(), "test")));
  const Outputs b = run_all(repeat);
  EXPECT_EQ(b.y, a.y);
  EXPECT_EQ(b.y_bias, a.y_bias);
  EXPECT_EQ(b.dx, a.dx);
  EXPECT_EQ(b.dw, a.dw);
  EXPECT_EQ(repeat.algorithms().to_json(), table.to_json());  // and records the same choices again

  GemmAlgorithmTable elsewhere = table;
  elsewhere.device = "another GPU";
  LtGemm other(nullptr, 32 << 20);
  EXPECT_FALSE(other.use_algorithms(elsewhere));
  EXPECT_TRUE(other.algorithms().empty());  // the heuristic alone: nothing kept
  EXPECT_THROW(repeat.use_algorithms(table), Error);  // plans exist already
}

// Attention through the public interface, q/k/v inside one fused [B*T, (Hq + 2 Hkv) * D] row.
void check_attention(int64_t B, int64_t T, int64_t Hq, int64_t Hkv, int64_t D, int64_t window) {
  const int64_t QKV = (Hq + 2 * Hkv) * D, QD = Hq * D, M = B * T;
  std::vector<double> qkv, dout;
  auto dqkv_in = to_device_bf16(random_floats(size_t(M * QKV), 31, -2, 2), &qkv);
  auto ddout = to_device_bf16(random_floats(size_t(M * QD), 32), &dout);
  DeviceArray<bf16> out(size_t(M * QD)), grads(size_t(M * QKV));
  DeviceArray<float> lse(size_t(B * Hq * T));
  FlashAttentionShape s{B, T, Hq, Hkv, D, window, QKV, QKV, QD};
  DeviceArray<unsigned char> workspace(std::max<size_t>(1, flash_attention_backward_workspace(s)));
  const bf16* q = dqkv_in.get();
  ASSERT_EQ(cudaMemset(grads.get(), 0xff, grads.bytes()), cudaSuccess);
  flash_attention_forward(s, q, q + QD, q + QD + Hkv * D, out.get(), lse.get(), nullptr);
  bf16* g = grads.get();
  flash_attention_backward(s, q, q + QD, q + QD + Hkv * D, out.get(), lse.get(), ddout.get(), g, g + QD,
                           g + QD + Hkv * D, workspace.get(), nullptr);
  const auto got_out = download(out), got_grads = download(grads), got_lse = download(lse);
  std::vector<double> rout(size_t(M * QD)), rlse(size_t(B * Hq * T)), rg(size_t(M * QKV), 0.0);
  const double scale = 1 / std::sqrt(double(D));
  auto at = [&](int64_t b, int64_t t, int64_t col) { return size_t((b * T + t) * QKV + col); };
  for (int64_t b = 0; b < B; ++b)
    for (int64_t h = 0; h < Hq; ++h) {
      const int64_t kq = h * D, kk = QD + (h / (Hq / Hkv)) * D, kv = kk + Hkv * D;
      for (int64_t i = 0; i < T; ++i) {
        const int64_t j0 = window > 0 ? std::max<int64_t>(0, i - window + 1) : 0;
        std::vector<double> p(size_t(i + 1), 0.0);
        double mx = -1e300, se = 0;
        for (int64_t j = j0; j <= i; ++j) {
          double sc = 0;
          for (int64_t d = 0; d < D; ++d) sc += qkv[at(b, i, kq + d)] * qkv[at(b, j, kk + d)];
          p[static_cast<size_t>(j)] = sc * scale;
          mx = std::max(mx, p[static_cast<size_t>(j)]);
        }
        for (int64_t j = j0; j <= i; ++j) se += std::exp(p[static_cast<size_t>(j)] - mx);
        rlse[size_t((b * Hq + h) * T + i)] = mx + std::log(se);
        for (int64_t j = j0; j <= i; ++j) p[static_cast<size_t>(j)] = std::exp(p[static_cast<size_t>(j)] - mx) / se;
        std::vector<double> o(static_cast<size_t>(D), 0.0);
        for (int64_t j = j0; j <= i; ++j)
          for (int64_t d = 0; d < D; ++d) o[static_cast<size_t>(d)] += p[static_cast<size_t>(j)] * qkv[at(b, j, kv + d)];
        double delta = 0;
        for (int64_t d = 0; d < D; ++d) {
          rout[size_t((b * T + i) * QD + h * D + d)] = o[static_cast<size_t>(d)];
          delta += o[static_cast<size_t>(d)] * dout[size_t((b * T + i) * QD + h * D + d)];
        }
        for (int64_t j = j0; j <= i; ++j) {
          double dp = 0;
          for (int64_t d = 0; d < D; ++d) dp += dout[size_t((b * T + i) * QD + h * D + d)] * qkv[at(b, j, kv + d)];
          const double ds = p[static_cast<size_t>(j)] * (dp - delta) * scale;
          for (int64_t d = 0; d < D; ++d) {
            rg[at(b, i, kq + d)] += ds * qkv[at(b, j, kk + d)];
            rg[at(b, j, kk + d)] += ds * qkv[at(b, i, kq + d)];
            rg[at(b, j, kv + d)] += p[static_cast<size_t>(j)] * dout[size_t((b * T + i) * QD + h * D + d)];
          }
        }
      }
    }
  EXPECT_LT(relative_l2(got_out, rout), 1e-2);
  EXPECT_LT(relative_l2(got_lse, rlse), 1e-4);
  EXPECT_LT(relative_l2(got_grads, rg), 2e-2);
  EXPECT_EQ(test::count_not_finite(got_grads), 0u);
  // Deterministic: the same inputs give the same bits.
  flash_attention_backward(s, q, q + QD, q + QD + Hkv * D, out.get(), lse.get(), ddout.get(), g, g + QD,
                           g + QD + Hkv * D, workspace.get(), nullptr);
  EXPECT_EQ(download(grads), got_grads);
}

TEST_F(GpuTrainKernels, AttentionForwardBackwardGqa) { check_attention(2, 77, 4, 2, 64, 0); }
TEST_F(GpuTrainKernels, AttentionForwardBackwardHeadDim128) { check_attention(1, 130, 2, 1, 128, 0); }
TEST_F(GpuTrainKernels, AttentionForwardBackwardSlidingWindow) { check_attention(1, 70, 2, 2, 64, 16); }

TEST_F(GpuTrainKernels, AdamWUpdateAndGradNorm) {
  const int64_t n = 100003;
  const auto p = random_floats(static_cast<size_t>(n), 40), g = random_floats(static_cast<size_t>(n), 41), m = random_floats(static_cast<size_t>(n), 42, -0.1f, 0.1f),
             v = random_floats(static_cast<size_t>(n), 43, 0.001f, 0.01f);
  std::vector<uint8_t> mask(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) mask[static_cast<size_t>(i)] = uint8_t(i % 3 == 0);
  auto dp = to_device(p), dg = to_device(g), dm = to_device(m), dv = to_device(v);
  DeviceArray<uint8_t> dmask(static_cast<size_t>(n));
  ASSERT_EQ(cudaMemcpy(dmask.get(), mask.data(), static_cast<size_t>(n), cudaMemcpyHostToDevice), cudaSuccess);
  DeviceArray<bf16> pb(static_cast<size_t>(n));
  DeviceArray<double> partials(sum_squares_partials(n)), norm(1);
  sum_squares(dg.get(), n, partials.get(), norm.get(), nullptr);
  AdamWStep s{0.01f * 0.1f, 0.9f, 0.95f, 1e-8f, float(0.01 / (1 - std::pow(0.9, 3))), float(std::sqrt(1 - std::pow(0.95, 3))), 0.5f};
  adamw_update(dp.get(), pb.get(), dg.get(), dm.get(), dv.get(), dmask.get(), n, s, nullptr);
  double sq = 0;
  std::vector<double> rp(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    sq += double(g[static_cast<size_t>(i)]) * g[static_cast<size_t>(i)];
    const double gi = double(g[static_cast<size_t>(i)]) * 0.5;
    const double mi = 0.9 * m[static_cast<size_t>(i)] + 0.1 * gi, vi = 0.95 * v[static_cast<size_t>(i)] + 0.05 * gi * gi;
    double w = p[static_cast<size_t>(i)] * (mask[static_cast<size_t>(i)] ? 1 - double(s.lr_weight_decay) : 1.0);
    rp[static_cast<size_t>(i)] = w - double(s.step_size) * mi / (std::sqrt(vi) / double(s.bias2_sqrt) + 1e-8);
  }
  double got = 0;
  ASSERT_EQ(cudaMemcpy(&got, norm.get(), sizeof(double), cudaMemcpyDeviceToHost), cudaSuccess);
  EXPECT_NEAR(got, sq, 1e-9 * sq);
  // The update (new - old) against the reference's, so that the check is not swamped by the weights.
  const auto got_p = download(dp);
  std::vector<double> got_delta(static_cast<size_t>(n)), ref_delta(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    got_delta[static_cast<size_t>(i)] = got_p[static_cast<size_t>(i)] - p[static_cast<size_t>(i)];
    ref_delta[static_cast<size_t>(i)] = rp[static_cast<size_t>(i)] - p[static_cast<size_t>(i)];
  }
  EXPECT_LT(relative_l2(got_delta, ref_delta), 1e-4);
  EXPECT_LT(relative_l2(download(pb), rp), 5e-3);
}

}  // namespace
}  // namespace roofline::train::cuda
