// Golden test: ids and decoded text equal Hugging Face `tokenizers` for the real tokenizer files, on every
// case of tests/fixtures/tokenizer_refs/<name>.json (made by tests/fixtures/make_fixtures.py).
// ROOFLINE_TOKENIZER_REFS=<dir> compares against another directory of the same format (e.g. outputs of
// a development oracle). A missing reference file is a failure, not a skip.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "tokenizer_test_util.h"

namespace roofline::test {
namespace {

std::string refs_dir() {
  if (const char* env = std::getenv("ROOFLINE_TOKENIZER_REFS")) return env;
  return std::string(ROOFLINE_SOURCE_DIR "/tests/fixtures/tokenizer_refs");
}

std::string stream_decode(const Tokenizer& tok, const std::vector<int32_t>& ids, bool skip) {
  DecodeStream stream(tok, skip);
  std::string out;
  for (int32_t id : ids) out += stream.push(id);
  out += stream.flush();
  return out;
}

void check_golden(const std::string& name) {
  std::string path = refs_dir() + "/" + name + ".json";
  ASSERT_TRUE(std::filesystem::exists(path)) << "missing reference file " << path
                                             << " (made by tests/fixtures/make_fixtures.py --parts tokenizers)";
  nlohmann::json refs = nlohmann::json::parse(read_text_file(path));
  ASSERT_EQ(refs.value("tokenizer", ""), name);
  const Tokenizer& tok = real_tokenizer(name);
  const auto& cases = refs.at("cases");
  ASSERT_FALSE(cases.empty());
  size_t failures = 0;
  for (const auto& c : cases) {
    std::string text = c.at("text").get<std::string>();
    auto ids = c.at("ids").get<std::vector<int32_t>>();
    auto ids_special = c.at("ids_special").get<std::vector<int32_t>>();
    std::string decoded = c.at("decoded").get<std::string>();
    std::string decoded_skip = c.at("decoded_skip").get<std::string>();
    bool ok = true;
    ok &= tok.encode(text, false) == ids;
    EXPECT_EQ(tok.encode(text, false), ids) << name << ": encode(add_special_tokens=false) of '" << text << "'";
    ok &= tok.encode(text, true) == ids_special;
    EXPECT_EQ(tok.encode(text, true), ids_special) << name << ": encode(add_special_tokens=true) of '" << text << "'";
    EXPECT_EQ(tok.decode(ids_special, false), decoded) << name << ": decode of '" << text << "'";
    EXPECT_EQ(tok.decode(ids_special, true), decoded_skip) << name << ": decode(skip_special) of '" << text << "'";
    EXPECT_EQ(stream_decode(tok, ids_special, false), decoded) << name << ": DecodeStream of '" << text << "'";
    EXPECT_EQ(stream_decode(tok, ids_special, true), decoded_skip)
        << name << ": DecodeStream(skip_special) of '" << text << "'";
    if (!ok) ++failures;
  }
  EXPECT_EQ(failures, 0u) << name << ": " << failures << " of " << cases.size() << " texts encode differently";
  if (refs.contains("partial_decodes")) {
    for (const auto& p : refs["partial_decodes"]) {
      auto ids = p.at("ids").get<std::vector<int32_t>>();
      std::string decoded = p.at("decoded").get<std::string>();
      EXPECT_EQ(tok.decode(ids, false), decoded) << name << ": partial decode of " << p.at("ids").dump();
      EXPECT_EQ(stream_decode(tok, ids, false), decoded) << name << ": DecodeStream of " << p.at("ids").dump();
    }
  }
}

TEST(TokenizerGolden, Llama2) { check_golden("llama2"); }
TEST(TokenizerGolden, Llama3) { check_golden("llama3"); }
TEST(TokenizerGolden, Qwen3) { check_golden("qwen3"); }
TEST(TokenizerGolden, Gpt2) { check_golden("gpt2"); }

}  // namespace
}  // namespace roofline::test
