// A loaded model directory: spec, checkpoint (mmapped) and resolved weights, kept together so that the
// views stay valid as long as the Model lives.
#pragma once
#include <memory>
#include <string>

#include "roofline/formats/safetensors.h"
#include "roofline/model/model_spec.h"
#include "roofline/model/weights.h"

namespace roofline {

struct Model {
  std::string dir;
  ModelSpec spec;
  std::unique_ptr<Checkpoint> checkpoint;
  ModelWeights weights;

  // Throws roofline::Error naming the directory and what is wrong with it.
  static std::unique_ptr<Model> load(const std::string& dir);
};

}  // namespace roofline
