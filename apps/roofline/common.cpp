#include "common.h"

#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "roofline/core/error.h"
#ifdef ROOFLINE_HAVE_CUDA
#include <cuda_runtime_api.h>

#include "roofline/backend/cuda/cuda_backend.h"
#include "roofline/backend/cuda/cuda_runtime_info.h"
#endif

namespace roofline::app {

std::vector<int32_t> parse_id_list(const std::string& text, const std::string& flag) {
  std::vector<int32_t> ids;
  std::stringstream ss(text);
  std::string item;
  while (std::getline(ss, item, ',')) {
    size_t b = item.find_first_not_of(" \t"), e = item.find_last_not_of(" \t");
    if (b == std::string::npos) fail("{}: empty item in '{}' (expected comma-separated integers)", flag, text);
    item = item.substr(b, e - b + 1);
    size_t used = 0;
    long long v = 0;
    try {
      v = std::stoll(item, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (used != item.size()) fail("{}: '{}' is not an integer", flag, item);
    if (v < 0 || v > INT32_MAX) fail("{}: token id {} is out of range", flag, v);
    ids.push_back(int32_t(v));
  }
  if (ids.empty()) fail("{}: no token ids given", flag);
  return ids;
}

std::optional<Tokenizer> try_load_tokenizer(const std::string& model_dir) {
  namespace fs = std::filesystem;
  for (const char* name : {"tokenizer.json", "encoder.json", "vocab.json"})
    if (fs::exists(fs::path(model_dir) / name)) return Tokenizer::from_path(model_dir);
  return std::nullopt;
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail("{}: cannot open for reading", path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void DeviceOptions::add_to(CLI::App* cmd) {
  cmd->add_option("--device", device, "Where to run: cpu, cuda, or auto (cuda when a Hopper GPU is present)")
      ->check(CLI::IsMember({"auto", "cpu", "cuda"}))
      ->capture_default_str();
  cmd->add_option("--threads", threads, "CPU threads (0: one per core)")->check(CLI::Range(0, 1024));
  cmd->add_option("--kv-cache-dtype", kv_cache_dtype,
                  "KV cache storage: auto (the activation dtype: f32 on the CPU, bf16 on CUDA), bf16, or fp8 (e4m3 "
                  "with one f32 scale per token and kv head: half the bytes of bf16, twice the sequences)")
      ->check(CLI::IsMember({"auto", "bf16", "fp8"}))
      ->capture_default_str();
}

DType DeviceOptions::kv_dtype(const Backend& backend) const {
  if (kv_cache_dtype == "fp8") return DType::F8E4M3;
  if (kv_cache_dtype == "bf16") {
    ROOFLINE_CHECK(backend.activation_dtype() == DType::BF16,
                   "--kv-cache-dtype bf16: the {} backend keeps its KV cache in {} (use auto or fp8)", backend.name(),
                   dtype_name(backend.activation_dtype()));
    return DType::BF16;
  }
  return backend.activation_dtype();
}

size_t available_memory() {
  std::ifstream meminfo("/proc/meminfo");
  std::string key;
  size_t kib = 0;
  while (meminfo >> key >> kib) {
    if (key == "MemAvailable:") return kib * 1024;
    meminfo.ignore(256, '\n');
  }
  return 0;
}

std::string DeviceOptions::resolved_device() const {
  if (device != "auto") return device;
#ifdef ROOFLINE_HAVE_CUDA
  for (const cuda::DeviceInfo& d : cuda::list_devices())
    if (d.sm_major == 9 && d.sm_minor == 0) return "cuda";
#endif
  return "cpu";
}

namespace {
BackendHook& backend_hook() {
  static BackendHook hook;
  return hook;
}
std::unique_ptr<Backend> hooked(std::unique_ptr<Backend> backend) {
  return backend_hook() ? backend_hook()(std::move(backend)) : std::move(backend);
}
}  // namespace

void set_backend_hook(BackendHook hook) { backend_hook() = std::move(hook); }

std::unique_ptr<Backend> DeviceOptions::make_backend() const {
  const std::string d = resolved_device();
  if (d == "cuda") {
#ifdef ROOFLINE_HAVE_CUDA
    return hooked(cuda::make_cuda_backend(0));
#else
    fail("--device cuda: this build has no CUDA backend (configure with -DROOFLINE_CUDA=ON on a machine with nvcc); "
         "use --device cpu");
#endif
  }
  return hooked(make_cpu_backend(threads));
}

RunnableModel DeviceOptions::load(const std::string& model_dir) const {
  RunnableModel r;
  r.model = Model::load(model_dir);
  r.backend = make_backend();
  r.weights = upload_weights(r.model->weights, *r.backend);
  r.decoder = std::make_unique<Decoder>(r.model->spec, r.weights, *r.backend, kv_dtype(*r.backend));
  return r;
}

size_t free_device_memory(const Backend& backend) {
#ifdef ROOFLINE_HAVE_CUDA
  if (backend.device() == Device::CUDA) {
    size_t free = 0, total = 0;
    if (cudaMemGetInfo(&free, &total) == cudaSuccess) return free;
    return 0;
  }
#endif
  (void)backend;
  return available_memory();
}

void SamplingOptions::add_to(CLI::App* cmd) {
  cmd->add_option("--temperature", temperature, "Sampling temperature; 0 is greedy (default: the model's generation_config, else greedy)");
  cmd->add_option("--top-k", top_k, "Keep the K most likely tokens (0: off)");
  cmd->add_option("--top-p", top_p, "Keep the smallest set of tokens whose probability reaches P (1: off)");
  cmd->add_option("--min-p", min_p, "Drop tokens less likely than P times the most likely one (0: off)");
  cmd->add_option("--repetition-penalty", repetition_penalty, "Penalise tokens already in prompt or output (1: off)");
  cmd->add_option("--presence-penalty", presence_penalty, "Subtract from logits of tokens already generated");
  cmd->add_option("--frequency-penalty", frequency_penalty, "Subtract, per occurrence, from logits of generated tokens");
  cmd->add_option("--seed", seed, "Random seed: the same seed gives the same output (default: random)");
}

SamplingParams SamplingOptions::resolve(const ModelSpec& spec) const {
  const GenerationDefaults& g = spec.generation;
  SamplingParams p;
  p.temperature = temperature ? *temperature : (g.do_sample ? g.temperature : 0.0);
  p.top_k = top_k ? *top_k : (g.do_sample ? g.top_k : 0);
  p.top_p = top_p ? *top_p : (g.do_sample ? g.top_p : 1.0);
  p.min_p = min_p ? *min_p : (g.do_sample ? g.min_p : 0.0);
  p.repetition_penalty = repetition_penalty ? *repetition_penalty : g.repetition_penalty;
  p.presence_penalty = presence_penalty;
  p.frequency_penalty = frequency_penalty;
  p.seed = seed ? *seed : uint64_t(std::chrono::steady_clock::now().time_since_epoch().count());
  p.validate();
  return p;
}

std::vector<int32_t> eos_ids(const ModelSpec& spec, const Tokenizer* tokenizer) {
  std::vector<int32_t> ids;
  for (int64_t id : spec.eos_token_ids) ids.push_back(int32_t(id));
  if (tokenizer && !tokenizer->config().eos_token.empty())
    if (auto id = tokenizer->token_to_id(tokenizer->config().eos_token))
      if (std::find(ids.begin(), ids.end(), *id) == ids.end()) ids.push_back(*id);
  return ids;
}

}  // namespace roofline::app
