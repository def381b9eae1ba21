// Named model shapes for benchmarks and estimates, with random weights made in memory, so a benchmark
// needs no download. Shapes follow the public configs they are named after.
#pragma once
#include <string>
#include <vector>

#include "roofline/model/model_spec.h"
#include "roofline/model/weights.h"

namespace roofline {

// Known names: see preset_names(). Throws roofline::Error listing them for an unknown name.
ModelSpec preset_spec(const std::string& name);
std::vector<std::string> preset_names();

// Random weights of the spec's shapes in `dtype` (N(0, 0.02) for matrices, ~1 for norm weights),
// deterministic for a seed. Owned tensors; no checkpoint needed.
ModelWeights random_weights(const ModelSpec& spec, DType dtype, uint64_t seed);

}  // namespace roofline
