// roofline data prepare: tokenize text files into token shards (+ manifest, tokenizer copy) for training.
#include <cstdio>

#include "commands.h"
#include "roofline/core/error.h"
#include "roofline/core/thread_pool.h"
#include "roofline/train/data.h"

namespace roofline::app {

Run add_data(CLI::App& root) {
  struct Options {
    train::PrepareOptions prepare;
    int threads = 0;
  };
  auto o = std::make_shared<Options>();
  CLI::App* data = root.add_subcommand("data", "Prepare training data");
  data->require_subcommand(1);
  CLI::App* prep = data->add_subcommand("prepare", "Tokenize text files into binary token shards with a train/val split");
  prep->add_option("--tokenizer", o->prepare.tokenizer, "tokenizer.json, or a directory holding one (a model directory)")
      ->required();
  prep->add_option("--input", o->prepare.inputs, "Text files (each one document)")->required()->expected(1, -1);
  prep->add_option("--output", o->prepare.output, "Output directory")->required();
  prep->add_option("--val-fraction", o->prepare.val_fraction, "Fraction of tokens held out for validation (default 0.05)");
  prep->add_option("--shard-tokens", o->prepare.shard_tokens, "Tokens per shard file (default 100M)");
  prep->add_option("--threads", o->threads, "Tokenizer threads (default: all)");
  return [o, prep]() {
    if (!prep->parsed()) return 0;
    ThreadPool pool(o->threads);
    train::PrepareSummary s = train::prepare_data(o->prepare, pool);
    std::printf("prepared %s: %lld train tokens (%d shard%s), %lld val tokens, vocab %lld (%s tokens), "
                "%.1f MB of text in %.2f s (%.2f MB/s)\n",
                o->prepare.output.c_str(), (long long)s.train_tokens, s.train_shards, s.train_shards == 1 ? "" : "s",
                (long long)s.val_tokens, (long long)s.vocab_size, s.token_bytes == 2 ? "u16" : "u32",
                double(s.input_bytes) / 1e6, s.seconds, double(s.input_bytes) / 1e6 / std::max(s.seconds, 1e-9));
    return 0;
  };
}

}  // namespace roofline::app
