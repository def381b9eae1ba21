// The training flash-attention kernels (train/cuda/flash_attention.h) against a float64 reference written
// here: forward out and lse, backward dq, dk, dv, on fresh N(0, 1) q, k, v and dout rounded to bf16 (the
// reference sees exactly the rounded values). Shapes: B = 2, odd lengths (1, 7, 65, 200, 1000), GQA 4:4 and
// 8:2, head_dim 64 and 128, full causal and sliding windows, dense rows and the strided views of one fused
// [B*T, (Hq + 2 Hkv) D] projection (gradients into one fused buffer, out with a padded stride). Every output
// starts as NaN, so every element must be written; the backward must give the same bits twice. The wgmma
// backward (lab variant) runs the same cases and more; every case also runs the wgmma forward
// (flash_attention_lab.h) against the same reference, out and lse.
#include <cuda_bf16.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>

#include "gpu_test_util.h"
#include "roofline/train/cuda/flash_attention.h"
#include "roofline/train/cuda/flash_attention_lab.h"

namespace roofline::test {
namespace {

using train::cuda::FlashAttentionShape;

struct TrainAttentionCase {
  int T, Hq, Hkv, D, window;
  bool fused;  // q, k, v (and dq, dk, dv) as column views of one fused row; out with a padded stride
  std::string name() const {
    return fmt::format("T{}_Hq{}_Hkv{}_D{}_window{}_{}", T, Hq, Hkv, D, window, fused ? "fused" : "dense");
  }
};

constexpr int kB = 2;

// Host copies in [B, T, H, D] order (dense), as doubles holding bf16 values exactly.
struct Reference {
  std::vector<double> out, lse, dq, dk, dv;
};

Reference reference(const TrainAttentionCase& c, const std::vector<double>& q, const std::vector<double>& k,
                    const std::vector<double>& v, const std::vector<double>& dout) {
  const int T = c.T, Hq = c.Hq, Hkv = c.Hkv, D = c.D, group = Hq / Hkv;
  const double scale = 1.0 / std::sqrt(double(D));
  auto qi = [&](int b, int t, int h) { return ((size_t(b) * T + t) * Hq + h) * D; };
  auto ki = [&](int b, int t, int h) { return ((size_t(b) * T + t) * Hkv + h) * D; };
  Reference r;
  r.out.assign(size_t(kB) * T * Hq * D, 0.0);
  r.dq.assign(r.out.size(), 0.0);
  r.dk.assign(size_t(kB) * T * Hkv * D, 0.0);
  r.dv.assign(r.dk.size(), 0.0);
  r.lse.assign(size_t(kB) * Hq * T, 0.0);
  std::vector<double> p, dp;
  for (int b = 0; b < kB; ++b)
    for (int h = 0; h < Hq; ++h) {
      const int kvh = h / group;
      for (int t = 0; t < T; ++t) {
        const int first = c.window > 0 ? std::max(0, t - c.window + 1) : 0;
        const int n = t - first + 1;
        p.assign(size_t(n), 0.0);
        dp.assign(size_t(n), 0.0);
        double mx = -INFINITY;
        for (int j = 0; j < n; ++j) {
          double dot = 0;
          for (int i = 0; i < D; ++i) dot += q[qi(b, t, h) + i] * k[ki(b, first + j, kvh) + i];
          p[size_t(j)] = dot * scale;
          mx = std::max(mx, p[size_t(j)]);
        }
        double sum = 0;
        for (double& x : p) sum += std::exp(x - mx);
        const double lse = mx + std::log(sum);
        r.lse[(size_t(b) * Hq + h) * T + t] = lse;
        for (double& x : p) x = std::exp(x - lse);
        double delta = 0;
        for (int j = 0; j < n; ++j) {
          double dot = 0;
          for (int i = 0; i < D; ++i) {
            r.out[qi(b, t, h) + i] += p[size_t(j)] * v[ki(b, first + j, kvh) + i];
            dot += dout[qi(b, t, h) + i] * v[ki(b, first + j, kvh) + i];
          }
          dp[size_t(j)] = dot;
          delta += p[size_t(j)] * dot;
        }
        for (int j = 0; j < n; ++j) {
          const double ds = p[size_t(j)] * (dp[size_t(j)] - delta);
          for (int i = 0; i < D; ++i) {
            r.dq[qi(b, t, h) + i] += scale * ds * k[ki(b, first + j, kvh) + i];
            r.dk[ki(b, first + j, kvh) + i] += scale * ds * q[qi(b, t, h) + i];
            r.dv[ki(b, first + j, kvh) + i] += p[size_t(j)] * dout[qi(b, t, h) + i];
          }
        }
      }
    }
  return r;
}

// N(0, 1) values rounded to bf16: the bits to upload and the exact values as doubles.
void normal_bf16(size_t n, uint32_t seed, std::vector<uint16_t>& bits, std::vector<double>& values) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(0.0f, 1.0f);
  std::vector<float> f(n);
  for (float& x : f) x = dist(rng);
  bits.resize(n);
  convert_from_f32(DType::BF16, f.data(), bits.data(), n);
  convert_to_f32(DType::BF16, bits.data(), f.data(), n);
  values.assign(f.begin(), f.end());
}

// A device buffer of bf16 rows [rows, ld] holding dense [rows, H * D] data at column offset col0.
struct RowLayout {
  int64_t ld, col0;
};

void scatter_rows(std::vector<uint16_t>& dst, const RowLayout& at, const std::vector<uint16_t>& dense, int64_t rows,
                  int64_t width) {
  for (int64_t r = 0; r < rows; ++r)
    std::copy_n(dense.begin() + r * width, width, dst.begin() + r * at.ld + at.col0);
}

std::vector<double> gather_rows(const std::vector<uint16_t>& src, const RowLayout& at, int64_t rows, int64_t width) {
  std::vector<uint16_t> dense(size_t(rows * width));
  for (int64_t r = 0; r < rows; ++r)
    std::copy_n(src.begin() + r * at.ld + at.col0, width, dense.begin() + r * width);
  std::vector<float> f(dense.size());
  convert_to_f32(DType::BF16, dense.data(), f.data(), f.size());
  return std::vector<double>(f.begin(), f.end());
}

std::vector<uint16_t> download_bits(const Tensor& t) {
  std::vector<uint16_t> bits(size_t(t.numel()));
  EXPECT_EQ(cudaMemcpy(bits.data(), t.data(), bits.size() * 2, cudaMemcpyDeviceToHost), cudaSuccess);
  return bits;
}

void upload_bits(Tensor& t, const std::vector<uint16_t>& bits) {
  ASSERT_EQ(size_t(t.numel()), bits.size());
  ASSERT_EQ(cudaMemcpy(t.data(), bits.data(), bits.size() * 2, cudaMemcpyHostToDevice), cudaSuccess);
}

const __nv_bfloat16* bf(const Tensor& t, int64_t offset = 0) {
  return static_cast<const __nv_bfloat16*>(t.data()) + offset;
}
__nv_bfloat16* bf_mut(Tensor& t, int64_t offset = 0) { return static_cast<__nv_bfloat16*>(t.data()) + offset; }

// The device side of one case: inputs uploaded in the case's layout, outputs poisoned, and the calls.
struct DeviceCase {
  TrainAttentionCase c;
  FlashAttentionShape shape;
  RowLayout q_at, k_at, v_at, o_at;
  Tensor qkv, out, dout, grads, lse, workspace;
  std::vector<double> q, k, v, dout_values;

