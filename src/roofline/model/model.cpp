#include "roofline/model/model.h"

#include <filesystem>

#include "roofline/core/error.h"

namespace roofline {

std::unique_ptr<Model> Model::load(const std::string& dir) {
  namespace fs = std::filesystem;
  if (!fs::is_directory(dir)) fail("{}: not a model directory (expected config.json and model.safetensors in it)", dir);
  auto model = std::make_unique<Model>();
  model->dir = dir;
  model->spec = load_model_spec(dir);
  model->checkpoint = std::make_unique<Checkpoint>(dir);
  model->weights = load_weights(model->spec, *model->checkpoint);
  return model;
}

}  // namespace roofline
