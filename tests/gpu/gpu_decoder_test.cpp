// The decoder on the CUDA backend (bf16 weights and activations) against the float64 transformers
// references of every fixture architecture: logits within relative L2 1e-2, incremental decode and batched
// paged steps equal to prefill, recorded (CUDA graph) decode steps equal to eager ones, and greedy
// continuations that agree with the reference wherever its top-2 margin is clear.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>

#include "gpu_test_util.h"
#include "golden_reference.h"
#include "roofline/backend/timed_backend.h"
#include "roofline/engine/generator.h"
#include "roofline/model/decoder.h"
#include "roofline/model/model.h"
#include "test_support.h"

namespace roofline {
namespace {

constexpr double kBf16Tolerance = 1e-2;  // bf16 activations; weights in the checkpoint's dtype

class GpuDecoder : public test::GpuTest, public ::testing::WithParamInterface<std::string> {
 protected:
  void SetUp() override {
    test::GpuTest::SetUp();
    model_ = Model::load(test::fixtures_dir() + "/models/" + GetParam());
    weights_ = upload_weights(model_->weights, gpu());
    ref_ = load_reference(GetParam());
  }
  std::unique_ptr<Model> model_;
  ModelWeights weights_;
  Reference ref_;
};

std::vector<float> as_vector(const Tensor& host) {
  return std::vector<float>(host.ptr<float>(), host.ptr<float>() + host.numel());
}

TEST_P(GpuDecoder, LogitsMatchFloat64Reference) {
  Decoder decoder(model_->spec, weights_, gpu());
  KvCache cache = decoder.new_cache(int64_t(ref_.prompt.size()));
  const std::vector<float> ours = as_vector(decoder.forward(ref_.prompt, cache, true));
  ASSERT_EQ(int64_t(ours.size()), ref_.T * ref_.V);
  const double error = test::relative_l2(ours, ref_.logits);
  EXPECT_LT(error, kBf16Tolerance) << GetParam();
  std::printf("%s on cuda (bf16): relative L2 error %.2e against float64 transformers\n", GetParam().c_str(), error);
}

TEST_P(GpuDecoder, IncrementalDecodeMatchesReference) {
  Decoder decoder(model_->spec, weights_, gpu());
  KvCache cache = decoder.new_cache(int64_t(ref_.prompt.size()));
  const size_t split = 5;
  std::vector<float> ours = as_vector(decoder.forward(std::span(ref_.prompt.data(), split), cache, true));
  for (size_t t = split; t < ref_.prompt.size(); ++t) {
    const std::vector<float> row = as_vector(decoder.forward(std::span(ref_.prompt.data() + t, 1), cache, false));
    ours.insert(ours.end(), row.begin(), row.end());
  }
  EXPECT_LT(test::relative_l2(ours, ref_.logits), kBf16Tolerance) << GetParam();
  EXPECT_GT(decoder.replayed_steps(), 0) << "decode steps after the second should replay a CUDA graph";
}

TEST_P(GpuDecoder, BatchedPagedStepsMatchReference) {
  Decoder decoder(model_->spec, weights_, gpu());
  const BatchedLogits got = batched_paged_logits(decoder, ref_.prompt);
  EXPECT_LT(test::relative_l2(got.a, ref_.logits), kBf16Tolerance) << GetParam() << ": sequence A";
  EXPECT_LT(test::relative_l2(got.b, ref_.logits), kBf16Tolerance) << GetParam() << ": sequence B (chunked)";
}

TEST_P(GpuDecoder, PaddedDecodeBatchMatchesReference) {
  // Three sequences decode together for 5 steps: padded to 4 rows and replayed from a recording.
  Decoder decoder(model_->spec, weights_, gpu());
  const DecodeBatchLogits got = padded_decode_batch_logits(decoder, ref_.logits, ref_.prompt, 5);
  EXPECT_LT(test::relative_l2(got.got, got.want), kBf16Tolerance) << GetParam();
  EXPECT_GT(decoder.replayed_steps(), 0) << "the padded decode steps should replay a recording";
}

TEST_P(GpuDecoder, RecordedDecodeStepsEqualEagerOnes) {
  // The same decode through a TimedBackend (which never records) and through the plain backend (which
  // replays CUDA graphs after the second step of a shape): the logits must agree to rounding.
  const int64_t steps = 8;
  auto run = [&](Backend& backend, int64_t* replayed) {
    Decoder decoder(model_->spec, weights_, backend);
    KvCache cache = decoder.new_cache(int64_t(ref_.prompt.size()) + steps);
    std::vector<float> all = as_vector(decoder.forward(ref_.prompt, cache, false));
    for (int64_t i = 0; i < steps; ++i) {
      const int32_t next = int32_t((17 * i + 3) % model_->spec.vocab_size);
      const std::vector<float> row = as_vector(decoder.forward(std::span(&next, 1), cache, false));
      all.insert(all.end(), row.begin(), row.end());
    }
    *replayed = decoder.replayed_steps();
    return all;
  };
  int64_t replayed_eager = 0, replayed_graph = 0;
  TimedBackend eager(gpu());
  const std::vector<float> a = run(eager, &replayed_eager);
  const std::vector<float> b = run(gpu(), &replayed_graph);
  EXPECT_EQ(replayed_eager, 0);
  EXPECT_GE(replayed_graph, steps - 2);
  EXPECT_LT(test::relative_l2(b, a), 1e-5) << GetParam();
}

TEST_P(GpuDecoder, FusedNormsMatchSeparateOps) {
  // RMSNorm models fold each norm and residual add into the projections (ROOFLINE_FUSED_NORM=0, read when a
  // Decoder is made, keeps the separate ops): prefill and recorded decode steps must agree to rounding.
  if (model_->spec.norm != NormKind::RMSNorm) GTEST_SKIP() << "LayerNorm models keep the separate ops";
  const int64_t steps = 6;
  auto run = [&](const char* fused) {
    setenv("ROOFLINE_FUSED_NORM", fused, 1);
    Decoder decoder(model_->spec, weights_, gpu());
    unsetenv("ROOFLINE_FUSED_NORM");
    KvCache cache = decoder.new_cache(int64_t(ref_.prompt.size()) + steps);
    std::vector<float> all = as_vector(decoder.forward(ref_.prompt, cache, false));
    for (int64_t i = 0; i < steps; ++i) {
      const int32_t next = int32_t((29 * i + 5) % model_->spec.vocab_size);
      const std::vector<float> row = as_vector(decoder.forward(std::span(&next, 1), cache, false));
      all.insert(all.end(), row.begin(), row.end());
    }
    return all;
  };
  const std::vector<float> separate = run("0"), fused = run("1");
  const double diff = test::relative_l2(fused, separate);
  EXPECT_LT(diff, 5e-3) << GetParam();
  std::printf("%s on cuda: fused norms against separate ops: relative L2 %.2e\n", GetParam().c_str(), diff);
}

TEST_P(GpuDecoder, GreedyContinuationMatchesWhereMarginIsClear) {
  // "Clear" is measured, not guessed: twice the largest logit error this model shows on the prompt.
  double max_error = 0;
  {
    Decoder probe(model_->spec, weights_, gpu());
    KvCache cache = probe.new_cache(int64_t(ref_.prompt.size()));
    const std::vector<float> logits = as_vector(probe.forward(ref_.prompt, cache, true));
    for (size_t i = 0; i < logits.size(); ++i) max_error = std::max(max_error, std::abs(logits[i] - ref_.logits[i]));
  }
  const double clear_margin = 2.0 * max_error;
  Decoder decoder(model_->spec, weights_, gpu());
  GenerateOptions options;
  options.max_new_tokens = int64_t(ref_.greedy.size());
  options.sampling.temperature = 0;
  const GenerateResult r = generate(decoder, nullptr, ref_.prompt, options);
  ASSERT_EQ(r.ids.size(), ref_.greedy.size());
  size_t compared = 0;
  for (size_t i = 0; i < ref_.greedy.size(); ++i) {
    if (r.ids[i] != ref_.greedy[i]) {
      // bf16 rounding may flip a near-tie; after it the continuations legitimately part.
      EXPECT_LE(ref_.margins[i], clear_margin)
          << GetParam() << ": step " << i << " differs with margin " << ref_.margins[i] << " (largest logit error "
          << max_error << ")";
      break;
    }
    ++compared;
  }
  EXPECT_GT(compared, 0u) << GetParam();
}

INSTANTIATE_TEST_SUITE_P(AllArchitectures, GpuDecoder,
                         ::testing::Values("llama2-f32", "llama2-bf16", "llama3-f16", "llama3-bf16", "mistral-bf16",
                                           "qwen2-bf16", "qwen3-f32", "qwen3-bf16", "gpt2-f16", "gpt2-bf16"),
                         [](const auto& info) {
                           std::string n = info.param;
                           for (char& c : n)
                             if (c == '-') c = '_';
                           return n;
                         });

}  // namespace
}  // namespace roofline