  DeviceCase(cuda::CudaBackend& gpu, const TrainAttentionCase& tc, uint32_t seed) : c(tc) {
    const int64_t rows = int64_t(kB) * c.T, qw = int64_t(c.Hq) * c.D, kvw = int64_t(c.Hkv) * c.D;
    const int64_t fused_ld = qw + 2 * kvw;
    q_at = c.fused ? RowLayout{fused_ld, 0} : RowLayout{qw, 0};
    k_at = c.fused ? RowLayout{fused_ld, qw} : RowLayout{kvw, 0};
    v_at = c.fused ? RowLayout{fused_ld, qw + kvw} : RowLayout{kvw, 0};
    o_at = c.fused ? RowLayout{qw + 16, 0} : RowLayout{qw, 0};
    shape.B = kB, shape.T = c.T, shape.Hq = c.Hq, shape.Hkv = c.Hkv, shape.D = c.D, shape.window = c.window;
    if (c.fused) shape.ld_q = shape.ld_kv = fused_ld, shape.ld_o = o_at.ld;

    std::vector<uint16_t> qb, kb, vb, db;
    normal_bf16(size_t(rows * qw), seed, qb, q);
    normal_bf16(size_t(rows * kvw), seed + 1, kb, k);
    normal_bf16(size_t(rows * kvw), seed + 2, vb, v);
    normal_bf16(size_t(rows * qw), seed + 3, db, dout_values);
    // Inputs: q, k, v in one buffer (fused) or three back to back; padding columns hold NaN.
    const int64_t in_elems = c.fused ? rows * fused_ld : rows * (qw + 2 * kvw);
    std::vector<uint16_t> in(size_t(in_elems), 0xffff);
    if (c.fused) {
      scatter_rows(in, q_at, qb, rows, qw);
      scatter_rows(in, k_at, kb, rows, kvw);
      scatter_rows(in, v_at, vb, rows, kvw);
    } else {
      std::copy(qb.begin(), qb.end(), in.begin());
      std::copy(kb.begin(), kb.end(), in.begin() + rows * qw);
      std::copy(vb.begin(), vb.end(), in.begin() + rows * (qw + kvw));
    }
    qkv = gpu.alloc(DType::BF16, {in_elems});
    upload_bits(qkv, in);
    std::vector<uint16_t> dout_rows(size_t(rows * o_at.ld), 0xffff);
    scatter_rows(dout_rows, o_at, db, rows, qw);
    dout = gpu.alloc(DType::BF16, {rows * o_at.ld});
    upload_bits(dout, dout_rows);
    out = poisoned(gpu, DType::BF16, {rows * o_at.ld});
    grads = poisoned(gpu, DType::BF16, {in_elems});
    lse = poisoned(gpu, DType::F32, {int64_t(kB) * c.Hq * c.T});
    const auto workspace_floats = int64_t(train::cuda::flash_attention_backward_workspace(shape) + 3) / 4;
    workspace = gpu.alloc(DType::F32, {std::max<int64_t>(workspace_floats, 1)});
  }

