// The FP8 (e4m3) KV cache on the CPU: the scalar e4m3 conversions (all 256 codes, rounding ties, saturation),
// per-vector quantization error bounds at very different magnitudes, and paged attention over an F8E4M3 pool
// (store_kv quantizes, paged_attention dequantizes) against float64 references: exactly the attention of the
// dequantized keys, and close to the attention of the original ones.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <numeric>
#include <random>

#include "cpu_test_util.h"
#include "roofline/backend/kv_quant.h"
#include "roofline/core/error.h"

namespace roofline::test {
namespace {

TEST(E4M3, EveryCodeRoundTrips) {
  int nan_codes = 0;
  for (int code = 0; code < 256; ++code) {
    const float value = e4m3_to_f32(uint8_t(code));
    if (std::isnan(value)) {
      ++nan_codes;
      EXPECT_EQ(code & 0x7f, 0x7f);
      EXPECT_TRUE(std::isnan(e4m3_to_f32(f32_to_e4m3(value))));
      continue;
    }
    if (code == 0x80) {  // -0 comes back as -0
      EXPECT_EQ(f32_to_e4m3(value), 0x80);
      continue;
    }
    EXPECT_EQ(f32_to_e4m3(value), code) << "value " << value;
  }
  EXPECT_EQ(nan_codes, 2);
}

TEST(E4M3, KnownValuesTiesAndSaturation) {
  EXPECT_EQ(e4m3_to_f32(0x38), 1.0f);
  EXPECT_EQ(e4m3_to_f32(0x7e), 448.0f);
  EXPECT_EQ(e4m3_to_f32(0x01), std::ldexp(1.0f, -9));  // smallest subnormal
  EXPECT_EQ(e4m3_to_f32(0x08), std::ldexp(1.0f, -6));  // smallest normal
  EXPECT_EQ(f32_to_e4m3(1.0625f), 0x38);               // tie between 1 and 1.125: to the even mantissa (1)
  EXPECT_EQ(f32_to_e4m3(1.1875f), 0x3a);               // tie between 1.125 and 1.25: to 1.25
  EXPECT_EQ(f32_to_e4m3(460.0f), 0x7e);                // past 448: saturates
  EXPECT_EQ(f32_to_e4m3(-1e30f), 0xfe);
  EXPECT_EQ(f32_to_e4m3(std::numeric_limits<float>::infinity()), 0x7e);
  EXPECT_EQ(f32_to_e4m3(std::ldexp(1.0f, -11)), 0x00);  // a quarter of the smallest subnormal: to zero
  EXPECT_EQ(f32_to_e4m3(std::ldexp(3.0f, -10)), 0x02);  // 1.5 subnormal steps: tie to even (2)
}

TEST(E4M3, NearestOnRandomValues) {
  std::mt19937 rng(11);
  std::uniform_real_distribution<float> exponent(-12.0f, 9.5f);
  for (int i = 0; i < 20000; ++i) {
    const float x = std::exp2(exponent(rng)) * (i % 2 ? -1.0f : 1.0f);
    const float got = e4m3_to_f32(f32_to_e4m3(x));
    // No code is closer to x (saturation aside).
    double best = std::numeric_limits<double>::infinity();
    for (int code = 0; code < 256; ++code) {
      const float c = e4m3_to_f32(uint8_t(code));
      if (!std::isnan(c)) best = std::min(best, std::fabs(double(c) - double(x)));
    }
    if (std::fabs(x) <= 448.0f) {
      EXPECT_EQ(std::fabs(double(got) - double(x)), best) << x;
    }
  }
}

TEST(KvQuant, VectorErrorIsBoundedAtAnyMagnitude) {
  for (const float magnitude : {1e-4f, 0.05f, 1.0f, 300.0f, 2e5f})
    for (const int64_t n : {8, 64, 128, 136}) {
      auto x = random_floats(size_t(n), uint32_t(n * 7 + int(magnitude)));  // in [-1, 1], none near 0
      for (float& e : x) e *= magnitude;
      std::vector<uint8_t> codes(static_cast<size_t>(n));
      const float scale = quantize_kv_vector(x.data(), n, codes.data());
      std::vector<float> back(static_cast<size_t>(n));
      dequantize_kv_vector(codes.data(), scale, n, back.data());
      float amax = 0.0f;
      for (float v : x) amax = std::max(amax, std::fabs(v));
      EXPECT_NEAR(scale, amax / 448.0f, 1e-6 * amax / 448.0f);
      double err2 = 0, ref2 = 0;
      for (int64_t i = 0; i < n; ++i) {
        const double err = std::fabs(double(back[size_t(i)]) - double(x[size_t(i)]));
        // Half a step of e4m3 (3 mantissa bits: 1/16 of the value) or of its subnormals (2^-10 in scaled units).
        const double bound = std::fabs(double(x[size_t(i)])) / 16.0 + double(scale) * std::ldexp(1.0, -10);
        EXPECT_LE(err, bound * (1 + 1e-5)) << "magnitude " << magnitude << " element " << i;
        err2 += err * err, ref2 += double(x[size_t(i)]) * x[size_t(i)];
      }
      EXPECT_LT(std::sqrt(err2 / ref2), 0.04) << "magnitude " << magnitude;  // ~2.5% on uniform data
    }
}

TEST(KvQuant, ZeroVectorAndNonFiniteInput) {
  std::vector<float> zeros(16, 0.0f);
  std::vector<uint8_t> codes(16, 0xaa);
  EXPECT_EQ(quantize_kv_vector(zeros.data(), 16, codes.data()), 0.0f);
  for (uint8_t c : codes) EXPECT_EQ(c, 0);
  std::vector<float> with_inf(16, 1.0f);
  with_inf[3] = std::numeric_limits<float>::infinity();
  const float scale = quantize_kv_vector(with_inf.data(), 16, codes.data());
  std::vector<float> back(16);
  dequantize_kv_vector(codes.data(), scale, 16, back.data());
  EXPECT_TRUE(std::isnan(back[0]) && std::isnan(back[3]));  // visible, not silently finite
}

// ---- paged attention over an F8E4M3 pool ----

struct Seq {
  int n, context;  // query rows, keys (the last n are this step's)
};

struct PagedCase {
  std::vector<Seq> seqs;
  int64_t Hq, Hkv, D, block_size;
  int window;
};

// float64 attention of every query row over keys k, v given as [S_total, Hkv, D] per sequence (concatenated).
std::vector<double> reference(const std::vector<float>& q, const std::vector<double>& k, const std::vector<double>& v,
                              const PagedCase& c, float scale) {
  std::vector<double> out(q.size());
  const int64_t group = c.Hq / c.Hkv;
  int64_t row0 = 0, key0 = 0;
  for (const Seq& s : c.seqs) {
    for (int i = 0; i < s.n; ++i) {
      const int64_t t = row0 + i, pos = s.context - s.n + i;
      const int64_t first = c.window > 0 ? std::max<int64_t>(0, pos - c.window + 1) : 0;
      for (int64_t h = 0; h < c.Hq; ++h) {
        const int64_t kvh = h / group;
        std::vector<double> w;
        for (int64_t j = first; j <= pos; ++j) {
          double dot = 0;
          for (int64_t d = 0; d < c.D; ++d)
            dot += double(q[size_t((t * c.Hq + h) * c.D + d)]) * k[size_t(((key0 + j) * c.Hkv + kvh) * c.D + d)];
          w.push_back(dot * scale);
        }
        const double mx = *std::max_element(w.begin(), w.end());
        double sum = 0;
        for (double& x : w) sum += (x = std::exp(x - mx));
        for (int64_t d = 0; d < c.D; ++d) {
          double o = 0;
          for (int64_t j = first; j <= pos; ++j)
            o += w[size_t(j - first)] * v[size_t(((key0 + j) * c.Hkv + kvh) * c.D + d)];
          out[size_t((t * c.Hq + h) * c.D + d)] = o / sum;
        }
      }
    }
    row0 += s.n;
    key0 += s.context;
  }
  return out;
}

std::vector<double> as_doubles(const std::vector<float>& x) { return {x.begin(), x.end()}; }

void run_paged_case(const PagedCase& c, uint32_t seed) {
  const float scale = 1.0f / std::sqrt(float(c.D));
  const int64_t B = int64_t(c.seqs.size()), row = c.Hkv * c.D;
  int64_t T = 0, keys = 0, max_blocks = 0;
  for (const Seq& s : c.seqs) {
    T += s.n, keys += s.context;
    max_blocks = std::max<int64_t>(max_blocks, (s.context + c.block_size - 1) / c.block_size);
  }
  // Every sequence's blocks, shuffled over a pool with spare blocks.
  int64_t total_blocks = 0;
  for (const Seq& s : c.seqs) total_blocks += (s.context + c.block_size - 1) / c.block_size;
  const int64_t pool_blocks = total_blocks + 3;
  std::vector<int32_t> ids(static_cast<size_t>(pool_blocks));
  std::iota(ids.begin(), ids.end(), 0);
  std::shuffle(ids.begin(), ids.end(), std::mt19937(seed));
  Tensor table = Tensor::empty(DType::I32, {B, max_blocks});
  std::fill_n(table.ptr<int32_t>(), B * max_blocks, -1);
  std::vector<int32_t> slots;  // pool row of every key, sequence by sequence
  {
    size_t next = 0;
    for (int64_t b = 0; b < B; ++b) {
      const Seq& s = c.seqs[size_t(b)];
      for (int64_t i = 0; i < (s.context + c.block_size - 1) / c.block_size; ++i)
        table.ptr<int32_t>()[b * max_blocks + i] = ids[next++];
      for (int p = 0; p < s.context; ++p)
        slots.push_back(int32_t(table.ptr<int32_t>()[b * max_blocks + p / c.block_size] * c.block_size + p % c.block_size));
    }
  }
  // Keys whose magnitude varies by token (1/32 to 2), as real keys do (a per-tensor scale would lose the small
  // ones); scores stay within a few units, so the softmax is neither flat nor one-hot.
  auto k = random_floats(size_t(keys * row), seed + 1, -1.0f, 1.0f);
  auto v = random_floats(size_t(keys * row), seed + 2);
  for (int64_t j = 0; j < keys; ++j)
    for (int64_t i = 0; i < row; ++i) k[size_t(j * row + i)] *= std::exp2(float(j % 7) - 5.0f);
  const auto q = random_floats(size_t(T * c.Hq * c.D), seed + 3, -2.0f, 2.0f);

  auto backend = make_cpu_backend(2);
  const Shape pool_shape = {pool_blocks, c.block_size, c.Hkv, c.D};
  Tensor k_pool = Tensor::empty(DType::F8E4M3, pool_shape), v_pool = Tensor::empty(DType::F8E4M3, pool_shape);
  Tensor k_scale = Tensor::empty(DType::F32, {pool_blocks, c.block_size, c.Hkv});
  Tensor v_scale = Tensor::empty(DType::F32, {pool_blocks, c.block_size, c.Hkv});
  std::fill_n(k_pool.ptr<uint8_t>(), k_pool.numel(), uint8_t(0x7f));  // NaN everywhere no key was stored
  std::fill_n(v_pool.ptr<uint8_t>(), v_pool.numel(), uint8_t(0x7f));
  const KvScales scales{&k_scale, &v_scale};
  Tensor kt = f32_tensor({keys, c.Hkv, c.D}, k), vt = f32_tensor({keys, c.Hkv, c.D}, v);
  Tensor slot_t = Tensor::empty(DType::I32, {keys});
  std::copy(slots.begin(), slots.end(), slot_t.ptr<int32_t>());
  backend->store_kv(k_pool, v_pool, kt, vt, slot_t, scales);

  // What the pool holds, read back with the host reference.
  std::vector<double> k_deq(k.size()), v_deq(v.size());
  for (int64_t j = 0; j < keys; ++j)
    for (int64_t h = 0; h < c.Hkv; ++h) {
      const int64_t at = int64_t(slots[size_t(j)]) * c.Hkv + h;
      std::vector<float> kk(static_cast<size_t>(c.D)), vv(static_cast<size_t>(c.D));
      dequantize_kv_vector(k_pool.ptr<uint8_t>() + at * c.D, k_scale.ptr<float>()[at], c.D, kk.data());
      dequantize_kv_vector(v_pool.ptr<uint8_t>() + at * c.D, v_scale.ptr<float>()[at], c.D, vv.data());
      for (int64_t d = 0; d < c.D; ++d) {
        k_deq[size_t((j * c.Hkv + h) * c.D + d)] = kk[size_t(d)];
        v_deq[size_t((j * c.Hkv + h) * c.D + d)] = vv[size_t(d)];
      }
    }

  Tensor qs = Tensor::empty(DType::I32, {B + 1}), lens = Tensor::empty(DType::I32, {B});
  qs.ptr<int32_t>()[0] = 0;
  for (int64_t b = 0; b < B; ++b) {
    qs.ptr<int32_t>()[b + 1] = qs.ptr<int32_t>()[b] + c.seqs[size_t(b)].n;
    lens.ptr<int32_t>()[b] = c.seqs[size_t(b)].context;
  }
  PagedAttentionBatch batch;
  batch.num_seqs = int(B);
  batch.block_size = int(c.block_size);
  batch.sliding_window = c.window;
  batch.scale = scale;
  batch.query_start = &qs;
  batch.context_len = &lens;
  batch.block_table = &table;
  batch.kv_scales = scales;
  Tensor qt = f32_tensor({T, c.Hq, c.D}, q), out = Tensor::empty(DType::F32, {T, c.Hq, c.D});
  poison(out);
  backend->paged_attention(out, qt, k_pool, v_pool, batch);
  EXPECT_EQ(count_not_finite(out), 0);
  // Exactly the attention of what was stored ...
  EXPECT_LT(rel_l2(values_of(out), reference(q, k_deq, v_deq, c, scale)), 1e-5);
  // ... and close to that of the keys before quantization.
  const double quantization_error = rel_l2(values_of(out), reference(q, as_doubles(k), as_doubles(v), c, scale));
  // e4m3 keeps ~2.5% rms relative error on uniform data (KvQuant above); attention adds no gain to it.
  EXPECT_LT(quantization_error, 0.05);
  EXPECT_GT(quantization_error, 0.0);  // the pool really is 8-bit
}

TEST(KvFp8PagedAttention, DecodeRowsWithGqa) {
  run_paged_case({{{1, 37}, {1, 5}, {1, 100}}, 8, 2, 64, 16, 0}, 21);
}

TEST(KvFp8PagedAttention, ChunkedPrefillOddSizesAndWindow) {
  run_paged_case({{{7, 23}, {13, 13}, {3, 51}}, 6, 3, 40, 8, 0}, 22);
  run_paged_case({{{9, 40}, {1, 77}}, 4, 1, 32, 16, 12}, 23);
}

TEST(KvFp8PagedAttention, ErrorsNameWhatIsMissing) {
  auto backend = make_cpu_backend(1);
  Tensor k_pool = Tensor::empty(DType::F8E4M3, {2, 4, 1, 8}), v_pool = Tensor::empty(DType::F8E4M3, {2, 4, 1, 8});
  Tensor k = f32_tensor({1, 1, 8}, random_floats(8, 1)), slots = Tensor::empty(DType::I32, {1});
  slots.ptr<int32_t>()[0] = 0;
  try {
    backend->store_kv(k_pool, v_pool, k, k, slots);
    ADD_FAILURE() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("needs its k scales"), std::string::npos) << e.what();
  }
  Tensor wrong = Tensor::empty(DType::F32, {2, 4, 2});
  try {
    backend->store_kv(k_pool, v_pool, k, k, slots, KvScales{&wrong, &wrong});
    ADD_FAILURE() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("must be [num_blocks, block_size, Hkv]"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace roofline::test
