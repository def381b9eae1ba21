// roofline chat: an interactive conversation through the model's chat template. Reads one user message
// per line from stdin (a terminal or a pipe); /reset starts over, /exit (or end of input) quits.
#include <cstdio>
#include <iostream>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include "commands.h"
#include "common.h"
#include "roofline/core/error.h"
#include "roofline/engine/generator.h"
#include "roofline/model/decoder.h"
#include "roofline/tokenizer/chat_template.h"

namespace roofline::app {

Run add_chat(CLI::App& root) {
  struct Options {
    std::string model, system;
    int64_t max_new_tokens = 512;
    DeviceOptions device;
    SamplingOptions sampling;
  };
  auto o = std::make_shared<Options>();
  CLI::App* cmd = root.add_subcommand("chat", "Chat with a model interactively (uses its chat template)");
  cmd->add_option("-m,--model", o->model, "Model directory with tokenizer.json and tokenizer_config.json")->required();
  cmd->add_option("--system", o->system, "System prompt");
  cmd->add_option("-n,--max-tokens", o->max_new_tokens, "Maximum tokens per reply")->check(CLI::PositiveNumber);
  o->device.add_to(cmd);
  o->sampling.add_to(cmd);
  return [o]() {
    auto model = Model::load(o->model);
    auto tokenizer = try_load_tokenizer(o->model);
    if (!tokenizer) fail("{}: chat needs tokenizer.json in the model directory", o->model);
    const std::string& source = tokenizer->config().chat_template;
    if (source.empty()) fail("{}: tokenizer_config.json has no chat_template; use `roofline generate` instead", o->model);
    ChatTemplate chat_template(source);
    auto backend = o->device.make_backend();
    const ModelWeights weights = upload_weights(model->weights, *backend);
    Decoder decoder(model->spec, weights, *backend, o->device.kv_dtype(*backend));
    GenerateOptions options;
    options.max_new_tokens = o->max_new_tokens;
    options.sampling = o->sampling.resolve(model->spec);
    options.eos_ids = eos_ids(model->spec, &*tokenizer);
    options.context_length = std::min<int64_t>(model->spec.max_position_embeddings > 0 ? model->spec.max_position_embeddings : 4096, 32768);

    nlohmann::json messages = nlohmann::json::array();
    if (!o->system.empty()) messages.push_back({{"role", "system"}, {"content", o->system}});
    const bool interactive = isatty(fileno(stdin));
    if (interactive) std::fprintf(stderr, "Chatting with %s. /reset starts over, /exit quits.\n", o->model.c_str());
    std::string line;
    for (;;) {
      if (interactive) std::fprintf(stderr, "> ");
      if (!std::getline(std::cin, line) || line == "/exit") break;
      if (line == "/reset") {
        messages = nlohmann::json::array();
        if (!o->system.empty()) messages.push_back({{"role", "system"}, {"content", o->system}});
        continue;
      }
      if (line.empty()) continue;
      messages.push_back({{"role", "user"}, {"content", line}});
      nlohmann::json vars = {{"messages", messages},
                             {"add_generation_prompt", true},
                             {"bos_token", tokenizer->config().bos_token},
                             {"eos_token", tokenizer->config().eos_token}};
      std::string prompt_text = chat_template.render(vars);
      // The template already holds BOS and other special tokens: no post-processor (as HF chat does).
      std::vector<int32_t> prompt = tokenizer->encode(prompt_text, /*add_special_tokens=*/false);
      options.sampling.seed += 1;  // a fresh draw per reply, still reproducible from --seed
      GenerateResult r = generate(decoder, &*tokenizer, prompt, options, [](std::string_view piece) {
        std::fwrite(piece.data(), 1, piece.size(), stdout);
        std::fflush(stdout);
      });
      std::printf("\n");
      std::fflush(stdout);
      messages.push_back({{"role", "assistant"}, {"content", r.text}});
    }
    return 0;
  };
}

}  // namespace roofline::app