  // Offsets of q, k, v inside qkv (and of dq, dk, dv inside grads).
  int64_t q_offset() const { return q_at.col0; }
  int64_t k_offset() const { return c.fused ? k_at.col0 : int64_t(kB) * c.T * c.Hq * c.D; }
  int64_t v_offset() const {
    return c.fused ? v_at.col0 : int64_t(kB) * c.T * (int64_t(c.Hq) + c.Hkv) * c.D;
  }

  void forward(cudaStream_t stream) {
    train::cuda::flash_attention_forward(shape, bf(qkv, q_offset()), bf(qkv, k_offset()), bf(qkv, v_offset()),
                                         bf_mut(out), lse.ptr<float>(), stream);
  }
  void backward(cudaStream_t stream) {
    train::cuda::flash_attention_backward(shape, bf(qkv, q_offset()), bf(qkv, k_offset()), bf(qkv, v_offset()),
                                          bf(out), lse.ptr<float>(), bf(dout), bf_mut(grads, q_offset()),
                                          bf_mut(grads, k_offset()), bf_mut(grads, v_offset()), workspace.data(),
                                          stream);
  }
  // A kernel-lab backward variant, grads poisoned with NaN first so that every element must be written.
  void lab_backward(const train::cuda::lab::BackwardVariant& variant, cudaStream_t stream) {
    ASSERT_EQ(cudaMemsetAsync(grads.data(), 0xff, grads.nbytes(), stream), cudaSuccess);
    train::cuda::lab::flash_attention_backward(shape, bf(qkv, q_offset()), bf(qkv, k_offset()), bf(qkv, v_offset()),
                                               bf(out), lse.ptr<float>(), bf(dout), bf_mut(grads, q_offset()),
                                               bf_mut(grads, k_offset()), bf_mut(grads, v_offset()), workspace.data(),
                                               variant, stream);
  }
};

class GpuTrainAttention : public GpuTest, public ::testing::WithParamInterface<TrainAttentionCase> {};

TEST_P(GpuTrainAttention, MatchesFloat64Reference) {
  const TrainAttentionCase& c = GetParam();
  DeviceCase d(gpu(), c, uint32_t(c.T * 131 + c.D * 7 + c.Hq + c.window));
  d.forward(gpu().stream());
  d.backward(gpu().stream());
  ASSERT_EQ(cudaStreamSynchronize(gpu().stream()), cudaSuccess);
  ASSERT_EQ(cudaGetLastError(), cudaSuccess);

  const Reference want = reference(c, d.q, d.k, d.v, d.dout_values);
  const int64_t rows = int64_t(kB) * c.T, qw = int64_t(c.Hq) * c.D, kvw = int64_t(c.Hkv) * c.D;
  const auto out_bits = download_bits(d.out), grad_bits = download_bits(d.grads);
  const std::vector<double> lse = download_values(gpu(), d.lse);
  const auto out = gather_rows(out_bits, d.o_at, rows, qw);
  // Gradients sit where their inputs sit: the same row layouts inside `grads` (dense: three blocks).
  const RowLayout dk_at = c.fused ? d.k_at : RowLayout{kvw, d.k_offset()};
  const RowLayout dv_at = c.fused ? d.v_at : RowLayout{kvw, d.v_offset()};
  const auto dq = gather_rows(grad_bits, d.q_at, rows, qw);
  const auto dk = gather_rows(grad_bits, dk_at, rows, kvw);
  const auto dv = gather_rows(grad_bits, dv_at, rows, kvw);

  double lse_err = 0;
  for (size_t i = 0; i < lse.size(); ++i) lse_err = std::max(lse_err, std::fabs(lse[i] - want.lse[i]));
  std::printf("%s: rel L2 out %.2e dq %.2e dk %.2e dv %.2e, lse max abs %.2e\n", c.name().c_str(),
              relative_l2(out, want.out), relative_l2(dq, want.dq), relative_l2(dk, want.dk),
              relative_l2(dv, want.dv), lse_err);
  EXPECT_EQ(count_not_finite(lse), 0u) << "lse elements unwritten";
  EXPECT_LT(lse_err, 1e-3) << "lse";
  expect_close(out, want.out, 1e-2, "out " + c.name());
  expect_close(dq, want.dq, 1e-2, "dq " + c.name());
  expect_close(dk, want.dk, 1e-2, "dk " + c.name());
  expect_close(dv, want.dv, 1e-2, "dv " + c.name());
  if (c.fused) {  // the stride padding of out was not written
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t i = qw; i < d.o_at.ld; ++i)
        ASSERT_EQ(out_bits[size_t(r * d.o_at.ld + i)], 0xffff) << "out padding written at row " << r;
  }

