#include "roofline/trainer/trainer.h"

#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "roofline/backend/gemm_algorithm_table.h"
#include "roofline/core/atomic_file.h"
#include "roofline/core/error.h"
#include "roofline/model/model.h"
#include "roofline/tokenizer/tokenizer.h"
#include "roofline/train/checkpoint.h"
#include "roofline/train/data.h"
#include "roofline/train/optimizer.h"
#include "roofline/train/trainable.h"
#if ROOFLINE_HAVE_TRAIN_CUDA
#include "roofline/train/cuda/cuda_train_model.h"
#endif

namespace roofline::train {
namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

ModelSpec spec_from_options(const TrainOptions& o, int64_t vocab_size, std::optional<int64_t> bos,
                            std::optional<int64_t> eos) {
  if (o.arch != "llama" && o.arch != "gpt2") fail("--arch must be llama or gpt2, got '{}'", o.arch);
  auto positive = [](const char* flag, int64_t v) {
    if (v <= 0) fail("{} must be positive, got {}", flag, v);
  };
  positive("--layers", o.layers);
  positive("--hidden", o.hidden);
  positive("--heads", o.heads);
  ModelSpec s;
  s.vocab_size = vocab_size;
  s.hidden_size = o.hidden;
  s.num_layers = o.layers;
  s.num_heads = o.heads;
  s.num_kv_heads = o.kv_heads > 0 ? o.kv_heads : o.heads;
  s.intermediate_size = o.ffn > 0 ? o.ffn : (o.arch == "gpt2" ? 4 * o.hidden : (8 * o.hidden / 3 + 63) / 64 * 64);
  s.bos_token_id = bos;
  if (eos) s.eos_token_ids = {*eos};
  if (o.arch == "gpt2") {
    if (o.hidden % o.heads != 0) fail("--hidden ({}) must be a multiple of --heads ({}) for gpt2", o.hidden, o.heads);
    if (s.num_kv_heads != s.num_heads) fail("gpt2 has no grouped-query attention: --kv-heads must equal --heads");
    s.architecture = "GPT2LMHeadModel";
    s.model_type = "gpt2";
    s.head_dim = o.hidden / o.heads;
    s.norm = NormKind::LayerNorm;
    s.norm_eps = 1e-5;
    s.mlp = MlpKind::GeluTanh;
    s.position = PositionKind::Learned;
    s.max_position_embeddings = o.max_positions > 0 ? o.max_positions : std::max<int64_t>(o.seq, 1024);
    s.tied_embeddings = true;
    s.qkv_bias = s.output_bias = s.mlp_bias = true;
  } else {
    s.architecture = "LlamaForCausalLM";
    s.model_type = "llama";
    s.head_dim = o.head_dim > 0 ? o.head_dim : (o.hidden % o.heads == 0 ? o.hidden / o.heads : 0);
    if (s.head_dim <= 0) fail("--hidden ({}) is not a multiple of --heads ({}); give --head-dim", o.hidden, o.heads);
    if (s.head_dim % 2) fail("head dimension {} must be even for rotary embeddings", s.head_dim);
    s.norm = NormKind::RMSNorm;
    s.norm_eps = 1e-5;
    s.mlp = MlpKind::GatedSiLU;
    s.position = PositionKind::Rotary;
    s.rope_theta = o.rope_theta;
    s.max_position_embeddings = o.max_positions > 0 ? o.max_positions : std::max<int64_t>(o.seq, 2048);
    s.tied_embeddings = o.tie_embeddings.value_or(false);
  }
  if (s.num_heads % s.num_kv_heads != 0)
    fail("--heads ({}) must be a multiple of --kv-heads ({})", s.num_heads, s.num_kv_heads);
  if (o.seq > s.max_position_embeddings)
    fail("--seq {} exceeds the model's {} positions", o.seq, s.max_position_embeddings);
  check_model_spec(s, "the new model (--layers, --hidden, --heads, --kv-heads, --ffn, --max-positions)");
  return s;
}

CrossEntropyResult score_tokens(TrainModel& model, const std::vector<int32_t>& tokens, int64_t window) {
  CrossEntropyResult total;
  if (tokens.size() < 2) fail("score: need at least 2 tokens, got {}", tokens.size());
  window = std::max<int64_t>(1, window);
  for (size_t begin = 0; begin + 1 < tokens.size(); begin += size_t(window)) {
    const int64_t T = std::min<int64_t>(window, int64_t(tokens.size() - begin) - 1);
    CrossEntropyResult r = model.forward_loss(tokens.data() + begin, 1, T);
    total.loss_sum += r.loss_sum;
    total.count += r.count;
  }
  return total;
}

std::string loss_curve_svg(const std::vector<std::pair<double, double>>& train,
                           const std::vector<std::pair<double, double>>& val, const std::string& title) {
  const double W = 800, H = 450, left = 70, right = 20, top = 40, bottom = 50;
  double x0 = 1e300, x1 = -1e300, y0 = 1e300, y1 = -1e300;
  for (const auto* series : {&train, &val})
    for (auto [x, y] : *series)
      if (std::isfinite(y)) x0 = std::min(x0, x), x1 = std::max(x1, x), y0 = std::min(y0, y), y1 = std::max(y1, y);
  if (x0 > x1) x0 = 0, x1 = 1, y0 = 0, y1 = 1;
  if (x1 == x0) x1 = x0 + 1;
  if (y1 == y0) y1 = y0 + 1;
  auto px = [&](double x) { return left + (x - x0) / (x1 - x0) * (W - left - right); };
  auto py = [&](double y) { return top + (y1 - y) / (y1 - y0) * (H - top - bottom); };
  std::string s = fmt::format(
      "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{}\" height=\"{}\" font-family=\"sans-serif\" "
      "font-size=\"12\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
      "<text x=\"{}\" y=\"24\" font-size=\"15\">{}</text>\n",
      W, H, left, title);
  for (int i = 0; i <= 5; ++i) {
    const double y = y0 + (y1 - y0) * i / 5.0, x = x0 + (x1 - x0) * i / 5.0;
    s += fmt::format("<line x1=\"{}\" y1=\"{:.1f}\" x2=\"{}\" y2=\"{:.1f}\" stroke=\"#ddd\"/>"
                     "<text x=\"{}\" y=\"{:.1f}\" text-anchor=\"end\">{:.3g}</text>\n",
                     left, py(y), W - right, py(y), left - 6, py(y) + 4, y);
    s += fmt::format("<text x=\"{:.1f}\" y=\"{}\" text-anchor=\"middle\">{:.0f}</text>\n", px(x), H - bottom + 18, x);
  }
  s += fmt::format("<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">step</text>\n", (W + left) / 2, H - 10);
  s += fmt::format("<text x=\"16\" y=\"{}\" transform=\"rotate(-90 16 {})\" text-anchor=\"middle\">loss</text>\n",
                   H / 2, H / 2);
  auto line = [&](const std::vector<std::pair<double, double>>& pts, const char* color, const char* name, int row) {
    if (pts.empty()) return;
    s += fmt::format("<polyline fill=\"none\" stroke=\"{}\" stroke-width=\"1.5\" points=\"", color);
    for (auto [x, y] : pts)
      if (std::isfinite(y)) s += fmt::format("{:.1f},{:.1f} ", px(x), py(y));
    s += "\"/>\n";
    s += fmt::format("<text x=\"{}\" y=\"{}\" fill=\"{}\" text-anchor=\"end\">{}</text>\n", W - right - 4,
                     top + 16 * row, color, name);
  };
  line(train, "#1f77b4", "train loss", 1);
  line(val, "#d62728", "validation loss", 2);
  return s + "</svg>\n";
}

namespace {

std::string format_duration(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0) return "?";
  const int64_t s = int64_t(seconds + 0.5);
  if (s >= 3600) return fmt::format("{}h{:02d}m", s / 3600, (s % 3600) / 60);
  if (s >= 60) return fmt::format("{}m{:02d}s", s / 60, s % 60);
  return fmt::format("{}s", s);
}

// Existing log lines up to `last_step` (a resumed run drops what the interrupted one logged past its
// checkpoint), and the points for the plot.
std::string kept_log(const std::string& path, int64_t last_step, std::vector<std::pair<double, double>>& train,
                     std::vector<std::pair<double, double>>& val) {
  std::ifstream in(path);
  std::string line, kept;
  while (std::getline(in, line)) {
    try {
      nlohmann::json j = nlohmann::json::parse(line);
      const int64_t step = j.value("step", int64_t(-1));
      if (step > last_step) continue;
      if (j.contains("loss")) train.emplace_back(double(step), j["loss"].get<double>());
      if (j.contains("val_loss")) val.emplace_back(double(step), j["val_loss"].get<double>());
      kept += line + "\n";
    } catch (const nlohmann::json::exception&) {
    }
  }
  return kept;
}

// --gemm-algorithms: null for "heuristic" and "tune"; else the table kept in the file it names (a checkpoint's
// trainer_state/state.json, or a table alone), so a fresh run can repeat a tuned one's choices exactly.
nlohmann::json read_gemm_algorithms(const std::string& value) {
  if (value == "heuristic" || value == "tune") return nullptr;
  std::ifstream in(value);
  if (!in) fail("--gemm-algorithms must be heuristic, tune or a file of kept choices; cannot read '{}'", value);
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(in);
  } catch (const nlohmann::json::exception& e) {
    fail("--gemm-algorithms {}: not JSON: {}", value, e.what());
  }
  if (j.is_object() && j.contains("gemm_algorithms")) j = j.at("gemm_algorithms");  // a trainer state
  if (!j.is_object() || !j.contains("gemms"))
    fail("--gemm-algorithms {}: no kept GEMM choices in it (expected a trainer_state/state.json with "
         "\"gemm_algorithms\", or an object with \"library\", \"device\" and \"gemms\")", value);
  return j;
}

// The model on the device the options name, starting from `params` (ParamLayout order).
std::unique_ptr<Trainable> make_trainable(const TrainOptions& o, const ModelSpec& spec, ThreadPool& pool,
                                          const std::vector<float>& params, const OptimizerConfig& optimizer) {
  if (o.device == "cpu") return make_cpu_trainable(spec, pool, o.checkpoint_activations, params.data());
#if ROOFLINE_HAVE_TRAIN_CUDA
  return cuda::make_cuda_trainable(spec, o.checkpoint_activations, params.data(), optimizer,
                                   o.gemm_algorithms == "tune");
#else
  (void)optimizer;
  fail("--device cuda: this build has no CUDA training (configure with -DROOFLINE_CUDA=ON where the CUDA toolkit "
       "is installed); use --device cpu");
#endif
}

double device_peak_flops(const TrainOptions& o) {
  if (o.peak_flops > 0 || o.device != "cuda") return o.peak_flops;
#if ROOFLINE_HAVE_TRAIN_CUDA
  return cuda::measured_gemm_peak_flops();
#else
  return 0;
#endif
}

}  // namespace

