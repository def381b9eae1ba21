// Shared helpers for the training tests: fixture paths, loading a fixture model into a TrainModel.
#pragma once
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>

#include "roofline/core/thread_pool.h"
#include "roofline/model/model.h"
#include "roofline/train/model.h"

namespace roofline::train::testing {

inline std::string fixture_dir(const std::string& name) {
  return std::string(ROOFLINE_SOURCE_DIR) + "/tests/fixtures/train/" + name;
}

inline nlohmann::json read_json(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return nlohmann::json::parse(ss.str());
}

inline std::unique_ptr<TrainModel> load_fixture_model(const std::string& dir, ThreadPool& pool,
                                                      bool checkpoint = false) {
  auto model = Model::load(dir);
  auto tm = std::make_unique<TrainModel>(model->spec, pool, checkpoint);
  import_params(tm->spec(), tm->layout(), model->weights, tm->params().data());
  return tm;
}

inline double relative_l2(const float* a, const float* b, int64_t n) {
  double num = 0, den = 0;
  for (int64_t i = 0; i < n; ++i) {
    num += (double(a[i]) - double(b[i])) * (double(a[i]) - double(b[i]));
    den += double(b[i]) * double(b[i]);
  }
  return std::sqrt(num / std::max(den, 1e-300));
}

inline const char* kFixtureModels[] = {"gpt2", "llama", "llama-linear", "qwen2", "qwen3"};

}  // namespace roofline::train::testing
