// The training pipeline end to end on the tiny fixtures: data prepare -> loader round trip, checkpoints
// that load as model directories, bit-exact resume, score, schedules and config files.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <random>

#include "roofline/core/error.h"
#include "roofline/formats/safetensors.h"
#include "roofline/tokenizer/tokenizer.h"
#include "roofline/train/checkpoint.h"
#include "roofline/train/config_file.h"
#include "roofline/train/data.h"
#include "roofline/train/optimizer.h"
#include "roofline/trainer/trainer.h"
#include "train_test_util.h"

namespace roofline::train {
namespace {

namespace fs = std::filesystem;
using namespace testing;

class TempDir {
 public:
  TempDir() {
    std::random_device rd;
    path_ = fs::temp_directory_path() / ("roofline_train_test_" + std::to_string(rd()));
    fs::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  std::string operator/(const std::string& name) const { return (path_ / name).string(); }
  std::string dir() const { return path_.string(); }

 private:
  fs::path path_;
};

std::string sample_text() {
  std::string text;
  for (int i = 0; i < 60; ++i)
    text += "In the beginning was the word " + std::to_string(i) + ", and the word was with the model.\n";
  return text;
}

std::string prepare_sample(const TempDir& tmp, double val_fraction = 0.1, int64_t shard_tokens = 100'000'000) {
  {
    std::ofstream(tmp / "a.txt") << sample_text();
  }
  PrepareOptions o;
  o.tokenizer = fixture_dir("llama");
  o.inputs = {tmp / "a.txt"};
  o.output = tmp / "data";
  o.val_fraction = val_fraction;
  o.shard_tokens = shard_tokens;
  ThreadPool pool(2);
  prepare_data(o, pool);
  return o.output;
}

TEST(TrainData, PrepareWritesShardsThatRoundTrip) {
  TempDir tmp;
  const std::string dir = prepare_sample(tmp, 0.1, 500);
  Tokenizer tok = Tokenizer::from_path(fixture_dir("llama"));
  std::vector<int32_t> expected = tok.encode("", true);
  std::vector<int32_t> body = tok.encode(sample_text(), false);
  expected.insert(expected.end(), body.begin(), body.end());
  DataSplit train(dir, "train"), val(dir, "val");
  EXPECT_EQ(train.vocab_size(), tok.vocab_size());
  const int64_t total = train.tokens() + val.tokens();
  ASSERT_GE(total, int64_t(expected.size()));
  EXPECT_GT(val.tokens(), 0);
  EXPECT_NEAR(double(val.tokens()) / double(total), 0.1, 0.01);
  // Shards in order give back the token stream (then EOS when the tokenizer has one).
  std::vector<int32_t> stream;
  for (const auto* split : {&train, &val}) {
    std::vector<int32_t> w(1);
    for (int64_t i = 0; i < split->window_starts(1); ++i) {
      split->read_window(i, 1, w.data());
      stream.push_back(w[0]);
    }
  }
  ASSERT_GE(stream.size(), expected.size());
  EXPECT_TRUE(std::equal(expected.begin(), expected.end(), stream.begin()));
  EXPECT_GT(std::distance(fs::directory_iterator(dir), fs::directory_iterator()), 4) << "several shards of 500";
  EXPECT_TRUE(fs::exists(fs::path(dir) / "tokenizer" / "tokenizer.json"));
}

TEST(TrainData, ShardHeaderAndErrors) {
  TempDir tmp;
  write_shard(tmp / "s.bin", {1, 2, 70000}, 80000);  // u32
  TokenShard s(tmp / "s.bin");
  EXPECT_EQ(s.size(), 3);
  std::vector<int32_t> out(3);
  s.read(0, 3, out.data());
  EXPECT_EQ(out, (std::vector<int32_t>{1, 2, 70000}));
  EXPECT_EQ(fs::file_size(tmp / "s.bin"), kShardHeaderBytes + 12);
  write_shard(tmp / "t.bin", {5, 6}, 100);  // u16
  EXPECT_EQ(fs::file_size(tmp / "t.bin"), kShardHeaderBytes + 4);
  {
    std::ofstream(tmp / "bad.bin") << "not a shard at all, just some text here";
  }
  EXPECT_THROW(TokenShard(tmp / "bad.bin"), Error);
  fs::resize_file(tmp / "t.bin", kShardHeaderBytes + 2);
  EXPECT_THROW(TokenShard(tmp / "t.bin"), Error);
  EXPECT_THROW(write_shard(tmp / "x.bin", {5, 200}, 100), Error);
  // A manifest whose entries are not shard names inside the directory is refused, naming the manifest.
  for (const char* entries : {R"([{"name": "s.bin"}])", R"([{"file": 5}])", R"(["s.bin"])",
                              R"([{"file": "../s.bin"}])", R"([{"file": "/etc/passwd"}])"}) {
    std::ofstream(tmp / "manifest.json") << "{\"train\": " << entries << "}";
    try {
      DataSplit split(tmp.dir(), "train");
      ADD_FAILURE() << entries << " was accepted";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("manifest.json"), std::string::npos) << e.what();
    }
  }
  std::ofstream(tmp / "manifest.json") << R"({"train": [{"file": "s.bin"}, {"file": "t2..b.bin"}]})";
  write_shard(tmp / "t2..b.bin", {7, 8, 9}, 100);  // ".." inside a name climbs nowhere
  EXPECT_EQ(DataSplit(tmp.dir(), "train").tokens(), 6);
}

TEST(TrainData, LoaderIsReproducibleAndResumable) {
  TempDir tmp;
  const std::string dir = prepare_sample(tmp);
  DataSplit split(dir, "train");
  std::vector<std::vector<int32_t>> first;
  {
    DataLoader loader(split, 3, 16, 42);
    for (int i = 0; i < 6; ++i) first.push_back(loader.next());
    EXPECT_EQ(loader.position(), 6);
  }
  DataLoader again(split, 3, 16, 42, /*next_batch=*/4);
  EXPECT_EQ(again.next(), first[4]);
  EXPECT_EQ(again.next(), first[5]);
  DataLoader other_seed(split, 3, 16, 43);
  EXPECT_NE(other_seed.next(), first[0]);
  DataLoader no_prefetch(split, 3, 16, 42, 0, 0);
  EXPECT_EQ(no_prefetch.next(), first[0]);
  // Windows are contiguous runs of the stream: each one is found in the shards.
  EXPECT_EQ(first[0].size(), size_t(3 * 17));
  EXPECT_THROW(DataLoader(split, 1, 100000, 1), Error);
}

TEST(TrainCheckpoint, SavedDirectoryLoadsAsTheSameModel) {
  for (const char* name : kFixtureModels) {
    TempDir tmp;
    ThreadPool pool(2);
    auto model = load_fixture_model(fixture_dir(name), pool);
    Optimizer opt({OptimizerKind::AdamW}, model->layout());
    TrainerState state;
    state.step = 3;
    save_checkpoint(tmp / "ckpt", *model, opt, state, fixture_dir(name));
    auto loaded = Model::load(tmp / "ckpt");
    EXPECT_EQ(loaded->spec.architecture, model->spec().architecture);
    EXPECT_EQ(loaded->spec.num_kv_heads, model->spec().num_kv_heads);
    EXPECT_EQ(loaded->spec.rope_scaling.kind, model->spec().rope_scaling.kind);
    EXPECT_EQ(loaded->spec.qkv_bias, model->spec().qkv_bias);
    EXPECT_EQ(loaded->spec.qk_norm, model->spec().qk_norm);
    EXPECT_EQ(loaded->spec.tied_embeddings, model->spec().tied_embeddings);
    EXPECT_EQ(loaded->spec.parameter_count(), model->spec().parameter_count());
    TrainModel again(loaded->spec, pool);
    import_params(again.spec(), again.layout(), loaded->weights, again.params().data());
    EXPECT_EQ(again.params(), model->params()) << name;
    // The HF names are exactly the original checkpoint's.
    Checkpoint original(fixture_dir(name)), saved(tmp / "ckpt");
    auto a = original.tensor_names(), b = saved.tensor_names();
    std::sort(a.begin(), a.end());
    std::sort(b.begin(), b.end());
    EXPECT_EQ(a, b) << name;
    EXPECT_TRUE(fs::exists(fs::path(tmp / "ckpt") / "tokenizer.json"));
    // A second save replaces the first atomically and leaves no temp directory behind.
    state.step = 4;
    save_checkpoint(tmp / "ckpt", *model, opt, state, fixture_dir(name));
    TrainerState read;
    Optimizer opt2({OptimizerKind::AdamW}, model->layout());
    load_trainer_state(tmp / "ckpt", opt2, read);
    EXPECT_EQ(read.step, 4);
    EXPECT_TRUE(read.gemm_algorithms.is_null());  // none kept: none written
    // Kept GEMM choices travel with the trainer state, unchanged.
    state.gemm_algorithms = {{"library", "cublasLt 1"}, {"device", "gpu"},
                             {"gemms", {{"M1 N2 K3", {{"algorithm", "00ff"}, {"ms", 0.5}}}}}};
    save_checkpoint(tmp / "ckpt", *model, opt, state, fixture_dir(name));
    load_trainer_state(tmp / "ckpt", opt2, read);
    EXPECT_EQ(read.gemm_algorithms, state.gemm_algorithms);
    for (const auto& e : fs::directory_iterator(fs::path(tmp / "ckpt").parent_path()))
      EXPECT_EQ(e.path().filename().string().find(".tmp-"), std::string::npos);
  }
}

TrainOptions resume_options(const std::string& data, const std::string& out, const std::string& optimizer) {
  TrainOptions o;
  o.init = fixture_dir("qwen3");
  o.data = data;
  o.seq = 16;
  o.batch = 2;
  o.grad_accum = 2;
  o.steps = 6;
  o.lr = 3e-3;
  o.warmup = 2;
  o.optimizer = optimizer;
  o.out = out;
  o.log_json = out + ".jsonl";
  o.threads = 2;
  o.progress = false;
  return o;
}

TEST(TrainLoop, ResumeIsBitExact) {
  TempDir tmp;
  const std::string data = prepare_sample(tmp);
  for (const char* optimizer : {"adamw", "sgd"}) {
    TrainOptions straight = resume_options(data, tmp / (std::string("straight_") + optimizer), optimizer);
    TrainSummary a = run_training(straight);
    TrainOptions first = resume_options(data, tmp / (std::string("resumed_") + optimizer), optimizer);
    first.stop_at = 3;
    first.checkpoint_activations = true;  // recomputation must not change a bit either
    TrainSummary b1 = run_training(first);
    TrainOptions second = first;
    second.stop_at = 0;
    second.resume = true;
    second.checkpoint_activations = false;
    TrainSummary b2 = run_training(second);
    ASSERT_EQ(a.losses.size(), 6u);
    ASSERT_EQ(b1.losses.size(), 3u);
    ASSERT_EQ(b2.losses.size(), 3u);
    std::vector<double> b = b1.losses;
    b.insert(b.end(), b2.losses.begin(), b2.losses.end());
    EXPECT_EQ(a.losses, b) << optimizer;  // identical, not close
    SafetensorsFile wa(straight.out + "/model.safetensors"), wb(first.out + "/model.safetensors");
    for (const auto& e : wa.entries()) {
      auto ra = wa.raw_bytes(e.name), rb = wb.raw_bytes(e.name);
      EXPECT_TRUE(std::equal(ra.begin(), ra.end(), rb.begin(), rb.end())) << e.name;
    }
    // The resumed log holds all six steps once.
    std::ifstream log(second.log_json);
    std::string line;
    int steps = 0;
    while (std::getline(log, line)) steps += line.find("\"loss\"") != std::string::npos;
    EXPECT_EQ(steps, 6);
  }
}

TEST(TrainLoop, OverfitsOneBatchAndRejectsBadInput) {
  TrainOptions o;
  o.init = fixture_dir("gpt2");
  o.data_tokens = {5, 9, 23, 40, 7, 100, 5, 9, 23, 40};
  o.steps = 30;
  o.optimizer = "sgd";
  o.lr = 0.5;
  o.progress = false;
  TrainSummary s = run_training(o);
  EXPECT_LT(s.losses.back(), 0.2 * s.losses.front());
  o.data_tokens = {5, 1000};
  EXPECT_THROW(run_training(o), Error);  // outside the vocabulary
  o.data_tokens = {5, 6};
  o.device = "cuda";
  EXPECT_THROW(run_training(o), Error);
  o.device = "cpu";
  o.optimizer = "adam";
  EXPECT_THROW(run_training(o), Error);
  o.optimizer = "sgd";
  o.gemm_algorithms = "fastest";  // neither heuristic, tune nor a readable file
  try {
    run_training(o);
    ADD_FAILURE() << "--gemm-algorithms fastest was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("--gemm-algorithms must be heuristic, tune or a file"), std::string::npos)
        << e.what();
  }
}

TEST(TrainScore, MatchesPyTorchOnTheFixtures) {
  for (const char* name : kFixtureModels) {
    ThreadPool pool(2);
    auto model = load_fixture_model(fixture_dir(name), pool);
    nlohmann::json score = read_json(fixture_dir(name) + "/reference.json")["score"];
    std::vector<int32_t> tokens = score["tokens"].get<std::vector<int32_t>>();
    CrossEntropyResult r = score_tokens(*model, tokens, 1024);
    EXPECT_EQ(r.count, int64_t(tokens.size()) - 1);
    EXPECT_NEAR(r.loss_sum / double(r.count), score["loss"].get<double>(), 1e-5) << name;
    // Windows restart the context: two windows score differently from one, but count the same tokens.
    CrossEntropyResult halves = score_tokens(*model, tokens, 7);
    EXPECT_EQ(halves.count, r.count);
  }
}

TEST(TrainOptimizer, SchedulesWarmupAndDecay) {
  ScheduleConfig c{ScheduleKind::Cosine, 1.0, 0.1, 10, 110, 0.2};
  EXPECT_DOUBLE_EQ(learning_rate(c, 0), 0.1);
  EXPECT_DOUBLE_EQ(learning_rate(c, 9), 1.0);
  EXPECT_NEAR(learning_rate(c, 60), 0.55, 1e-12);
  EXPECT_NEAR(learning_rate(c, 110), 0.1, 1e-12);
  c.kind = ScheduleKind::Linear;
  EXPECT_NEAR(learning_rate(c, 60), 0.55, 1e-12);
  c.kind = ScheduleKind::Wsd;
  EXPECT_DOUBLE_EQ(learning_rate(c, 80), 1.0);
  EXPECT_NEAR(learning_rate(c, 100), 0.55, 1e-12);
  c.kind = ScheduleKind::Constant;
  EXPECT_DOUBLE_EQ(learning_rate(c, 100), 1.0);
  EXPECT_THROW(parse_schedule("step"), Error);
}

TEST(TrainOptimizer, AdamWMatchesTorchFormulaAndDecayGroups) {
  ModelSpec spec = Model::load(fixture_dir("gpt2"))->spec;
  ParamLayout layout = ParamLayout::build(spec);
  OptimizerConfig c{OptimizerKind::AdamW, 0.9, 0.95, 1e-8, 0.1, false};
  Optimizer opt(c, layout);
  std::vector<float> p(size_t(layout.total), 1.0f), g(size_t(layout.total), 0.5f);
  opt.update(*std::make_unique<ThreadPool>(1), p, g, 0.01);
  // Step 1: m_hat = g, v_hat = g^2, so the Adam step is lr * sign(g); decay only on matrices.
  const ParamInfo* matrix = layout.find("model.layers.0.self_attn.q_proj.weight");
  const ParamInfo* norm = layout.find("model.layers.0.input_layernorm.weight");
  const ParamInfo* embed = layout.find("model.embed_tokens.weight");
  EXPECT_NEAR(p[size_t(matrix->offset)], 1.0f * (1 - 0.01f * 0.1f) - 0.01f, 1e-6);
  EXPECT_NEAR(p[size_t(norm->offset)], 1.0f - 0.01f, 1e-6);
  EXPECT_NEAR(p[size_t(embed->offset)], 1.0f - 0.01f, 1e-6);
  ThreadPool pool(2);
  std::vector<float> grads = {3.0f, 4.0f};
  EXPECT_DOUBLE_EQ(global_grad_norm(pool, grads), 5.0);
  clip_grads(pool, grads, 5.0, 1.0);
  EXPECT_NEAR(grads[0], 0.6f, 1e-6);
}

TEST(TrainConfig, TomlAndJson) {
  TempDir tmp;
  {
    std::ofstream(tmp / "c.toml") << "# a run\n[model]\narch = \"llama\"\nlayers = 4\n[optim]\nlr = 3e-4  # peak\n"
                                     "grad_accum = 2\nresume = true\nname = 'x # y'\nsteps = 1_000\n";
    std::ofstream(tmp / "c.json") << "{\"model\": {\"arch\": \"gpt2\", \"layers\": 2}, \"lr\": 0.001, \"resume\": false,"
                                     " \"data_tokens\": [1, 2, 3]}";
    std::ofstream(tmp / "bad.toml") << "layers 4\n";
  }
  auto t = read_config_file(tmp / "c.toml");
  std::vector<std::pair<std::string, std::string>> want = {{"arch", "llama"}, {"layers", "4"},  {"lr", "3e-4"},
                                                          {"grad-accum", "2"}, {"resume", "true"}, {"name", "x # y"},
                                                          {"steps", "1000"}};
  EXPECT_EQ(t, want);
  auto j = read_config_file(tmp / "c.json");
  std::vector<std::pair<std::string, std::string>> want_json = {
      {"arch", "gpt2"}, {"layers", "2"}, {"lr", "0.001"}, {"resume", "false"}, {"data-tokens", "1,2,3"}};
  EXPECT_EQ(j, want_json);
  EXPECT_THROW(read_config_file(tmp / "bad.toml"), Error);
  EXPECT_THROW(read_config_file(tmp / "missing.toml"), Error);
  EXPECT_THROW(parse_config_text("lr = # no value\n", "c.toml"), Error);
  EXPECT_THROW(parse_config_text("lr = [1, 2\n", "c.toml"), Error);
  EXPECT_THROW(parse_config_text("name = \"open\n", "c.toml"), Error);
  EXPECT_THROW(parse_config_text("{\"a\": {\"b\": {}}, \"c\": {\"x\": 1}", "c.json"), Error);
}

TEST(TrainSpec, FromScratchShapesAndErrors) {
  TrainOptions o;
  o.arch = "llama";
  o.layers = 2;
  o.hidden = 64;
  o.heads = 4;
  o.kv_heads = 2;
  o.seq = 32;
  ModelSpec s = spec_from_options(o, 384, 0, 1);
  EXPECT_EQ(s.head_dim, 16);
  EXPECT_EQ(s.intermediate_size % 64, 0);
  o.kv_heads = 3;
  EXPECT_THROW(spec_from_options(o, 384, 0, 1), Error);
  o.arch = "gpt2";
  o.kv_heads = 0;
  s = spec_from_options(o, 384, std::nullopt, 1);
  EXPECT_TRUE(s.tied_embeddings);
  EXPECT_EQ(s.intermediate_size, 256);
  o.arch = "bert";
  EXPECT_THROW(spec_from_options(o, 384, 0, 1), Error);
  // Sizes past any real model are refused with the flags named, before anything multiplies them.
  o.arch = "llama";
  o.hidden = int64_t(1) << 40;
  try {
    spec_from_options(o, 384, 0, 1);
    ADD_FAILURE() << "a 2^40-wide model was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("--hidden"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("larger than any model"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace roofline::train