  // The forwards the default above does not run (flash_attention_lab.h): the mma.sync kernel's default tiles
  // (ROOFLINE_TRAIN_ATTN_WGMMA=0) and the wgmma kernel's other key-block size, on the same case: out and lse
  // from fresh NaN, against the same reference, and the same untouched padding.
  namespace lab = train::cuda::lab;
  const int default_keys = c.D == 64 ? lab::kForwardWgmma64.block_keys : lab::kForwardWgmma128.block_keys;
  const lab::ForwardVariant others[] = {lab::ForwardVariant{}, {8, 16, default_keys == 64 ? 128 : 64, true}};
  for (const lab::ForwardVariant& variant : others) {
    const int keys = variant.block_keys;
    ASSERT_EQ(cudaMemsetAsync(d.out.data(), 0xff, d.out.nbytes(), gpu().stream()), cudaSuccess);
    ASSERT_EQ(cudaMemsetAsync(d.lse.data(), 0xff, d.lse.nbytes(), gpu().stream()), cudaSuccess);
    lab::flash_attention_forward(d.shape, bf(d.qkv, d.q_offset()), bf(d.qkv, d.k_offset()), bf(d.qkv, d.v_offset()),
                                 bf_mut(d.out), d.lse.ptr<float>(), variant, gpu().stream());
    ASSERT_EQ(cudaStreamSynchronize(gpu().stream()), cudaSuccess);
    ASSERT_EQ(cudaGetLastError(), cudaSuccess);
    const auto wg_bits = download_bits(d.out);
    const auto wg_out = gather_rows(wg_bits, d.o_at, rows, qw);
    const std::vector<double> wg_lse = download_values(gpu(), d.lse);
    double wg_lse_err = 0;
    for (size_t i = 0; i < wg_lse.size(); ++i) wg_lse_err = std::max(wg_lse_err, std::fabs(wg_lse[i] - want.lse[i]));
    const std::string what = variant.wgmma ? fmt::format("wgmma {} keys {}", c.name(), keys)
                                           : fmt::format("mma.sync default tiles {}", c.name());
    std::printf("%s: rel L2 out %.2e, lse max abs %.2e\n", what.c_str(), relative_l2(wg_out, want.out), wg_lse_err);
    EXPECT_EQ(count_not_finite(wg_lse), 0u) << what << ": lse elements unwritten";
    EXPECT_LT(wg_lse_err, 1e-3) << what << ": lse";
    expect_close(wg_out, want.out, 1e-2, "out " + what);
    if (c.fused) {
      for (int64_t r = 0; r < rows; ++r)
        for (int64_t i = qw; i < d.o_at.ld; ++i)
          ASSERT_EQ(wg_bits[size_t(r * d.o_at.ld + i)], 0xffff) << what << ": out padding written at row " << r;
    }
  }
}

