// Every parameter gradient of the tiny fixture models against PyTorch autograd in float64
// (tests/fixtures/make_train_fixtures.py), and the first plain-SGD losses against PyTorch in f32.
#include <gtest/gtest.h>

#include "roofline/formats/safetensors.h"
#include "roofline/train/optimizer.h"
#include "train_test_util.h"

namespace roofline::train {
namespace {

using namespace testing;

class GradientReference : public ::testing::TestWithParam<const char*> {};

void check_gradients(const std::string& name, bool checkpoint) {
  ThreadPool pool(2);
  const std::string dir = fixture_dir(name);
  auto model = load_fixture_model(dir, pool, checkpoint);
  SafetensorsFile ref(dir + "/reference.safetensors");
  Tensor tokens = ref.tensor("tokens");
  ASSERT_EQ(tokens.rank(), 2);
  const int64_t B = tokens.dim(0), T = tokens.dim(1) - 1;
  std::vector<int32_t> windows(size_t(B * (T + 1)));
  for (size_t i = 0; i < windows.size(); ++i) windows[i] = int32_t(tokens.ptr<int64_t>()[i]);
  model->zero_grads();
  CrossEntropyResult ce = model->forward_backward(windows.data(), B, T, 1.0f / float(B * T));
  const double loss = ce.loss_sum / double(ce.count);
  const double ref_loss = read_json(dir + "/reference.json")["loss_f64"].get<double>();
  EXPECT_NEAR(loss, ref_loss, 1e-5 * std::abs(ref_loss)) << name;

  auto grads = export_hf_tensors(model->spec(), model->layout(), model->grads().data());
  size_t checked = 0;
  double worst = 0;
  std::string worst_name;
  for (const auto& [tensor_name, g] : grads) {
    ASSERT_TRUE(ref.contains("grad." + tensor_name)) << name << ": reference lacks " << tensor_name;
    Tensor r = ref.tensor("grad." + tensor_name);
    ASSERT_EQ(r.shape(), g.shape()) << tensor_name;
    const double err = relative_l2(g.ptr<float>(), r.ptr<float>(), g.numel());
    EXPECT_LT(err, 1e-4) << name << ": " << tensor_name;
    if (err > worst) worst = err, worst_name = tensor_name;
    ++checked;
  }
  size_t ref_grads = 0;
  for (const auto& e : ref.entries()) ref_grads += e.name.starts_with("grad.");
  EXPECT_EQ(checked, ref_grads) << name << ": every reference gradient is compared";
  std::printf("%s%s: %zu gradients, worst relative L2 %.2e (%s), loss %.9f vs %.9f\n", name.c_str(),
              checkpoint ? " (checkpointed)" : "", checked, worst, worst_name.c_str(), loss, ref_loss);
}

TEST_P(GradientReference, MatchesFloat64Autograd) { check_gradients(GetParam(), false); }
TEST_P(GradientReference, MatchesWithActivationCheckpointing) { check_gradients(GetParam(), true); }

TEST_P(GradientReference, FirstSgdLossesMatchPyTorch) {
  ThreadPool pool(2);
  const std::string dir = fixture_dir(GetParam());
  auto model = load_fixture_model(dir, pool);
  nlohmann::json sgd = read_json(dir + "/reference.json")["sgd"];
  std::vector<int32_t> seq = sgd["tokens"].get<std::vector<int32_t>>();
  const double lr = sgd["lr"].get<double>();
  std::vector<double> expected = sgd["losses"].get<std::vector<double>>();
  Optimizer opt({OptimizerKind::SGD}, model->layout());
  const int64_t T = int64_t(seq.size()) - 1;
  for (size_t step = 0; step < expected.size(); ++step) {
    model->zero_grads();
    CrossEntropyResult ce = model->forward_backward(seq.data(), 1, T, 1.0f / float(T));
    const double loss = ce.loss_sum / double(ce.count);
    EXPECT_NEAR(loss, expected[step], 1e-4) << GetParam() << " step " << step;
    opt.update(pool, model->params(), model->grads(), lr);
  }
}

INSTANTIATE_TEST_SUITE_P(Fixtures, GradientReference, ::testing::ValuesIn(kFixtureModels),
                         [](const auto& info) {
                           std::string n = info.param;
                           for (char& c : n)
                             if (c == '-') c = '_';
                           return n;
                         });

}  // namespace
}  // namespace roofline::train

namespace roofline::train {
namespace {

// Gradients must not depend on the thread count (fixed reduction chunks, one writer per output element),
// so a run resumed on another machine repeats bit for bit.
TEST(GradientDeterminism, SameBitsOnOneAndTwoThreads) {
  std::vector<std::vector<float>> grads;
  for (int threads : {1, 2, 3}) {
    ThreadPool pool(threads);
    auto model = testing::load_fixture_model(testing::fixture_dir("qwen3"), pool);
    SafetensorsFile ref(testing::fixture_dir("qwen3") + "/reference.safetensors");
    Tensor tokens = ref.tensor("tokens");
    const int64_t B = tokens.dim(0), T = tokens.dim(1) - 1;
    std::vector<int32_t> windows(static_cast<size_t>(B * (T + 1)));
    for (size_t i = 0; i < windows.size(); ++i) windows[i] = int32_t(tokens.ptr<int64_t>()[i]);
    model->zero_grads();
    model->forward_backward(windows.data(), B, T, 1.0f / float(B * T));
    grads.push_back(model->grads());
  }
  EXPECT_EQ(grads[0], grads[1]);
  EXPECT_EQ(grads[0], grads[2]);
}

}  // namespace
}  // namespace roofline::train
