// roofline logits: float32 logits of every position, for golden comparisons against other engines.
#include <iostream>

#include <nlohmann/json.hpp>

#include "commands.h"
#include "common.h"
#include "roofline/model/decoder.h"

namespace roofline::app {

Run add_logits(CLI::App& root) {
  struct Options {
    std::string model, tokens;
    bool json = false;
    DeviceOptions device;
  };
  auto o = std::make_shared<Options>();
  CLI::App* cmd = root.add_subcommand("logits", "Print the logits of every position for a token sequence");
  cmd->add_option("-m,--model", o->model, "Model directory")->required();
  cmd->add_option("--tokens", o->tokens, "Token ids, e.g. 1,2,3")->required();
  cmd->add_flag("--json", o->json, "Print {\"shape\":[T,V],\"logits\":[[...],...]} (the only output format)");
  o->device.add_to(cmd);
  return [o]() {
    auto model = Model::load(o->model);
    std::vector<int32_t> ids = parse_id_list(o->tokens, "--tokens");
    auto backend = o->device.make_backend();
    const ModelWeights weights = upload_weights(model->weights, *backend);
    Decoder decoder(model->spec, weights, *backend, o->device.kv_dtype(*backend));
    KvCache cache = decoder.new_cache(int64_t(ids.size()));
    const Tensor& logits = decoder.forward(ids, cache, /*all_logits=*/true);
    const int64_t T = logits.dim(0), V = logits.dim(1);
    // Written by hand: a [T, V] float array is large, and nlohmann would build it as a tree first.
    std::string out = "{\"shape\":[" + std::to_string(T) + "," + std::to_string(V) + "],\"logits\":[";
    char buf[32];
    for (int64_t t = 0; t < T; ++t) {
      out += t ? ",[" : "[";
      for (int64_t v = 0; v < V; ++v) {
        std::snprintf(buf, sizeof buf, v ? ",%.9g" : "%.9g", double(logits.ptr<float>()[t * V + v]));
        out += buf;
      }
      out += "]";
    }
    out += "]}\n";
    std::cout << out;
    return 0;
  };
}

}  // namespace roofline::app
