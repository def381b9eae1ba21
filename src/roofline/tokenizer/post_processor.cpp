#include "roofline/tokenizer/post_processor.h"

#include <nlohmann/json.hpp>

#include "roofline/core/error.h"
#include "roofline/tokenizer/json_util.h"

namespace roofline::tok {

namespace {

class NoopPostProcessor final : public PostProcessor {
 public:
  void process(std::vector<int32_t>&, bool) const override {}
};

class SequencePostProcessor final : public PostProcessor {
 public:
  explicit SequencePostProcessor(std::vector<std::unique_ptr<PostProcessor>> parts) : parts_(std::move(parts)) {}
  void process(std::vector<int32_t>& ids, bool add_special_tokens) const override {
    for (const auto& p : parts_) p->process(ids, add_special_tokens);
  }

 private:
  std::vector<std::unique_ptr<PostProcessor>> parts_;
};

// The "single" template: a list of items, each the sequence (-1 marks it) or a run of special-token ids.
class TemplatePostProcessor final : public PostProcessor {
 public:
  explicit TemplatePostProcessor(std::vector<std::vector<int32_t>> items) : items_(std::move(items)) {}
  void process(std::vector<int32_t>& ids, bool add_special_tokens) const override {
    if (!add_special_tokens) return;
    std::vector<int32_t> out;
    out.reserve(ids.size() + 8);
    for (const auto& item : items_) {
      if (item.empty()) {
        out.insert(out.end(), ids.begin(), ids.end());
      } else {
        out.insert(out.end(), item.begin(), item.end());
      }
    }
    ids = std::move(out);
  }

 private:
  std::vector<std::vector<int32_t>> items_;  // empty vector = the sequence itself
};

// [cls] A [sep] (RobertaProcessing and BertProcessing agree for a single sequence).
class ClsSepPostProcessor final : public PostProcessor {
 public:
  ClsSepPostProcessor(int32_t cls, int32_t sep) : cls_(cls), sep_(sep) {}
  void process(std::vector<int32_t>& ids, bool add_special_tokens) const override {
    if (!add_special_tokens) return;
    ids.insert(ids.begin(), cls_);
    ids.push_back(sep_);
  }

 private:
  int32_t cls_, sep_;
};

int32_t token_pair_id(const nlohmann::json& j, const char* key, const std::string& where) {
  const auto& v = json_field(j, key, where);
  if (!v.is_array() || v.size() != 2 || !v[1].is_number_integer())
    fail("{}: '{}' must be [token, id], got {}", where, key, v.dump());
  return int32_t(v[1].get<int64_t>());
}

std::unique_ptr<PostProcessor> make_template(const nlohmann::json& j, const std::string& where) {
  const auto& single = json_field(j, "single", where);
  if (!single.is_array()) fail("{}: TemplateProcessing 'single' must be a list", where);
  const nlohmann::json empty = nlohmann::json::object();
  const auto& specials = j.contains("special_tokens") ? j["special_tokens"] : empty;
  std::vector<std::vector<int32_t>> items;
  for (const auto& piece : single) {
    if (piece.contains("Sequence")) {
      items.emplace_back();
      continue;
    }
    if (!piece.contains("SpecialToken"))
      fail("{}: template item must be {{\"Sequence\": ...}} or {{\"SpecialToken\": ...}}, got {}", where, piece.dump());
    std::string name = json_string(piece["SpecialToken"], "id", where + " SpecialToken");
    if (!specials.is_object() || !specials.contains(name))
      fail("{}: template uses special token '{}' missing from 'special_tokens'", where, name);
    const nlohmann::json ids_json = json_field(specials[name], "ids", where + " special_tokens." + name);
    std::vector<int32_t> ids;
    for (const auto& id : ids_json) {
      if (!id.is_number_integer()) fail("{}: special token '{}' has a non-integer id", where, name);
      ids.push_back(int32_t(id.get<int64_t>()));
    }
    if (ids.empty()) continue;  // contributes nothing
    items.push_back(std::move(ids));
  }
  return std::make_unique<TemplatePostProcessor>(std::move(items));
}

}  // namespace

std::unique_ptr<PostProcessor> make_post_processor(const nlohmann::json& j, const std::string& where) {
  if (j.is_null()) return nullptr;
  std::string type = json_type(j, where);
  if (type == "TemplateProcessing") return make_template(j, where);
  if (type == "ByteLevel") return std::make_unique<NoopPostProcessor>();
  if (type == "RobertaProcessing" || type == "BertProcessing")
    return std::make_unique<ClsSepPostProcessor>(token_pair_id(j, "cls", where), token_pair_id(j, "sep", where));
  if (type == "Sequence") {
    const auto& list = json_field(j, "processors", where);
    if (!list.is_array()) fail("{}: Sequence 'processors' must be a list", where);
    std::vector<std::unique_ptr<PostProcessor>> parts;
    for (size_t i = 0; i < list.size(); ++i) {
      auto part = make_post_processor(list[i], fmt::format("{}[{}]", where, i));
      if (part) parts.push_back(std::move(part));
    }
    return std::make_unique<SequencePostProcessor>(std::move(parts));
  }
  fail("{}: post-processor type '{}' is not supported (supported: TemplateProcessing, ByteLevel, RobertaProcessing, "
       "BertProcessing, Sequence)",
       where, type);
}

}  // namespace roofline::tok
