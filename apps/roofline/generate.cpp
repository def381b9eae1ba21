// roofline generate: text (or ids) in, generated text out; streams to stdout, or one JSON object.
#include <cstdio>
#include <iostream>

#include <nlohmann/json.hpp>

#include "commands.h"
#include "common.h"
#include "roofline/core/error.h"
#include "roofline/engine/generator.h"
#include "roofline/model/decoder.h"

namespace roofline::app {

Run add_generate(CLI::App& root) {
  struct Options {
    std::string model, prompt, tokens;
    int64_t max_new_tokens = 64;
    std::vector<std::string> stop;
    bool json = false, ignore_eos = false;
    DeviceOptions device;
    SamplingOptions sampling;
  };
  auto o = std::make_shared<Options>();
  CLI::App* cmd = root.add_subcommand("generate", "Generate text from a prompt");
  cmd->add_option("-m,--model", o->model, "Model directory (config.json, *.safetensors, tokenizer.json)")->required();
  auto* p = cmd->add_option("-p,--prompt", o->prompt, "Prompt text (encoded with the tokenizer's special tokens, e.g. BOS)");
  auto* t = cmd->add_option("--tokens", o->tokens, "Prompt as token ids, e.g. 1,2,3 (used as given)");
  p->excludes(t);
  cmd->add_option("-n,--max-tokens", o->max_new_tokens, "Maximum number of tokens to generate")->check(CLI::Range(int64_t(0), int64_t(1) << 30));
  cmd->add_option("--stop", o->stop, "Stop before this text (repeatable)");
  cmd->add_flag("--ignore-eos", o->ignore_eos, "Keep generating after an end-of-sequence token");
  cmd->add_flag("--json", o->json, "Print one JSON object {prompt_ids, ids, text, ...} instead of streaming text");
  o->device.add_to(cmd);
  o->sampling.add_to(cmd);
  return [o, p, t]() {
    if (p->count() == 0 && t->count() == 0) fail("generate: give a prompt with -p TEXT or --tokens 1,2,3");
    auto model = Model::load(o->model);
    auto tokenizer = try_load_tokenizer(o->model);
    std::vector<int32_t> prompt;
    if (t->count()) {
      prompt = parse_id_list(o->tokens, "--tokens");
    } else {
      if (!tokenizer) fail("{}: no tokenizer (tokenizer.json) in the model directory; pass --tokens instead of -p", o->model);
      prompt = tokenizer->encode(o->prompt, /*add_special_tokens=*/true);
      if (prompt.empty()) fail("generate: the prompt encodes to no tokens");
    }
    auto backend = o->device.make_backend();
    const ModelWeights weights = upload_weights(model->weights, *backend);
    Decoder decoder(model->spec, weights, *backend, o->device.kv_dtype(*backend));
    GenerateOptions options;
    options.max_new_tokens = o->max_new_tokens;
    options.sampling = o->sampling.resolve(model->spec);
    options.stop_strings = o->stop;
    if (!o->ignore_eos) options.eos_ids = eos_ids(model->spec, tokenizer ? &*tokenizer : nullptr);
    std::function<void(std::string_view)> stream;
    if (!o->json) stream = [](std::string_view piece) {
      std::fwrite(piece.data(), 1, piece.size(), stdout);
      std::fflush(stdout);
    };
    GenerateResult r = generate(decoder, tokenizer ? &*tokenizer : nullptr, prompt, options, stream);
    double decode_tps = r.ids.size() > 1 && r.decode_seconds > 0 ? double(r.ids.size() - 1) / r.decode_seconds : 0;
    double prefill_tps = r.prefill_seconds > 0 ? double(prompt.size()) / r.prefill_seconds : 0;
    if (o->json) {
      nlohmann::json j = {{"prompt_ids", prompt},
                          {"ids", r.ids},
                          {"text", r.text},
                          {"finish_reason", r.finish_reason},
                          {"timings", {{"prefill_seconds", r.prefill_seconds},
                                       {"decode_seconds", r.decode_seconds},
                                       {"prefill_tokens_per_s", prefill_tps},
                                       {"decode_tokens_per_s", decode_tps}}}};
      std::cout << j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
    } else {
      std::printf("\n");
      std::fflush(stdout);  // the stats line on stderr comes after the text
      std::fprintf(stderr, "[%zu prompt tokens, %zu generated (%s); prefill %.1f tok/s, decode %.1f tok/s]\n",
                   prompt.size(), r.ids.size(), r.finish_reason.c_str(), prefill_tps, decode_tps);
    }
    return 0;
  };
}

}  // namespace roofline::app
