#include "roofline/train/checkpoint.h"

#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "roofline/core/atomic_file.h"
#include "roofline/core/error.h"
#include "roofline/formats/safetensors.h"

namespace roofline::train {
namespace fs = std::filesystem;

namespace {

std::string read_whole(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail("{}: cannot read", path.string());
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void fsync_dir(const fs::path& dir) {
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY);
  if (fd < 0) fail("{}: cannot open directory to fsync: {}", dir.string(), std::strerror(errno));
  ::fsync(fd);
  ::close(fd);
}

void remove_stale_temps(const fs::path& target) {
  const fs::path parent = target.has_parent_path() ? target.parent_path() : fs::path(".");
  const std::string prefix = target.filename().string() + ".tmp-";
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(parent, ec))
    if (entry.path().filename().string().starts_with(prefix)) fs::remove_all(entry.path(), ec);
}

}  // namespace

void copy_tokenizer(const std::string& source, const std::string& dir) {
  if (source.empty()) return;
  if (fs::is_directory(source)) {
    fs::path src(source);
    if (fs::exists(src / "tokenizer") && !fs::exists(src / "tokenizer.json") && !fs::exists(src / "encoder.json"))
      src /= "tokenizer";  // a data directory
    for (const char* name : {"tokenizer.json", "tokenizer_config.json", "encoder.json", "vocab.bpe", "vocab.json",
                             "merges.txt", "special_tokens_map.json"})
      if (fs::exists(src / name)) write_file_atomically((fs::path(dir) / name).string(), read_whole(src / name));
  } else if (fs::is_regular_file(source)) {
    write_file_atomically((fs::path(dir) / "tokenizer.json").string(), read_whole(source));
  }
}

void save_checkpoint(const std::string& dir, const TrainModel& model, const Optimizer& optimizer,
                     const TrainerState& state, const std::string& tokenizer_source) {
  save_checkpoint(dir, model.spec(), model.layout(), model.params().data(), optimizer, state, tokenizer_source);
}

void save_checkpoint(const std::string& dir, const ModelSpec& spec, const ParamLayout& layout, const float* params,
                     const Optimizer& optimizer, const TrainerState& state, const std::string& tokenizer_source) {
  fs::path target = fs::absolute(fs::path(dir)).lexically_normal();
  if (target.filename().empty()) target = target.parent_path();
  fs::create_directories(target.parent_path());
  remove_stale_temps(target);
  const fs::path tmp = target.string() + ".tmp-" + std::to_string(::getpid());
  fs::create_directories(tmp / "trainer_state");

  write_file_atomically((tmp / "config.json").string(), hf_config_json(spec));
  nlohmann::ordered_json gen;
  if (spec.bos_token_id) gen["bos_token_id"] = *spec.bos_token_id;
  if (!spec.eos_token_ids.empty()) gen["eos_token_id"] = spec.eos_token_ids;
  write_file_atomically((tmp / "generation_config.json").string(), gen.dump(2) + "\n");
  write_safetensors((tmp / "model.safetensors").string(),
                    export_hf_tensors(spec, layout, params), {{"format", "pt"}});
  copy_tokenizer(tokenizer_source, tmp.string());

  Optimizer& opt = const_cast<Optimizer&>(optimizer);
  std::vector<std::pair<std::string, Tensor>> moments;
  if (!opt.m().empty()) {
    moments.emplace_back("adamw.m", Tensor(DType::F32, {int64_t(opt.m().size())}, opt.m().data()));
    moments.emplace_back("adamw.v", Tensor(DType::F32, {int64_t(opt.v().size())}, opt.v().data()));
  }
  write_safetensors((tmp / "trainer_state" / "optimizer.safetensors").string(), moments);
  nlohmann::ordered_json s;
  s["step"] = state.step;
  s["optimizer_step"] = opt.step();
  s["optimizer"] = opt.config().kind == OptimizerKind::AdamW ? "adamw" : "sgd";
  s["loader_position"] = state.loader_position;
  s["tokens_seen"] = state.tokens_seen;
  s["seed"] = state.seed;
  s["elapsed_seconds"] = state.elapsed_seconds;
  s["options"] = state.options;
  if (!state.gemm_algorithms.is_null()) s["gemm_algorithms"] = state.gemm_algorithms;
  write_file_atomically((tmp / "trainer_state" / "state.json").string(), s.dump(2) + "\n");
  fsync_dir(tmp / "trainer_state");
  fsync_dir(tmp);

  // Swap the new directory in.
  if (fs::exists(target)) {
    if (::renameat2(AT_FDCWD, tmp.c_str(), AT_FDCWD, target.c_str(), RENAME_EXCHANGE) != 0)
      fail("{}: cannot swap in the new checkpoint: {}", target.string(), std::strerror(errno));
    fsync_dir(target.parent_path());
    std::error_code ec;
    fs::remove_all(tmp, ec);  // now the previous checkpoint
  } else {
    if (::rename(tmp.c_str(), target.c_str()) != 0)
      fail("{}: cannot move the new checkpoint into place: {}", target.string(), std::strerror(errno));
    fsync_dir(target.parent_path());
  }
}

bool has_trainer_state(const std::string& dir) {
  return fs::exists(fs::path(dir) / "trainer_state" / "state.json");
}

void load_trainer_state(const std::string& dir, Optimizer& optimizer, TrainerState& state) {
  const fs::path path = fs::path(dir) / "trainer_state" / "state.json";
  if (!fs::exists(path)) fail("{}: no trainer state to resume from (expected {})", dir, path.string());
  nlohmann::json s;
  try {
    s = nlohmann::json::parse(read_whole(path));
    state.step = s.at("step").get<int64_t>();
    state.loader_position = s.at("loader_position").get<int64_t>();
    state.tokens_seen = s.value("tokens_seen", int64_t(0));
    state.seed = s.at("seed").get<uint64_t>();
    state.elapsed_seconds = s.value("elapsed_seconds", 0.0);
    state.options = s.value("options", nlohmann::json::object());
    state.gemm_algorithms = s.contains("gemm_algorithms") ? s.at("gemm_algorithms") : nlohmann::json();
    const std::string kind = s.at("optimizer").get<std::string>();
    const bool adamw = optimizer.config().kind == OptimizerKind::AdamW;
    if ((kind == "adamw") != adamw)
      fail("{}: the checkpoint was trained with {}, this run asks for {}", dir, kind, adamw ? "adamw" : "sgd");
    optimizer.set_step(s.at("optimizer_step").get<int64_t>());
  } catch (const nlohmann::json::exception& e) {
    fail("{}: invalid trainer state: {}", path.string(), e.what());
  }
  if (optimizer.config().kind == OptimizerKind::AdamW) {
    SafetensorsFile f((fs::path(dir) / "trainer_state" / "optimizer.safetensors").string());
    for (auto [name, dst] : {std::pair{"adamw.m", &optimizer.m()}, std::pair{"adamw.v", &optimizer.v()}}) {
      Tensor t = f.tensor(name);
      if (t.dtype() != DType::F32 || size_t(t.numel()) != dst->size())
        fail("{}: optimizer state '{}' has {} elements, the model has {}", dir, name, t.numel(), dst->size());
      std::memcpy(dst->data(), t.data(), dst->size() * sizeof(float));
    }
  }
}

}  // namespace roofline::train
