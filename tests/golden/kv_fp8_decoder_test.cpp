// The decoder with an FP8 (e4m3, per-vector scaled) KV cache on the CPU against the same decoder with its f32
// cache, on fixture models of every attention flavour (GQA, sliding window, q/k norm, learned positions):
// logits of every position within a stated relative L2 and the same argmax wherever the f32 top-2 margin is
// clear; paged batched steps (shuffled blocks, chunked prefill) through the fp8 pool too. The fixtures are
// tiny random models, so this bounds the plumbing and the quantization, not a real model's quality (that is
// `roofline report --candidate "... --kv-cache-dtype fp8"`, docs/performance.md).
#include <gtest/gtest.h>

#include <algorithm>

#include "roofline/backend/backend.h"
#include "roofline/core/error.h"
#include "roofline/model/decoder.h"
#include "roofline/model/model.h"
#include "golden_reference.h"
#include "test_support.h"

namespace roofline {
namespace {

// Measured 4.8e-2 .. 5.6e-2: these tiny random models have logits of small spread, so the ~2.5% per-element KV
// error shows through almost undamped (a trained 1B model: docs/performance.md, 2026-11-22 session 3).
constexpr double kLogitTolerance = 0.1;

std::vector<float> logits_with(const Model& model, DType kv, const std::vector<int32_t>& ids) {
  auto backend = make_cpu_backend(2);
  Decoder decoder(model.spec, model.weights, *backend, kv);
  KvCache cache = decoder.new_cache(int64_t(ids.size()));
  // A chunked prefill, then single tokens: both store paths and both query shapes.
  const size_t split = std::min<size_t>(5, ids.size());
  const Tensor& first = decoder.forward(std::span(ids.data(), split), cache, true);
  std::vector<float> out(first.ptr<float>(), first.ptr<float>() + first.numel());
  for (size_t t = split; t < ids.size(); ++t) {
    const Tensor& row = decoder.forward(std::span(ids.data() + t, 1), cache, false);
    out.insert(out.end(), row.ptr<float>(), row.ptr<float>() + row.numel());
  }
  return out;
}

class KvFp8Decoder : public ::testing::TestWithParam<std::string> {};

TEST_P(KvFp8Decoder, LogitsStayCloseToTheF32Cache) {
  const std::string name = GetParam();
  Reference ref = load_reference(name);
  auto model = Model::load(test::fixtures_dir() + "/models/" + name);
  const std::vector<float> f32 = logits_with(*model, DType::F32, ref.prompt);
  const std::vector<float> fp8 = logits_with(*model, DType::F8E4M3, ref.prompt);
  ASSERT_EQ(f32.size(), fp8.size());
  const double error = test::relative_l2(fp8, f32);
  EXPECT_LT(error, kLogitTolerance) << name;
  EXPECT_GT(error, 0.0) << name << ": the fp8 cache changed nothing (is it really 8-bit?)";
  std::printf("%s: fp8 KV logits relative L2 %.2e against the f32 cache\n", name.c_str(), error);
  const int64_t V = ref.V, T = int64_t(f32.size()) / V;
  for (int64_t t = 0; t < T; ++t) {
    const float* a = f32.data() + t * V;
    const float* b = fp8.data() + t * V;
    std::vector<float> sorted(a, a + V);
    std::partial_sort(sorted.begin(), sorted.begin() + 2, sorted.end(), std::greater<float>());
    const float margin = sorted[0] - sorted[1];
    if (margin < 0.05f * std::max(1.0f, std::fabs(sorted[0]))) continue;  // a near-tie may flip
    EXPECT_EQ(std::max_element(a, a + V) - a, std::max_element(b, b + V) - b) << name << " position " << t;
  }
  // Paged batched steps over shuffled blocks store and read the very same codes: equal to the single sequence.
  auto backend = make_cpu_backend(2);
  Decoder decoder(model->spec, model->weights, *backend, DType::F8E4M3);
  const BatchedLogits batched = batched_paged_logits(decoder, ref.prompt);
  EXPECT_LT(test::relative_l2(batched.a, fp8), 1e-5) << name << ": batched sequence A";
  EXPECT_LT(test::relative_l2(batched.b, fp8), 1e-5) << name << ": batched sequence B (chunked)";
}

INSTANTIATE_TEST_SUITE_P(Architectures, KvFp8Decoder,
                         ::testing::Values("llama3-f32", "mistral-f32", "qwen3-bf16", "qwen2-f16", "gpt2-f32"),
                         [](const auto& info) {
                           std::string n = info.param;
                           for (char& c : n)
                             if (c == '-') c = '_';
                           return n;
                         });

TEST(KvFp8Pool, HalvesTheBytesPerToken) {
  auto model = Model::load(test::fixtures_dir() + "/models/llama3-f32");
  const ModelSpec& s = model->spec;
  auto backend = make_cpu_backend(1);
  Decoder decoder(s, model->weights, *backend, DType::F8E4M3);
  EXPECT_EQ(decoder.kv_cache_dtype(), DType::F8E4M3);
  const KvPool pool = decoder.new_pool(3, 16);
  // Codes plus one f32 scale per (layer, K or V, kv head), as the serve and bench pool sizing counts them.
  const size_t expected = size_t(2 * s.num_layers * s.kv_dim()) + size_t(2 * s.num_layers * s.num_kv_heads) * 4;
  EXPECT_EQ(s.kv_bytes_per_token(DType::F8E4M3), expected);
  EXPECT_EQ(pool.bytes_per_token(), expected);
  EXPECT_EQ(s.kv_bytes_per_token(DType::BF16), size_t(2 * s.num_layers * s.kv_dim()) * 2);
  // A cache dtype the backend cannot keep is a clear error.
  try {
    Decoder bad(s, model->weights, *backend, DType::BF16);
    ADD_FAILURE() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("KV cache of BF16"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace roofline
