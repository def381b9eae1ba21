// Loading: tokenizer.json (+ tokenizer_config.json), GPT-2's encoder.json + vocab.bpe (or vocab.json +
// merges.txt), and model directories.
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "roofline/core/error.h"
#include "roofline/tokenizer/json_util.h"
#include "roofline/tokenizer/tokenizer_impl.h"

namespace roofline {

namespace fs = std::filesystem;

namespace {

std::string read_file(const std::string& path, const char* what) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail("cannot open {} '{}': {}", what, path, std::strerror(errno));
  std::ostringstream ss;
  ss << in.rdbuf();
  if (in.bad()) fail("cannot read {} '{}'", what, path);
  return ss.str();
}

nlohmann::json parse_json(const std::string& text, const std::string& label) {
  try {
    return nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    fail("{}: malformed JSON: {}", label, e.what());
  }
}

// A special-token entry of tokenizer_config.json: a string, {"content": ...} or null.
std::string config_token(const nlohmann::json& j, const char* key, const std::string& label) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return {};
  if (it->is_string()) return it->get<std::string>();
  if (it->is_object() && it->contains("content") && (*it)["content"].is_string())
    return (*it)["content"].get<std::string>();
  fail("{}: '{}' must be a string or {{\"content\": ...}}, got {}", label, key, it->dump());
}

TokenizerConfig parse_config(const std::string& text, const std::string& label) {
  nlohmann::json j = parse_json(text, label);
  if (!j.is_object()) fail("{}: expected a JSON object", label);
  TokenizerConfig config;
  if (auto it = j.find("chat_template"); it != j.end() && !it->is_null()) {
    if (it->is_string()) {
      config.chat_template = it->get<std::string>();
    } else if (it->is_array()) {  // [{"name": ..., "template": ...}]: the one named "default", else the first
      for (const auto& entry : *it) {
        if (!entry.is_object() || !entry.contains("template") || !entry["template"].is_string())
          fail("{}: chat_template list entries must be {{\"name\": ..., \"template\": ...}}", label);
        bool is_default = entry.value("name", std::string()) == "default";
        if (config.chat_template.empty() || is_default) config.chat_template = entry["template"].get<std::string>();
        if (is_default) break;
      }
    } else {
      fail("{}: 'chat_template' must be a string or a list of named templates", label);
    }
  }
  config.bos_token = config_token(j, "bos_token", label);
  config.eos_token = config_token(j, "eos_token", label);
  config.pad_token = config_token(j, "pad_token", label);
  config.unk_token = config_token(j, "unk_token", label);
  for (const char* key : {"add_bos_token", "add_eos_token"}) {
    auto it = j.find(key);
    if (it == j.end() || it->is_null()) continue;
    if (!it->is_boolean()) fail("{}: '{}' must be true or false", label, key);
    (std::string(key) == "add_bos_token" ? config.add_bos_token : config.add_eos_token) = it->get<bool>();
  }
  return config;
}

void load_sibling_config(TokenizerConfig& out, const fs::path& dir) {
  fs::path config = dir / "tokenizer_config.json";
  std::error_code ec;
  if (fs::is_regular_file(config, ec)) out = parse_config(read_file(config.string(), "tokenizer config"), config.string());
}

}  // namespace

Tokenizer Tokenizer::from_json_string(const std::string& json, const std::string& label) {
  nlohmann::json j = parse_json(json, label);
  if (!j.is_object()) fail("{}: expected a JSON object at the top level", label);
  auto impl = std::make_unique<Impl>();
  impl->label = label;

  const auto& model = tok::json_field(j, "model", label);
  std::string type;
  if (model.is_object() && model.contains("type")) {
    type = tok::json_type(model, label + " model");
  } else if (model.is_object() && model.contains("merges")) {
    type = "BPE";  // older files omit the type
  } else {
    fail("{}: model has no 'type'", label);
  }
  if (type != "BPE") fail("{}: model type '{}' is not supported (supported: BPE)", label, type);
  impl->model = tok::BpeModel::from_json(model, label + " model");

  auto part = [&](const char* key) -> const nlohmann::json& {
    static const nlohmann::json null_json;
    auto it = j.find(key);
    return it == j.end() ? null_json : *it;
  };
  impl->normalizer = tok::make_normalizer(part("normalizer"), label + " normalizer");
  impl->pre_tokenizer = tok::make_pre_tokenizer(part("pre_tokenizer"), label + " pre_tokenizer");
  impl->post_processor = tok::make_post_processor(part("post_processor"), label + " post_processor");
  impl->decoder = tok::make_decoder(part("decoder"), label + " decoder");

  const auto& added = part("added_tokens");
  if (!added.is_null() && !added.is_array()) fail("{}: 'added_tokens' must be a list", label);
  if (added.is_array()) {
    for (size_t i = 0; i < added.size(); ++i) {
      std::string where = fmt::format("{} added_tokens[{}]", label, i);
      const auto& a = added[i];
      tok::AddedToken t;
      t.content = tok::json_string(a, "content", where);
      t.special = tok::json_bool(a, "special", where, false);
      t.single_word = tok::json_bool(a, "single_word", where, false);
      t.lstrip = tok::json_bool(a, "lstrip", where, false);
      t.rstrip = tok::json_bool(a, "rstrip", where, false);
      t.normalized = tok::json_bool(a, "normalized", where, !t.special);
      // HF gives a token already in the model vocab that id; the file's id otherwise.
      if (auto model_id = impl->model->token_to_id(t.content)) {
        t.id = *model_id;
      } else {
        int64_t id = tok::json_int(a, "id", where);
        if (id < 0 || id > tok::kMaxTokenId) fail("{}: id {} out of range (0 to {})", where, id, tok::kMaxTokenId);
        t.id = int32_t(id);
      }
      impl->added.add(std::move(t));
    }
  }
  impl->finalize();
  return Tokenizer(std::move(impl));
}