std::vector<TrainAttentionCase> cases() {
  return {
      {1, 4, 4, 64, 0, false},     {1, 8, 2, 128, 0, true},     {7, 8, 2, 128, 0, true},
      {7, 4, 4, 64, 33, false},    {65, 8, 2, 64, 33, true},    {65, 4, 4, 128, 0, false},
      {200, 8, 2, 128, 33, false}, {200, 4, 4, 64, 0, true},    {200, 8, 2, 64, 1, false},
      {1000, 8, 2, 64, 0, true},   {1000, 8, 2, 128, 33, true}, {1000, 4, 4, 128, 0, false},
      {1000, 4, 4, 64, 300, false}, {130, 8, 2, 128, 500, true},
  };
}

INSTANTIATE_TEST_SUITE_P(Cases, GpuTrainAttention, ::testing::ValuesIn(cases()),
                         [](const auto& p) { return p.param.name(); });

// The wgmma backward (sm_90a, the default; ROOFLINE_TRAIN_ATTN_BWD_WGMMA=0 runs the mma.sync pair) on every case
// above plus GPT-2's heads (12 / 12, head_dim 64) at T = 1024 and 333 (not a multiple of its 64-row blocks):
// dq, dk, dv against the float64 reference, out and lse from the default forward; poisoned gradients, so every
// element must be written.
class GpuTrainAttentionWgmmaBackward : public GpuTest, public ::testing::WithParamInterface<TrainAttentionCase> {};

TEST_P(GpuTrainAttentionWgmmaBackward, MatchesFloat64Reference) {
  namespace lab = train::cuda::lab;
  const TrainAttentionCase& c = GetParam();
  DeviceCase d(gpu(), c, uint32_t(c.T * 137 + c.D * 5 + c.Hq + c.window + 11));
  d.forward(gpu().stream());
  lab::BackwardVariant variant;
  variant.wgmma = true;
  d.lab_backward(variant, gpu().stream());
  ASSERT_EQ(cudaStreamSynchronize(gpu().stream()), cudaSuccess);
  ASSERT_EQ(cudaGetLastError(), cudaSuccess);
  const Reference want = reference(c, d.q, d.k, d.v, d.dout_values);
  const int64_t rows = int64_t(kB) * c.T, qw = int64_t(c.Hq) * c.D, kvw = int64_t(c.Hkv) * c.D;
  const auto bits = download_bits(d.grads);
  const auto dq = gather_rows(bits, d.q_at, rows, qw);
  const auto dk = gather_rows(bits, c.fused ? d.k_at : RowLayout{kvw, d.k_offset()}, rows, kvw);
  const auto dv = gather_rows(bits, c.fused ? d.v_at : RowLayout{kvw, d.v_offset()}, rows, kvw);
  std::printf("wgmma bwd %s: rel L2 dq %.2e dk %.2e dv %.2e\n", c.name().c_str(), relative_l2(dq, want.dq),
              relative_l2(dk, want.dk), relative_l2(dv, want.dv));
  expect_close(dq, want.dq, 1e-2, "wgmma dq " + c.name());
  expect_close(dk, want.dk, 1e-2, "wgmma dk " + c.name());
  expect_close(dv, want.dv, 1e-2, "wgmma dv " + c.name());
}

