// Encode throughput, single-threaded (thread CPU time), on a few MB of mixed text (source code and docs of this repository,
// plus the multilingual fixture texts). Disabled by default; run with
//   roofline_tokenizer_tests --gtest_also_run_disabled_tests --gtest_filter='*Speed*'
// ROOFLINE_TOKENIZER_CORPUS=<file> times that file instead (ROOFLINE_TOKENIZER_CORPUS_OUT=<file> writes
// the default corpus out, to time other tokenizers on the same bytes).
#include <gtest/gtest.h>

#include <algorithm>
#include <ctime>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "tokenizer_test_util.h"

namespace roofline::test {
namespace {

std::string mixed_corpus(size_t target_bytes) {
  if (const char* path = std::getenv("ROOFLINE_TOKENIZER_CORPUS")) return read_text_file(path);
  namespace fs = std::filesystem;
  std::vector<std::string> files;
  for (const char* dir : {"src", "docs", "tests/unit", "apps"}) {
    fs::path root = fs::path(ROOFLINE_SOURCE_DIR) / dir;
    if (!fs::exists(root)) continue;
    for (const auto& e : fs::recursive_directory_iterator(root)) {
      auto ext = e.path().extension().string();
      if (e.is_regular_file() && (ext == ".cpp" || ext == ".h" || ext == ".md" || ext == ".cu" || ext == ".py"))
        files.push_back(e.path().string());
    }
  }
  std::sort(files.begin(), files.end());
  std::string code;
  for (const auto& f : files) code += read_text_file(f);
  std::string multilingual;
  auto texts = nlohmann::json::parse(read_text_file(fixtures_dir() + "/tokenizer_texts.json"));
  for (const auto& t : texts) multilingual += t.get<std::string>() + "\n";
  // ~85% code and English, ~15% multilingual text, interleaved in 64 KiB blocks.
  std::string corpus;
  size_t ci = 0;
  while (corpus.size() < target_bytes && !code.empty()) {
    size_t n = std::min<size_t>(64 << 10, code.size() - ci);
    corpus.append(code, ci, n);
    ci = (ci + n) % code.size();
    while (corpus.size() % (64 << 10) < 12 << 10) corpus += multilingual;
  }
  if (const char* out = std::getenv("ROOFLINE_TOKENIZER_CORPUS_OUT")) std::ofstream(out, std::ios::binary) << corpus;
  return corpus;
}

// CPU time of this thread: the machines these tests run on are often shared, and wall time then measures
// the neighbours as much as the tokenizer.
double thread_seconds() {
  timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return double(ts.tv_sec) + double(ts.tv_nsec) * 1e-9;
}

TEST(TokenizerSpeed, DISABLED_EncodeThroughput) {
  std::string corpus = mixed_corpus(4 << 20);
  ASSERT_GT(corpus.size(), 1u << 20);
  std::printf("corpus: %.2f MB\n", double(corpus.size()) / 1e6);
  for (const char* name : {"llama3", "qwen3", "gpt2", "llama2"}) {
    const Tokenizer& tok = real_tokenizer(name);
    double best = 1e30;
    size_t n_ids = 0;
    for (int rep = 0; rep < 3; ++rep) {  // rep 0 starts with a cold word cache
      double t0 = thread_seconds();
      auto ids = tok.encode(corpus, false);
      double s = thread_seconds() - t0;
      n_ids = ids.size();
      if (rep == 0) std::printf("%-7s cold: %7.2f MB/s\n", name, double(corpus.size()) / 1e6 / s);
      best = std::min(best, s);
    }
    std::printf("%-7s warm: %7.2f MB/s  (%zu tokens, %.2f bytes/token, %.1f ms)\n", name,
                double(corpus.size()) / 1e6 / best, n_ids, double(corpus.size()) / double(n_ids), best * 1e3);
  }
}

}  // namespace
}  // namespace roofline::test
