// The FP8 (e4m3) KV cache on the GPU. store_kv into F8E4M3 pools must produce exactly the host reference's
// codes and scales (backend/kv_quant.h) and skip negative slots; paged attention over F8E4M3 pools (decode
// and prefill kernels) must match a float64 reference computed from the dequantized keys and values, on fresh
// random batches with odd lengths, GQA, windows and shuffled blocks. Pool rows no query may read hold NaN codes
// and NaN scales, so reading one poisons the output. Last, the decoder with an fp8 cache stays near the bf16 one.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>

#include "gpu_test_util.h"
#include "golden_reference.h"
#include "roofline/backend/kv_quant.h"
#include "roofline/model/decoder.h"
#include "roofline/model/model.h"
#include "test_support.h"

namespace roofline::test {
namespace {

class GpuKvFp8 : public GpuTest {};

TEST_F(GpuKvFp8, StoreKvQuantizesLikeTheHostReference) {
  for (int D : {16, 64, 128}) {
    const int num_blocks = 5, bs = 4, Hkv = 3, T = 9;
    const std::vector<int32_t> slots = {3, -1, 19, 0, 7, -5, 12, 18, 1};
    // Rows of very different magnitudes; one all-zero vector.
    std::vector<float> k = random_floats(size_t(T * Hkv * D), uint32_t(D), -1.0f, 1.0f);
    std::vector<float> v = random_floats(size_t(T * Hkv * D), uint32_t(D + 1), -1.0f, 1.0f);
    for (int t = 0; t < T; ++t)
      for (int i = 0; i < Hkv * D; ++i) k[size_t(t * Hkv * D + i)] *= std::exp2(float(3 * t - 12));
    std::fill_n(v.begin() + 2 * D, D, 0.0f);
    const DeviceData kd = upload_values(gpu(), DType::BF16, {T, Hkv, D}, k);
    const DeviceData vd = upload_values(gpu(), DType::BF16, {T, Hkv, D}, v);
    Tensor k_pool = poisoned(gpu(), DType::F8E4M3, {num_blocks, bs, Hkv, D});
    Tensor v_pool = poisoned(gpu(), DType::F8E4M3, {num_blocks, bs, Hkv, D});
    Tensor k_scale = poisoned(gpu(), DType::F32, {num_blocks, bs, Hkv});
    Tensor v_scale = poisoned(gpu(), DType::F32, {num_blocks, bs, Hkv});
    gpu().store_kv(k_pool, v_pool, kd.tensor, vd.tensor, upload_i32(gpu(), slots), KvScales{&k_scale, &v_scale});
    Tensor kp = Tensor::empty(DType::F8E4M3, k_pool.shape()), vp = Tensor::empty(DType::F8E4M3, v_pool.shape());
    gpu().download(k_pool, kp);
    gpu().download(v_pool, vp);
    const std::vector<double> ks = download_values(gpu(), k_scale), vs = download_values(gpu(), v_scale);
    std::vector<int> source(size_t(num_blocks * bs), -1);
    for (int t = 0; t < T; ++t)
      if (slots[size_t(t)] >= 0) source[size_t(slots[size_t(t)])] = t;
    for (size_t r = 0; r < source.size(); ++r)
      for (int h = 0; h < Hkv; ++h) {
        const size_t at = r * size_t(Hkv) + size_t(h);
        const uint8_t* kc = kp.ptr<uint8_t>() + at * size_t(D);
        const uint8_t* vc = vp.ptr<uint8_t>() + at * size_t(D);
        if (source[r] < 0) {
          ASSERT_TRUE(std::isnan(ks[at]) && std::isnan(vs[at]) && kc[0] == 0xff && vc[D - 1] == 0xff)
              << "row " << r << " was written";
          continue;
        }
        const size_t from = (size_t(source[r]) * size_t(Hkv) + size_t(h)) * size_t(D);
        std::vector<float> kin(kd.values.begin() + long(from), kd.values.begin() + long(from) + D);
        std::vector<float> vin(vd.values.begin() + long(from), vd.values.begin() + long(from) + D);
        std::vector<uint8_t> kwant(static_cast<size_t>(D)), vwant(static_cast<size_t>(D));
        const float kscale = quantize_kv_vector(kin.data(), D, kwant.data());
        const float vscale = quantize_kv_vector(vin.data(), D, vwant.data());
        ASSERT_EQ(float(ks[at]), kscale) << "D " << D << " row " << r << " head " << h;
        ASSERT_EQ(float(vs[at]), vscale) << "D " << D << " row " << r << " head " << h;
        for (int d = 0; d < D; ++d) {
          ASSERT_EQ(kc[d], kwant[size_t(d)]) << "D " << D << " row " << r << " head " << h << " dim " << d;
          ASSERT_EQ(vc[d], vwant[size_t(d)]) << "D " << D << " row " << r << " head " << h << " dim " << d;
        }
      }
  }
}

struct Seq {
  int n, context;  // query rows this step; keys, this step's included
};

struct Fp8Case {
  std::string label;
  int D, Hq, Hkv, block_size, window;
  std::vector<Seq> seqs;
};

// A batch over F8E4M3 pools: random codes from quantizing random vectors of varied magnitude, NaN codes and
// scales in every row no query may read; the float64 reference attends over the dequantized values.
void run_case(cuda::CudaBackend& gpu, const Fp8Case& c, uint32_t seed) {
  const int B = int(c.seqs.size()), D = c.D, Hkv = c.Hkv, bs = c.block_size;
  int T = 0, used = 0, max_blocks = 1;
  std::vector<int32_t> query_start = {0}, context_len;
  for (const Seq& s : c.seqs) {
    T += s.n, used += (s.context + bs - 1) / bs;
    max_blocks = std::max(max_blocks, (s.context + bs - 1) / bs);
    query_start.push_back(T);
    context_len.push_back(s.context);
  }
  const int num_blocks = used + 3;
  std::vector<int32_t> ids(static_cast<size_t>(num_blocks));
  std::iota(ids.begin(), ids.end(), 0);
  std::mt19937 rng(seed);
  std::shuffle(ids.begin(), ids.end(), rng);
  std::vector<int32_t> table(size_t(B) * size_t(max_blocks), -1);
  size_t next = 0;
  for (int b = 0; b < B; ++b)
    for (int i = 0; i < (c.seqs[size_t(b)].context + bs - 1) / bs; ++i) table[size_t(b * max_blocks + i)] = ids[next++];

  const size_t rows = size_t(num_blocks) * size_t(bs), vec = size_t(D);
  Tensor k_codes = Tensor::empty(DType::F8E4M3, {num_blocks, bs, Hkv, D}), v_codes = Tensor::empty(DType::F8E4M3, {num_blocks, bs, Hkv, D});
  std::vector<float> k_scales(rows * size_t(Hkv)), v_scales(rows * size_t(Hkv));
  std::vector<double> k_deq(rows * size_t(Hkv) * vec), v_deq(rows * size_t(Hkv) * vec);
  std::uniform_real_distribution<float> unit(-1.0f, 1.0f);
  std::vector<float> x(vec), back(vec);
  for (size_t r = 0; r < rows * size_t(Hkv); ++r) {
    const float magnitude = std::exp2(float(r % 5) - 2.0f);
    for (int which = 0; which < 2; ++which) {
      for (float& e : x) e = unit(rng) * magnitude;
      uint8_t* codes = (which == 0 ? k_codes : v_codes).ptr<uint8_t>() + r * vec;
      const float scale = quantize_kv_vector(x.data(), D, codes);
      dequantize_kv_vector(codes, scale, D, back.data());
      (which == 0 ? k_scales : v_scales)[r] = scale;
      std::copy(back.begin(), back.end(), (which == 0 ? k_deq : v_deq).begin() + long(r * vec));
    }
  }
  // Poison the unreadable rows (NaN codes and NaN scales).
  std::vector<char> readable(rows, 0);
  for (int b = 0; b < B; ++b) {
    const Seq& s = c.seqs[size_t(b)];
    const int pos0 = s.context - s.n;
    for (int p = c.window > 0 ? std::max(0, pos0 - c.window + 1) : 0; p < s.context; ++p)
      readable[size_t(table[size_t(b * max_blocks + p / bs)] * bs + p % bs)] = 1;
  }
  for (size_t r = 0; r < rows; ++r)
    if (!readable[r]) {
      std::fill_n(k_codes.ptr<uint8_t>() + r * size_t(Hkv) * vec, size_t(Hkv) * vec, uint8_t(0x7f));
      std::fill_n(v_codes.ptr<uint8_t>() + r * size_t(Hkv) * vec, size_t(Hkv) * vec, uint8_t(0x7f));
      std::fill_n(k_scales.begin() + long(r * size_t(Hkv)), Hkv, std::numeric_limits<float>::quiet_NaN());
      std::fill_n(v_scales.begin() + long(r * size_t(Hkv)), Hkv, std::numeric_limits<float>::quiet_NaN());
    }

  const DeviceData q = upload_values(gpu, DType::BF16, {T, c.Hq, D}, random_floats(size_t(T * c.Hq * D), seed + 1, -2.0f, 2.0f));
  Tensor k_pool = gpu.alloc(DType::F8E4M3, k_codes.shape()), v_pool = gpu.alloc(DType::F8E4M3, v_codes.shape());
  gpu.copy_from_host(k_pool, k_codes.data());
  gpu.copy_from_host(v_pool, v_codes.data());
  Tensor k_scale = gpu.upload(host_f32({num_blocks, bs, Hkv}, k_scales), DType::F32);
  Tensor v_scale = gpu.upload(host_f32({num_blocks, bs, Hkv}, v_scales), DType::F32);
  Tensor qs = upload_i32(gpu, query_start), lens = upload_i32(gpu, context_len);
  Tensor table_host = Tensor::empty(DType::I32, {B, max_blocks});
  std::copy(table.begin(), table.end(), table_host.ptr<int32_t>());
  Tensor block_table = gpu.upload(table_host, DType::I32);
  PagedAttentionBatch batch;
  batch.num_seqs = B;
  batch.max_query_len = 0;
  batch.max_context_len = 0;
  for (const Seq& s : c.seqs) batch.max_query_len = std::max(batch.max_query_len, s.n);
  for (const Seq& s : c.seqs) batch.max_context_len = std::max(batch.max_context_len, s.context);
  batch.block_size = bs;
  batch.sliding_window = c.window;
  batch.scale = float(1.0 / std::sqrt(double(D)));
  batch.query_start = &qs;
  batch.context_len = &lens;
  batch.block_table = &block_table;
  batch.kv_scales = KvScales{&k_scale, &v_scale};
  Tensor out = poisoned(gpu, DType::BF16, {T, c.Hq, D});
  gpu.paged_attention(out, q.tensor, k_pool, v_pool, batch);

  // float64 reference over the dequantized pools.
  std::vector<double> want(size_t(T) * size_t(c.Hq) * vec);
  const int group = c.Hq / Hkv;
  for (int b = 0; b < B; ++b) {
    const Seq& s = c.seqs[size_t(b)];
    for (int i = 0; i < s.n; ++i) {
      const int t = query_start[size_t(b)] + i, pos = s.context - s.n + i;
      const int first = c.window > 0 ? std::max(0, pos - c.window + 1) : 0;
      for (int h = 0; h < c.Hq; ++h) {
        std::vector<double> w;
        std::vector<size_t> at;
        for (int j = first; j <= pos; ++j) {
          const size_t row = size_t(table[size_t(b * max_blocks + j / bs)] * bs + j % bs);
          at.push_back((row * size_t(Hkv) + size_t(h / group)) * vec);
          double dot = 0;
          for (int d = 0; d < D; ++d) dot += q.values[(size_t(t) * size_t(c.Hq) + size_t(h)) * vec + size_t(d)] * k_deq[at.back() + size_t(d)];
          w.push_back(dot * batch.scale);
        }
        const double mx = *std::max_element(w.begin(), w.end());
        double sum = 0;
        for (double& e : w) sum += (e = std::exp(e - mx));
        for (int d = 0; d < D; ++d) {
          double acc = 0;
          for (size_t j = 0; j < w.size(); ++j) acc += w[j] * v_deq[at[j] + size_t(d)];
          want[(size_t(t) * size_t(c.Hq) + size_t(h)) * vec + size_t(d)] = acc / sum;
        }
      }
    }
  }
  expect_close(download_values(gpu, out), want, 1e-2, c.label);
}

TEST_F(GpuKvFp8, PagedAttentionMatchesFloat64Reference) {
  const std::vector<Fp8Case> cases = {
      {"decode", 128, 32, 8, 16, 0, {{1, 1}, {1, 17}, {1, 255}, {1, 1000}, {1, 4097}}},
      {"decode_gqa_window_rows", 128, 8, 2, 16, 300, {{1, 20}, {3, 700}, {16, 1000}}},
      {"decode_d64_mha", 64, 8, 8, 16, 0, {{1, 33}, {2, 999}}},
      {"decode_small_d", 16, 4, 2, 16, 0, {{1, 5}, {1, 301}}},
      {"decode_small_d", 32, 4, 2, 16, 5, {{1, 77}, {4, 40}}},
      {"decode_bs1_gqa12", 128, 12, 1, 1, 0, {{1, 999}, {2, 64}}},
      // The tensor-core decode kernel: GQA 1, 2, 8, 16 and 24 (two CTAs per kv head), head_dim 64 and 128.
      {"decode_mha", 128, 4, 4, 16, 0, {{1, 65}, {1, 1000}}},
      {"decode_gqa2_rows", 64, 8, 4, 16, 0, {{3, 77}, {1, 5000}}},
      {"decode_gqa8", 64, 16, 2, 16, 0, {{1, 1}, {1, 129}, {2, 2000}}},
      {"decode_gqa16_window", 128, 16, 1, 16, 500, {{1, 3000}, {4, 64}}},
      {"decode_gqa24", 128, 24, 1, 16, 0, {{1, 333}, {1, 4100}}},
      {"prefill", 128, 8, 2, 16, 0, {{1, 1}, {17, 17}, {255, 255}, {1000, 1000}}},
      {"prefill_chunked_window", 128, 32, 8, 16, 256, {{100, 1100}, {255, 1255}, {1, 70}}},
      {"prefill_d64", 64, 12, 1, 16, 0, {{77, 100}, {300, 301}}},
      {"prefill_small_d", 32, 4, 2, 16, 0, {{70, 70}, {255, 300}}},
      {"prefill_small_d", 16, 4, 2, 16, 5, {{30, 30}, {130, 200}}},
  };
  uint32_t seed = 100;
  for (const Fp8Case& c : cases) {
    SCOPED_TRACE(fmt::format("{} D{} Hq{} Hkv{} bs{} w{}", c.label, c.D, c.Hq, c.Hkv, c.block_size, c.window));
    run_case(gpu(), c, seed += 7);
  }
}

TEST_F(GpuKvFp8, MissingScalesAreAClearError) {
  Tensor pool = gpu().alloc(DType::F8E4M3, {2, 16, 2, 64});
  Tensor q = gpu().alloc(DType::BF16, {1, 4, 64}), out = gpu().alloc(DType::BF16, {1, 4, 64});
  Tensor qs = upload_i32(gpu(), {0, 1}), lens = upload_i32(gpu(), {1});
  Tensor table_host = Tensor::empty(DType::I32, {1, 1});
  table_host.ptr<int32_t>()[0] = 0;
  Tensor table = gpu().upload(table_host, DType::I32);
  PagedAttentionBatch batch;
  batch.num_seqs = 1, batch.max_query_len = 1, batch.max_context_len = 1, batch.block_size = 16;
  batch.query_start = &qs, batch.context_len = &lens, batch.block_table = &table;
  expect_error([&] { gpu().paged_attention(out, q, pool, pool, batch); }, "needs its k scales");
  Tensor k = gpu().alloc(DType::BF16, {1, 2, 64});
  expect_error([&] { gpu().store_kv(pool, pool, k, k, qs.rows(0, 1)); }, "needs its k scales");
}

// The decoder on the GPU with an fp8 cache against the same decoder with its bf16 cache, on fixture models
// (prefill, recorded decode steps, batched paged steps).
class GpuKvFp8Decoder : public GpuTest, public ::testing::WithParamInterface<std::string> {};

std::vector<float> decoder_logits(Decoder& decoder, const std::vector<int32_t>& ids) {
  KvCache cache = decoder.new_cache(int64_t(ids.size()));
  const size_t split = 5;
  const Tensor& first = decoder.forward(std::span(ids.data(), split), cache, true);
  std::vector<float> out(first.ptr<float>(), first.ptr<float>() + first.numel());
  for (size_t t = split; t < ids.size(); ++t) {
    const Tensor& row = decoder.forward(std::span(ids.data() + t, 1), cache, false);
    out.insert(out.end(), row.ptr<float>(), row.ptr<float>() + row.numel());
  }
  return out;
}

TEST_P(GpuKvFp8Decoder, LogitsStayCloseToTheBf16Cache) {
  auto model = Model::load(fixtures_dir() + "/models/" + GetParam());
  const ModelWeights weights = upload_weights(model->weights, gpu());
  const Reference ref = load_reference(GetParam());
  Decoder bf16(model->spec, weights, gpu());
  Decoder fp8(model->spec, weights, gpu(), DType::F8E4M3);
  const std::vector<float> a = decoder_logits(bf16, ref.prompt), b = decoder_logits(fp8, ref.prompt);
  const double error = relative_l2(std::vector<double>(b.begin(), b.end()), std::vector<double>(a.begin(), a.end()));
  // The CPU test measures 3e-2 .. 5.6e-2 for fp8 against f32 on these tiny random models (kv_fp8_decoder_test).
  EXPECT_LT(error, 0.1) << GetParam();
  EXPECT_GT(fp8.replayed_steps(), 0) << "fp8 decode steps should replay a CUDA graph";
  std::printf("%s on cuda: fp8 KV logits relative L2 %.2e against the bf16 cache\n", GetParam().c_str(), error);
  const BatchedLogits batched = batched_paged_logits(fp8, ref.prompt);
  EXPECT_LT(test::relative_l2(batched.a, b), 2e-2) << GetParam() << ": batched sequence A against single fp8";
  EXPECT_LT(test::relative_l2(batched.b, b), 2e-2) << GetParam() << ": batched sequence B (chunked)";
}

INSTANTIATE_TEST_SUITE_P(Architectures, GpuKvFp8Decoder,
                         ::testing::Values("llama3-bf16", "mistral-bf16", "qwen3-bf16", "gpt2-f32"),
                         [](const auto& info) {
                           std::string n = info.param;
                           for (char& ch : n)
                             if (ch == '-') ch = '_';
                           return n;
                         });

}  // namespace
}  // namespace roofline::test
