// Weight resolution errors name the tensor and the directory; presets and random weights have the
// shapes their spec says.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>

#include "roofline/core/error.h"
#include "roofline/formats/safetensors.h"
#include "roofline/model/model.h"
#include "roofline/model/presets.h"
#include "test_support.h"

namespace roofline {
namespace {

namespace fs = std::filesystem;

// Copies a fixture model to a temp dir, rewriting model.safetensors through `edit`.
std::string edited_copy(const std::string& fixture, const std::string& tag,
                        const std::function<void(std::vector<std::pair<std::string, Tensor>>&)>& edit) {
  fs::path src = fs::path(test::fixtures_dir()) / "models" / fixture;
  fs::path dst = fs::temp_directory_path() / ("roofline_weights_" + tag + "_" + std::to_string(::getpid()));
  fs::remove_all(dst);
  fs::create_directories(dst);
  fs::copy_file(src / "config.json", dst / "config.json");
  SafetensorsFile file((src / "model.safetensors").string());
  std::vector<std::pair<std::string, Tensor>> tensors;
  for (const auto& e : file.entries()) tensors.emplace_back(e.name, file.tensor(e.name));
  edit(tensors);
  write_safetensors((dst / "model.safetensors").string(), tensors);
  return dst.string();
}

void expect_error_mentions(const std::string& dir, const std::vector<std::string>& needles) {
  try {
    Model::load(dir);
    FAIL() << "expected an error loading " << dir;
  } catch (const Error& e) {
    for (const auto& n : needles) EXPECT_NE(std::string(e.what()).find(n), std::string::npos) << e.what();
  }
}

TEST(Weights, MissingTensorIsNamed) {
  std::string dir = edited_copy("llama2-f32", "missing", [](auto& t) {
    std::erase_if(t, [](auto& p) { return p.first == "model.layers.1.mlp.up_proj.weight"; });
  });
  expect_error_mentions(dir, {"model.layers.1.mlp.up_proj.weight", "missing", dir});
  fs::remove_all(dir);
}

TEST(Weights, WrongShapeIsNamedWithBothShapes) {
  std::string dir = edited_copy("qwen3-bf16", "shape", [](auto& t) {
    for (auto& [name, tensor] : t)
      if (name == "model.layers.0.self_attn.q_norm.weight") tensor = tensor.reshape({2, 16});
  });
  expect_error_mentions(dir, {"q_norm", "[2, 16]", "[32]"});
  fs::remove_all(dir);
}

TEST(Weights, UnsupportedWeightDtypeIsNamed) {
  std::string dir = edited_copy("gpt2-f32", "dtype", [](auto& t) {
    for (auto& [name, tensor] : t)
      if (name == "transformer.ln_f.bias") {
        Tensor i = Tensor::zeros(DType::I32, tensor.shape());
        tensor = i;
      }
  });
  expect_error_mentions(dir, {"transformer.ln_f.bias", "I32"});
  fs::remove_all(dir);
}

TEST(Weights, DecodeBytesCountEveryWeightOnce) {
  auto model = Model::load(test::fixtures_dir() + "/models/llama3-bf16");  // tied embeddings
  const ModelSpec& s = model->spec;
  // Tied: lm_head is the embedding, read once per token by the head (the embedding row is negligible).
  size_t expected = 2 * size_t(s.parameter_count() - 0);
  EXPECT_EQ(model->weights.decode_bytes(), expected);
  EXPECT_EQ(model->weights.stored_dtype(), DType::BF16);
}

TEST(Presets, RandomWeightsHaveTheSpecShapes) {
  ModelSpec s = preset_spec("gpt2-124m");
  EXPECT_EQ(s.parameter_count(), 124439808);
  EXPECT_THROW(preset_spec("nope"), Error);
  s.num_layers = 1;  // keep the test fast
  ModelWeights w = random_weights(s, DType::BF16, 3);
  ASSERT_EQ(w.layers.size(), 1u);
  EXPECT_EQ(w.layers[0].up.weight.shape(), (Shape{3072, 768}));
  EXPECT_EQ(w.position_embedding.shape(), (Shape{1024, 768}));
  EXPECT_EQ(w.lm_head.weight.data(), w.token_embedding.data());
}

// Counter-based and parallel: the same seed gives the same bits, another seed other values, and a matrix's
// values follow N(0, 0.02) (norm weights N(1, 0.02)).
TEST(Presets, RandomWeightsAreDeterministicNormalDraws) {
  ModelSpec s = preset_spec("llama-134m");
  s.num_layers = 1;
  const ModelWeights a = random_weights(s, DType::F32, 11), b = random_weights(s, DType::F32, 11);
  const ModelWeights c = random_weights(s, DType::F32, 12);
  const Tensor& up = a.layers[0].up.weight;  // [2048, 768]: 24 pieces of 64k values
  const size_t n = size_t(up.numel());
  ASSERT_EQ(std::memcmp(up.data(), b.layers[0].up.weight.data(), n * 4), 0);
  ASSERT_NE(std::memcmp(up.data(), c.layers[0].up.weight.data(), n * 4), 0);
  ASSERT_NE(std::memcmp(up.data(), a.layers[0].gate.weight.data(), n * 4), 0);  // each tensor its own stream
  double sum = 0, sum_sq = 0;
  size_t beyond_3_sigma = 0, zeros = 0;
  for (size_t i = 0; i < n; ++i) {
    const double x = up.ptr<float>()[i];
    sum += x;
    sum_sq += x * x;
    beyond_3_sigma += std::abs(x) > 0.06;
    zeros += x == 0.0;
  }
  const double mean = sum / double(n), stddev = std::sqrt(sum_sq / double(n) - mean * mean);
  EXPECT_NEAR(mean, 0.0, 1e-4);
  EXPECT_NEAR(stddev, 0.02, 2e-4);
  EXPECT_NEAR(double(beyond_3_sigma) / double(n), 0.0027, 0.0006);  // a normal tail, not a uniform's
  EXPECT_EQ(zeros, 0u);
  const Tensor& norm = a.layers[0].attn_norm.weight;
  double norm_mean = 0;
  for (int64_t i = 0; i < norm.numel(); ++i) norm_mean += norm.ptr<float>()[i];
  EXPECT_NEAR(norm_mean / double(norm.numel()), 1.0, 0.005);
}

}  // namespace
}  // namespace roofline
