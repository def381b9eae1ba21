// Each subcommand lives in its own file and registers itself on the root CLI11 app. The returned
// callback runs after parsing; it returns the process exit code and may throw roofline::Error.
#pragma once
#include <CLI/CLI.hpp>

#include <functional>

namespace roofline::app {

using Run = std::function<int()>;

Run add_generate(CLI::App& root);
Run add_logits(CLI::App& root);
Run add_tokenize(CLI::App& root);
Run add_detokenize(CLI::App& root);
Run add_chat(CLI::App& root);
Run add_info(CLI::App& root);
Run add_bench(CLI::App& root);
Run add_bench_tokenizer(CLI::App& bench);  // `bench tokenizer`, registered by add_bench
Run add_bench_serve(CLI::App& bench);      // `bench serve`, registered by add_bench
Run add_estimate(CLI::App& root);
Run add_calibrate(CLI::App& root);
Run add_serve(CLI::App& root);
Run add_profile(CLI::App& root);
Run add_report(CLI::App& root);
Run add_train(CLI::App& root);
Run add_data(CLI::App& root);   // `data prepare`
Run add_score(CLI::App& root);

}  // namespace roofline::app
