// roofline score: mean next-token cross-entropy and perplexity of a model on a text or token ids (f32).
#include <cmath>
#include <cstdio>

#include "commands.h"
#include "common.h"
#include "roofline/core/error.h"
#include "roofline/core/thread_pool.h"
#include "roofline/trainer/trainer.h"

namespace roofline::app {

Run add_score(CLI::App& root) {
  struct Options {
    std::string model, file, tokens;
    bool json = false;
    int threads = 0;
    int64_t window = 0;
  };
  auto o = std::make_shared<Options>();
  CLI::App* cmd = root.add_subcommand("score", "Print the mean next-token cross-entropy and perplexity of a text");
  cmd->add_option("-m,--model", o->model, "Model directory")->required();
  auto* file = cmd->add_option("-f,--file", o->file, "Text file to score");
  auto* tokens = cmd->add_option("--tokens", o->tokens, "Token ids, e.g. 1,2,3");
  file->excludes(tokens);
  cmd->add_flag("--json", o->json, "Print {\"loss\": L, \"ppl\": P, \"tokens\": N}");
  cmd->add_option("--window", o->window, "Predictions per window (default: the model's positions, at most 1024)");
  cmd->add_option("--threads", o->threads, "Threads (default: all)");
  return [o]() {
    if (o->file.empty() && o->tokens.empty()) fail("score: give -f TEXT_FILE or --tokens 1,2,3");
    auto model = Model::load(o->model);
    std::vector<int32_t> ids;
    if (!o->tokens.empty()) {
      ids = parse_id_list(o->tokens, "--tokens");
    } else {
      std::optional<Tokenizer> tok = try_load_tokenizer(o->model);
      if (!tok) fail("{}: no tokenizer to encode -f with; use --tokens", o->model);
      ids = tok->encode(read_file(o->file), true);
    }
    if (ids.size() < 2) fail("score: need at least 2 tokens, got {}", ids.size());
    for (int32_t id : ids)
      if (id < 0 || id >= model->spec.vocab_size) fail("score: token id {} is outside the vocabulary ({})", id, model->spec.vocab_size);
    ThreadPool pool(o->threads);
    train::TrainModel tm(model->spec, pool);
    train::import_params(tm.spec(), tm.layout(), model->weights, tm.params().data());
    const int64_t window = o->window > 0 ? o->window : std::min<int64_t>(model->spec.max_position_embeddings, 1024);
    train::CrossEntropyResult r = train::score_tokens(tm, ids, window);
    const double loss = r.loss_sum / double(r.count), ppl = std::exp(loss);
    if (o->json) std::printf("{\"loss\": %.9g, \"ppl\": %.9g, \"tokens\": %lld}\n", loss, ppl, (long long)r.count);
    else std::printf("loss %.6f  ppl %.4f  tokens %lld\n", loss, ppl, (long long)r.count);
    return 0;
  };
}

}  // namespace roofline::app