Tokenizer Tokenizer::from_json_file(const std::string& path) {
  Tokenizer t = from_json_string(read_file(path, "tokenizer file"), path);
  load_sibling_config(t.impl_->config, fs::path(path).parent_path());
  return t;
}

Tokenizer Tokenizer::from_gpt2_files(const std::string& encoder_json, const std::string& vocab_bpe) {
  nlohmann::json encoder = parse_json(read_file(encoder_json, "GPT-2 encoder"), encoder_json);
  if (!encoder.is_object()) fail("{}: expected an object of token -> id", encoder_json);
  std::vector<std::pair<std::string, int32_t>> vocab;
  vocab.reserve(encoder.size());
  for (auto it = encoder.begin(); it != encoder.end(); ++it) {
    if (!it.value().is_number_integer()) fail("{}: id of '{}' is not an integer", encoder_json, it.key());
    vocab.emplace_back(it.key(), int32_t(it.value().get<int64_t>()));
  }

  // vocab.bpe: an optional "#version" line, then one "a b" merge per line (HF's BPE::read_file).
  std::string text = read_file(vocab_bpe, "GPT-2 merges");
  std::vector<std::pair<std::string, std::string>> merges;
  size_t line_no = 0, pos = 0;
  while (pos < text.size()) {
    size_t end = text.find('\n', pos);
    if (end == std::string::npos) end = text.size();
    std::string line = text.substr(pos, end - pos);
    pos = end + 1;
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.rfind("#version", 0) == 0 || line.empty()) continue;
    size_t space = line.find(' ');
    if (space == std::string::npos || line.find(' ', space + 1) != std::string::npos)
      fail("{}: line {} '{}' is not two tokens separated by one space", vocab_bpe, line_no, line);
    merges.emplace_back(line.substr(0, space), line.substr(space + 1));
  }

  auto impl = std::make_unique<Impl>();
  impl->label = encoder_json;
  impl->model = std::make_unique<tok::BpeModel>(std::move(vocab), std::move(merges), tok::BpeOptions{},
                                                encoder_json + " + " + vocab_bpe);
  impl->pre_tokenizer = tok::make_byte_level_pre_tokenizer(/*add_prefix_space=*/false, /*use_regex=*/true);
  impl->decoder = tok::make_byte_level_decoder();
  // As HF's GPT-2 tokenizer: <|endoftext|> is a special token (bos = eos = unk).
  const std::string eot = "<|endoftext|>";
  if (auto id = impl->model->token_to_id(eot)) {
    impl->added.add(tok::AddedToken{eot, *id, false, false, false, /*normalized=*/false, /*special=*/true});
    impl->config.bos_token = impl->config.eos_token = impl->config.unk_token = eot;
  }
  impl->finalize();
  Tokenizer t(std::move(impl));
  load_sibling_config(t.impl_->config, fs::path(encoder_json).parent_path());
  return t;
}

Tokenizer Tokenizer::from_path(const std::string& path) {
  std::error_code ec;
  fs::path p(path);
  if (fs::is_regular_file(p, ec)) return from_json_file(path);
  if (!fs::is_directory(p, ec)) fail("tokenizer path '{}' does not exist", path);
  if (fs::is_regular_file(p / "tokenizer.json", ec)) return from_json_file((p / "tokenizer.json").string());
  if (fs::is_regular_file(p / "encoder.json", ec) && fs::is_regular_file(p / "vocab.bpe", ec))
    return from_gpt2_files((p / "encoder.json").string(), (p / "vocab.bpe").string());
  if (fs::is_regular_file(p / "vocab.json", ec) && fs::is_regular_file(p / "merges.txt", ec))
    return from_gpt2_files((p / "vocab.json").string(), (p / "merges.txt").string());
  fail("no tokenizer in '{}': expected tokenizer.json, encoder.json + vocab.bpe, or vocab.json + merges.txt", path);
}

}  // namespace roofline
