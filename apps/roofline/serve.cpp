// roofline serve: an OpenAI-compatible HTTP server over the continuous-batching engine (CPU for now).
// See src/roofline/server/http_server.h for the API. SIGINT/SIGTERM drain: new requests get 503, accepted
// ones finish, then the process exits 0; a second signal stops at once, cancelling what is left (exit 1).
#include <signal.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <thread>

#include "commands.h"
#include "common.h"
#include "roofline/core/error.h"
#include "roofline/model/decoder.h"
#include "roofline/server/engine.h"
#include "roofline/server/http_server.h"
#include "roofline/server/model_runner.h"
#include "roofline/tokenizer/chat_template.h"

namespace roofline::app {
namespace {

// "1073741824", "512MiB", "4G" (K/M/G/T with or without "iB" are powers of 1024).
size_t parse_bytes(const std::string& text, const std::string& flag) {
  size_t used = 0;
  double value = 0;
  try {
    value = std::stod(text, &used);
  } catch (const std::exception&) {
    fail("{}: '{}' is not a size (e.g. 2147483648, 512MiB, 4G)", flag, text);
  }
  std::string unit = text.substr(used);
  if (unit.size() == 3 && unit.substr(1) == "iB") unit = unit.substr(0, 1);
  const std::string units = "KMGT";
  double scale = 1;
  if (unit.size() == 1 && units.find(unit[0]) != std::string::npos)
    scale = double(1ull << (10 * (units.find(unit[0]) + 1)));
  else if (!unit.empty() && unit != "B")
    fail("{}: unknown unit '{}' in '{}' (use K, M, G, T)", flag, unit, text);
  if (!(value > 0)) fail("{}: '{}' must be positive", flag, text);
  return size_t(value * scale);
}

std::string model_name(const std::string& dir) {
  std::filesystem::path p = std::filesystem::path(dir).lexically_normal();
  if (p.filename().empty()) p = p.parent_path();
  return p.filename().string();
}

// Waits for SIGINT/SIGTERM (blocked in every thread, see below); timeout < 0 waits for ever.
bool wait_for_signal(int timeout_ms) {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  if (timeout_ms < 0) {
    int sig = 0;
    return sigwait(&set, &sig) == 0;
  }
  timespec ts{.tv_sec = timeout_ms / 1000, .tv_nsec = long(timeout_ms % 1000) * 1000000};
  return sigtimedwait(&set, nullptr, &ts) > 0;
}

}  // namespace

Run add_serve(CLI::App& root) {
  struct Options {
    std::string model, host = "127.0.0.1", api_key, kv_memory, max_body = "8MiB", batching = "continuous";
    double gpu_memory_utilization = 0.9;
    int port = 8080, max_queue = 256, block_size = 16, max_num_seqs = 256, max_batched_tokens = 2048, http_threads = 0;
    double request_timeout = 600;
    DeviceOptions device;
  };
  auto o = std::make_shared<Options>();
  CLI::App* cmd = root.add_subcommand("serve", "Serve a model over an OpenAI-compatible HTTP API");
  cmd->add_option("-m,--model", o->model, "Model directory (config.json, *.safetensors, tokenizer.json)")->required();
  cmd->add_option("--host", o->host, "Address to listen on (loopback unless told otherwise)")->capture_default_str();
  cmd->add_option("--port", o->port, "Port to listen on; 0 picks a free one")
      ->check(CLI::Range(0, 65535))
      ->capture_default_str();
  cmd->add_option("--api-key", o->api_key, "Require 'Authorization: Bearer KEY' on /v1/* routes");
  cmd->add_option("--max-queue", o->max_queue, "Waiting sequences at most; more answer 429")
      ->check(CLI::Range(0, 1 << 20))
      ->capture_default_str();
  cmd->add_option("--kv-memory", o->kv_memory,
                  "KV cache budget, e.g. 2GiB (default: CPU 25% of available memory; GPU see --gpu-memory-utilization)");
  cmd->add_option("--gpu-memory-utilization", o->gpu_memory_utilization,
                  "Fraction of GPU memory for weights + KV cache when --kv-memory is not given")
      ->check(CLI::Range(0.05, 0.99));
  cmd->add_option("--block-size", o->block_size, "Tokens per KV cache block")
      ->check(CLI::Range(1, 1024))
      ->capture_default_str();
  cmd->add_option("--max-num-seqs", o->max_num_seqs, "Sequences running at once at most")
      ->check(CLI::Range(1, 1 << 16))
      ->capture_default_str();
  cmd->add_option("--batching", o->batching,
                  "continuous: requests join and leave the batch every step; static: a batch runs until all of "
                  "it has finished, its whole KV reserved up front (the baseline continuous batching beats)")
      ->check(CLI::IsMember({"continuous", "static"}))
      ->capture_default_str();
  cmd->add_option("--max-batched-tokens", o->max_batched_tokens, "Tokens per engine step at most")
      ->check(CLI::Range(1, 1 << 24))
      ->capture_default_str();
  cmd->add_option("--request-timeout", o->request_timeout, "Seconds before a request is cancelled (408 / error event)")
      ->check(CLI::Range(0.001, 1e7))
      ->capture_default_str();
  cmd->add_option("--max-body", o->max_body, "Largest request body; larger ones answer 413 (e.g. 8MiB)")
      ->capture_default_str();
  cmd->add_option("--http-threads", o->http_threads,
                  "HTTP worker threads, one per open connection (default: max-num-seqs + max-queue + 64)")
      ->check(CLI::Range(0, 1 << 16));
  o->device.add_to(cmd);
  return [o]() {
    // Signals are taken synchronously by the main thread (sigwait): block them before any thread starts,
    // so that every thread inherits the mask and none is interrupted.
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set, nullptr);
    signal(SIGPIPE, SIG_IGN);  // a client that went away must fail a write, not kill the server

    auto model = Model::load(o->model);
    auto tokenizer = try_load_tokenizer(o->model);
    if (!tokenizer) fail("{}: serve needs a tokenizer (tokenizer.json) in the model directory", o->model);
    std::unique_ptr<ChatTemplate> chat_template;
    if (const std::string& source = tokenizer->config().chat_template; !source.empty()) {
      try {
        chat_template = std::make_unique<ChatTemplate>(source);
      } catch (const Error& e) {
        std::fprintf(stderr,
                     "roofline serve: warning: the chat template does not parse (%s); "
                     "/v1/chat/completions will answer 400\n",
                     e.what());
      }
    }
    const ModelSpec& spec = model->spec;
    auto backend = o->device.make_backend();
    const ModelWeights weights = upload_weights(model->weights, *backend);
    Decoder decoder(spec, weights, *backend, o->device.kv_dtype(*backend));

    // The KV pool: K and V of every layer in the cache dtype (--kv-cache-dtype). Default budget: on a GPU, what
    // --gpu-memory-utilization leaves after the weights (minus room for activations); on the CPU a quarter of
    // the available memory.
    const size_t kv_bytes_per_token = spec.kv_bytes_per_token(decoder.kv_cache_dtype());
    size_t kv_budget = 0;
    if (!o->kv_memory.empty()) {
      kv_budget = parse_bytes(o->kv_memory, "--kv-memory");
    } else if (backend->device() == Device::CUDA) {
      const double total_free = double(free_device_memory(*backend));
      const double keep = (1.0 - o->gpu_memory_utilization) * (total_free + double(weights.decode_bytes()));
      kv_budget = size_t(std::max(0.0, total_free - keep - double(size_t(1) << 30)));
    } else {
      kv_budget = free_device_memory(*backend) / 4;
    }
    server::EngineConfig config;
    config.scheduler.max_num_seqs = o->max_num_seqs;
    config.scheduler.max_num_batched_tokens = o->max_batched_tokens;
    config.scheduler.batching = o->batching == "static" ? serving::Batching::kStatic : serving::Batching::kContinuous;
    config.kv.block_size = o->block_size;
    config.kv.num_blocks = serving::kv_blocks_for_memory(kv_budget, kv_bytes_per_token, o->block_size);
    if (config.kv.num_blocks < 1)
      fail("--kv-memory: {} bytes hold no block of {} tokens at {} bytes per token", kv_budget, o->block_size,
           kv_bytes_per_token);
    auto runner = server::make_paged_kv_runner(decoder, config.kv.num_blocks, config.kv.block_size);
    config.max_queue = o->max_queue;
    config.context_length = spec.max_position_embeddings;
    config.eos_ids = eos_ids(spec, &*tokenizer);
    server::Metrics metrics;
    server::Engine engine(*runner, *tokenizer, config, metrics);

    server::ServedModel served{.name = model_name(o->model),
                               .tokenizer = &*tokenizer,
                               .chat_template = chat_template.get(),
                               .context_length = spec.max_position_embeddings,
                               .vocab_size = spec.vocab_size,
                               .generation = spec.generation};
    server::HttpServerConfig http;
    http.host = o->host;
    http.port = o->port;
    http.api_key = o->api_key;
    http.max_body_bytes = parse_bytes(o->max_body, "--max-body");
    http.request_timeout = std::chrono::milliseconds(int64_t(o->request_timeout * 1000));
    // Every running or queued request holds a connection, and so a worker thread, while it streams; the
    // rest serve probes, rejections and keep-alive connections between requests.
    http.threads = o->http_threads > 0 ? o->http_threads : std::min(o->max_num_seqs + o->max_queue + 64, 4096);
    server::HttpServer server(engine, served, metrics, http);
    const int port = server.bind();
    engine.start();
    std::atomic<bool> stopping{false}, listen_failed{false};
    std::thread listener([&] {
      server.run();
      if (stopping) return;
      listen_failed = true;  // listening ended on its own: wake the main thread
      kill(getpid(), SIGTERM);
    });
    std::fprintf(stderr, "roofline serve: %s (context %lld tokens), KV cache %d blocks x %d tokens, %s (%.1f MiB)\n",
                 served.name.c_str(), (long long)served.context_length, config.kv.num_blocks, config.kv.block_size,
                 std::string(dtype_name(decoder.kv_cache_dtype())).c_str(), double(kv_budget) / (1 << 20));
    std::fprintf(stderr, "roofline serve: listening on http://%s:%d\n", o->host.c_str(), port);

    wait_for_signal(-1);
    if (!listen_failed) std::fprintf(stderr, "roofline serve: draining (a second signal stops at once)\n");
    server.begin_drain();
    bool forced = false;
    while (!server.drained())
      if (wait_for_signal(20)) {
        forced = true;
        break;
      }
    // The engine first: after a forced stop it ends the requests left (their handlers answer and return),
    // so that stopping the server, which joins the handler threads, does not wait for them.
    engine.stop();
    stopping = true;
    server.stop();
    listener.join();
    if (listen_failed) fail("serve: the HTTP listener on {}:{} stopped unexpectedly", o->host, port);
    std::fprintf(stderr, "roofline serve: stopped%s\n", forced ? " (forced: requests were cancelled)" : "");
    return forced ? 1 : 0;
  };
}

}  // namespace roofline::app
