// The CUDA training model against the CPU TrainModel (f32) on the same weights and batch: loss and every
// parameter gradient, for tiny GPT-2 and Llama (GQA, tied and untied); a few AdamW steps; activation
// checkpointing on/off; an interrupted and resumed CUDA run against an uninterrupted one (bit-exact).
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "gpu_test_util.h"
#include "roofline/train/cuda/cuda_train_model.h"
#include "roofline/train/params.h"
#include "roofline/train/trainable.h"
#include "roofline/trainer/trainer.h"

namespace roofline::train {
namespace {

// The source tree: $ROOFLINE_SOURCE_DIR where the tests run from a copy of it (the GPU box), else the build's.
std::string fixture_tokenizer() {
  const char* env = std::getenv("ROOFLINE_SOURCE_DIR");
  return std::string(env && *env ? env : ROOFLINE_SOURCE_DIR) + "/tests/fixtures/train/gpt2/tokenizer.json";
}

struct TinyModel {
  const char* name;
  const char* arch;
  int64_t hidden, heads, kv_heads;
  bool tied;
  int64_t vocab;
};

// head_dim 64 in every case (what the training flash attention supports); odd sequences; one odd vocabulary
// (the logits' row stride is then not a multiple of 16 bytes, as with GPT-2's own 50257).
const TinyModel kModels[] = {
    {"gpt2", "gpt2", 128, 2, 2, true, 96},
    {"llama_gqa_untied", "llama", 256, 4, 2, false, 96},
    {"llama_gqa_tied_odd_vocab", "llama", 256, 4, 2, true, 97},
};

ModelSpec tiny_spec(const TinyModel& m) {
  TrainOptions o;
  o.arch = m.arch;
  o.layers = 2;
  o.hidden = m.hidden;
  o.heads = m.heads;
  o.kv_heads = m.kv_heads;
  o.max_positions = 128;
  o.seq = 64;
  o.tie_embeddings = m.tied;
  return spec_from_options(o, m.vocab, std::nullopt, std::nullopt);
}

// GPT-2 initialisation, then random norm weights (+-0.2) and biases (+-0.05), so that their gradients are
// exercised too, and embeddings 10x larger (std 0.2). Why the last two: with std-0.02 embeddings and large
// biases every token's hidden state in layer 1 is nearly the same vector, attention is uniform, and the true
// dq / dk are a tiny difference that bf16 cannot resolve (delta = dO . O is taken from bf16 O, as in every
// flash attention): on the GPU that gave 0.4-0.5 relative error on layer 1's q/k gradients while every other
// tensor stayed under 8e-3; rounding only O and dO inside the CPU f32 reference already gave 0.29 there,
// and 2.6e-3 with this initialisation.
std::vector<float> tiny_params(const ModelSpec& spec, uint64_t seed) {
  const ParamLayout layout = ParamLayout::build(spec);
  std::vector<float> p(size_t(layout.total));
  init_params(spec, layout, p.data(), seed);
  std::mt19937 rng(uint32_t(seed) + 7);
  std::uniform_real_distribution<float> noise(-0.2f, 0.2f);
  for (const ParamInfo& info : layout.params) {
    float* w = p.data() + info.offset;
    if (info.kind == ParamKind::Norm)
      for (int64_t i = 0; i < info.numel; ++i) w[i] += noise(rng);
    if (info.kind == ParamKind::Bias)
      for (int64_t i = 0; i < info.numel; ++i) w[i] += 0.25f * noise(rng);
    if (info.kind == ParamKind::Embedding)
      for (int64_t i = 0; i < info.numel; ++i) w[i] *= 10.0f;
  }
  return p;
}

// [B, T+1] random windows; the last target of the first two windows is -1 (no loss there).
std::vector<int32_t> random_windows(int64_t B, int64_t T, int64_t V, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int32_t> tok(0, int32_t(V - 1));
  std::vector<int32_t> w(size_t(B * (T + 1)));
  for (auto& x : w) x = tok(rng);
  w[static_cast<size_t>(T)] = -1;
  w[static_cast<size_t>(2 * T + 1)] = -1;
  return w;
}

double rel_l2(const float* a, const float* b, int64_t n) {
  double num = 0, den = 0;
  for (int64_t i = 0; i < n; ++i) {
    num += (double(a[i]) - b[i]) * (double(a[i]) - b[i]);
    den += double(b[i]) * b[i];
  }
  return den == 0 ? std::sqrt(num) : std::sqrt(num / den);
}

class GpuTrainModel : public test::GpuTest, public ::testing::WithParamInterface<TinyModel> {};

TEST_P(GpuTrainModel, LossAndEveryGradientMatchTheCpuModel) {
  const ModelSpec spec = tiny_spec(GetParam());
  const std::vector<float> params = tiny_params(spec, 11);
  const int64_t B = 2, T = 61;
  const std::vector<int32_t> windows = random_windows(B, T, spec.vocab_size, 3);
  ThreadPool pool(2);
  OptimizerConfig oc;
  auto cpu = make_cpu_trainable(spec, pool, false, params.data());
  auto gpu = cuda::make_cuda_trainable(spec, false, params.data(), oc);
  const ParamLayout& layout = cpu->layout();
  // Two micro-batches accumulate, as gradient accumulation does.
  const float scale = 1.0f / float(2 * (B * T - 2));
  CrossEntropyResult rc, rg;
  for (int rep = 0; rep < 2; ++rep) {
    rc = cpu->forward_backward(windows.data(), B, T, scale);
    rg = gpu->forward_backward(windows.data(), B, T, scale);
  }
  EXPECT_EQ(rc.count, B * T - 2);
  EXPECT_EQ(rg.count, rc.count);
  EXPECT_NEAR(rg.loss_sum / rg.count, rc.loss_sum / rc.count, 1e-2);
  std::vector<float> gc(size_t(layout.total)), gg(size_t(layout.total));
  cpu->copy_grads_to_host(gc.data());
  gpu->copy_grads_to_host(gg.data());
  double all = 0;
  for (float g : gg) all += double(g) * g;
  all = std::sqrt(all);
  for (const ParamInfo& p : layout.params) {
    const double err = rel_l2(gg.data() + p.offset, gc.data() + p.offset, p.numel);
    std::printf("  %-48s rel L2 %.2e\n", p.name.c_str(), err);
    if (p.name.ends_with("k_proj.bias")) {
      // Analytically zero (a shift of every key by one vector shifts each query's scores by a constant, which
      // softmax ignores): both sides hold rounding noise, so only its size is checked.
      double norm = 0;
      for (int64_t i = 0; i < p.numel; ++i) norm += double(gg[size_t(p.offset + i)]) * gg[size_t(p.offset + i)];
      EXPECT_LT(std::sqrt(norm), 1e-3 * all) << p.name;
      continue;
    }
    EXPECT_LT(err, 2e-2) << p.name;
    EXPECT_TRUE(std::isfinite(err)) << p.name;
  }
  // forward_loss agrees with the loss of forward_backward.
  const CrossEntropyResult eval = gpu->forward_loss(windows.data(), B, T);
  EXPECT_EQ(eval.count, rg.count);
  EXPECT_NEAR(eval.loss_sum, rg.loss_sum, 1e-6 * std::fabs(rg.loss_sum));
}

TEST_P(GpuTrainModel, ActivationCheckpointingGivesIdenticalGradients) {
  const ModelSpec spec = tiny_spec(GetParam());
  const std::vector<float> params = tiny_params(spec, 5);
  const int64_t B = 3, T = 40;
  const std::vector<int32_t> windows = random_windows(B, T, spec.vocab_size, 8);
  auto plain = cuda::make_cuda_trainable(spec, false, params.data(), OptimizerConfig{});
  auto recomputed = cuda::make_cuda_trainable(spec, true, params.data(), OptimizerConfig{});
  const CrossEntropyResult a = plain->forward_backward(windows.data(), B, T, 0.01f);
  const CrossEntropyResult b = recomputed->forward_backward(windows.data(), B, T, 0.01f);
  EXPECT_EQ(a.loss_sum, b.loss_sum);
  const int64_t n = plain->layout().total;
  std::vector<float> ga(static_cast<size_t>(n)), gb(static_cast<size_t>(n));
  plain->copy_grads_to_host(ga.data());
  recomputed->copy_grads_to_host(gb.data());
  EXPECT_EQ(ga, gb);
  EXPECT_LT(recomputed->activation_bytes(), plain->activation_bytes());
}

// The model allocates exactly the plan the estimate counts (device_memory_plan.h), category by category.
TEST_P(GpuTrainModel, AllocatesExactlyItsPlan) {
  const ModelSpec spec = tiny_spec(GetParam());
  const std::vector<float> params = tiny_params(spec, 9);
  const int64_t B = 3, T = 40;
  const std::vector<int32_t> windows = random_windows(B, T, spec.vocab_size, 4);
  for (const bool checkpoint : {false, true}) {
    auto gpu = cuda::make_cuda_trainable(spec, checkpoint, params.data(), OptimizerConfig{});
    gpu->forward_backward(windows.data(), B, T, 0.01f);
    const DeviceMemoryAccount a = gpu->device_memory();
    const CudaTrainPlan plan = plan_cuda_training(spec, B, T, checkpoint, OptimizerKind::AdamW);
    for (int c = 0; c < kDeviceMemoryCategories; ++c)
      EXPECT_EQ(a.allocated[size_t(c)], plan.bytes(DeviceMemoryCategory(c)))
          << to_string(DeviceMemoryCategory(c)) << (checkpoint ? " checkpointed" : "");
    EXPECT_EQ(a.planned, plan.total_bytes());
    EXPECT_EQ(gpu->activation_bytes(), plan.bytes(DeviceMemoryCategory::Activations));
    EXPECT_GE(a.in_use, a.allocated_total());
  }
}

TEST_P(GpuTrainModel, AdamWStepsFollowTheCpuTrajectory) {
  const ModelSpec spec = tiny_spec(GetParam());
  const std::vector<float> params = tiny_params(spec, 21);
  const int64_t B = 2, T = 33;
  OptimizerConfig oc;
  oc.weight_decay = 0.1;
  ThreadPool pool(2);
  auto cpu = make_cpu_trainable(spec, pool, false, params.data());
  auto gpu = cuda::make_cuda_trainable(spec, false, params.data(), oc);
  Optimizer opt_cpu(oc, cpu->layout()), opt_gpu(oc, gpu->layout());
  for (int step = 0; step < 5; ++step) {
    const std::vector<int32_t> windows = random_windows(B, T, spec.vocab_size, 100 + uint32_t(step));
    double losses[2];
    int i = 0;
    for (auto pair : {std::pair<Trainable*, Optimizer*>{cpu.get(), &opt_cpu}, {gpu.get(), &opt_gpu}}) {
      Trainable& m = *pair.first;
      m.zero_grads();
      const CrossEntropyResult r = m.forward_backward(windows.data(), B, T, 1.0f / float(B * T - 2));
      const double norm = m.grad_norm();
      m.clip_and_step(*pair.second, norm, 1.0, 3e-3);
      losses[i++] = r.loss_sum / double(r.count);
    }
    // Relative: this better-conditioned tiny model starts near loss 28, and bf16 activations put the
    // loss about 1e-3 off in relative terms (measured: 1.06e-3 at step 2).
    EXPECT_NEAR(losses[1], losses[0], 3e-3 * losses[0]) << "step " << step;
  }
  EXPECT_EQ(opt_gpu.step(), 5);
  const int64_t n = cpu->layout().total;
  std::vector<float> pc(cpu->host_params(), cpu->host_params() + n);
  std::vector<float> pg(gpu->host_params(), gpu->host_params() + n);
  // Loosely: AdamW normalises each element's step, so an element whose gradient is rounding noise moves by
  // about lr either way (first GPU run: 2.1e-2 on the parameters, 5.2e-2 on the first moment).
  EXPECT_LT(rel_l2(pg.data(), pc.data(), n), 5e-2);
  // The moments come back to the host for checkpoints.
  gpu->optimizer_state_to_host(opt_gpu);
  EXPECT_LT(rel_l2(opt_gpu.m().data(), opt_cpu.m().data(), n), 1e-1);
}

INSTANTIATE_TEST_SUITE_P(Tiny, GpuTrainModel, ::testing::ValuesIn(kModels),
                         [](const auto& info) { return std::string(info.param.name); });

class GpuTrainRun : public test::GpuTest {};

// A CUDA run of a 2-layer, 128-wide model on one random sequence of `tokens` tokens (the overfit form), clipped.
TrainOptions tiny_cuda_run(const char* arch, int64_t kv_heads, int tokens, uint32_t seed, int64_t steps) {
  TrainOptions o;
  o.arch = arch;
  o.layers = 2;
  o.hidden = 128;
  o.heads = 2;
  o.kv_heads = kv_heads;
  o.tokenizer = fixture_tokenizer();
  std::mt19937 rng(seed);
  for (int i = 0; i < tokens; ++i) o.data_tokens.push_back(int32_t(rng() % 300));
  o.steps = steps;
  o.lr = 1e-3;
  o.clip = 1.0;
  o.device = "cuda";
  o.progress = false;
  o.peak_flops = 1e12;  // skip measuring the GEMM ceiling here
  return o;
}

// `o` stopped (and saved) after step `stop_at`, then resumed from that checkpoint: both parts' summaries.
std::pair<TrainSummary, TrainSummary> run_interrupted(TrainOptions o, int64_t stop_at) {
  o.stop_at = stop_at;
  TrainSummary first = run_training(o);
  o.stop_at = 0;
  o.resume = true;
  return {std::move(first), run_training(o)};
}

// An interrupted and resumed CUDA run gives the same losses, bit for bit, as an uninterrupted one.
TEST_F(GpuTrainRun, ResumeIsBitExact) {
  namespace fs = std::filesystem;
  const fs::path tmp = fs::temp_directory_path() / ("gpu_train_resume_" + std::to_string(::getpid()));
  fs::remove_all(tmp);
  TrainOptions o = tiny_cuda_run("llama", 1, 97, 4, 8);
  o.weight_decay = 0.1;
  o.schedule = "cosine";
  o.out = (tmp / "whole").string();
  const TrainSummary whole = run_training(o);
  ASSERT_EQ(whole.losses.size(), 8u);
  EXPECT_LT(whole.losses.back(), whole.losses.front());

  o.out = (tmp / "parts").string();
  const auto [first, rest] = run_interrupted(o, 3);
  ASSERT_EQ(first.losses.size(), 3u);
  ASSERT_EQ(rest.losses.size(), 5u);
  for (size_t i = 0; i < 3; ++i) EXPECT_EQ(first.losses[i], whole.losses[i]) << i;
  for (size_t i = 0; i < 5; ++i) EXPECT_EQ(rest.losses[i], whole.losses[3 + i]) << 3 + i;
  fs::remove_all(tmp);
}

// With --gemm-algorithms tune, the choices made by timing go into the checkpoint: the resumed part reuses them,
// and a fresh run given that checkpoint's state.json repeats the tuned run's losses bit for bit.
TEST_F(GpuTrainRun, TunedGemmChoicesResumeAndRepeatExactly) {
  namespace fs = std::filesystem;
  const fs::path tmp = fs::temp_directory_path() / ("gpu_train_tuned_" + std::to_string(::getpid()));
  fs::remove_all(tmp);
  TrainOptions o = tiny_cuda_run("gpt2", 2, 129, 5, 6);  // GPT-2: the GELU epilogue forms too
  o.gemm_algorithms = "tune";
  o.out = (tmp / "parts").string();
  const auto [first, rest] = run_interrupted(o, 2);
  const std::string state = (tmp / "parts" / "trainer_state" / "state.json").string();
  std::ifstream in(state);
  const nlohmann::json kept = nlohmann::json::parse(in).at("gemm_algorithms");
  EXPECT_GE(kept.at("gemms").size(), 6u) << kept.dump(1);
  o.out = (tmp / "repeat").string();
  o.gemm_algorithms = state;
  const TrainSummary repeat = run_training(o);
  ASSERT_EQ(first.losses.size(), 2u);
  ASSERT_EQ(rest.losses.size(), 4u);
  ASSERT_EQ(repeat.losses.size(), 6u);
  for (size_t i = 0; i < 2; ++i) EXPECT_EQ(first.losses[i], repeat.losses[i]) << i;
  for (size_t i = 0; i < 4; ++i) EXPECT_EQ(rest.losses[i], repeat.losses[2 + i]) << 2 + i;
  fs::remove_all(tmp);
}

}  // namespace
}  // namespace roofline::train
