// roofline train: train a GPT-2 or Llama-family model on the CPU (from scratch, or fine-tuning a Hugging Face
// checkpoint), writing the result as a Hugging Face model directory. Every flag can also come from
// --config FILE (TOML or JSON); flags given on the command line win.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <string>

#include "commands.h"
#include "common.h"
#include "roofline/core/error.h"
#include "roofline/perf/cpu_hardware.h"
#include "roofline/train/config_file.h"
#include "roofline/trainer/trainer.h"

namespace roofline::app {

Run add_train(CLI::App& root) {
  struct Options {
    train::TrainOptions t;
    std::string config, data_tokens, tie;
    double weight_decay = std::numeric_limits<double>::quiet_NaN(), clip = std::numeric_limits<double>::quiet_NaN();
    bool quiet = false;
  };
  auto o = std::make_shared<Options>();
  train::TrainOptions& t = o->t;
  CLI::App* cmd = root.add_subcommand("train", "Train a GPT-2 or Llama-family model (CPU, f32)");
  cmd->add_option("--config", o->config, "TOML or JSON file of flag values (command-line flags override it)");
  cmd->add_option("--arch", t.arch, "New model: llama or gpt2");
  cmd->add_option("--layers", t.layers, "New model: layers");
  cmd->add_option("--hidden", t.hidden, "New model: hidden size");
  cmd->add_option("--heads", t.heads, "New model: attention heads");
  cmd->add_option("--kv-heads", t.kv_heads, "New model: key/value heads (default: --heads)");
  cmd->add_option("--ffn", t.ffn, "New model: MLP size (default: 4x hidden for gpt2, ~8/3x for llama)");
  cmd->add_option("--head-dim", t.head_dim, "New model: head dimension (default hidden / heads)");
  cmd->add_option("--max-positions", t.max_positions, "New model: max positions (default: max(seq, 1024 gpt2 / 2048 llama))");
  cmd->add_option("--rope-theta", t.rope_theta, "New llama model: RoPE base (default 10000)");
  cmd->add_option("--tie-embeddings", o->tie, "New llama model: tie lm_head to the embedding (true|false)");
  cmd->add_option("--tokenizer", t.tokenizer, "New model: tokenizer.json or a directory (default: the data's)");
  cmd->add_option("--init", t.init, "Fine-tune from this Hugging Face model directory");
  cmd->add_option("--data", t.data, "Data directory from `roofline data prepare`");
  cmd->add_option("--data-tokens", o->data_tokens, "Overfit one batch: this sequence is the whole batch of every step");
  cmd->add_option("--seq", t.seq, "Sequence length (default 256)");
  cmd->add_option("--batch", t.batch, "Micro-batch size in sequences (default 8)");
  cmd->add_option("--grad-accum", t.grad_accum, "Micro-batches per optimizer step (default 1)");
  cmd->add_option("--steps", t.steps, "Optimizer steps in total (default 100)");
  cmd->add_option("--lr", t.lr, "Peak learning rate (default 3e-4)");
  cmd->add_option("--min-lr-ratio", t.min_lr_ratio, "Floor of the decaying schedules as a fraction of --lr (default 0.1)");
  cmd->add_option("--schedule", t.schedule, "constant, cosine, linear or wsd (default cosine; constant with --data-tokens)");
  cmd->add_option("--warmup", t.warmup, "Linear warmup steps (default 0)");
  cmd->add_option("--decay-fraction", t.decay_fraction, "wsd: fraction of the steps spent decaying (default 0.2)");
  cmd->add_option("--optimizer", t.optimizer, "adamw or sgd (default adamw)");
  cmd->add_option("--weight-decay", o->weight_decay, "Decoupled weight decay (default 0.1 adamw, 0 sgd)");
  cmd->add_flag("--decay-embeddings", t.decay_embeddings, "Apply weight decay to embeddings too");
  cmd->add_option("--beta1", t.beta1, "AdamW beta1 (default 0.9)");
  cmd->add_option("--beta2", t.beta2, "AdamW beta2 (default 0.95)");
  cmd->add_option("--adam-eps", t.adam_eps, "AdamW epsilon (default 1e-8)");
  cmd->add_option("--clip", o->clip, "Clip gradients to this global norm (default 1.0; 0 = off; off with --data-tokens)");
  cmd->add_option("--seed", t.seed, "Seed of initialisation and data order (default 1337)");
  cmd->add_flag("--checkpoint-activations", t.checkpoint_activations, "Recompute each layer in backward (less memory)");
  cmd->add_option("--gemm-algorithms", t.gemm_algorithms,
                  "cuda: heuristic (cuBLASLt's first choice; default), tune (time its candidates once per GEMM "
                  "shape, keep the fastest; the choices are saved with checkpoints and reused by --resume), or "
                  "FILE (a trainer_state/state.json whose kept choices this run repeats)");
  cmd->add_option("--out", t.out, "Checkpoint directory (a Hugging Face model directory + trainer_state/)");
  cmd->add_option("--save-every", t.save_every, "Save a checkpoint every K steps (default: at the end only)");
  cmd->add_option("--stop-at", t.stop_at, "Stop and save after this step (a time-boxed session; --resume continues)");
  cmd->add_flag("--resume", t.resume, "Continue the run checkpointed in --out exactly where it stopped");
  cmd->add_option("--log-json", t.log_json, "JSONL log, one object per step (an SVG loss curve is written beside it)");
  cmd->add_option("--eval-every", t.eval_every, "Validation loss and perplexity every N steps (and at the end)");
  cmd->add_option("--eval-batches", t.eval_batches, "Validation batches per evaluation (default 8)");
  cmd->add_option("--device", t.device, "cpu (f32) or cuda (one GPU, bf16 mixed precision)");
  cmd->add_option("--threads", t.threads, "Threads (default: all)");
  cmd->add_flag("--quiet", o->quiet, "No progress line");
  return [o, cmd]() {
    if (!o->config.empty()) {
      for (const auto& [key, value] : train::read_config_file(o->config)) {
        if (key == "config") fail("{}: a config file cannot name another config", o->config);
        CLI::Option* opt = cmd->get_option_no_throw("--" + key);
        if (!opt) fail("{}: unknown key '{}' (keys are the flags of `roofline train --help`)", o->config, key);
        if (opt->count() > 0) continue;  // the command line wins
        try {
          opt->add_result(value);
          opt->run_callback();
        } catch (const CLI::Error& e) {
          fail("{}: key '{}' = '{}': {}", o->config, key, value, e.what());
        }
      }
    }
    train::TrainOptions t = o->t;
    if (!o->data_tokens.empty()) t.data_tokens = parse_id_list(o->data_tokens, "--data-tokens");
    if (!std::isnan(o->weight_decay)) t.weight_decay = o->weight_decay;
    if (!std::isnan(o->clip)) t.clip = o->clip;
    if (!o->tie.empty()) {
      if (o->tie != "true" && o->tie != "false") fail("--tie-embeddings must be true or false, got '{}'", o->tie);
      t.tie_embeddings = o->tie == "true";
    }
    if (t.init.empty() && !t.resume && t.data_tokens.empty() && t.arch.empty())
      fail("give --arch llama|gpt2 and sizes for a new model, or --init DIR to fine-tune");
    t.progress = !o->quiet;
    // MFU: the CPU's f32 peak; on CUDA the trainer measures the GPU's bf16 GEMM ceiling itself.
    if (t.device == "cpu") t.peak_flops = perf::describe_this_cpu().peak_f32_flops();
    if (t.device == "cpu" && t.threads > 0) t.peak_flops *= std::min(1.0, double(t.threads) / std::max(1, perf::describe_this_cpu().physical_cores));
    train::TrainSummary s = train::run_training(t);
    std::printf("trained %lld steps (%lld tokens) in %.1f s: %.0f tok/s, MFU %.1f%% of %.0f GFLOP/s, final loss %.4f",
                (long long)s.steps_done, (long long)s.tokens, s.seconds, s.tokens_per_s, 100 * s.mfu, s.peak_flops / 1e9,
                s.final_loss);
    if (s.val_loss) std::printf(", val loss %.4f (ppl %.2f)", *s.val_loss, std::exp(*s.val_loss));
    std::printf("\n");
    if (s.activation_bytes)
      std::printf("activations: %.1f MiB per micro-batch%s\n", double(s.activation_bytes) / (1 << 20),
                  t.checkpoint_activations ? " (checkpointed: layer inputs + one layer)" : "");
    if (s.device_bytes_in_use)
      std::printf("device memory in use: %.2f GiB\n", double(s.device_bytes_in_use) / (1 << 30));
    if (const train::DeviceMemoryAccount& m = s.device_memory; m.in_use) {
      // The trainer's exact allocations (the categories of roofline estimate's memory_bytes) against the whole
      // device's in-use figure; the rest is the CUDA context, cuBLASLt's state, the driver's local memory for
      // kernels, allocation rounding and any other process on the GPU.
      constexpr double kGiB = double(1 << 30);
      std::printf("  trainer allocations %.2f GiB (plan %.2f):", double(m.allocated_total()) / kGiB,
                  double(m.planned) / kGiB);
      for (int c = 0; c < train::kDeviceMemoryCategories; ++c)
        std::printf(" %s %.2f", std::string(train::to_string(train::DeviceMemoryCategory(c))).c_str(),
                    double(m.allocated[size_t(c)]) / kGiB);
      std::printf("\n  not the trainer's %.2f GiB: %.2f in use before its first allocation (CUDA context, other "
                  "processes), %.2f since (cuBLASLt, kernels' local memory, allocation rounding)\n",
                  double(m.in_use - std::min(m.in_use, m.allocated_total())) / kGiB, double(m.in_use_before) / kGiB,
                  double(m.in_use - std::min(m.in_use, m.allocated_total() + m.in_use_before)) / kGiB);
    }
    if (!s.out.empty()) std::printf("checkpoint: %s (roofline generate -m %s)\n", s.out.c_str(), s.out.c_str());
    if (!s.svg.empty()) std::printf("loss curve: %s\n", s.svg.c_str());
    return 0;
  };
}

}  // namespace roofline::app