std::vector<TrainAttentionCase> wgmma_backward_cases() {
  std::vector<TrainAttentionCase> all = cases();
  all.push_back({1024, 12, 12, 64, 0, true});
  all.push_back({333, 12, 12, 64, 0, false});
  all.push_back({333, 12, 12, 64, 100, true});
  return all;
}

INSTANTIATE_TEST_SUITE_P(Cases, GpuTrainAttentionWgmmaBackward, ::testing::ValuesIn(wgmma_backward_cases()),
                         [](const auto& p) { return p.param.name(); });

// The backward writes the same bits on every run (no atomics, fixed summation orders), in every tile variant;
// the forward too.
TEST_F(GpuTest, TrainAttentionIsDeterministic) {
  namespace lab = train::cuda::lab;
  for (const TrainAttentionCase& c :
       {TrainAttentionCase{1000, 8, 2, 128, 0, true}, TrainAttentionCase{777, 12, 12, 64, 0, false}}) {
    DeviceCase d(gpu(), c, 99);
    d.forward(gpu().stream());
    ASSERT_EQ(cudaStreamSynchronize(gpu().stream()), cudaSuccess);
    const auto out1 = download_bits(d.out);
    d.forward(gpu().stream());
    ASSERT_EQ(cudaStreamSynchronize(gpu().stream()), cudaSuccess);
    EXPECT_TRUE(download_bits(d.out) == out1) << c.name() << ": forward differs between runs";
    std::vector<lab::BackwardVariant> backward_variants = {lab::BackwardVariant{}, lab::BackwardVariant{4, 4},
                                                           lab::BackwardVariant{8, 8},
                                                           lab::BackwardVariant{0, 0, true, 0, 0}};
    if (c.D == 64)  // the pipelined wgmma dK/dV kernels (head_dim 64 only)
      for (const int pipelined : {2, 3}) backward_variants.push_back({0, 0, true, 1, 2, false, 0, pipelined});
    for (const lab::BackwardVariant& v : backward_variants) {
      std::vector<uint16_t> first;
      for (int run = 0; run < 2; ++run) {
        d.lab_backward(v, gpu().stream());
        ASSERT_EQ(cudaStreamSynchronize(gpu().stream()), cudaSuccess);
        if (run == 0) first = download_bits(d.grads);
        else
          EXPECT_TRUE(download_bits(d.grads) == first)
              << c.name() << ": backward (dkdv_warps " << v.dkdv_warps << ", dq_warps " << v.dq_warps
              << ", wgmma " << v.wgmma << ", dkdv_pipelined " << v.dkdv_pipelined << ") differs between runs";
      }
    }
  }
}

