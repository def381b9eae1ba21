// The training loop: model from scratch (a ModelSpec from a few sizes and a tokenizer), from a Hugging Face
// checkpoint (--init) or from a checkpoint of our own (--resume); data from a prepared directory or one
// fixed sequence (the overfit-one-batch form); AdamW or SGD with a schedule, clipping and gradient
// accumulation; evaluation, checkpoints, a JSONL log, a live progress line and an SVG loss curve.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "roofline/core/thread_pool.h"
#include "roofline/model/model_spec.h"
#include "roofline/train/model.h"
#include "roofline/train/trainable.h"

namespace roofline::train {

struct TrainOptions {
  // Model from scratch.
  std::string arch;  // "llama" | "gpt2"
  int64_t layers = 0, hidden = 0, heads = 0, kv_heads = 0, ffn = 0, head_dim = 0, max_positions = 0;
  double rope_theta = 10000.0;
  std::optional<bool> tie_embeddings;  // llama default false; gpt2 always ties
  std::string tokenizer;               // file or directory; default: the data directory's copy
  // Or a Hugging Face checkpoint to fine-tune.
  std::string init;
  // Data.
  std::string data;
  std::vector<int32_t> data_tokens;  // the overfit form: this one sequence is the whole batch of every step
  int64_t seq = 256, batch = 8, grad_accum = 1, steps = 100;
  // Optimisation.
  std::string optimizer = "adamw", schedule;  // schedule default: cosine (constant with data_tokens)
  double lr = 3e-4, min_lr_ratio = 0.1, decay_fraction = 0.2;
  int64_t warmup = 0;
  std::optional<double> weight_decay, clip;  // defaults: adamw 0.1 / sgd 0; clip 1.0 (off with data_tokens)
  double beta1 = 0.9, beta2 = 0.95, adam_eps = 1e-8;
  bool decay_embeddings = false;
  uint64_t seed = 1337;
  bool checkpoint_activations = false;
  // cuda: "heuristic" (cuBLASLt's first), "tune" (time, keep the fastest) or a file of kept choices to repeat
  std::string gemm_algorithms = "heuristic";
  // Output.
  std::string out;
  int64_t save_every = 0;  // 0: only at the end
  bool resume = false;
  int64_t stop_at = 0;     // > 0: stop (and save) after this step, as an interrupted run would; --resume goes on
  std::string log_json;
  int64_t eval_every = 0, eval_batches = 8;
  std::string device = "cpu";
  int threads = 0;
  double peak_flops = 0;  // for MFU; 0: not shown on the CPU, the measured bf16 GEMM ceiling on CUDA
  bool progress = true;   // the live line (only on a TTY) / periodic lines otherwise
};

struct TrainSummary {
  int64_t steps_done = 0, first_step = 0, tokens = 0;
  double seconds = 0, tokens_per_s = 0, mfu = 0, final_loss = 0;
  std::optional<double> val_loss;
  int64_t parameters = 0;
  size_t activation_bytes = 0;  // activations kept between forward and backward (per micro-batch)
  size_t device_bytes_in_use = 0;  // CUDA: GPU memory in use at the end (weights, state, activations, workspaces)
  DeviceMemoryAccount device_memory;  // CUDA: the model's own allocations by category, next to cudaMemGetInfo
  double peak_flops = 0;           // the peak MFU is measured against
  std::string out, svg;
  std::vector<double> losses;  // of the steps run in this session
};

TrainSummary run_training(const TrainOptions& options);

// Builds the spec of a model from scratch (checked; clear errors for bad sizes).
ModelSpec spec_from_options(const TrainOptions& options, int64_t vocab_size, std::optional<int64_t> bos,
                            std::optional<int64_t> eos);

// Mean next-token cross-entropy of `tokens` under the model, in consecutive windows of up to `window`
// predictions (each window restarts the context).
CrossEntropyResult score_tokens(TrainModel& model, const std::vector<int32_t>& tokens, int64_t window);

// An SVG line chart of (step, loss) points, with an optional second series (validation).
std::string loss_curve_svg(const std::vector<std::pair<double, double>>& train,
                           const std::vector<std::pair<double, double>>& val, const std::string& title);

}  // namespace roofline::train
