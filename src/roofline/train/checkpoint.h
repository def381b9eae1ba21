// Checkpoints. DIR is a Hugging Face model directory (config.json, model.safetensors in f32 with HF names,
// tokenizer files) that `roofline generate -m DIR` and transformers load, plus DIR/trainer_state/
// (state.json: step, data-loader position, seed, run options; optimizer.safetensors: the AdamW moments).
//
// A save never exposes a half-written checkpoint: everything is written into a sibling DIR.tmp-<pid>
// (each file fsynced, then the directory), which then replaces DIR in one atomic step (renameat2
// RENAME_EXCHANGE when DIR exists, else rename), and the parent directory is fsynced. A kill -9 at any
// moment leaves the previous DIR whole; a stale DIR.tmp-* is removed by the next save.
#pragma once
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>

#include "roofline/train/model.h"
#include "roofline/train/optimizer.h"

namespace roofline::train {

struct TrainerState {
  int64_t step = 0;             // optimizer steps done
  int64_t loader_position = 0;  // index of the next training batch
  int64_t tokens_seen = 0;
  uint64_t seed = 0;
  double elapsed_seconds = 0;   // training time of earlier sessions
  nlohmann::json options;       // the run's options, for the record and for --resume checks
  nlohmann::json gemm_algorithms;  // the model's GEMM choices (Trainable::gemm_algorithms); null: none kept
};

// tokenizer_source: a tokenizer.json file or a directory whose tokenizer files are copied ("" = none).
void save_checkpoint(const std::string& dir, const TrainModel& model, const Optimizer& optimizer,
                     const TrainerState& state, const std::string& tokenizer_source);
// The same from parameters of any device, brought to the host (f32, ParamLayout order).
void save_checkpoint(const std::string& dir, const ModelSpec& spec, const ParamLayout& layout, const float* params,
                     const Optimizer& optimizer, const TrainerState& state, const std::string& tokenizer_source);

bool has_trainer_state(const std::string& dir);
// Reads DIR/trainer_state into state and the optimizer (whose config must match the saved kind).
void load_trainer_state(const std::string& dir, Optimizer& optimizer, TrainerState& state);

// Copies the tokenizer files of `source` (file or directory) into `dir`.
void copy_tokenizer(const std::string& source, const std::string& dir);

}  // namespace roofline::train
