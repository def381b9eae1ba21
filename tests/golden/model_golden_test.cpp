// Every fixture architecture in every stored dtype against Hugging Face transformers computed in float64
// (tests/fixtures/make_fixtures.py): logits of every position within relative L2 1e-4, and greedy
// continuations identical wherever the reference's top-2 margin is clear.
#include <gtest/gtest.h>

#include "roofline/backend/backend.h"
#include "roofline/core/error.h"
#include "roofline/engine/generator.h"
#include "roofline/formats/safetensors.h"
#include "roofline/model/decoder.h"
#include "roofline/model/model.h"
#include "golden_reference.h"
#include "test_support.h"

namespace roofline {
namespace {

class ModelGolden : public ::testing::TestWithParam<std::string> {};

std::vector<float> all_logits(const std::string& model_dir, const std::vector<int32_t>& ids, int threads) {
  auto model = Model::load(model_dir);
  auto backend = make_cpu_backend(threads);
  Decoder decoder(model->spec, model->weights, *backend);
  KvCache cache = decoder.new_cache(int64_t(ids.size()));
  const Tensor& logits = decoder.forward(ids, cache, true);
  return std::vector<float>(logits.ptr<float>(), logits.ptr<float>() + logits.numel());
}

TEST_P(ModelGolden, LogitsMatchFloat64Reference) {
  const std::string name = GetParam();
  Reference ref = load_reference(name);
  for (int threads : {1, 2}) {
    std::vector<float> ours = all_logits(test::fixtures_dir() + "/models/" + name, ref.prompt, threads);
    ASSERT_EQ(int64_t(ours.size()), ref.T * ref.V);
    const double error = test::relative_l2(ours, ref.logits);
    EXPECT_LT(error, 1e-4) << name << " threads=" << threads;
    if (threads == 1) std::printf("%s: relative L2 error %.2e against float64 transformers\n", name.c_str(), error);
  }
}

TEST_P(ModelGolden, IncrementalDecodeMatchesFullPrefill) {
  // The KV-cache path (one token at a time) must give the same logits as one prefill.
  const std::string name = GetParam();
  Reference ref = load_reference(name);
  auto model = Model::load(test::fixtures_dir() + "/models/" + name);
  auto backend = make_cpu_backend(2);
  Decoder decoder(model->spec, model->weights, *backend);
  KvCache cache = decoder.new_cache(int64_t(ref.prompt.size()));
  std::vector<float> ours;
  const size_t split = 5;  // a chunked prefill, then single tokens
  const Tensor& first = decoder.forward(std::span(ref.prompt.data(), split), cache, true);
  ours.assign(first.ptr<float>(), first.ptr<float>() + first.numel());
  for (size_t t = split; t < ref.prompt.size(); ++t) {
    const Tensor& row = decoder.forward(std::span(ref.prompt.data() + t, 1), cache, false);
    ours.insert(ours.end(), row.ptr<float>(), row.ptr<float>() + row.numel());
  }
  EXPECT_LT(test::relative_l2(ours, ref.logits), 1e-4) << name;
}

TEST_P(ModelGolden, BatchedPagedStepsMatchTheReference) {
  // Two sequences in one step over shuffled 4-position blocks, one of them prefilled in two chunks.
  const std::string name = GetParam();
  Reference ref = load_reference(name);
  auto model = Model::load(test::fixtures_dir() + "/models/" + name);
  auto backend = make_cpu_backend(2);
  Decoder decoder(model->spec, model->weights, *backend);
  const BatchedLogits got = batched_paged_logits(decoder, ref.prompt);
  EXPECT_LT(test::relative_l2(got.a, ref.logits), 1e-4) << name << ": sequence A";
  EXPECT_LT(test::relative_l2(got.b, ref.logits), 1e-4) << name << ": sequence B (chunked)";
}

TEST_P(ModelGolden, PaddedDecodeBatchMatchesReference) {
  const std::string name = GetParam();
  Reference ref = load_reference(name);
  auto model = Model::load(test::fixtures_dir() + "/models/" + name);
  auto backend = make_cpu_backend(2);
  Decoder decoder(model->spec, model->weights, *backend);
  const DecodeBatchLogits got = padded_decode_batch_logits(decoder, ref.logits, ref.prompt, 4);
  EXPECT_LT(test::relative_l2(got.got, got.want), 1e-4) << name;
}

TEST_P(ModelGolden, GreedyContinuationMatchesWhereMarginIsClear) {
  const std::string name = GetParam();
  Reference ref = load_reference(name);
  auto model = Model::load(test::fixtures_dir() + "/models/" + name);
  auto backend = make_cpu_backend(2);
  Decoder decoder(model->spec, model->weights, *backend);
  GenerateOptions options;
  options.max_new_tokens = int64_t(ref.greedy.size());
  options.sampling.temperature = 0;
  GenerateResult r = generate(decoder, nullptr, ref.prompt, options);
  ASSERT_EQ(r.ids.size(), ref.greedy.size());
  size_t compared = 0;
  for (size_t i = 0; i < ref.greedy.size(); ++i) {
    if (r.ids[i] != ref.greedy[i]) {
      // Only a near-tie may differ, and after it the continuations legitimately part.
      EXPECT_LE(ref.margins[i], 1e-4) << name << ": step " << i << " differs with margin " << ref.margins[i];
      break;
    }
    ++compared;
  }
  EXPECT_GT(compared, 0u);
}

INSTANTIATE_TEST_SUITE_P(AllArchitecturesAndDtypes, ModelGolden,
                         ::testing::Values("llama2-f32", "llama2-f16", "llama2-bf16", "llama3-f32", "llama3-f16",
                                           "llama3-bf16", "mistral-f32", "mistral-f16", "mistral-bf16", "qwen2-f32",
                                           "qwen2-f16", "qwen2-bf16", "qwen3-f32", "qwen3-f16", "qwen3-bf16",
                                           "gpt2-f32", "gpt2-f16", "gpt2-bf16"),
                         [](const auto& info) {
                           std::string n = info.param;
                           for (char& c : n)
                             if (c == '-') c = '_';
                           return n;
                         });

TEST(ModelGoldenSharded, ShardedCheckpointGivesTheSameLogits) {
  Reference ref = load_reference("llama3-f32");
  std::vector<float> ours = all_logits(test::fixtures_dir() + "/models/llama3-f32-sharded", ref.prompt, 2);
  EXPECT_LT(test::relative_l2(ours, ref.logits), 1e-4);
}

TEST(ModelGoldenErrors, ContextOverflowIsAClearError) {
  auto model = Model::load(test::fixtures_dir() + "/models/llama3-f32");
  auto backend = make_cpu_backend(1);
  Decoder decoder(model->spec, model->weights, *backend);
  KvCache cache = decoder.new_cache(4);
  std::vector<int32_t> ids = {5, 6, 7, 8, 9};
  try {
    decoder.forward(ids, cache, false);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("context holds 4"), std::string::npos) << e.what();
  }
  std::vector<int32_t> bad = {5, 100000};
  EXPECT_THROW(decoder.forward(bad, cache, false), Error);
}

}  // namespace
}  // namespace roofline