// The kernel-lab variants (train/cuda/flash_attention_lab.h: other tile shapes, the defaults pick among them)
// compute the same: every forward variant's out and every backward variant's dq, dk, dv against the reference.
TEST_F(GpuTest, TrainAttentionVariantsMatchReference) {
  namespace lab = train::cuda::lab;
  for (int D : {64, 128})
    for (auto [T, window] : std::vector<std::pair<int, int>>{{200, 0}, {333, 77}}) {
      const TrainAttentionCase c{T, 8, 2, D, window, true};
      DeviceCase d(gpu(), c, uint32_t(7 * T + D));
      const Reference want = reference(c, d.q, d.k, d.v, d.dout_values);
      const int64_t rows = int64_t(kB) * T, qw = int64_t(c.Hq) * D, kvw = int64_t(c.Hkv) * D;
      const auto variants = D == 64 ? std::vector<lab::ForwardVariant>(std::begin(lab::kForwardVariants64),
                                                                       std::end(lab::kForwardVariants64))
                                    : std::vector<lab::ForwardVariant>(std::begin(lab::kForwardVariants128),
                                                                       std::end(lab::kForwardVariants128));
      for (const lab::ForwardVariant& v : variants) {
        ASSERT_EQ(cudaMemsetAsync(d.out.data(), 0xff, d.out.nbytes(), gpu().stream()), cudaSuccess);
        lab::flash_attention_forward(d.shape, bf(d.qkv, d.q_offset()), bf(d.qkv, d.k_offset()), bf(d.qkv, d.v_offset()),
                                     bf_mut(d.out), d.lse.ptr<float>(), v, gpu().stream());
        ASSERT_EQ(cudaStreamSynchronize(gpu().stream()), cudaSuccess);
        const auto out = gather_rows(download_bits(d.out), d.o_at, rows, qw);
        expect_close(out, want.out, 1e-2,
                     fmt::format("out {} warps {} rows {} keys {}{}", c.name(), v.warps, v.warp_rows, v.block_keys,
                                 v.wgmma ? " wgmma" : ""));
      }
      for (int dkdv_warps : {4, 8})
        for (int dq_warps : {4, 8}) {
          d.lab_backward(lab::BackwardVariant{dkdv_warps, dq_warps}, gpu().stream());
          ASSERT_EQ(cudaStreamSynchronize(gpu().stream()), cudaSuccess);
          const auto bits = download_bits(d.grads);
          const std::string what = fmt::format("{} dkdv_warps {} dq_warps {}", c.name(), dkdv_warps, dq_warps);
          expect_close(gather_rows(bits, d.q_at, rows, qw), want.dq, 1e-2, "dq " + what);
          expect_close(gather_rows(bits, c.fused ? d.k_at : RowLayout{kvw, d.k_offset()}, rows, kvw), want.dk, 1e-2,
                       "dk " + what);
          expect_close(gather_rows(bits, c.fused ? d.v_at : RowLayout{kvw, d.v_offset()}, rows, kvw), want.dv, 1e-2,
                       "dv " + what);
        }
      // The wgmma backward's warpgroup shapes.
      const auto wgmma_variants =
          D == 64 ? std::vector<lab::BackwardVariant>(std::begin(lab::kWgmmaBackwardVariants64),
                                                      std::end(lab::kWgmmaBackwardVariants64))
                  : std::vector<lab::BackwardVariant>(std::begin(lab::kWgmmaBackwardVariants128),
                                                      std::end(lab::kWgmmaBackwardVariants128));
      for (const lab::BackwardVariant& v : wgmma_variants) {
        d.lab_backward(v, gpu().stream());
        ASSERT_EQ(cudaStreamSynchronize(gpu().stream()), cudaSuccess);
        const auto bits = download_bits(d.grads);
        const std::string what =
            fmt::format("{} wgmma dkdv_warpgroups {} dq_warpgroups {}{} dkdv_pipelined {}", c.name(),
                        v.dkdv_warpgroups, v.dq_warpgroups, v.serial ? " serial" : "", v.dkdv_pipelined);
        expect_close(gather_rows(bits, d.q_at, rows, qw), want.dq, 1e-2, "dq " + what);
        expect_close(gather_rows(bits, d.k_at, rows, kvw), want.dk, 1e-2, "dk " + what);
        expect_close(gather_rows(bits, d.v_at, rows, kvw), want.dv, 1e-2, "dv " + what);
      }
    }
}

TEST_F(GpuTest, TrainAttentionRejectsWhatItCannotRun) {
  Tensor buf = gpu().alloc(DType::BF16, {4096});
  Tensor lse = gpu().alloc(DType::F32, {64});
  auto* p = bf_mut(buf);
  FlashAttentionShape s;
  s.B = 1, s.T = 4, s.Hq = 2, s.Hkv = 1, s.D = 96;
  expect_error([&] { train::cuda::flash_attention_forward(s, p, p, p, p, lse.ptr<float>(), gpu().stream()); },
               "head_dim 96 has no CUDA kernel");
  s.D = 64, s.Hkv = 3, s.Hq = 4;
  expect_error([&] { train::cuda::flash_attention_forward(s, p, p, p, p, lse.ptr<float>(), gpu().stream()); },
               "must be a multiple of Hkv");
  s.Hq = 2, s.Hkv = 1, s.ld_q = 2 * 64 + 4;
  expect_error([&] { train::cuda::flash_attention_forward(s, p, p, p, p, lse.ptr<float>(), gpu().stream()); },
               "multiples of 8");
  s.ld_q = 0;
  expect_error([&] { train::cuda::flash_attention_forward(s, p + 1, p, p, p, lse.ptr<float>(), gpu().stream()); },
               "not 16-byte aligned");
  expect_error(
      [&] {
        train::cuda::flash_attention_backward(s, p, p, p, p, lse.ptr<float>(), p, p, p, p, nullptr, gpu().stream());
      },
      "no workspace");
}

}  // namespace
}  // namespace roofline::test
