// roofline tokenize / detokenize: the tokenizer alone, for checks against HF tokenizers.
#include <cstdio>
#include <iostream>

#include <nlohmann/json.hpp>

#include "commands.h"
#include "common.h"
#include "roofline/core/error.h"

namespace roofline::app {

namespace {
struct TokenizerSource {
  std::string model, file;
  void add_to(CLI::App* cmd) {
    auto* m = cmd->add_option("-m,--model", model, "Model directory holding the tokenizer");
    auto* f = cmd->add_option("--tokenizer", file, "tokenizer.json file, or a directory with encoder.json + vocab.bpe");
    m->excludes(f);
  }
  Tokenizer load() const {
    if (!model.empty()) return Tokenizer::from_path(model);
    if (!file.empty()) return Tokenizer::from_path(file);
    fail("give the tokenizer with -m DIR or --tokenizer FILE");
  }
};
}  // namespace

Run add_tokenize(CLI::App& root) {
  struct Options {
    TokenizerSource source;
    std::string prompt, file;
    bool special = false, json = false;
  };
  auto o = std::make_shared<Options>();
  CLI::App* cmd = root.add_subcommand("tokenize", "Turn text into token ids");
  o->source.add_to(cmd);
  auto* p = cmd->add_option("-p,--prompt", o->prompt, "Text to tokenize");
  auto* f = cmd->add_option("-f,--file", o->file, "File whose contents to tokenize");
  p->excludes(f);
  cmd->add_flag("--special", o->special, "Apply the post-processor (add BOS etc.)");
  cmd->add_flag("--json", o->json, "Print {\"ids\":[...]}");
  return [o, p, f]() {
    if (p->count() == 0 && f->count() == 0) fail("tokenize: give the text with -p TEXT or -f FILE");
    Tokenizer tok = o->source.load();
    std::string text = f->count() ? read_file(o->file) : o->prompt;
    std::vector<int32_t> ids = tok.encode(text, o->special);
    if (o->json) {
      std::cout << nlohmann::json{{"ids", ids}}.dump() << "\n";
    } else {
      for (size_t i = 0; i < ids.size(); ++i) std::cout << (i ? " " : "") << ids[i];
      std::cout << "\n";
    }
    return 0;
  };
}

Run add_detokenize(CLI::App& root) {
  struct Options {
    TokenizerSource source;
    std::string ids;
    bool skip_special = false;
  };
  auto o = std::make_shared<Options>();
  CLI::App* cmd = root.add_subcommand("detokenize", "Turn token ids into text (printed exactly, no newline added)");
  o->source.add_to(cmd);
  cmd->add_option("--ids", o->ids, "Token ids, e.g. 1,2,3")->required();
  cmd->add_flag("--skip-special", o->skip_special, "Leave out special tokens");
  return [o]() {
    Tokenizer tok = o->source.load();
    std::vector<int32_t> ids = parse_id_list(o->ids, "--ids");
    for (int32_t id : ids)
      if (id >= tok.vocab_size()) fail("--ids: token id {} is outside the vocabulary (size {})", id, tok.vocab_size());
    std::string text = tok.decode(ids, o->skip_special);
    std::fwrite(text.data(), 1, text.size(), stdout);
    return 0;
  };
}

}  // namespace roofline::app
