// Weight resolution errors name the tensor and the directory; presets and random weights have the
// shapes their spec says.
#include <gtest/gtest.h>

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

}  // namespace
}  // namespace roofline