TrainSummary run_training(const TrainOptions& o) {
  if (o.device != "cpu" && o.device != "cuda") fail("--device must be cpu or cuda, got '{}'", o.device);
  const nlohmann::json kept_gemm_algorithms = read_gemm_algorithms(o.gemm_algorithms);
  const bool overfit = !o.data_tokens.empty();
  if (o.resume && o.out.empty()) fail("--resume needs --out DIR (the checkpoint to continue)");
  if (o.resume && !has_trainer_state(o.out)) fail("--resume: {} holds no checkpoint to resume from", o.out);
  if (!overfit && o.data.empty()) fail("give --data DIR (from `roofline data prepare`) or --data-tokens 1,2,3,...");
  if (overfit && o.data_tokens.size() < 2) fail("--data-tokens needs at least 2 tokens");
  if (o.steps <= 0) fail("--steps must be positive, got {}", o.steps);
  if (!overfit && (o.seq <= 0 || o.batch <= 0 || o.grad_accum <= 0))
    fail("--seq, --batch and --grad-accum must be positive");
  if (!(o.lr > 0) || !std::isfinite(o.lr)) fail("--lr must be positive, got {}", o.lr);
  if (o.stop_at < 0) fail("--stop-at must be >= 0, got {}", o.stop_at);
  if (o.warmup < 0 || o.save_every < 0 || o.eval_every < 0) fail("--warmup, --save-every and --eval-every must be >= 0");
  const OptimizerKind opt_kind = parse_optimizer(o.optimizer);
  const ScheduleKind schedule = parse_schedule(o.schedule.empty() ? (overfit ? "constant" : "cosine") : o.schedule);
  if (!o.init.empty() && !fs::is_directory(o.init)) fail("--init {}: not a directory", o.init);
  if (!o.data.empty() && !fs::is_directory(o.data)) fail("--data {}: not a directory", o.data);

  // Optimiser settings (the CUDA model keeps its moments on the device).
  OptimizerConfig oc;
  oc.kind = opt_kind;
  oc.beta1 = o.beta1;
  oc.beta2 = o.beta2;
  oc.eps = o.adam_eps;
  oc.weight_decay = o.weight_decay.value_or(opt_kind == OptimizerKind::AdamW && !overfit ? 0.1 : 0.0);
  oc.decay_embeddings = o.decay_embeddings;

  ThreadPool pool(o.threads);
  // The model: resumed, fine-tuned from a checkpoint, or new; its parameters are built on the host first.
  std::string tokenizer_source;
  ModelSpec new_spec;
  std::vector<float> initial;
  if (o.resume || !o.init.empty()) {
    const std::string dir = o.resume ? o.out : o.init;
    auto loaded = Model::load(dir);
    new_spec = loaded->spec;
    const ParamLayout layout = ParamLayout::build(new_spec);
    initial.assign(size_t(layout.total), 0.0f);
    import_params(new_spec, layout, loaded->weights, initial.data());
    tokenizer_source = dir;
  } else {
    std::string tok_path = o.tokenizer;
    if (tok_path.empty() && !o.data.empty()) tok_path = (fs::path(o.data) / "tokenizer").string();
    if (tok_path.empty()) fail("give --tokenizer FILE_OR_DIR (or --init DIR) for a new model");
    if (!fs::exists(tok_path)) fail("--tokenizer {}: not found", tok_path);
    Tokenizer tok = Tokenizer::from_path(tok_path);
    std::optional<int64_t> bos, eos;
    if (!tok.config().bos_token.empty())
      if (auto id = tok.token_to_id(tok.config().bos_token)) bos = *id;
    if (!tok.config().eos_token.empty())
      if (auto id = tok.token_to_id(tok.config().eos_token)) eos = *id;
    if (!eos)
      if (auto id = tok.token_to_id("<|endoftext|>")) eos = *id;
    if (!eos)
      if (auto id = tok.token_to_id("</s>")) eos = *id;
    if (!bos)
      if (auto id = tok.token_to_id("<s>")) bos = *id;
    new_spec = spec_from_options(o, tok.vocab_size(), bos, eos);
    const ParamLayout layout = ParamLayout::build(new_spec);
    initial.assign(size_t(layout.total), 0.0f);
    init_params(new_spec, layout, initial.data(), o.seed);
    tokenizer_source = tok_path;
  }
  std::unique_ptr<Trainable> model = make_trainable(o, new_spec, pool, initial, oc);
  std::vector<float>().swap(initial);
  const ModelSpec& spec = model->spec();

  // Data.
  const int64_t B = overfit ? 1 : o.batch, T = overfit ? int64_t(o.data_tokens.size()) - 1 : o.seq;
  const int64_t A = overfit ? 1 : o.grad_accum;
  if (spec.position == PositionKind::Learned && T > spec.max_position_embeddings)
    fail("sequence length {} exceeds the model's {} positions", T, spec.max_position_embeddings);
  for (int32_t t : o.data_tokens)
    if (t < 0 || t >= spec.vocab_size) fail("--data-tokens: id {} is outside the vocabulary ({})", t, spec.vocab_size);
  std::unique_ptr<DataSplit> train_split, val_split;
  if (!overfit) {
    train_split = std::make_unique<DataSplit>(o.data, "train");
    if (train_split->vocab_size() > spec.vocab_size)
      fail("--data {}: tokens of a {}-token vocabulary do not fit the model's {}", o.data, train_split->vocab_size(),
           spec.vocab_size);
    auto v = std::make_unique<DataSplit>(o.data, "val");
    if (!v->empty() && v->window_starts(T + 1) > 0) val_split = std::move(v);
  }

  // Optimiser and state.
  Optimizer optimizer(oc, model->layout());
  const double clip = o.clip.value_or(overfit ? 0.0 : 1.0);
  ScheduleConfig sc{schedule, o.lr, o.min_lr_ratio, o.warmup, o.steps, o.decay_fraction};

  TrainerState state;
  state.seed = o.seed;
  if (o.resume) {
    load_trainer_state(o.out, optimizer, state);
    model->optimizer_state_from_host(optimizer);
    if (state.step >= o.steps) fail("--resume: the checkpoint in {} is at step {}, already >= --steps {}", o.out, state.step, o.steps);
  }
  // Kept GEMM choices: those named by --gemm-algorithms, else a resumed checkpoint's.
  const nlohmann::json& kept = kept_gemm_algorithms.is_null() ? state.gemm_algorithms : kept_gemm_algorithms;
  // Checked here, on every device, so that a malformed table is refused rather than carried into the next save.
  if (!kept.is_null()) GemmAlgorithmTable::from_json(kept, "the kept GEMM choices (--gemm-algorithms or --resume)");
  if (!kept.is_null() && !model->use_gemm_algorithms(kept))
    std::fprintf(stderr,
                 "train: the kept GEMM algorithms were chosen by %s on %s, not here: choosing again, so this run "
                 "may differ from the one that kept them in the last digits\n",
                 kept.value("library", std::string("?")).c_str(), kept.value("device", std::string("?")).c_str());
  nlohmann::json opts = {{"arch", spec.model_type}, {"seq", T}, {"batch", B}, {"grad_accum", A}, {"steps", o.steps},
                         {"lr", o.lr}, {"schedule", schedule_name(schedule)}, {"warmup", o.warmup},
                         {"optimizer", o.optimizer}, {"weight_decay", oc.weight_decay}, {"clip", clip},
                         {"seed", state.seed}, {"data", o.data}, {"init", o.init},
                         {"gemm_algorithms", o.gemm_algorithms}};
  state.options = opts;
  std::unique_ptr<DataLoader> loader;
  if (!overfit) loader = std::make_unique<DataLoader>(*train_split, B, T, state.seed, state.loader_position);

  // Log.
  std::vector<std::pair<double, double>> plot_train, plot_val;
  std::ofstream log;
  if (!o.log_json.empty()) {
    std::string kept = o.resume ? kept_log(o.log_json, state.step, plot_train, plot_val) : "";
    if (fs::path(o.log_json).has_parent_path()) fs::create_directories(fs::path(o.log_json).parent_path());
    log.open(o.log_json, std::ios::trunc);
    if (!log) fail("--log-json {}: cannot write", o.log_json);
    log << kept;
    log.flush();
  }

  const bool tty = o.progress && ::isatty(STDERR_FILENO);
  const double flops_per_token = train_flops_per_token(spec, T);
  const double peak_flops = device_peak_flops(o);
  if (o.progress && o.device == "cuda" && peak_flops > 0)
    std::fprintf(stderr, "train: MFU against a bf16 GEMM peak of %.1f TFLOP/s\n", peak_flops / 1e12);
  const int64_t tokens_per_step = B * T * A;
  TrainSummary summary;
  summary.first_step = state.step;
  summary.parameters = spec.parameter_count();
  summary.out = o.out;
  if (o.progress) std::fprintf(stderr, "train: %s, %lld layers, hidden %lld, %lld heads (%lld kv), ffn %lld, vocab %lld: %.2fM parameters\n",
               spec.architecture.c_str(), (long long)spec.num_layers, (long long)spec.hidden_size,
               (long long)spec.num_heads, (long long)spec.num_kv_heads, (long long)spec.intermediate_size,
               (long long)spec.vocab_size, double(spec.parameter_count()) / 1e6);
  if (o.progress) std::fprintf(stderr, "train: %lld steps of %lld x %lld tokens%s, %s, %s lr %.3g, %s%s%s\n",
               (long long)o.steps, (long long)(B * A), (long long)T, A > 1 ? fmt::format(" ({} micro-batches)", A).c_str() : "",
               o.optimizer.c_str(), schedule_name(schedule).c_str(), o.lr,
               o.device == "cuda" ? "cuda" : fmt::format("{} threads", pool.size()).c_str(),
               o.checkpoint_activations ? ", activation checkpointing" : "",
               o.resume ? fmt::format(", resumed at step {}", state.step).c_str() : "");

  auto evaluate = [&]() -> std::optional<double> {
    if (!val_split) return std::nullopt;
    CrossEntropyResult total;
    std::vector<int32_t> windows(size_t(B * (T + 1)));
    int64_t index = 0;
    for (int64_t b = 0; b < o.eval_batches; ++b) {
      int64_t filled = 0;
      while (filled < B && val_split->read_sequential(index, T + 1, windows.data() + filled * (T + 1))) ++filled, ++index;
      if (filled == 0) break;
      CrossEntropyResult r = model->forward_loss(windows.data(), filled, T);
      total.loss_sum += r.loss_sum;
      total.count += r.count;
      if (filled < B) break;
    }
    if (total.count == 0) return std::nullopt;
    return total.loss_sum / double(total.count);
  };
  auto save = [&]() {
    if (o.out.empty()) return;
    state.loader_position = loader ? loader->position() : 0;
    model->optimizer_state_to_host(optimizer);
    if (nlohmann::json chosen = model->gemm_algorithms(); !chosen.is_null()) state.gemm_algorithms = std::move(chosen);
    save_checkpoint(o.out, spec, model->layout(), model->host_params(), optimizer, state, tokenizer_source);
  };

  const auto start = Clock::now();
  double last_loss = 0;
  const int64_t print_every = std::max<int64_t>(1, o.steps / 20);
  const int64_t last_step = o.stop_at > 0 ? std::min(o.stop_at, o.steps) : o.steps;
  for (int64_t step = state.step; step < last_step; ++step) {
    const auto t0 = Clock::now();
    const double lr = schedule == ScheduleKind::Constant && o.warmup == 0 ? o.lr : learning_rate(sc, step);
    model->zero_grads();
    double loss_sum = 0;
    int64_t count = 0;
    const float grad_scale = 1.0f / float(tokens_per_step);
    for (int64_t micro = 0; micro < A; ++micro) {
      std::vector<int32_t> windows = overfit ? o.data_tokens : loader->next();
      CrossEntropyResult r = model->forward_backward(windows.data(), B, T, grad_scale);
      loss_sum += r.loss_sum;
      count += r.count;
    }
    const double loss = loss_sum / double(std::max<int64_t>(count, 1));
    if (!std::isfinite(loss)) fail("step {}: the loss is {} (diverged); lower --lr", step + 1, loss);
    const double norm = model->grad_norm();
    model->clip_and_step(optimizer, norm, clip, lr);
    state.step = step + 1;
    state.tokens_seen += tokens_per_step;
    last_loss = loss;
    summary.losses.push_back(loss);
    plot_train.emplace_back(double(state.step), loss);

    const double step_s = std::chrono::duration<double>(Clock::now() - t0).count();
    const double elapsed = std::chrono::duration<double>(Clock::now() - start).count();
    const double done = double(state.step - summary.first_step);
    const double tok_s = double(tokens_per_step) / std::max(step_s, 1e-9);
    const double avg_tok_s = done * double(tokens_per_step) / std::max(elapsed, 1e-9);
    const double mfu = peak_flops > 0 ? avg_tok_s * flops_per_token / peak_flops : 0;
    const double eta = elapsed / done * double(o.steps - state.step);
    // Validation (every --eval-every steps, and after the last step), reported in the same log object.
    std::optional<double> val;
    const bool last = state.step == last_step;
    if (val_split && ((o.eval_every > 0 && state.step % o.eval_every == 0) || (last && (o.eval_every > 0 || !overfit)))) {
      val = evaluate();
      if (val) plot_val.emplace_back(double(state.step), *val);
      if (last) summary.val_loss = val;
    }
    if (log.is_open()) {
      log << fmt::format("{{\"step\":{},\"loss\":{:.9g},\"lr\":{:.9g},\"grad_norm\":{:.6g},\"tokens\":{},"
                         "\"tokens_per_s\":{:.1f},\"step_ms\":{:.3f}{}{}}}\n",
                         state.step, loss, lr, norm, state.tokens_seen, tok_s, step_s * 1e3,
                         peak_flops > 0 ? fmt::format(",\"mfu\":{:.4f}", mfu) : "",
                         val ? fmt::format(",\"val_loss\":{:.9g},\"val_ppl\":{:.6g}", *val, std::exp(*val)) : "");
      log.flush();
    }
    std::string line = fmt::format("step {}/{} | loss {:.4f} | lr {:.2e} | gnorm {:.3f} | {:.0f} tok/s", state.step,
                                   o.steps, loss, lr, norm, avg_tok_s);
    if (peak_flops > 0) line += fmt::format(" | MFU {:.1f}%", 100 * mfu);
    line += " | ETA " + format_duration(eta);
    if (o.progress) {
      if (tty) std::fprintf(stderr, "\r\033[2K%s", line.c_str());
      else if (state.step % print_every == 0 || state.step == o.steps) std::fprintf(stderr, "%s\n", line.c_str());
    }
    if (val && o.progress)
      std::fprintf(stderr, "%seval step %lld: val loss %.4f, ppl %.2f\n", tty ? "\r\033[2K" : "", (long long)state.step,
                   *val, std::exp(*val));
    if (o.save_every > 0 && state.step % o.save_every == 0 && state.step != last_step) save();
  }
  if (tty && o.progress) std::fprintf(stderr, "\n");
  summary.seconds = std::chrono::duration<double>(Clock::now() - start).count();
  summary.steps_done = state.step - summary.first_step;
  summary.tokens = summary.steps_done * tokens_per_step;
  summary.tokens_per_s = double(summary.tokens) / std::max(summary.seconds, 1e-9);
  summary.mfu = peak_flops > 0 ? summary.tokens_per_s * flops_per_token / peak_flops : 0;
  summary.final_loss = last_loss;
  summary.activation_bytes = model->activation_bytes();
  summary.device_bytes_in_use = model->device_bytes_in_use();
  summary.device_memory = model->device_memory();
  summary.peak_flops = peak_flops;
  state.elapsed_seconds += summary.seconds;
  save();
  if (log.is_open()) log.close();
  // The loss curve next to the log (or in the output directory).
  std::string svg_path;
  if (!o.log_json.empty()) svg_path = (fs::path(o.log_json).replace_extension(".svg")).string();
  else if (!o.out.empty()) svg_path = (fs::path(o.out) / "loss.svg").string();
  if (!svg_path.empty()) {
    write_file_atomically(svg_path, loss_curve_svg(plot_train, plot_val, fmt::format("{} ({} layers, hidden {})",
                                                                                     spec.architecture, spec.num_layers,
                                                                                     spec.hidden_size)));
    summary.svg = svg_path;
  }
  return summary;
}

}  // namespace roofline::train
