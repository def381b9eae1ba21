// Helpers shared by the subcommands: argument parsing that CLI11 does not do, model/tokenizer loading.
#pragma once
#include <CLI/CLI.hpp>

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "roofline/backend/backend.h"
#include "roofline/engine/sampler.h"
#include "roofline/model/decoder.h"
#include "roofline/model/model.h"
#include "roofline/tokenizer/tokenizer.h"

namespace roofline::app {

// "1,2,3" (spaces allowed) -> ids; throws roofline::Error naming the flag and the bad item.
std::vector<int32_t> parse_id_list(const std::string& text, const std::string& flag);

// The tokenizer of a model directory, or nullopt when the directory has none.
std::optional<Tokenizer> try_load_tokenizer(const std::string& model_dir);

// Reads a whole file; throws roofline::Error naming it.
std::string read_file(const std::string& path);

// A model ready to run: the checkpoint, the backend, the weights on its device and a decoder over them.
struct RunnableModel {
  std::unique_ptr<Model> model;
  std::unique_ptr<Backend> backend;
  ModelWeights weights;  // on backend's device (the checkpoint's views on the CPU)
  std::unique_ptr<Decoder> decoder;
  const ModelSpec& spec() const { return model->spec; }
};

// Process-wide hook for `roofline profile`: while set, make_backend() passes every backend it creates through
// it (the profiler wraps it in a recording backend). One command runs per process, so one hook suffices.
using BackendHook = std::function<std::unique_ptr<Backend>(std::unique_ptr<Backend>)>;
void set_backend_hook(BackendHook hook);

// --device, --threads and --kv-cache-dtype, shared by every command that runs a model.
struct DeviceOptions {
  std::string device = "auto";  // auto: cuda when a GPU is present, else cpu
  int threads = 0;
  std::string kv_cache_dtype = "auto";  // auto: the backend's activation dtype; bf16; fp8 (e4m3 with scales)
  void add_to(CLI::App* cmd);
  // "cpu" or "cuda": what `auto` resolves to on this machine.
  std::string resolved_device() const;
  std::unique_ptr<Backend> make_backend() const;
  // The KV cache dtype for decoders on `backend` (auto resolved); a dtype the backend cannot keep is an Error.
  DType kv_dtype(const Backend& backend) const;
  RunnableModel load(const std::string& model_dir) const;
};

// MemAvailable from /proc/meminfo, in bytes (0 when unreadable).
size_t available_memory();
// The device's free memory in bytes (host: available RAM).
size_t free_device_memory(const Backend& backend);

// Sampling flags shared by generate and chat. Unset flags fall back to the model's generation_config.
struct SamplingOptions {
  std::optional<double> temperature, top_p, min_p, repetition_penalty;
  std::optional<int> top_k;
  double presence_penalty = 0, frequency_penalty = 0;
  std::optional<uint64_t> seed;
  void add_to(CLI::App* cmd);
  SamplingParams resolve(const ModelSpec& spec) const;
};

// EOS ids: the model's (config + generation_config) plus the tokenizer's eos token.
std::vector<int32_t> eos_ids(const ModelSpec& spec, const Tokenizer* tokenizer);

}  // namespace roofline::app
