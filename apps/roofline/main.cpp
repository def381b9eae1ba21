// roofline: one binary, one subcommand per file in this folder.
#include <cstdio>
#include <vector>

#include "commands.h"
#include "roofline/core/error.h"

int main(int argc, char** argv) {
  CLI::App root{"roofline: an LLM engine that knows how close it runs to the hardware's limit"};
#ifdef ROOFLINE_HAVE_CUDA
  root.set_version_flag("--version", ROOFLINE_VERSION " (CPU and CUDA sm_90a)");
#else
  root.set_version_flag("--version", ROOFLINE_VERSION " (CPU only)");
#endif
  root.require_subcommand(1);
  std::vector<std::pair<CLI::App*, roofline::app::Run>> commands;
  auto add = [&](roofline::app::Run (*adder)(CLI::App&)) {
    size_t before = root.get_subcommands({}).size();
    roofline::app::Run run = adder(root);
    commands.emplace_back(root.get_subcommands({})[before], std::move(run));
  };
  add(roofline::app::add_generate);
  add(roofline::app::add_logits);
  add(roofline::app::add_tokenize);
  add(roofline::app::add_detokenize);
  add(roofline::app::add_chat);
  add(roofline::app::add_info);
  add(roofline::app::add_bench);
  add(roofline::app::add_estimate);
  add(roofline::app::add_calibrate);
  add(roofline::app::add_serve);
  add(roofline::app::add_profile);
  add(roofline::app::add_report);
  add(roofline::app::add_train);
  add(roofline::app::add_data);
  add(roofline::app::add_score);
  try {
    root.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return root.exit(e);
  }
  try {
    for (auto& [cmd, run] : commands)
      if (cmd->parsed()) return run();
  } catch (const roofline::Error& e) {
    std::fprintf(stderr, "roofline: error: %s\n", e.what());
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "roofline: error: %s\n", e.what());
    return 1;
  }
  return 0;
}
