// roofline bench tokenizer: single-threaded encode speed on a text file (the tokenizer alone, file already
// in memory), median of several passes; JSON for side-by-side tables with HF tokenizers.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <iostream>

#include <nlohmann/json.hpp>

#include "commands.h"
#include "common.h"
#include "roofline/core/atomic_file.h"
#include "roofline/core/error.h"

namespace roofline::app {

Run add_bench_tokenizer(CLI::App& bench) {
  struct Options {
    std::string tokenizer, file, json_path, ids_path;
    int repeat = 5;
    bool lines = false;
  };
  auto o = std::make_shared<Options>();
  CLI::App* cmd = bench.add_subcommand("tokenizer", "Measure single-threaded encode speed of a tokenizer on a text file");
  cmd->add_option("--tokenizer", o->tokenizer, "tokenizer.json, or a directory (model or encoder.json + vocab.bpe)")->required();
  cmd->add_option("-f,--file", o->file, "Text file to encode")->required();
  cmd->add_option("--repeat", o->repeat, "Timed passes (median reported)")->check(CLI::Range(1, 1000));
  cmd->add_option("--json", o->json_path, "Also write the results as JSON to this file");
  cmd->add_option("--ids-out", o->ids_path, "Write the ids (one per line) to this file, for exactness checks");
  cmd->add_flag("--lines", o->lines, "Encode each line (with its newline) as its own text, as a server sees many short inputs");
  return [o]() {
    Tokenizer tok = Tokenizer::from_path(o->tokenizer);
    const std::string text = read_file(o->file);
    std::vector<std::string_view> pieces;
    if (o->lines) {
      for (size_t begin = 0; begin < text.size();) {
        size_t end = text.find('\n', begin);
        end = end == std::string::npos ? text.size() : end + 1;
        pieces.push_back(std::string_view(text).substr(begin, end - begin));
        begin = end;
      }
    } else {
      pieces.push_back(text);
    }
    std::vector<int32_t> ids;
    auto encode_all = [&] {
      ids.clear();
      for (std::string_view piece : pieces) {
        std::vector<int32_t> part = tok.encode(piece, false);
        ids.insert(ids.end(), part.begin(), part.end());
      }
    };
    encode_all();  // warm-up (also fills caches, as in real use)
    std::vector<double> seconds;
    for (int i = 0; i < o->repeat; ++i) {
      auto t0 = std::chrono::steady_clock::now();
      encode_all();
      seconds.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    }
    std::sort(seconds.begin(), seconds.end());
    const double s = seconds[seconds.size() / 2];
    const double mb_s = double(text.size()) / s / 1e6;
    std::printf("%-14s %s\n%-14s %s (%.2f MB)\n%-14s %zu\n%-14s %.3f s median of %d (min %.3f)\n%-14s %.2f MB/s, %.0f tokens/s\n",
                "tokenizer", o->tokenizer.c_str(), "text", o->file.c_str(), double(text.size()) / 1e6, "tokens",
                ids.size(), "encode", s, o->repeat, seconds.front(), "speed", mb_s, double(ids.size()) / s);
    if (!o->json_path.empty()) {
      nlohmann::json j = {{"tokenizer", o->tokenizer}, {"file", o->file}, {"bytes", text.size()},
                          {"tokens", ids.size()}, {"seconds", s}, {"mb_per_s", mb_s},
                          {"tokens_per_s", double(ids.size()) / s}, {"threads", 1},
                          {"mode", o->lines ? "lines" : "whole"}, {"inputs", pieces.size()}};
      write_file_atomically(o->json_path, j.dump(1) + "\n");
    }
    if (!o->ids_path.empty()) {
      std::string out;
      for (int32_t id : ids) out += std::to_string(id) + "\n";
      write_file_atomically(o->ids_path, out);
    }
    return 0;
  };
}

}  // namespace roofline::app
